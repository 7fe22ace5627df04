"""The runtime boundary: a sandbox to start, run commands in, read and write, snapshot, stop.

All methods are async; blocking backends (the docker SDK, subprocess) run in worker threads.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ExecResult:
    """Outcome of one command."""

    exit_code: int
    stdout: str
    stderr: str = ""
    timed_out: bool = False
    duration_s: float = 0.0
    oom_killed: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


@dataclass(frozen=True)
class RuntimeSpec:
    """What to start: an image (Docker) or nothing (local), plus limits and mounts."""

    image: str | None = None
    workdir: str = "/app"
    env: Mapping[str, str] = field(default_factory=dict)
    memory: str | None = "2g"
    cpus: float | None = None
    network: str = "host"
    """``host`` (reach the proxy on 127.0.0.1) or ``none``."""
    labels: Mapping[str, str] = field(default_factory=dict)
    mounts: Mapping[str, str] = field(default_factory=dict)
    """Host path -> container path, read-only."""


class Runtime(abc.ABC):
    """One live sandbox. Use as ``async with backend.start(spec) as rt:``."""

    backend: str = "runtime"
    workdir: str = "/app"

    @abc.abstractmethod
    async def exec(self, cmd: str, *, timeout: float | None = None, env: Mapping[str, str] | None = None,
                   workdir: str | None = None) -> ExecResult:
        """Run ``cmd`` with ``bash -lc``. On timeout the process tree is killed and
        ``timed_out`` is set (no exception: a timeout is an outcome)."""

    @abc.abstractmethod
    async def read_file(self, path: str) -> bytes: ...

    @abc.abstractmethod
    async def write_file(self, path: str, data: bytes | str, mode: int = 0o644) -> None: ...

    @abc.abstractmethod
    async def upload_dir(self, src: str, dst: str) -> None:
        """Copy a host directory's contents into ``dst`` (created if missing)."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop and remove the sandbox. Idempotent."""

    async def snapshot(self, tag: str) -> str:
        """Save the filesystem state; returns an image id/tag a later start can use."""
        raise NotImplementedError(f"{type(self).__name__} cannot snapshot")

    async def __aenter__(self) -> Runtime:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class RuntimeBackend(abc.ABC):
    """Starts runtimes. ``name`` is ``docker`` or ``local``."""

    name: str = "backend"

    @abc.abstractmethod
    async def start(self, spec: RuntimeSpec) -> Runtime: ...

    async def ensure_image(self, image: str, dockerfile_dir: str | None) -> str:
        """Build ``image`` from ``dockerfile_dir`` when missing; returns the tag. No-op locally."""
        return image

    async def cleanup(self) -> int:
        """Remove what a crashed earlier run left behind; returns how many were removed."""
        return 0
