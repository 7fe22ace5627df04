"""The runtime boundary: a sandbox to start, run commands in, read and write, snapshot, stop.

All methods are async; blocking backends (the docker SDK, subprocess) run in worker threads.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from agentgym.errors import ConfigError, RuntimeError_

NETWORKS = ("host", "none", "proxy")
"""What ``RuntimeSpec.network`` may say."""
PROXY_MOUNT = "/run/agentgym"
"""Where a ``network="proxy"`` sandbox sees the directory of the proxy's Unix socket (read-only)."""
FORWARDER_MOUNT = "/run/agentgym-forward.py"
"""Where a ``network="proxy"`` sandbox sees the forwarder script (read-only)."""
FORWARDER_SCRIPT = Path(__file__).with_name("forward.py")
"""The forwarder on the host (package data, standard library only)."""


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
class HostCommand:
    """A command line to run on the host that runs a program inside a sandbox with its standard
    streams connected to the caller (``docker exec -i``): what :meth:`Runtime.attach_command`
    returns, for a long-lived stream (an action server) or a terminal (pexpect)."""

    argv: tuple[str, ...]
    env: Mapping[str, str] | None = None
    """The host process's environment (``None``: the caller's)."""
    cwd: str | None = None
    """The host process's working directory (``None``: the caller's)."""


@dataclass(frozen=True)
class ProxyEndpoint:
    """How a sandbox with ``network="proxy"`` reaches the proxy: the proxy's Unix socket on the
    host, and the TCP port the sandbox's forwarder listens on (``127.0.0.1:<port>``, the port of
    the proxy's own base URL, so a harness's base URL works unchanged inside).

    The socket's *directory* is mounted read-only into the sandbox at ``/run/agentgym``: it
    should hold nothing but the socket (:meth:`agentgym.proxy.Proxy.endpoint` gives one).
    """

    socket: str
    """Host path of the proxy's Unix socket."""
    port: int
    """TCP port the sandbox sees the proxy on."""
    hide: tuple[str, ...] = ()
    """Host directories a sandbox that shares the host's filesystem must not see (the proxy's
    journal: the calls of other episodes)."""

    @property
    def sandbox_socket(self) -> str:
        """The socket's path inside the sandbox."""
        return f"{PROXY_MOUNT}/{Path(self.socket).name}"

    def forwarder_args(self) -> list[str]:
        """Arguments of ``forward.py`` that serve this endpoint inside the sandbox."""
        return ["--listen", f"127.0.0.1:{self.port}", "--connect", self.sandbox_socket]


@dataclass(frozen=True)
class RuntimeSpec:
    """What to start: an image (Docker) or nothing (local), plus limits and mounts."""

    image: str | None = None
    workdir: str = "/app"
    env: Mapping[str, str] = field(default_factory=dict)
    memory: str | None = "2g"
    cpus: float | None = None
    pids: int | None = None
    """Most processes the sandbox may hold (``None``: the backend's default). Docker enforces
    ``memory``, ``cpus`` and ``pids``; the local runtime none of them (wall-clock timeouts only)."""
    network: str = "host"
    """``host`` (the host's network: the proxy on 127.0.0.1), ``none`` (loopback only) or
    ``proxy`` (loopback only, plus the proxy at ``127.0.0.1:<proxy.port>`` through a forwarder
    to its Unix socket: needs :attr:`proxy`)."""
    labels: Mapping[str, str] = field(default_factory=dict)
    mounts: Mapping[str, str] = field(default_factory=dict)
    """Host path -> container path, read-only."""
    writable_mounts: Mapping[str, str] = field(default_factory=dict)
    """Host path -> container path, read-write."""
    hidden: tuple[str, ...] = ()
    """Host paths a sandbox that shows the host (the local runtime) must not show: the task's own
    tests and reference solution."""
    init: bool = True
    """Run an init process as PID 1 (reaps zombies). Sealed verifier containers go without: the
    engine's init is mounted under ``/sbin``, where the trusted system paths are read-only."""

    proxy: ProxyEndpoint | None = None
    """The proxy a ``network="proxy"`` sandbox reaches (ignored by the other modes)."""

    def __post_init__(self) -> None:
        if self.network not in NETWORKS:
            raise ConfigError(f"network must be one of {', '.join(NETWORKS)}, got {self.network!r} "
                              "(bridge networks are not used)")
        if self.network == "proxy" and self.proxy is None:
            raise ConfigError('network="proxy" needs RuntimeSpec.proxy (the endpoint from Proxy.endpoint())')


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
    keep: bool = False
    """The episode goes on after this verification (a stage of a multi-stage task): the agent's
    sandbox stays as it is (processes included) and the verifier works on a copy of its files
    (Docker) or in place (the local sandbox, whose commands leave no process behind)."""


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
    path: str | None = None
    """The verifier's ``PATH`` (``None``: the system directories)."""


class Runtime(abc.ABC):
    """One live sandbox. Use as ``async with backend.start(spec) as rt:``.

    Behaviour that differs between backends is a hook with a default, never a check of the
    backend's name: :attr:`uses_images`, :meth:`process_path`, :meth:`rewrite`,
    :meth:`attach_command`.
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
        The identity in a container and in the local sandbox; the local runtime without
        isolation maps it into its fake root."""
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

    def attach_command(self, argv: Sequence[str], *, tty: bool = False, workdir: str | None = None,
                       env: Mapping[str, str] | None = None) -> HostCommand:
        """The host command line that runs ``argv`` in this sandbox with its stdin, stdout and
        stderr connected to the host process (with ``tty``, a terminal: run it under a pty, as
        pexpect does). One such process serves a whole episode where :meth:`exec` would start a
        command per request: a persistent shell, an in-sandbox server spoken to over its stdio.
        Runtimes that cannot attach raise ``NotImplementedError`` (the default)."""
        raise NotImplementedError(f"{type(self).__name__} cannot attach a process to the host")

    async def snapshot(self, tag: str) -> str:
        """Save the filesystem state; returns an image id/tag a later start can use."""
        raise NotImplementedError(f"{type(self).__name__} cannot snapshot")

    async def end_processes(self) -> None:
        """Kill every process still running in the sandbox (files stay until :meth:`stop`). A
        verifier's reward is read only after this: nothing it started, or that code it ran
        started, can write it later. The default does nothing (runtimes whose commands take
        their processes with them)."""
        return None

    async def seal(self, spec: VerifierSpec) -> Sealed:
        """End the episode for verification: stop every process it started (the whole sandbox's,
        not only the harness's) and return a fresh sandbox over its final files, in which
        ``spec.trusted_image``'s programs run, ``spec.mounts`` appear and ``spec.reward_dir`` is
        an empty host directory. This runtime cannot be used afterwards, unless ``spec.keep``.
        Runtimes that cannot seal raise ``NotImplementedError`` (the verifier then runs in place,
        unprotected)."""
        raise NotImplementedError(f"{type(self).__name__} cannot seal")

    async def __aenter__(self) -> Runtime:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class RuntimeBackend(abc.ABC):
    """Starts runtimes. ``name`` (``docker``, ``local``, ``local-unsafe``) is for records and
    messages only."""

    name: str = "backend"
    uses_images: ClassVar[bool] = True
    """Whether its runtimes run container images (see :attr:`Runtime.uses_images`)."""
    isolation: str = "container"
    """What keeps its sandboxes apart from the host: ``container`` (Docker), ``bubblewrap`` or
    ``none`` (the local runtime)."""
    enforced_limits: ClassVar[tuple[str, ...]] = ("timeout",)
    """Which of a task's limits its sandboxes enforce (``timeout``, ``memory``, ``cpus``,
    ``pids``): ``agentgym envs show`` says which are not."""

    status_listener: Callable[[str], None] | None = None
    """Hears what a long preparation is doing (a stand-in base image, the verifier tools); set by
    progress UIs (``backend.status_listener = bar.note``)."""

    def report_status(self, message: str) -> None:
        if self.status_listener is not None:
            self.status_listener(message)

    def describe_isolation(self) -> str:
        """One line for messages: what this backend's sandboxes isolate."""
        return f"{self.name} runtime ({self.isolation} isolation)"

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
