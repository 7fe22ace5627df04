"""Wheelhouses: Python wheels downloaded on the host for a container's Python, so a harness
installs into an image with ``pip install --no-index --find-links`` and no network in the build;
and host virtualenvs built from the same locks, for the local runtime.

Built-in harnesses download from a lock (:mod:`agentgym.harnesses.locks`): every package at an
exact version, every file checked against its sha256 (``--require-hashes``), so an image built
today and one built in a year hold the same bytes. ``pip download`` runs once per (lock or
requirements, Python version, platforms) and its result is cached under
``~/.cache/agentgym/wheelhouse/<key>`` (``$AGENTGYM_CACHE_DIR/wheelhouse`` when set). The
directory appears atomically (built beside it, then renamed), so concurrent builders never see
half a wheelhouse; a failed download leaves nothing behind. A lock's wheelhouse also holds the
lock itself as ``requirements.lock``, which the image installs with ``--require-hashes``.

>>> from agentgym.harnesses.wheelhouse import wheelhouse_key
>>> wheelhouse_key(["mini-swe-agent==2.4.6"], python_version="3.11") == wheelhouse_key(
...     ["mini-swe-agent==2.4.6"], python_version="3.11")
True
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from agentgym import paths
from agentgym.errors import HarnessError
from agentgym.harnesses.locks import HarnessLock

MANYLINUX_X86_64: tuple[str, ...] = (
    *(f"manylinux_2_{minor}_x86_64" for minor in range(36, 4, -1)),
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
)
"""Platform tags a glibc 2.36 x86-64 system (Debian bookworm) accepts. pip (23.x) does not
widen ``--platform manylinux_2_36_x86_64`` to older glibc versions itself, so all are listed."""

COMPLETE_MARKER = ".agentgym-wheelhouse.json"
LOCK_NAME = "requirements.lock"
"""The lock a wheelhouse was downloaded from, kept inside it (installs check its hashes)."""


def wheelhouse_key(requirements: Sequence[str], *, python_version: str = "3.11",
                   platforms: Sequence[str] = MANYLINUX_X86_64, implementation: str = "cp",
                   lock: HarnessLock | None = None) -> str:
    """A short hash naming one wheelhouse (order of requirements does not matter)."""
    spec = {"requirements": sorted(requirements), "python_version": python_version,
            "platforms": list(platforms), "implementation": implementation,
            "lock": lock.digest if lock is not None else None}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def pip_download_command(requirements: Sequence[str], dest: str | os.PathLike[str], *,
                         python_version: str = "3.11", platforms: Sequence[str] = MANYLINUX_X86_64,
                         implementation: str = "cp", lock: HarnessLock | None = None) -> list[str]:
    """The ``pip download`` argv for wheels only, for the given Python and platforms. With a
    ``lock``: exactly its packages (``--no-deps``), each file checked against its hash."""
    abi = f"{implementation}{python_version.replace('.', '')}"
    cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--dest", str(dest),
           "--python-version", python_version, "--implementation", implementation,
           "--abi", abi, "--abi", "abi3", "--abi", "none", "--disable-pip-version-check"]
    for platform in platforms:
        cmd += ["--platform", platform]
    if lock is not None:
        cmd += ["--require-hashes", "--no-deps", "-r", str(lock.path)]
    return [*cmd, *requirements]


def ensure_wheelhouse(requirements: Sequence[str] = (), *, lock: HarnessLock | None = None,
                      python_version: str = "3.11", platforms: Sequence[str] = MANYLINUX_X86_64,
                      implementation: str = "cp", cache_dir: str | os.PathLike[str] | None = None,
                      timeout: float = 1800.0) -> Path:
    """Return a directory holding wheels for ``lock`` (or ``requirements`` and all their
    dependencies), downloading them on first use (blocking; minutes for large dependency trees).

    Raises :class:`HarnessError` with pip's output when a requirement has no wheel for the
    target (``--only-binary=:all:`` is required to download for another platform), or when a
    downloaded file does not match its locked hash.
    """
    if not requirements and lock is None:
        raise HarnessError("ensure_wheelhouse needs a lock or at least one requirement")
    root = Path(cache_dir) if cache_dir is not None else paths.cache_dir() / "wheelhouse"
    key = wheelhouse_key(requirements, python_version=python_version, platforms=platforms,
                         implementation=implementation, lock=lock)
    final = root / key
    if (final / COMPLETE_MARKER).is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
    try:
        cmd = pip_download_command(requirements, tmp, python_version=python_version, platforms=platforms,
                                   implementation=implementation, lock=lock)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as e:
            raise HarnessError(f"pip download of {list(requirements)} took more than {timeout:.0f}s") from e
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            what = lock.path.name if lock is not None else list(requirements)
            raise HarnessError(
                f"pip download of {what} for Python {python_version} ({platforms[0]}...) failed "
                f"(exit {proc.returncode}). Every dependency needs a wheel for that target; check the "
                f"package index is reachable.\n{tail}")
        wheels = sorted(p.name for p in tmp.glob("*.whl"))
        if lock is not None:
            (tmp / LOCK_NAME).write_text(lock.text)
        (tmp / COMPLETE_MARKER).write_text(json.dumps(
            {"requirements": list(requirements), "lock": lock.path.name if lock else None,
             "python_version": python_version,
             "platforms": list(platforms), "wheels": wheels}, indent=1))
        try:
            tmp.rename(final)
        except OSError:
            # Another process finished first (the target exists): keep theirs.
            if not (final / COMPLETE_MARKER).is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def wheel_files(wheelhouse: str | os.PathLike[str]) -> list[Path]:
    """The wheels in a wheelhouse, sorted by name."""
    return sorted(Path(wheelhouse).glob("*.whl"))


def host_python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_venv(lock: HarnessLock, *, cache_dir: str | os.PathLike[str] | None = None,
                timeout: float = 1800.0) -> Path:
    """A virtualenv on this host holding exactly ``lock`` (for harnesses the local runtime runs
    directly), built on first use from a wheelhouse for this host's Python and cached under
    ``<cache>/venvs/<name>-<lock digest>-py<version>``. Returns the venv directory.

    A virtualenv cannot be moved once built (its scripts name their interpreter), so it is built
    in place under a file lock and marked complete at the end; a half-built one is rebuilt.
    """
    if not sys.platform.startswith("linux") or os.uname().machine != "x86_64":
        raise HarnessError(f"the {lock.name} lock is installed from manylinux x86-64 wheels; this host is "
                           f"{sys.platform}/{os.uname().machine}: use the Docker runtime")
    root = Path(cache_dir) if cache_dir is not None else paths.cache_dir()
    version = host_python_version()
    venv = root / "venvs" / f"{lock.name}-{lock.digest}-py{version}"
    marker = venv / COMPLETE_MARKER
    if marker.is_file():
        return venv
    with _file_lock(root / "venvs" / f".{venv.name}.lock"):
        if marker.is_file():
            return venv
        wheels = ensure_wheelhouse(lock=lock, python_version=version, cache_dir=root / "wheelhouse", timeout=timeout)
        shutil.rmtree(venv, ignore_errors=True)
        steps = [[sys.executable, "-m", "venv", str(venv)],
                 [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-index",
                  "--find-links", str(wheels), "--require-hashes", "--no-deps", "--disable-pip-version-check",
                  "-r", str(wheels / LOCK_NAME)]]
        for cmd in steps:
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
            except subprocess.TimeoutExpired as e:
                raise HarnessError(f"building the {lock.name} virtualenv took more than {timeout:.0f}s") from e
            if proc.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                raise HarnessError(f"building the {lock.name} virtualenv failed at `{' '.join(cmd[:4])} ...`:\n"
                                   + (proc.stdout + proc.stderr)[-3000:])
        marker.write_text(json.dumps({"lock": lock.path.name, "digest": lock.digest, "python": version}))
    return venv
