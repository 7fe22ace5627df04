"""Wheelhouses: Python wheels downloaded on the host for a container's Python, so a harness
installs into an image with ``pip install --no-index --find-links`` and no network in the build.

``pip download`` runs once per (requirements, Python version, platforms) and its result is
cached under ``~/.cache/agentgym/wheelhouse/<key>`` (``$AGENTGYM_CACHE_DIR/wheelhouse`` when
set). The directory appears atomically (built beside it, then renamed), so concurrent builders
never see half a wheelhouse; a failed download leaves nothing behind.

>>> from agentgym.harnesses.wheelhouse import wheelhouse_key
>>> wheelhouse_key(["mini-swe-agent==2.4.6"], python_version="3.11") == wheelhouse_key(
...     ["mini-swe-agent==2.4.6"], python_version="3.11")
True
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from agentgym.errors import HarnessError

MANYLINUX_X86_64: tuple[str, ...] = (
    *(f"manylinux_2_{minor}_x86_64" for minor in range(36, 4, -1)),
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
)
"""Platform tags a glibc 2.36 x86-64 system (Debian bookworm) accepts. pip (23.x) does not
widen ``--platform manylinux_2_36_x86_64`` to older glibc versions itself, so all are listed."""

COMPLETE_MARKER = ".agentgym-wheelhouse.json"


def cache_root() -> Path:
    """``$AGENTGYM_CACHE_DIR`` or ``$XDG_CACHE_HOME/agentgym`` or ``~/.cache/agentgym``."""
    if env := os.environ.get("AGENTGYM_CACHE_DIR"):
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "agentgym"


def wheelhouse_key(requirements: Sequence[str], *, python_version: str = "3.11",
                   platforms: Sequence[str] = MANYLINUX_X86_64, implementation: str = "cp") -> str:
    """A short hash naming one wheelhouse (order of requirements does not matter)."""
    spec = {"requirements": sorted(requirements), "python_version": python_version,
            "platforms": list(platforms), "implementation": implementation}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def pip_download_command(requirements: Sequence[str], dest: str | os.PathLike[str], *,
                         python_version: str = "3.11", platforms: Sequence[str] = MANYLINUX_X86_64,
                         implementation: str = "cp") -> list[str]:
    """The ``pip download`` argv for wheels only, for the given Python and platforms."""
    abi = f"{implementation}{python_version.replace('.', '')}"
    cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--dest", str(dest),
           "--python-version", python_version, "--implementation", implementation,
           "--abi", abi, "--abi", "abi3", "--abi", "none", "--disable-pip-version-check"]
    for platform in platforms:
        cmd += ["--platform", platform]
    return [*cmd, *requirements]


def ensure_wheelhouse(requirements: Sequence[str], *, python_version: str = "3.11",
                      platforms: Sequence[str] = MANYLINUX_X86_64, implementation: str = "cp",
                      cache_dir: str | os.PathLike[str] | None = None, timeout: float = 1800.0) -> Path:
    """Return a directory holding wheels for ``requirements`` and all their dependencies,
    downloading them on first use (blocking; minutes for large dependency trees).

    Raises :class:`HarnessError` with pip's output when a requirement has no wheel for the
    target (``--only-binary=:all:`` is required to download for another platform).
    """
    if not requirements:
        raise HarnessError("ensure_wheelhouse needs at least one requirement")
    root = Path(cache_dir) if cache_dir is not None else cache_root() / "wheelhouse"
    key = wheelhouse_key(requirements, python_version=python_version, platforms=platforms,
                         implementation=implementation)
    final = root / key
    if (final / COMPLETE_MARKER).is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
    try:
        cmd = pip_download_command(requirements, tmp, python_version=python_version, platforms=platforms,
                                   implementation=implementation)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as e:
            raise HarnessError(f"pip download of {list(requirements)} took more than {timeout:.0f}s") from e
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise HarnessError(
                f"pip download of {list(requirements)} for Python {python_version} ({platforms[0]}...) failed "
                f"(exit {proc.returncode}). Every dependency needs a wheel for that target; check the "
                f"package index is reachable.\n{tail}")
        wheels = sorted(p.name for p in tmp.glob("*.whl"))
        (tmp / COMPLETE_MARKER).write_text(json.dumps(
            {"requirements": list(requirements), "python_version": python_version,
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
