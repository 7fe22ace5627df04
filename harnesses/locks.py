"""Locks: the whole dependency closure of every built-in Python harness, pinned with hashes.

A harness's behaviour on the wire (the request bodies it sends, the headers, how it echoes
history) is part of what agentgym records and trains on, so it must not drift with whatever a
package index serves today. Each Python harness has two files in ``harnesses/locks/``:

- ``<name>.in`` — the top-level requirements, with the pins that matter on the wire and why;
- ``<name>.txt`` — the lock: every package of the closure at an exact version, with the sha256
  of every distribution file of that version (``uv pip compile --universal --generate-hashes``),
  so any Python 3.10+ on any platform installs the same versions and only the files reviewed.

Installs only ever come from the lock (``pip install --require-hashes --no-deps -r <lock>``),
into a task image (:mod:`agentgym.harnesses.wheelhouse`) or into a host virtualenv for the local
runtime (:func:`agentgym.harnesses.wheelhouse.ensure_venv`). Updating a lock is one command and
a reviewed diff::

    python3 -m agentgym.harnesses.locks update mini-swe-agent    # needs `uv` (pip install uv)
    python3 -m agentgym.harnesses.locks list

Node.js harnesses have a directory instead, ``<name>/`` with ``package.json`` (the top-level
package at an exact version), ``package-lock.json`` (every package with its sha512 integrity)
and ``bootstrap.json`` (the Node and npm that install it; :mod:`agentgym.harnesses.npmbundle`).
The same command updates them: edit the pin in ``package.json``, then
``python3 -m agentgym.harnesses.locks update qwen-code`` re-resolves ``package-lock.json`` with
npm (``npm install --package-lock-only --ignore-scripts``: registry metadata only, nothing runs).

>>> lock = harness_lock("mini-swe-agent")
>>> lock.pinned("mini-swe-agent"), lock.pinned("litellm")
('2.4.6', '1.106.12')
>>> len(lock.digest)
16
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from agentgym.errors import HarnessError

LOCK_DIR = Path(__file__).resolve().parent / "locks"
"""Where the built-in locks live (shipped as package data)."""
UV_COMPILE_ARGS = ("--universal", "--python-version", "3.10", "--generate-hashes", "--no-header",
                   "--quiet")
"""How every lock is compiled: one resolution valid for Python 3.10+ on every platform."""

_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)")


@dataclass(frozen=True)
class HarnessLock:
    """One lock file: its path, the requirements it was compiled from, and a content digest."""

    name: str
    path: Path

    @cached_property
    def text(self) -> str:
        try:
            return self.path.read_text()
        except OSError as e:
            raise HarnessError(f"lock {self.path} cannot be read ({e}); run "
                               f"`python3 -m agentgym.harnesses.locks update {self.name}`") from e

    @property
    def source(self) -> Path:
        """The ``.in`` file the lock was compiled from."""
        return self.path.with_suffix(".in")

    @cached_property
    def digest(self) -> str:
        """16 hex digits of sha256 over the lock's content (names caches built from it)."""
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]

    def pins(self) -> dict[str, list[str]]:
        """Normalised package name -> the versions the lock pins (several when markers differ)."""
        out: dict[str, list[str]] = {}
        for line in self.text.splitlines():
            m = _PIN.match(line)
            if m:
                out.setdefault(_normalise(m.group("name")), []).append(m.group("version"))
        return out

    def pinned(self, package: str) -> str:
        """The one version of ``package`` in the lock (``HarnessError`` if absent or ambiguous)."""
        versions = self.pins().get(_normalise(package), [])
        if len(versions) != 1:
            raise HarnessError(f"{self.path.name} pins {package} at {versions or 'no version'}")
        return versions[0]


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def harness_lock(name: str, lock_dir: Path = LOCK_DIR) -> HarnessLock:
    """The lock named ``name`` (``harnesses/locks/<name>.txt``)."""
    path = lock_dir / f"{name}.txt"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in lock_dir.glob("*.in"))) or "none"
        raise HarnessError(f"no lock {path}; known locks: {known}")
    return HarnessLock(name=name, path=path)


def uv_compile_command(source: Path, output: Path, uv: str = "uv") -> list[str]:
    """The argv that (re)compiles ``source`` into the lock ``output``."""
    return [uv, "pip", "compile", *UV_COMPILE_ARGS, str(source), "-o", str(output)]


def update_lock(name: str, lock_dir: Path = LOCK_DIR) -> Path:
    """Recompile ``<name>.in`` into ``<name>.txt`` with uv (resolving today's versions within the
    pins of the ``.in``). Review the diff and run the harness's wire tests before committing."""
    source = lock_dir / f"{name}.in"
    if not source.is_file():
        raise HarnessError(f"no {source} to compile")
    uv = shutil.which("uv") or (str(Path(sys.executable).parent / "uv")
                                if (Path(sys.executable).parent / "uv").is_file() else None)
    if uv is None:
        raise HarnessError("updating a lock needs uv: `pip install uv`")
    output = source.with_suffix(".txt")
    proc = subprocess.run(uv_compile_command(source, output, uv), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise HarnessError(f"uv pip compile {source.name} failed:\n{proc.stderr[-3000:]}")
    return output


def npm_locks(lock_dir: Path = LOCK_DIR) -> list[str]:
    """Names of the Node.js harness locks (directories with a ``package.json``)."""
    return sorted(p.parent.name for p in lock_dir.glob("*/package.json"))


def npm_lock_packages(name: str, lock_dir: Path = LOCK_DIR) -> dict[str, str]:
    """``node_modules/<package>`` -> version, for every package of an npm lock."""
    data = json.loads((lock_dir / name / "package-lock.json").read_text())
    return {k: v.get("version", "") for k, v in data.get("packages", {}).items() if k}


def npm_update_command(npm: str = "npm") -> list[str]:
    """The argv that re-resolves ``package-lock.json`` from ``package.json`` (metadata only)."""
    return [npm, "install", "--package-lock-only", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]


def update_npm_lock(name: str, lock_dir: Path = LOCK_DIR) -> Path:
    """Re-resolve ``<name>/package-lock.json`` from its ``package.json`` with the host's npm, from
    scratch (a fresh directory, so no old resolution is kept). Review the diff and run the
    harness's wire test (``AGENTGYM_REGEN_WIRE_FIXTURES=1`` when the wire changed)."""
    lock = lock_dir / name
    if not (lock / "package.json").is_file():
        raise HarnessError(f"no {lock / 'package.json'} to resolve")
    npm = shutil.which("npm")
    if npm is None:
        raise HarnessError("updating an npm lock needs npm on the host (Debian's `npm`)")
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy2(lock / "package.json", Path(tmp) / "package.json")
        proc = subprocess.run(npm_update_command(npm), cwd=tmp, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise HarnessError(f"npm install --package-lock-only for {name} failed:\n{proc.stderr[-3000:]}")
        shutil.copy2(Path(tmp) / "package-lock.json", lock / "package-lock.json")
    return lock / "package-lock.json"


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in ("update", "list"):
        print("usage: python3 -m agentgym.harnesses.locks update [NAME ...] | list", file=sys.stderr)
        return 2
    npm = npm_locks()
    names = args[1:] or sorted(p.stem for p in LOCK_DIR.glob("*.in")) + npm
    for name in names:
        if name in npm:
            from agentgym.harnesses.npmbundle import bundle_key

            if args[0] == "update":
                path = update_npm_lock(name)
                print(f"wrote {path} ({len(npm_lock_packages(name))} packages); review `git diff {path}`")
            else:
                top = json.loads((LOCK_DIR / name / "package.json").read_text()).get("dependencies", {})
                pins = " ".join(f"{k}@{v}" for k, v in top.items())
                print(f"{name:24s} {len(npm_lock_packages(name)):4d} packages  digest {bundle_key(LOCK_DIR / name)}  "
                      f"{LOCK_DIR / name}/package-lock.json  ({pins}, npm)")
        elif args[0] == "update":
            path = update_lock(name)
            print(f"wrote {path} ({len(harness_lock(name).pins())} packages); review `git diff {path}`")
        else:
            lock = harness_lock(name)
            print(f"{name:24s} {len(lock.pins()):4d} packages  digest {lock.digest}  {lock.path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
