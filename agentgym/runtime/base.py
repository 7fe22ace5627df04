"""The runtime boundary: a sandbox to start, run commands in, read and write, snapshot, stop.

All methods are async; blocking backends (the docker SDK, subprocess) run in worker threads.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from agentgym.errors import RuntimeError_


class RuntimeFileNotFound(RuntimeError_, FileNotFoundError):
    """A path read from a runtime does not exist (also a ``FileNotFoundError``)."""


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
    """One live sandbox. Use as ``async with backend.start(spec) as rt:``.

    Behaviour that differs between backends is a hook with a default, never a check of the
    backend's name: :attr:`uses_images`, :meth:`process_path`, :meth:`rewrite`.
    """

    backend: str = "runtime"
    """The backend's name, for records and messages only."""
    uses_images: ClassVar[bool] = True
    """Whether the sandbox runs a container image, so what an :class:`~agentgym.harness.ImageLayer`
    installs is there. ``False`` for runtimes whose processes run the host's programs (the local
    runtime): harnesses then install on the host, and envs copy task files in themselves."""
    workdir: str = "/app"

    def process_path(self, path: str) -> str:
        """``path`` (as the task sees it, e.g. ``/app/x``) as the runtime's processes see it.
        The identity in a container; the local runtime maps it into its fake root."""
        return path

    def rewrite(self, text: str) -> str:
        """Text for the agent (an instruction, a command) with the task's paths as the runtime's
        processes see them (:meth:`process_path`). The identity in a container."""
        return text

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
    """Starts runtimes. ``name`` (``docker``, ``local``) is for records and messages only."""

    name: str = "backend"
    uses_images: ClassVar[bool] = True
    """Whether its runtimes run container images (see :attr:`Runtime.uses_images`)."""

    @abc.abstractmethod
    async def start(self, spec: RuntimeSpec) -> Runtime: ...

    async def ensure_image(self, image: str, dockerfile_dir: str | None) -> str:
        """Build ``image`` from ``dockerfile_dir`` when missing; returns the tag. No-op locally."""
        return image

    async def cleanup(self) -> int:
        """Remove what a crashed earlier run left behind; returns how many were removed."""
        return 0

    def close(self) -> None:
        """Stop every runtime this backend still runs and release its resources. Idempotent."""
        return None
