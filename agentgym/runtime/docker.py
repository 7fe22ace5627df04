"""Docker runtime: one long-running container per episode, driven through the docker SDK.

Every container runs ``sleep infinity`` under ``docker-init`` and commands are ``docker exec``-ed
into it, so an episode keeps its filesystem between commands and costs one container start.

Networks: ``host`` (``--network host``), ``none`` (``--network none``: loopback only) and
``proxy``: ``--network none``, the proxy's Unix socket directory mounted read-only at
``/run/agentgym`` and the forwarder (:mod:`agentgym.runtime.forward`, run by the image's
``python3`` next to ``sleep infinity``) listening on ``127.0.0.1:<port>``; :meth:`DockerBackend.start`
returns once an HTTP request through the forwarder is answered.
Containers carry labels (``agentgym=1``, ``agentgym.run``, ``agentgym.pid``, ...) so that
:meth:`DockerBackend.cleanup` can remove what a crashed earlier process left behind.

Blocking SDK calls run in a thread pool owned by the backend (not the event loop's default
executor: a rollout holds one thread per running command for minutes, and the default pool has
only ``cpus + 4`` threads).

>>> import asyncio
>>> from agentgym.runtime import DockerBackend, RuntimeSpec
>>> async def main() -> str:                                   # doctest: +SKIP
...     backend = DockerBackend()
...     async with await backend.start(RuntimeSpec(image="agentgym/base:bookworm")) as rt:
...         return (await rt.exec("echo hi", timeout=10)).stdout
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import functools
import io
import os
import re
import shlex
import shutil
import socket
import tarfile
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from agentgym.errors import ConfigError, RuntimeError_
from agentgym.runtime.base import (
    FORWARDER_SCRIPT,
    PROXY_MOUNT,
    ExecResult,
    HostCommand,
    Runtime,
    RuntimeBackend,
    RuntimeFileNotFound,
    RuntimeSpec,
    Sealed,
    VerifierSpec,
)
from agentgym.runtime.images import (
    LABEL_CONTEXT_HASH,
    build_image,
    context_hash,
    dockerfile_base_images,
)
from agentgym.runtime.local import pid_alive, proc_start_time
from agentgym.runtime.standins import ensure_standin, standin_for
from agentgym.runtime.trusted import tamper_evidence, trusted_mounts

T = TypeVar("T")

LABEL = "agentgym"
LABEL_RUN = "agentgym.run"
LABEL_PID = "agentgym.pid"
LABEL_PID_START = "agentgym.pid_start"
LABEL_HOST = "agentgym.host"

MAX_OUTPUT_BYTES = 16 * 1024 * 1024
"""Per stream; output beyond this is read and dropped, and a marker line is appended."""
HOST_GUARD_GRACE_S = 5.0
"""Extra seconds the host waits past ``timeout`` before it gives up on a command itself."""
EXEC_ID_ENV = "AGENTGYM_EXEC_ID"
"""Set in every exec'd command so its whole process tree can be found and killed by id."""
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
FORWARDER_DIR = "/run/agentgym-forwarder"
DOCKER_FORWARDER = f"{FORWARDER_DIR}/{FORWARDER_SCRIPT.name}"


def _forwarder_dir() -> Path:
    """A cache directory holding only the forwarder script (mounted into proxy-only containers)."""
    import hashlib

    from agentgym.paths import cache_dir

    data = FORWARDER_SCRIPT.read_bytes()
    d = cache_dir() / "forwarder" / hashlib.sha256(data).hexdigest()[:16]
    if not (d / FORWARDER_SCRIPT.name).is_file():
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".{FORWARDER_SCRIPT.name}.{os.getpid()}"
        tmp.write_bytes(data)
        tmp.replace(d / FORWARDER_SCRIPT.name)
    return d
FORWARDER_WAIT_S = 5.0
"""How long :meth:`DockerBackend.start` waits for the proxy to answer through the forwarder."""


def _parse_oom_kills(text: str) -> int:
    """``oom_kill N`` from cgroup v2 ``memory.events`` or v1 ``memory.oom_control``."""
    m = re.search(r"^oom_kill (\d+)$", text, re.M)
    return int(m.group(1)) if m else 0


def _host_oom_kills(container_id: str) -> int | None:
    """OOM-kill count read from the host's cgroup files (when the engine runs on this host)."""
    for path in (f"/sys/fs/cgroup/memory/docker/{container_id}/memory.oom_control",
                 f"/sys/fs/cgroup/docker/{container_id}/memory.events",
                 f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/memory.events",
                 f"/sys/fs/cgroup/memory/system.slice/docker-{container_id}.scope/memory.oom_control"):
        with contextlib.suppress(OSError):
            return _parse_oom_kills(Path(path).read_text())
    return None


_OOM_PROBE = "cat /sys/fs/cgroup/memory.events /sys/fs/cgroup/memory/memory.oom_control 2>/dev/null; true"


def _kill_by_exec_id_script(exec_id: str) -> str:
    """Shell that SIGKILLs every process whose environment carries ``EXEC_ID_ENV=exec_id``
    (including ones that left the process group with ``setsid``)."""
    needle = shlex.quote(f"{EXEC_ID_ENV}={exec_id}")
    return (
        "for f in /proc/[0-9]*/environ; do "
        f"if grep -qzx {needle} \"$f\" 2>/dev/null; then p=${{f#/proc/}}; kill -9 \"${{p%/environ}}\" 2>/dev/null; fi; "
        "done; true"
    )


# -- tar helpers ---------------------------------------------------------------------------------
def _tar_single_file(arcname: str, data: bytes, mode: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(arcname)
        info.size = len(data)
        info.mode = mode
        info.mtime = int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _tar_directory(src: Path, arcroot: str) -> bytes:
    """Tar the contents of ``src`` under ``arcroot`` (relative), keeping modes; owner root."""
    buf = io.BytesIO()

    def reset(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    with tarfile.open(fileobj=buf, mode="w") as tar:
        for child in sorted(src.iterdir()):
            tar.add(str(child), arcname=f"{arcroot}/{child.name}", recursive=True, filter=reset)
    return buf.getvalue()


class DockerRuntime(Runtime):
    """One running container. Created by :meth:`DockerBackend.start`; stop it (or use
    ``async with``) when done. Paths that are not absolute are relative to ``workdir``."""

    backend = "docker"

    def __init__(self, backend: DockerBackend, container_id: str, name: str, spec: RuntimeSpec,
                 explicit_path: str | None) -> None:
        self._backend = backend
        self.container_id = container_id
        self.name = name
        self.spec = spec
        self.image = spec.image or ""
        self.workdir = spec.workdir
        self._explicit_path = explicit_path
        self._oom_kills = 0
        self._stopped = False
        self._owned_image: str | None = None
        self._seals = 0

    def __repr__(self) -> str:
        return f"DockerRuntime(name={self.name!r}, image={self.image!r})"

    @property
    def _api(self) -> Any:
        return self._backend.client.api

    def _abs(self, path: str) -> str:
        return str(PurePosixPath(self.workdir) / path)

    def _check_live(self) -> None:
        if self._stopped:
            raise RuntimeError_(f"{self.name} was stopped; start a new runtime")

    # -- exec ------------------------------------------------------------------------------------
    async def exec(self, cmd: str, *, timeout: float | None = None, env: Mapping[str, str] | None = None,
                   workdir: str | None = None, login: bool = True) -> ExecResult:
        """Run ``cmd`` with ``bash -lc`` in the container (``/bin/bash -c`` without ``login``:
        no profile file the agent could have edited is read).

        With ``timeout``, the command runs under ``timeout --signal=KILL`` inside the container
        (killing its process group), and the host also stops waiting ``HOST_GUARD_GRACE_S``
        later, then kills every process of this command by its ``AGENTGYM_EXEC_ID``. Either way
        ``timed_out`` is set and the container stays usable. A missing ``workdir`` is created. ``oom_killed`` is set when the
        container's memory cgroup recorded a new OOM kill while the command ran (a command that
        fails for another reason in parallel with one that hits OOM may be flagged too).

        A ``PATH`` given in ``env`` (or the spec, or the image) is put in front of the PATH the
        login shell's profile sets, since ``/etc/profile`` would otherwise overwrite it.
        """
        self._check_live()
        if timeout is not None and timeout <= 0:
            raise ConfigError(f"timeout must be positive, got {timeout}")
        exec_id = uuid.uuid4().hex[:16]
        environment = {**(env or {}), EXEC_ID_ENV: exec_id}
        path = (env or {}).get("PATH") or self._explicit_path
        script = f"export PATH={shlex.quote(path)}:\"$PATH\"; {cmd}" if path else cmd
        argv = ["bash", "-lc", script] if login else ["/bin/bash", "-c", script]
        if timeout is not None:
            argv = ["timeout", "--signal=KILL", f"{timeout:.3f}s", *argv]
        cancel = threading.Event()
        start = time.monotonic()
        cwd = self._abs(workdir) if workdir else self.workdir
        host_timeout = None if timeout is None else timeout + HOST_GUARD_GRACE_S
        try:
            code, out, err, guard_fired = await self._backend._call(
                self._exec_blocking, argv, environment, cwd, host_timeout, cancel)
            if code in (126, 127) and "chdir to cwd" in out + err:
                # A missing workdir (docker does not create it for exec): create it, as locally.
                await self._backend._call(self._run_quick, f"mkdir -p {shlex.quote(cwd)}")
                code, out, err, guard_fired = await self._backend._call(
                    self._exec_blocking, argv, environment, cwd, host_timeout, cancel)
        except asyncio.CancelledError:
            cancel.set()
            with contextlib.suppress(Exception):
                await asyncio.shield(self._backend._call(self._kill_exec, exec_id))
            raise
        duration = time.monotonic() - start
        timed_out = guard_fired or (timeout is not None and code in (124, 137) and duration >= timeout * 0.95)
        oom = False
        if code != 0 and not guard_fired:
            oom = await self._backend._call(self._check_oom)
            timed_out = timed_out and not oom
        if timed_out:
            # `timeout` kills its process group; this also gets what left it (setsid, daemons).
            await self._backend._call(self._kill_exec, exec_id)
        return ExecResult(exit_code=code, stdout=out, stderr=err, timed_out=timed_out,
                          duration_s=duration, oom_killed=oom)

    def _exec_blocking(self, argv: list[str], environment: dict[str, str], workdir: str,
                       host_timeout: float | None, cancel: threading.Event) -> tuple[int, str, str, bool]:
        """Create and start the exec, demultiplex its stream until EOF, the host deadline or
        ``cancel``; returns (exit code, stdout, stderr, host guard fired)."""
        import docker.errors

        try:
            exec_id = self._api.exec_create(self.container_id, argv, stdout=True, stderr=True, stdin=False,
                                            tty=False, environment=environment, workdir=workdir)["Id"]
            sock = self._api.exec_start(exec_id, socket=True)
        except docker.errors.APIError as e:
            raise RuntimeError_(f"{self.name}: cannot exec ({e.explanation or e}); is the container still running?") from e
        raw: socket.socket = getattr(sock, "_sock", sock)
        deadline = None if host_timeout is None else time.monotonic() + host_timeout
        streams = {1: bytearray(), 2: bytearray()}
        dropped = {1: 0, 2: 0}
        buf = bytearray()
        guard = False
        try:
            while True:
                if cancel.is_set():
                    guard = True
                    break
                wait = 0.5
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        guard = True
                        break
                    wait = min(wait, remaining)
                raw.settimeout(wait)
                try:
                    chunk = raw.recv(65536)
                except (TimeoutError, BlockingIOError):
                    continue
                if not chunk:
                    break
                buf += chunk
                # Frames: 1 byte stream id, 3 zero bytes, 4 bytes big-endian length, payload.
                while len(buf) >= 8:
                    size = int.from_bytes(buf[4:8], "big")
                    if len(buf) < 8 + size:
                        break
                    stream_id = buf[0] if buf[0] in (1, 2) else 1
                    target = streams[stream_id]
                    room = MAX_OUTPUT_BYTES - len(target)
                    payload = buf[8 : 8 + size]
                    target += payload[: max(room, 0)]
                    dropped[stream_id] += max(0, size - max(room, 0))
                    del buf[: 8 + size]
        finally:
            with contextlib.suppress(OSError):
                raw.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
            with contextlib.suppress(OSError):
                raw.close()  # the SocketIO wrapper does not close the socket it wraps
        code = -1
        if not guard:
            for _ in range(50):  # the exit code can lag the end of the stream by a moment
                code_or_none = self._api.exec_inspect(exec_id).get("ExitCode")
                if code_or_none is not None:
                    code = int(code_or_none)
                    break
                time.sleep(0.02)

        def text(i: int) -> str:
            s = streams[i].decode("utf-8", errors="replace")
            return s + (f"\n[agentgym: {dropped[i]} more bytes dropped]\n" if dropped[i] else "")

        return code, text(1), text(2), guard

    def _run_quick(self, script: str, timeout: float = 15.0) -> tuple[int, str]:
        code, out, _, _ = self._exec_blocking(["bash", "-c", script], {}, "/", timeout, threading.Event())
        return code, out

    def _kill_exec(self, exec_id: str) -> None:
        with contextlib.suppress(Exception):
            self._run_quick(_kill_by_exec_id_script(exec_id))

    def _check_oom(self) -> bool:
        try:
            state = self._api.inspect_container(self.container_id)["State"]
        except Exception:
            return False
        if not state.get("Running"):
            return bool(state.get("OOMKilled"))
        kills = _host_oom_kills(self.container_id)
        if kills is None:
            try:
                kills = _parse_oom_kills(self._run_quick(_OOM_PROBE)[1])
            except RuntimeError_:
                return False
        new, self._oom_kills = kills > self._oom_kills, max(kills, self._oom_kills)
        return new

    def attach_command(self, argv: Sequence[str], *, tty: bool = False, workdir: str | None = None,
                       env: Mapping[str, str] | None = None) -> HostCommand:
        """``docker exec -i [-t] -w <workdir> <container> argv...`` (the ``docker`` command-line
        client, which reads ``DOCKER_HOST`` as the SDK does). The process is not killed by
        :meth:`exec`'s timeouts; it ends when the host closes its stdin or the container stops."""
        self._check_live()
        client = shutil.which("docker")
        if client is None:
            raise RuntimeError_("attaching to a container needs the docker command-line client on PATH "
                                "(Debian's docker.io or docker-ce-cli)")
        args = [client, "exec", "-i", *(["-t"] if tty else []), "-w", self._abs(workdir) if workdir else self.workdir]
        for key, value in (env or {}).items():
            args += ["-e", f"{key}={value}"]
        return HostCommand(argv=(*args, self.container_id, *argv))

    # -- files -----------------------------------------------------------------------------------
    async def read_file(self, path: str) -> bytes:
        """Bytes of a regular file; :class:`RuntimeFileNotFound` when missing."""
        self._check_live()
        return await self._backend._call(self._read_blocking, self._abs(path))

    def _read_blocking(self, path: str) -> bytes:
        import docker.errors

        try:
            stream, _ = self._api.get_archive(self.container_id, path)
            data = b"".join(stream)
        except docker.errors.NotFound as e:
            raise RuntimeFileNotFound(f"{self.name}: no such file {path}") from e
        except docker.errors.APIError as e:
            raise RuntimeError_(f"{self.name}: cannot read {path}: {e.explanation or e}") from e
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            member = tar.next()
            if member is None or not member.isfile():
                kind = "a directory" if member is not None and member.isdir() else "not a regular file"
                raise RuntimeError_(f"{self.name}: {path} is {kind}")
            f = tar.extractfile(member)
            assert f is not None
            return f.read()

    async def write_file(self, path: str, data: bytes | str, mode: int = 0o644) -> None:
        """Write a file, creating missing parent directories (owner root)."""
        self._check_live()
        payload = data.encode() if isinstance(data, str) else data
        target = self._abs(path).lstrip("/")
        await self._backend._call(self._put_blocking, _tar_single_file(target, payload, mode), path)

    async def upload_dir(self, src: str, dst: str) -> None:
        """Copy the contents of host directory ``src`` into ``dst`` (created if missing), keeping
        file modes; files are owned by root."""
        self._check_live()
        source = Path(src)
        if not source.is_dir():
            raise RuntimeError_(f"upload_dir: {src} is not a directory on the host")
        # Docker creates missing parent directories of tar members, so no mkdir is needed.
        archive = await asyncio.to_thread(_tar_directory, source, self._abs(dst).strip("/") or ".")
        await self._backend._call(self._put_blocking, archive, dst)

    def _put_blocking(self, archive: bytes, what: str) -> None:
        import docker.errors

        try:
            ok = self._api.put_archive(self.container_id, "/", archive)
        except docker.errors.APIError as e:
            raise RuntimeError_(f"{self.name}: cannot write {what}: {e.explanation or e}") from e
        if not ok:
            raise RuntimeError_(f"{self.name}: cannot write {what}")

    # -- lifecycle -------------------------------------------------------------------------------
    async def snapshot(self, tag: str) -> str:
        """``docker commit`` the filesystem (not the processes) as image ``tag``; returns ``tag``."""
        self._check_live()
        repo, _, version = tag.rpartition(":") if ":" in tag.split("/")[-1] else (tag, "", "latest")
        import docker.errors

        def commit() -> str:
            try:
                # The container's own agentgym.* labels must not leak into the image (a container
                # started from it by hand would look like a leftover of this process).
                # Labels merge on commit, so blank ours out.
                blank = dict.fromkeys((LABEL, LABEL_RUN, LABEL_PID, LABEL_PID_START, LABEL_HOST), "")
                conf = {"Labels": {**blank, "agentgym.snapshot_of": self.name}}
                self._api.commit(self.container_id, repository=repo, tag=version, conf=conf)
            except docker.errors.APIError as e:
                raise RuntimeError_(f"{self.name}: snapshot {tag} failed: {e.explanation or e}") from e
            return f"{repo}:{version}"

        return await self._backend._call(commit)

    async def end_processes(self) -> None:
        """Kill the container (every process in it); its files stay until :meth:`stop`."""
        import docker.errors

        def kill() -> None:
            with contextlib.suppress(docker.errors.APIError):
                self._api.kill(self.container_id)

        await self._backend._call(kill)

    async def seal(self, spec: VerifierSpec) -> Sealed:
        """Verify in a fresh container: record what the agent's container shows (processes still
        running, changed system paths, a planted reward), commit its files, remove it (every
        process it ran dies with it), and start a container from the commit with no network,
        the task image's system paths mounted read-only over the agent's copies
        (:mod:`agentgym.runtime.trusted`), ``spec.mounts``, and an empty host directory at
        ``spec.reward_dir``. The new runtime removes the commit when it stops."""
        self._check_live()
        api = self._api
        evidence = await self._backend._call(tamper_evidence, api, self.container_id, spec.reward_dir)
        self._seals += 1
        tag = f"agentgym-sealed/{self.name.lower()}:{self._seals}"
        await self.snapshot(tag)
        if not spec.keep:
            await self.stop()
        mounts: dict[str, str] = {}
        isolation = "fresh container from the agent's files, no agent process, no network"
        if spec.trusted_image:
            from agentgym.paths import cache_dir

            mounts.update(await self._backend._call(trusted_mounts, api, spec.trusted_image, cache_dir() / "trusted"))
            isolation += f", system paths from {spec.trusted_image}"
        mounts.update(spec.mounts)
        reward_dir = Path(tempfile.mkdtemp(prefix="agentgym-verifier-"))
        reward_dir.chmod(0o777)
        try:
            runtime = await self._backend.start(RuntimeSpec(
                image=tag, workdir=self.workdir, env=dict(self.spec.env), memory=self.spec.memory,
                cpus=self.spec.cpus, pids=self.spec.pids, network="none", labels=dict(self.spec.labels), mounts=mounts,
                writable_mounts={str(reward_dir): spec.reward_dir}, init=False))
        except BaseException:
            with contextlib.suppress(Exception):
                await self._backend._call(self._backend._remove_image, tag)
            raise
        runtime._owned_image = tag
        return Sealed(runtime=runtime, reward_dir=reward_dir, evidence=evidence, isolation=isolation)

    async def stop(self) -> None:
        """Remove the container (force), and the snapshot it was sealed from. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self._backend._closed:  # close() removed it with every other live container
            if self._owned_image:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self._backend._remove_image, self._owned_image)
            return
        await self._backend._call(self._backend._remove, self.container_id)
        self._backend._live.pop(self.container_id, None)
        if self._owned_image:
            with contextlib.suppress(Exception):
                await self._backend._call(self._backend._remove_image, self._owned_image)


class DockerBackend(RuntimeBackend):
    """Starts :class:`DockerRuntime` containers.

    Args:
        client: a ``docker.DockerClient``; by default one from the environment (``DOCKER_HOST``).
        run_id: labels every container this backend starts (``agentgym.run``); random by default.
        pids_limit: per-container process limit (a fork bomb stays inside its container).
        max_workers: threads for blocking SDK calls (one per concurrently running command).
    """

    name = "docker"
    enforced_limits = ("timeout", "memory", "cpus", "pids")

    def describe_isolation(self) -> str:
        return "Docker: each episode in its own container, reaching only the proxy (--network none + a Unix socket)"

    def __init__(self, client: Any = None, *, run_id: str | None = None, pids_limit: int | None = 4096,
                 max_workers: int = 64) -> None:
        self._client = client
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.pids_limit = pids_limit
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers, thread_name_prefix="agentgym-docker")
        self._live: dict[str, str] = {}
        self._seq = 0
        self._lock = threading.Lock()
        self._build_locks: dict[str, threading.Lock] = {}
        self._pid = os.getpid()
        self._pid_start = proc_start_time(self._pid)
        self._closed = False
        # Best effort at interpreter exit: a killed process leaves containers for cleanup().
        atexit.register(_atexit_close, weakref.ref(self))

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import docker

                    try:
                        self._client = docker.from_env(timeout=600, max_pool_size=64)
                        self._client.ping()
                    except Exception as e:
                        self._client = None
                        raise RuntimeError_(
                            f"cannot reach the Docker engine ({e}). Start it with "
                            "`agentgym setup`, or use the local backend.") from e
        return self._client

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise RuntimeError_("DockerBackend is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    def labels(self) -> dict[str, str]:
        """Labels put on every container this backend starts."""
        return {LABEL: "1", LABEL_RUN: self.run_id, LABEL_PID: str(self._pid),
                LABEL_PID_START: self._pid_start, LABEL_HOST: socket.gethostname()}

    # -- start -----------------------------------------------------------------------------------
    async def start(self, spec: RuntimeSpec) -> DockerRuntime:
        """Start a container from ``spec.image`` (which must exist: see :meth:`ensure_image`)."""
        if not spec.image:
            raise ConfigError("RuntimeSpec.image is required for the docker backend")
        with self._lock:
            self._seq += 1
            name = f"agentgym-{self.run_id}-{self._seq}"
        starting = asyncio.ensure_future(self._call(self._start_blocking, spec, name))
        try:
            runtime = await asyncio.shield(starting)
        except asyncio.CancelledError:
            # The SDK call goes on in its thread: remove the container as soon as it is there,
            # so a start cut short (a setup timeout, a cancelled episode) leaves nothing running.
            starting.add_done_callback(_remove_when_started)
            raise
        if spec.network == "proxy":
            try:
                await self._call(self._wait_for_forwarder, runtime)
            except BaseException:
                await runtime.stop()
                raise
        return runtime

    def _start_blocking(self, spec: RuntimeSpec, name: str) -> DockerRuntime:
        import docker.errors

        try:
            image_env = self.client.api.inspect_image(spec.image)["Config"].get("Env") or []
        except docker.errors.ImageNotFound as e:
            raise RuntimeError_(f"image {spec.image!r} not found; build it with ensure_image() "
                                "or `agentgym setup` for the base image") from e
        image_path = next((e.split("=", 1)[1] for e in image_env if e.startswith("PATH=")), None)
        explicit_path = spec.env.get("PATH") or (image_path if image_path and image_path != DEFAULT_PATH else None)
        volumes = {**{host: {"bind": ctr, "mode": "ro"} for host, ctr in spec.mounts.items()},
                   **{host: {"bind": ctr, "mode": "rw"} for host, ctr in spec.writable_mounts.items()}}
        entrypoint = ["sleep", "infinity"]
        if spec.network == "proxy":
            assert spec.proxy is not None  # RuntimeSpec checks it
            volumes[str(Path(spec.proxy.socket).parent)] = {"bind": PROXY_MOUNT, "mode": "ro"}
            # A directory, not the file: Docker 20.10 records bind targets as image volumes on
            # commit, and a file there would break starting a container from the commit (seal()).
            volumes[str(_forwarder_dir())] = {"bind": FORWARDER_DIR, "mode": "ro"}
            # The forwarder's errors go to the container's log (read when it does not answer).
            forwarder = shlex.join(["python3", DOCKER_FORWARDER, *spec.proxy.forwarder_args()])
            entrypoint = ["/bin/sh", "-c", f"{forwarder} </dev/null & exec sleep infinity"]
        kwargs: dict[str, Any] = dict(
            entrypoint=entrypoint, command=[], detach=True, init=spec.init, name=name,
            network_mode="host" if spec.network == "host" else "none", working_dir=spec.workdir,
            environment=dict(spec.env), labels={**spec.labels, **self.labels()}, volumes=volumes,
        )
        if spec.memory:
            kwargs["mem_limit"] = spec.memory
            kwargs["memswap_limit"] = spec.memory  # no swap: hitting the limit is an OOM kill
        if spec.cpus:
            kwargs["nano_cpus"] = int(spec.cpus * 1e9)
        if spec.pids or self.pids_limit:
            kwargs["pids_limit"] = spec.pids or self.pids_limit
        try:
            container = self.client.containers.run(spec.image, **kwargs)
        except docker.errors.APIError as e:
            with contextlib.suppress(Exception):
                self._remove(name)
            raise RuntimeError_(f"cannot start {spec.image!r}: {e.explanation or e}") from e
        with self._lock:
            closed = self._closed
            if not closed:
                self._live[container.id] = name
        if closed:  # close() ran while this container was starting (a stopping run): no leak
            with contextlib.suppress(Exception):
                self._remove(container.id)
            raise RuntimeError_(f"the Docker backend was closed while {name} started (the run is stopping)")
        return DockerRuntime(self, container.id, name, spec, explicit_path)

    def _remove_image(self, tag: str) -> None:
        import docker.errors

        with contextlib.suppress(docker.errors.ImageNotFound):
            self.client.api.remove_image(tag, force=True, noprune=False)

    def _wait_for_forwarder(self, runtime: DockerRuntime) -> None:
        """Raise :class:`RuntimeError_` unless the proxy answers through the container's
        forwarder within :data:`FORWARDER_WAIT_S` seconds."""
        assert runtime.spec.proxy is not None
        probe = ["python3", DOCKER_FORWARDER, "--probe", f"127.0.0.1:{runtime.spec.proxy.port}",
                 "--timeout", str(FORWARDER_WAIT_S)]
        code, out, err, _ = runtime._exec_blocking(probe, {}, "/", FORWARDER_WAIT_S + 10, threading.Event())
        if code == 0:
            return
        try:
            logs = self.client.api.logs(runtime.container_id).decode("utf-8", "replace")
        except Exception:
            logs = ""
        detail = (logs or err or out).strip()[-2000:] or f"probe exit {code}"
        raise RuntimeError_(
            f"{runtime.name}: the proxy does not answer through the forwarder at 127.0.0.1:{runtime.spec.proxy.port} "
            f"within {FORWARDER_WAIT_S:g}s (does the image have python3? is the proxy's socket "
            f"{runtime.spec.proxy.socket} there?): {detail}")

    def _remove(self, container: str) -> None:
        import docker.errors

        try:
            self.client.api.remove_container(container, force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as e:
            if "already in progress" not in str(e):
                raise RuntimeError_(f"cannot remove container {container}: {e.explanation or e}") from e

    # -- images ----------------------------------------------------------------------------------
    async def ensure_image(self, image: str, dockerfile_dir: str | None, *, force: bool = False) -> str:
        """Build ``image`` from ``dockerfile_dir`` unless an image with that tag exists and was
        built from the same context (label ``agentgym.context_hash``, which also covers the ids
        of the ``FROM`` images). Builds use the host network. Returns ``image``.

        Raises :class:`ImageBuildError` naming the failing Dockerfile step, and
        :class:`RuntimeError_` when a ``FROM`` image is missing (nothing is pulled).
        """
        return await self._call(self._ensure_image_blocking, image, dockerfile_dir, force)

    def _ensure_image_blocking(self, image: str, dockerfile_dir: str | None, force: bool) -> str:
        import docker.errors

        api = self.client.api
        if dockerfile_dir is None:
            try:
                api.inspect_image(image)
            except docker.errors.ImageNotFound as e:
                standin = standin_for(image)
                if standin is None:
                    raise RuntimeError_(f"image {image!r} is missing (nothing is pulled), no Dockerfile directory was "
                                        "given, and it has no stand-in (docs/environments.md, 'Offline images')") from e
                ensure_standin(api, image, standin, on_status=self.report_status)
            return image
        ctx = Path(dockerfile_dir)
        dockerfile = ctx / "Dockerfile"
        if not dockerfile.is_file():
            raise ConfigError(f"no Dockerfile in {ctx}")
        with self._lock:
            lock = self._build_locks.setdefault(image, threading.Lock())
        with lock:
            base_ids = []
            for base in dockerfile_base_images(dockerfile.read_text()):
                try:
                    base_ids.append(f"{base}={api.inspect_image(base)['Id']}")
                    continue
                except docker.errors.ImageNotFound as e:
                    standin = standin_for(base)
                    if standin is None:
                        hint = " Run `agentgym setup`." if base.startswith("agentgym/") else (
                            " Build or load it, or give it a stand-in in AGENTGYM_BASE_IMAGES "
                            "(docs/environments.md, 'Offline images').")
                        raise RuntimeError_(f"{dockerfile}: base image {base!r} is not available locally "
                                            f"(nothing is pulled) and has no stand-in.{hint}") from e
                ensure_standin(api, base, standin, on_status=self.report_status)
                base_ids.append(f"{base}={api.inspect_image(base)['Id']}")
            digest = context_hash(ctx, base_ids)
            if not force:
                with contextlib.suppress(docker.errors.ImageNotFound):
                    labels = api.inspect_image(image)["Config"].get("Labels") or {}
                    if labels.get(LABEL_CONTEXT_HASH) == digest:
                        return image
            build_image(self.client.api, image, ctx, digest)
        return image

    # -- cleanup ---------------------------------------------------------------------------------
    async def cleanup(self) -> int:
        """Remove containers whose creating process (label ``agentgym.pid`` on this host) is gone.
        Containers of live processes, including this one, are kept. Returns how many were removed."""
        return await self._call(self._cleanup_blocking)

    def _cleanup_blocking(self) -> int:
        host = socket.gethostname()
        removed = 0
        for c in self.client.api.containers(all=True, filters={"label": f"{LABEL}=1"}):
            labels = c.get("Labels") or {}
            if labels.get(LABEL_HOST, host) != host or not labels.get(LABEL_PID, "").isdigit():
                continue
            if pid_alive(int(labels[LABEL_PID]), labels.get(LABEL_PID_START, "")):
                continue
            self._remove(c["Id"])
            removed += 1
        return removed

    def live_containers(self) -> list[str]:
        """Names of the containers this backend started and has not stopped."""
        return sorted(self._live.values())

    def close(self) -> None:
        """Remove every container this backend still runs (in parallel: a stopping run waits for
        this) and release its threads; a container still starting is removed as it comes up.
        Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            live = list(self._live)
        if live:
            with concurrent.futures.ThreadPoolExecutor(min(16, len(live))) as pool:
                for cid in live:
                    pool.submit(self._remove_quietly, cid)
        self._live.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _remove_quietly(self, cid: str) -> None:
        with contextlib.suppress(Exception):
            self._remove(cid)


def _remove_when_started(starting: asyncio.Future[DockerRuntime]) -> None:
    if starting.cancelled() or starting.exception() is not None:
        return
    runtime = starting.result()
    runtime._backend._executor.submit(runtime._backend._remove_quietly, runtime.container_id)
    runtime._backend._live.pop(runtime.container_id, None)
    runtime._stopped = True


def _atexit_close(ref: weakref.ref[DockerBackend]) -> None:
    backend = ref()
    if backend is not None and backend._live:
        backend.close()


def docker_available(timeout: float = 3.0) -> bool:
    """Whether a Docker engine answers a ping (``DOCKER_HOST`` or the default socket)."""
    try:
        import docker

        client = docker.from_env(timeout=int(max(timeout, 1)))
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False
