"""The runtime boundary: a sandbox to start, run commands in, read and write, snapshot, stop.

All methods are async; blocking backends (the docker SDK, subprocess) run in worker threads.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
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
    writable_mounts: Mapping[str, str] = field(default_factory=dict)
    """Host path -> container path, read-write."""
    init: bool = True
    """Run an init process as PID 1 (reaps zombies). Sealed verifier containers go without: the
    engine's init is mounted under ``/sbin``, where the trusted system paths are read-only."""


@dataclass(frozen=True)
class VerifierSpec:
    """What :meth:`Runtime.seal` prepares for a verifier."""

    trusted_image: str | None = None
    """The task's image before the agent ran: the verifier runs its system programs and
    libraries (``/usr``, the dynamic loader's configuration...), not the agent's copies."""
    mounts: Mapping[str, str] = field(default_factory=dict)
    """Host path -> path, read-only, in the verifier's sandbox only (the tests)."""
    reward_dir: str = "/logs/verifier"
    """Where an empty host directory is mounted read-write: what the verifier writes there is
    read on the host, so nothing the agent left in the sandbox can stand in for it."""


@dataclass
class Sealed:
    """A fresh sandbox over the agent's final files, for the verifier (see :meth:`Runtime.seal`)."""

    runtime: Runtime
    reward_dir: Path
    """The host directory mounted at :attr:`VerifierSpec.reward_dir`."""
    evidence: list[str]
    """Signs of tampering seen while sealing (processes left running, changed system files,
    files planted where the verifier writes its reward)."""
    isolation: str
    """What the verifier is protected by, in words (recorded with the evaluation)."""


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
                   workdir: str | None = None, login: bool = True) -> ExecResult:
        """Run ``cmd`` with ``bash -lc`` (``bash -c`` with ``login=False``: no profile files are
        read, as a verifier needs). On timeout the process tree is killed and ``timed_out`` is
        set (no exception: a timeout is an outcome)."""

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

    async def seal(self, spec: VerifierSpec) -> Sealed:
        """End the episode for verification: stop every process it started (the whole sandbox's,
        not only the harness's) and return a fresh sandbox over its final files, in which
        ``spec.trusted_image``'s programs run, ``spec.mounts`` appear and ``spec.reward_dir`` is
        an empty host directory. This runtime cannot be used afterwards. Runtimes that cannot
        seal raise ``NotImplementedError`` (the verifier then runs in place, unprotected)."""
        raise NotImplementedError(f"{type(self).__name__} cannot seal")

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
