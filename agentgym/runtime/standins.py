"""Stand-ins for base images that cannot be pulled here, and the verifier tools real tasks fetch.

Nothing is pulled from a registry. A task whose Dockerfile starts ``FROM ubuntu:24.04`` (or
``python:3.12-slim``, ``debian:bookworm-slim``, Terminal-Bench's ``ghcr.io/laude-institute/
t-bench/ubuntu-24-04``...) is built on a **stand-in**: an image agentgym builds locally from
Debian bookworm packages (``debootstrap --variant=minbase`` + ``apt-get install``) and tags with
the requested name, **only when no image of that name exists locally**. :data:`BASE_IMAGE_MAP`
says which names have stand-ins, what each adds to the minimal Debian root, and how it differs
from the real image; ``AGENTGYM_BASE_IMAGES=/path/to/map.toml`` adds (or overrides) entries::

    [[image]]
    match = "ubuntu:24.04"          # fnmatch pattern on the FROM reference
    packages = ["python3", "curl"]  # Debian bookworm packages
    dockerfile = "WORKDIR /app"     # extra Dockerfile lines (optional)
    note = "what differs from the real image"

Every stand-in also carries the **verifier tools** (:func:`verifier_tools`) under
``/usr/local/lib/agentgym``: ``uv``/``uvx`` (from the ``uv`` wheel on PyPI) on ``PATH``, a
wheelhouse of common test dependencies (pytest...), and a compatibility shim for ``curl``/``wget``
that serves uv's installer (``https://astral.sh/uv/<version>/install.sh``) from the image and
passes every other request to the real program (or fails loudly when there is none). The
installer it serves puts ``uv``/``uvx`` in ``~/.local/bin`` and writes ``~/.local/bin/env``,
as the real one does. :data:`OFFLINE_PRELUDE` makes uv and pip resolve from the wheelhouse
with no index; Harbor's verifier runs it before ``tests/test.sh``, so an unmodified task's
``curl -LsSf https://astral.sh/uv/install.sh | sh; uvx --with pytest==8.4.1 pytest ...`` works
offline. Stand-ins and the tools are cached by content hash (a changed recipe rebuilds them).

>>> standin_for("ubuntu:24.04").match, standin_for("python:3.12-slim").match
('ubuntu:24.04', 'python:3.*-slim*')
>>> standin_for("nvidia/cuda:12.4") is None
True
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentgym.errors import RuntimeError_

__all__ = ["BASE_IMAGE_MAP", "MINBASE_IMAGE", "OFFLINE_PRELUDE", "TOOLS_DIR", "UV_VERSION", "VERIFIER_WHEELS",
           "StandIn", "build_rootfs_image", "ensure_standin", "standin_for", "verifier_tools"]

log = logging.getLogger(__name__)

MINBASE_IMAGE = "agentgym/minbase:bookworm"
"""``debootstrap --variant=minbase bookworm``, nothing added: the root of every stand-in."""
TOOLS_DIR = "/usr/local/lib/agentgym"
"""Where a stand-in holds the verifier tools (``bin/``, ``wheels/``, ``uv-installer.sh``)."""
UV_VERSION = "0.9.7"
"""The ``uv`` wheel whose binaries the tools carry (whatever version an installer URL asks for)."""
VERIFIER_WHEELS: tuple[str, ...] = (
    "pytest==8.4.1", "pytest==8.4.2", "pytest==8.3.5", "pytest==8.3.4", "pytest==8.2.2", "pytest==7.4.4",
    "pytest-json-ctrf==0.3.5", "pytest-json-report==1.5.0", "pytest-timeout==2.3.1", "pytest-xdist==3.6.1",
    "colorama==0.4.6", "requests==2.32.3", "setuptools", "wheel",
)
"""What the wheelhouse holds (with dependencies), for Python 3.11 on Linux x86-64 (Debian's
``python3``): the pytest versions Harbor and Terminal-Bench templates pin and common plugins.
``colorama`` is there because ``uv add``/``uv lock`` resolve for every platform."""
STANDIN_LABEL = "agentgym.standin"
"""Image label on a stand-in: the hash of its recipe (and of the tools)."""
OFFLINE_PRELUDE = (
    f'if [ -d {TOOLS_DIR}/wheels ]; then export UV_OFFLINE=1 UV_NO_INDEX=1 UV_PYTHON_DOWNLOADS=never '
    f'UV_FIND_LINKS={TOOLS_DIR}/wheels PIP_NO_INDEX=1 PIP_FIND_LINKS={TOOLS_DIR}/wheels '
    'PIP_DISABLE_PIP_VERSION_CHECK=1; fi; '
)
"""Shell run before a verifier: with the tools in the image, uv and pip resolve from its
wheelhouse, with no index and no Python downloads (the verifier has no network)."""


@dataclass(frozen=True)
class StandIn:
    """How to build a local stand-in for the images whose reference matches ``match``."""

    match: str
    """An ``fnmatch`` pattern on the ``FROM`` reference (``python:3.*-slim*``)."""
    packages: tuple[str, ...] = ()
    """Debian bookworm packages installed on the minimal root."""
    dockerfile: str = ""
    """Extra Dockerfile lines after the packages (``{version}`` is the reference's tag)."""
    note: str = ""
    """How the stand-in differs from the real image (shown in docs and build messages)."""
    tools: bool = True
    """Add the verifier tools (uv, the wheelhouse, the curl/wget shim)."""
    scratch: bool = False
    """Build ``FROM scratch`` holding only the uv binaries at ``/uv`` and ``/uvx`` (uv's own image)."""


_PY_LINKS = ("RUN ln -sf /usr/bin/python3 /usr/local/bin/python && ln -sf /usr/bin/pip3 /usr/local/bin/pip "
             "&& ln -sf /usr/bin/pip3 /usr/local/bin/pip3 && ln -sf /usr/bin/python3 /usr/local/bin/python{pyver}\n"
             "ENV PIP_BREAK_SYSTEM_PACKAGES=1")
_PY_NOTE = ("Debian bookworm's Python 3.11 stands in for Python {pyver} (python, python3, python{pyver}, pip on PATH; "
            "pip may install system-wide, as in the real image, whose Python lives in /usr/local)")
BASE_IMAGE_MAP: list[StandIn] = [
    StandIn("ubuntu:24.04", ("python3",),
            note="Debian bookworm's minimal root stands in for Ubuntu 24.04 (bash, coreutils, apt, dpkg...); "
                 "python3 is added (the real image has none), because uv cannot download a Python offline and "
                 "the proxy-only network's forwarder needs one; apt sources are Debian's"),
    StandIn("ubuntu:22.04", ("python3",), note="as ubuntu:24.04"),
    StandIn("ubuntu:noble", ("python3",), note="as ubuntu:24.04"),
    StandIn("ubuntu:jammy", ("python3",), note="as ubuntu:24.04"),
    StandIn("ubuntu:latest", ("python3",), note="as ubuntu:24.04"),
    StandIn("ubuntu", ("python3",), note="as ubuntu:24.04"),
    StandIn("python:3.*-slim*", ("python3", "python3-pip", "python3-venv", "ca-certificates"), _PY_LINKS,
            note=_PY_NOTE),
    StandIn("python:3.*", ("python3", "python3-pip", "python3-venv", "python3-dev", "ca-certificates", "curl",
                           "wget", "git", "build-essential", "procps"), _PY_LINKS,
            note=_PY_NOTE + "; the full image's build tools come from Debian"),
    StandIn("debian:bookworm*", (), note="debootstrap's minimal bookworm root (the real image is built the same way)"),
    StandIn("debian:12*", (), note="as debian:bookworm"),
    StandIn("debian:stable*", (), note="as debian:bookworm"),
    StandIn("ghcr.io/laude-institute/t-bench/ubuntu-24-04:*", ("python3", "tmux", "asciinema"),
            note="Terminal-Bench's Ubuntu 24.04 base (tmux, asciinema) on Debian bookworm, as ubuntu:24.04"),
    StandIn("ghcr.io/laude-institute/t-bench/python-3-13:*",
            ("python3", "python3-pip", "python3-venv", "ca-certificates", "tmux", "asciinema"), _PY_LINKS,
            note=_PY_NOTE.replace("{pyver}", "3.13") + "; with tmux and asciinema, as Terminal-Bench's base"),
    StandIn("ghcr.io/astral-sh/uv:*", scratch=True, tools=False,
            note=f"uv's image: /uv and /uvx from the uv {UV_VERSION} wheel, whatever version the tag names"),
]
"""The built-in base-image map, tried in order after ``AGENTGYM_BASE_IMAGES``'s entries."""


def _user_map() -> list[StandIn]:
    path = os.environ.get("AGENTGYM_BASE_IMAGES")
    if not path:
        return []
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    from agentgym.errors import ConfigError

    try:
        data = tomllib.loads(Path(path).read_text())
        return [StandIn(match=str(e["match"]), packages=tuple(e.get("packages") or ()),
                        dockerfile=str(e.get("dockerfile") or ""), note=str(e.get("note") or ""),
                        tools=bool(e.get("tools", True))) for e in data.get("image") or []]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"AGENTGYM_BASE_IMAGES={path}: {type(e).__name__}: {e} (expected [[image]] tables with "
                          "match, packages, dockerfile, note)") from e


def standin_for(image: str) -> StandIn | None:
    """The first entry of the map (``AGENTGYM_BASE_IMAGES``'s, then :data:`BASE_IMAGE_MAP`)
    whose pattern matches ``image``, else ``None``."""
    ref = image.removeprefix("docker.io/").removeprefix("library/")
    return next((s for s in (*_user_map(), *BASE_IMAGE_MAP) if fnmatch.fnmatchcase(ref, s.match)), None)


# -- the verifier tools -----------------------------------------------------------------------------
SHIM = r"""#!/bin/sh
# agentgym compatibility shim for {prog} (docs/environments.md, "Offline images"). It serves uv's
# installer script from this image, because the sandbox has no internet, and passes every other
# request to the real {prog}. It is not {prog}.
for a in "$@"; do
  case "$a" in
    https://astral.sh/uv/install.sh|https://astral.sh/uv/*/install.sh|https://github.com/astral-sh/uv/releases/*/uv-installer.sh)
      out=""; prev=""
      for b in "$@"; do
        case "$prev" in -o|--output|-O) out="$b";; esac
        case "$b" in --output=*) out="${b#--output=}";; -qO*) out="${b#-qO}";; esac
        prev="$b"
      done
      echo "agentgym: serving uv's installer for $a from the image (offline compatibility shim)" >&2
      if [ -n "$out" ] && [ "$out" != "-" ]; then cp {tools}/uv-installer.sh "$out"; else cat {tools}/uv-installer.sh; fi
      exit 0;;
  esac
done
for real in /usr/bin/{prog} /bin/{prog}; do
  if [ -x "$real" ]; then exec "$real" "$@"; fi
done
echo "agentgym: {prog} is not installed in this image; its shim serves only uv's installer URLs (https://astral.sh/uv/.../install.sh), not: $*" >&2
exit {code}
"""
INSTALLER = r"""#!/bin/sh
# agentgym's stand-in for uv's installer (https://astral.sh/uv/install.sh): it installs the uv
# this image carries (UV_VERSION) instead of downloading one, where the real installer would.
set -e
src={tools}/bin
dest="${UV_INSTALL_DIR:-${XDG_BIN_HOME:-$HOME/.local/bin}}"
mkdir -p "$dest"
cp "$src/uv" "$src/uvx" "$dest/"
chmod 755 "$dest/uv" "$dest/uvx"
cat > "$dest/env" <<EOF
#!/bin/sh
# add binaries to PATH if they aren't added yet
case ":\${PATH}:" in
    *:"$dest":*) ;;
    *) export PATH="$dest:\$PATH" ;;
esac
EOF
echo "downloading uv {version} x86_64-unknown-linux-gnu (agentgym: from the image, offline)"
echo "installing to $dest"
echo "  uv"
echo "  uvx"
echo "everything's installed!"
"""
_tools_lock = threading.RLock()
_image_locks: dict[str, threading.Lock] = {}


def _tools_spec() -> dict[str, Any]:
    return {"uv": UV_VERSION, "wheels": list(VERIFIER_WHEELS), "shim": SHIM, "installer": INSTALLER,
            "python": "3.11", "platform": "manylinux2014_x86_64", "format": 1}


def verifier_tools(pip: Sequence[str] | None = None, on_status: Callable[[str], None] | None = None) -> Path:
    """The verifier tools as a directory (built once into the cache, keyed by their spec's hash):
    ``bin/uv``, ``bin/uvx``, ``bin/curl`` and ``bin/wget`` (the shims), ``uv-installer.sh`` and
    ``wheels/``. Needs PyPI the first time (``pip download``); offline afterwards."""
    from agentgym.paths import cache_dir

    spec = _tools_spec()
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    root = cache_dir() / "verifier-tools" / digest
    if (root / ".complete").is_file():
        return root
    say = on_status or (lambda m: None)
    pip_cmd = list(pip or [sys.executable, "-m", "pip"])
    with _tools_lock:
        if (root / ".complete").is_file():
            return root
        tmp = Path(tempfile.mkdtemp(prefix=".tools-", dir=root.parent if root.parent.exists() else None))
        try:
            (tmp / "bin").mkdir(parents=True)
            say(f"downloading uv {UV_VERSION} and {len(VERIFIER_WHEELS)} verifier wheels from PyPI (once)")
            common = ["download", "--quiet", "--only-binary=:all:", "--python-version", "3.11",
                      "--platform", "manylinux2014_x86_64", "--platform", "any", "--implementation", "cp"]
            _run([*pip_cmd, *common, "--no-deps", "-d", str(tmp / "uvwheel"), f"uv=={UV_VERSION}"])
            wheel = next((tmp / "uvwheel").glob("uv-*.whl"))
            with zipfile.ZipFile(wheel) as zf:
                for name in zf.namelist():
                    base = name.rsplit("/", 1)[-1]
                    if "/scripts/" in name and base in ("uv", "uvx"):
                        (tmp / "bin" / base).write_bytes(zf.read(name))
                        (tmp / "bin" / base).chmod(0o755)
            if not (tmp / "bin" / "uvx").is_file():
                raise RuntimeError_(f"{wheel.name} holds no uv/uvx binaries")
            shutil.rmtree(tmp / "uvwheel")
            for req in VERIFIER_WHEELS:  # one at a time: the pins of one pytest exclude another's
                _run([*pip_cmd, *common, "-d", str(tmp / "wheels"), req])
            for prog, code in (("curl", 6), ("wget", 4)):
                (tmp / "bin" / prog).write_text(SHIM.replace("{prog}", prog).replace("{tools}", TOOLS_DIR)
                                                .replace("{code}", str(code)))
                (tmp / "bin" / prog).chmod(0o755)
            (tmp / "uv-installer.sh").write_text(INSTALLER.replace("{tools}", TOOLS_DIR)
                                                 .replace("{version}", UV_VERSION))
            (tmp / "uv-installer.sh").chmod(0o755)
            (tmp / "spec.json").write_text(json.dumps(spec, indent=1, sort_keys=True))
            (tmp / ".complete").write_text(digest)
            root.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(root, ignore_errors=True)
            tmp.rename(root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError_(f"`{' '.join(cmd)}` failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-2000:]}")


# -- images ------------------------------------------------------------------------------------------
def build_rootfs_image(tag: str, suite: str = "bookworm", include: Sequence[str] = (), mirror: str | None = None,
                       on_status: Callable[[str], None] | None = None) -> str:
    """``debootstrap --variant=minbase [--include=...] <suite>`` and ``docker import`` as ``tag``
    (about a minute; needs root, ``debootstrap`` and a Debian mirror). Returns ``tag``."""
    say = on_status or (lambda m: None)
    if not shutil.which("debootstrap"):
        raise RuntimeError_(f"building {tag} needs debootstrap: `apt-get install debootstrap` (or `agentgym setup`)")
    workdir = Path(tempfile.mkdtemp(prefix="agentgym-rootfs-"))
    rootfs = workdir / "rootfs"
    try:
        cmd = ["debootstrap", "--variant=minbase", *([f"--include={','.join(include)}"] if include else []),
               suite, str(rootfs), *([mirror] if mirror else [])]
        say(f"{' '.join(cmd)} (about a minute)")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError_(f"debootstrap failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-2000:]}")
        for deb in (rootfs / "var/cache/apt/archives").glob("*.deb"):
            deb.unlink()
        say(f"docker import {tag}")
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imp = subprocess.run(["docker", "import", "--change", 'CMD ["/bin/bash"]', "-", tag],
                             stdin=tar.stdout, capture_output=True, text=True)
        if tar.stdout is not None:
            tar.stdout.close()
        tar.wait()
        if imp.returncode != 0 or tar.returncode != 0:
            raise RuntimeError_(f"docker import of {tag} failed: {imp.stderr[-2000:]}")
        return tag
    finally:
        _unmount_below(workdir)
        shutil.rmtree(workdir, ignore_errors=True)


def _unmount_below(path: Path) -> None:
    """Lazily unmount what a failed debootstrap left mounted (proc, sys) before deleting."""
    try:
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return
    for mnt in sorted((m for m in mounts if m.startswith(f"{path}/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", mnt], capture_output=True)


def standin_dockerfile(image: str, standin: StandIn) -> str:
    """The Dockerfile of ``image``'s stand-in (its build context holds the tools as ``tools/``)."""
    tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else "latest"
    pyver = tag.split("-")[0] if tag[:1].isdigit() else "3"
    if standin.scratch:
        return "FROM scratch\nCOPY tools/bin/uv tools/bin/uvx /\n"
    lines = [f"FROM {MINBASE_IMAGE}"]
    if standin.packages:
        lines.append("RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "
                     + " ".join(standin.packages) + " && rm -rf /var/lib/apt/lists/*")
    if standin.dockerfile:
        lines.append(standin.dockerfile.replace("{pyver}", pyver).replace("{version}", tag))
    if standin.tools:
        lines += [f"COPY tools/ {TOOLS_DIR}/",
                  f"RUN ln -sf {TOOLS_DIR}/bin/uv /usr/local/bin/uv && ln -sf {TOOLS_DIR}/bin/uvx /usr/local/bin/uvx "
                  f"&& ln -sf {TOOLS_DIR}/bin/curl /usr/local/bin/curl && ln -sf {TOOLS_DIR}/bin/wget /usr/local/bin/wget"]
    lines.append(f"LABEL {STANDIN_LABEL}.note={json.dumps(standin.note)}")
    return "\n".join(lines) + "\n"


def ensure_standin(api: Any, image: str, standin: StandIn,
                   on_status: Callable[[str], None] | None = None) -> str:
    """Build ``image``'s stand-in (and the minimal Debian root and the tools it starts from)
    unless an image of that name, built from the same recipe, is there. Never replaces an image
    agentgym did not build. Returns ``image``."""
    with _tools_lock:
        lock = _image_locks.setdefault(image, threading.Lock())
    with lock:  # two task builds on one missing base build its stand-in once
        return _ensure_standin(api, image, standin, on_status)


def _ensure_standin(api: Any, image: str, standin: StandIn, on_status: Callable[[str], None] | None) -> str:
    import docker.errors

    from agentgym.paths import cache_dir
    from agentgym.runtime.images import LABEL_CONTEXT_HASH, build_image, context_hash

    say = on_status or (lambda m: None)
    tools = verifier_tools(on_status=say) if (standin.tools or standin.scratch) else None
    dockerfile = standin_dockerfile(image, standin)
    minbase_id = ""
    if not standin.scratch:
        with _tools_lock:
            minbase_lock = _image_locks.setdefault(MINBASE_IMAGE, threading.Lock())
        with minbase_lock:
            try:
                minbase_id = str(api.inspect_image(MINBASE_IMAGE)["Id"])
            except docker.errors.ImageNotFound:
                say(f"building {MINBASE_IMAGE} from Debian packages (once)")
                build_rootfs_image(MINBASE_IMAGE, on_status=say)
                minbase_id = str(api.inspect_image(MINBASE_IMAGE)["Id"])
    digest = hashlib.sha256("\0".join([dockerfile, minbase_id, tools.name if tools else ""]).encode()).hexdigest()
    with contextlib.suppress(docker.errors.ImageNotFound):
        labels = api.inspect_image(image)["Config"].get("Labels") or {}
        if labels.get(STANDIN_LABEL) == digest:
            return image
        if STANDIN_LABEL not in labels:
            return image  # a real image of that name: used as it is
    ctx = cache_dir() / "standins" / digest[:16]
    if not (ctx / "Dockerfile").is_file():
        tmp = Path(tempfile.mkdtemp(prefix=".ctx-", dir=ctx.parent if ctx.parent.exists() else None))
        if tools is not None:
            shutil.copytree(tools, tmp / "tools", ignore=shutil.ignore_patterns(".complete", "spec.json"))
        (tmp / "Dockerfile").write_text(dockerfile + f"LABEL {STANDIN_LABEL}={digest}\n")
        ctx.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(ctx, ignore_errors=True)
        tmp.rename(ctx)
    say(f"building a local stand-in for {image} ({standin.note})")
    log.warning("building a local stand-in for %s: %s", image, standin.note)
    build_image(api, image, ctx, context_hash(ctx, [minbase_id]))
    assert (api.inspect_image(image)["Config"].get("Labels") or {}).get(LABEL_CONTEXT_HASH)
    return image

