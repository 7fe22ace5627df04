"""Local runtime: commands on this machine, each in a bubblewrap sandbox over a fresh temp dir.

Each runtime gets a temporary directory that plays the container's ``/`` (the *fake root*,
``runtime.root``). Two isolation modes (:attr:`LocalBackend.isolation`):

``bubblewrap`` (the default; needs ``bwrap``, Debian's ``bubblewrap``)
    Every command runs in its own ``bwrap`` sandbox (:mod:`agentgym.runtime.sandbox`): the
    host's filesystem read-only, the fake root's directories writable at their task paths
    (``/app`` or the workdir, ``/tests``, ``/logs``, ``/solution``, ``/output``, a private
    ``/tmp`` and ``/root``, the ``HOME``), its own pid, ipc, uts, cgroup and user namespaces, no
    capabilities, and no network but loopback (``network="none"``), plus the proxy at
    ``127.0.0.1:<port>`` through a forwarder to its Unix socket (``network="proxy"``), or the
    host's network (``network="host"``). Paths are the task's own (``/app/x`` is ``/app/x``):
    :meth:`~LocalRuntime.process_path` and :meth:`~LocalRuntime.rewrite` are identities and
    ``AGENTGYM_ROOT`` is unset. When a command ends or times out, every process it started
    dies with its pid namespace (``setsid``/``nohup`` do not escape). Files persist between
    commands (each is a new ``bwrap`` over the same directories). The file API reads and
    writes the fake root from the host, following symlinks as the sandbox sees them but never
    out of the fake root (:mod:`agentgym.runtime.rootfs`).

``none`` (``get_backend("local-unsafe")`` / ``LocalBackend(isolation="none")``): **no isolation**
    Commands run as the calling user with full access to the host's files and network, and
    their command *strings* are rewritten so task paths point into the fake root: an absolute
    path whose first component is one of ``MAPPED_ROOTS`` (``/app /tests /logs /solution
    /output`` and the workdir's), or a directory of the fake root that the host lacks, is
    prefixed with the fake root (``cat /app/x`` runs ``cat <root>/app/x``, ``/usr/bin/env`` or
    ``/tmp`` stay the host's). The rewrite is textual (it also applies inside quoted strings);
    files that commands run are not rewritten, so scripts that must also run there write their
    absolute paths as ``"${AGENTGYM_ROOT:-}/logs/..."`` (``AGENTGYM_ROOT`` is the fake root).
    Only for machines that cannot run ``bwrap``, and trusted code.

In both modes ``RuntimeSpec.memory``, ``cpus``, ``pids`` and ``mounts`` are not enforced (bubblewrap
has no resource limits; ``LocalBackend.enforced_limits`` says so), and a timeout
kills the command's whole process tree. Without isolation, "the whole tree" is found three ways,
since a process can leave its process group (``setpgid``) or its session (``setsid``, ``nohup
... &``, daemons): the command's process group, every process of its session, and every process
whose environment carries the runtime's ``AGENTGYM_RUNTIME_ID``; they are stopped (``SIGSTOP``)
until no new one appears, then killed. :meth:`LocalRuntime.stop` does the same for every
process any of its commands left running. Only a process that both leaves its session and
clears its environment escapes this: run untrusted code in the sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import stat
import sys
import tempfile
import time
import uuid
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

from agentgym.errors import ConfigError, RuntimeError_
from agentgym.runtime.base import (
    ExecResult,
    HostCommand,
    Runtime,
    RuntimeBackend,
    RuntimeFileNotFound,
    RuntimeSpec,
    Sealed,
    VerifierSpec,
)
from agentgym.runtime.rootfs import RootFS
from agentgym.runtime.sandbox import FORWARDER_FAILED, SETUP_FAILED, Bubblewrap, bubblewrap_problem
from agentgym.runtime.trusted import SYSTEM_PATH

PREFIX = "agentgym-local-"
SNAPSHOT_SCHEME = "dir:"
"""``RuntimeSpec.image`` of the form ``dir:<host path>`` starts from a copy of that fake root
(what :meth:`LocalRuntime.snapshot` returns)."""
MAPPED_ROOTS = ("/app", "/tests", "/logs", "/solution", "/output")
"""The task's top-level directories: private to each runtime (never the host's), writable. The
unsafe mode maps them in command strings even before they exist (so ``rm -rf /tests`` never
reaches the host's ``/tests``)."""
ISOLATIONS = ("bubblewrap", "none")
"""What :class:`LocalBackend` can isolate commands with."""
UNSAFE_BACKEND = "local-unsafe"
"""The backend name (``get_backend``, ``--runtime``, ``RolloutConfig.runtime``) of the local
runtime without isolation."""
MAX_OUTPUT_BYTES = 16 * 1024 * 1024
RUNTIME_ID_ENV = "AGENTGYM_RUNTIME_ID"
"""Set in every command of a runtime without isolation, so what it left running (even in a new
session) is found and killed by id when the command times out or the runtime stops."""
_PASS_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TERM", "USER", "LOGNAME", "SHELL", "TZ",
             "PYENV_ROOT", "VIRTUAL_ENV", "SSL_CERT_FILE", "SSL_CERT_DIR")
"""Host variables a local command inherits; everything else comes from the spec and ``env``."""


def proc_start_time(pid: int) -> str:
    """Start time of ``pid`` in clock ticks since boot ('' when unknown): tells PID reuse apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # The command name (field 2) may hold spaces and parentheses; fields resume after the last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else ""


def pid_alive(pid: int, start: str = "") -> bool:
    """Whether process ``pid`` exists (and, given its recorded ``start`` time, is the same one)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    return not start or not (now := proc_start_time(pid)) or now == start


class LocalRuntime(Runtime):
    """Commands in a fake root directory, sandboxed with bubblewrap (or not: see the module
    docstring and :attr:`isolation`).

    ``workdir`` is the path as the task sees it (``/app``); ``root`` is the fake root on the
    host and :meth:`host_path` says where a task path lies in it.
    """

    backend = "local"
    uses_images = False

    def __init__(self, base: Path, spec: RuntimeSpec, mapped_roots: tuple[str, ...] = (),
                 sandbox: Bubblewrap | None = None) -> None:
        self._base = base
        self.mapped_roots = mapped_roots
        self.root = base / "fs"
        self.spec = spec
        self.workdir = spec.workdir
        self.sandbox = sandbox
        self.isolation = "bubblewrap" if sandbox is not None else "none"
        """``bubblewrap`` or ``none`` (the module docstring says what each isolates)."""
        self.fs = RootFS(self.root)
        self._pgids: set[int] = set()
        self._stopped = False
        self.id = uuid.uuid4().hex
        """Marks this runtime's processes (``AGENTGYM_RUNTIME_ID``) when it runs without isolation."""
        self.root.mkdir(parents=True, exist_ok=True)
        if sandbox is not None:
            sandbox.prepare(self.fs)
        else:
            self.host_path(self.workdir).mkdir(parents=True, exist_ok=True)
            self.host_path("/root").mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalRuntime(root={str(self.root)!r}, isolation={self.isolation!r})"

    def host_path(self, path: str) -> Path:
        """The host path of a task path: absolute paths live under :attr:`root`, relative paths
        under the workdir. Lexical: ``..`` cannot climb out of the fake root, and no symlink is
        followed (the file API follows them inside the fake root)."""
        return self.fs.host(PurePosixPath("/") / self.workdir / path)

    def process_path(self, path: str) -> str:
        """``path`` as commands see it: itself in the sandbox; its host path without isolation."""
        return path if self.sandbox is not None else str(self.host_path(path))

    def rewrite(self, cmd: str) -> str:
        """``cmd`` itself in the sandbox. Without isolation, absolute paths in ``cmd`` point into
        the fake root when their first component is one of :attr:`mapped_roots`, the workdir's,
        or a directory of the fake root that the host lacks."""
        if self.sandbox is not None:
            return cmd
        names = {PurePosixPath(r).parts[1] for r in (*self.mapped_roots, self.workdir) if r.strip("/")}
        with contextlib.suppress(OSError):
            # Only directories the host lacks: once a task puts a file in /usr/local/bin, /usr/bin/env
            # must still be the host's.
            names.update(p.name for p in self.root.iterdir() if p.is_dir() and not os.path.lexists(f"/{p.name}"))
        pattern = r"(?<![\w.~/$-])/(" + "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)) + r")(?=/|$|[^\w.-])"
        root = str(self.root)
        return re.sub(pattern, lambda m: f"{root}/{m.group(1)}", cmd)

    def _check_live(self) -> None:
        if self._stopped:
            raise RuntimeError_(f"{self!r} was stopped; start a new runtime")

    def _environment(self, env: Mapping[str, str] | None) -> dict[str, str]:
        environ = {k: os.environ[k] for k in _PASS_ENV if k in os.environ}
        if self.sandbox is not None:
            environ.update(HOME="/root", PWD="")
        else:
            environ.update(HOME=str(self.host_path("/root")), AGENTGYM_ROOT=str(self.root), PWD="")
        environ.update(self.spec.env)
        environ.update(env or {})
        if self.sandbox is None:  # after the caller's: a command cannot opt out by passing its own
            environ[RUNTIME_ID_ENV] = self.id
        return environ

    async def exec(self, cmd: str, *, timeout: float | None = None, env: Mapping[str, str] | None = None,
                   workdir: str | None = None, login: bool = True) -> ExecResult:
        """Run ``cmd`` with ``bash -lc`` (``bash -c`` without ``login``: no profile is read) in
        the workdir (created if missing), in a sandbox of its own (or, without isolation, in its
        own session on the host).

        The ``PATH`` passed in (the host's by default) is put in front of what the login
        profile sets. On timeout the whole process tree is SIGKILLed and ``timed_out`` is set.
        Raises :class:`RuntimeError_` when bubblewrap cannot set the sandbox up.
        """
        self._check_live()
        if timeout is not None and timeout <= 0:
            raise ConfigError(f"timeout must be positive, got {timeout}")
        environ = self._environment(env)
        script = self.rewrite(cmd)
        if environ.get("PATH"):
            script = f"export PATH={shlex.quote(environ['PATH'])}:\"$PATH\"; {script}"
        task_dir = str(PurePosixPath(self.workdir) / (workdir or "."))
        status_r = status_w = -1
        if self.sandbox is not None:
            self.sandbox.prepare(self.fs)
            self._make_mount_point(task_dir)
            environ["PWD"] = task_dir
            status_r, status_w = os.pipe()
            proxy = self.spec.proxy if self.spec.network == "proxy" else None
            argv = self.sandbox.argv(self.fs, self.sandbox.wrap(task_dir, script, status_w, proxy, login=login),
                                     network=self.spec.network, proxy=proxy)
            cwd = "/"
        else:
            host_cwd = self.host_path(task_dir)
            host_cwd.mkdir(parents=True, exist_ok=True)
            environ["PWD"] = cwd = str(host_cwd)
            argv = ["bash", "-lc" if login else "-c", script]
        start = time.monotonic()
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, cwd=cwd, env=environ, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, start_new_session=True,
                pass_fds=(status_w,) if status_w >= 0 else ())
        except OSError as e:
            if status_r >= 0:
                os.close(status_r)
            raise RuntimeError_(f"cannot run {argv[0]}: {e}") from e
        finally:
            if status_w >= 0:
                os.close(status_w)
        try:
            code, out, err, timed_out = await self._wait(proc, timeout)
            if status_r >= 0 and code != 0 and not timed_out and not self._stopped:  # stopped: killed
                os.set_blocking(status_r, False)
                with contextlib.suppress(OSError):
                    if not os.read(status_r, 64):
                        raise RuntimeError_(f"bubblewrap could not set up the sandbox (exit {code}): "
                                            f"{err.strip()[-2000:]}")
        finally:
            if status_r >= 0:
                os.close(status_r)
        if code == SETUP_FAILED and err.startswith(FORWARDER_FAILED):
            raise RuntimeError_(f"{self!r}: {err.strip()} (is the proxy's socket {self.spec.proxy and self.spec.proxy.socket} "
                                "still there?)")
        return ExecResult(exit_code=code, stdout=out, stderr=err, timed_out=timed_out,
                          duration_s=time.monotonic() - start)

    async def _wait(self, proc: asyncio.subprocess.Process, timeout: float | None) -> tuple[int, str, str, bool]:
        """Wait for the process *and* its output (a background child holding the pipe keeps the
        command running, as in a container); on timeout, kill its process group."""
        self._pgids.add(proc.pid)
        readers = [asyncio.ensure_future(_read_capped(s)) for s in (proc.stdout, proc.stderr)]
        tasks = [asyncio.ensure_future(proc.wait()), *readers]
        try:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            timed_out = bool(pending)
            if pending:
                # Killing bwrap kills the sandbox's pid 1 (--die-with-parent), hence all inside.
                self._kill_tree(proc.pid)
                _, pending = await asyncio.wait(pending, timeout=5)
            if pending:  # something left the process group and holds the pipes: stop reading
                for t in pending:
                    t.cancel()
                with contextlib.suppress(Exception):
                    proc._transport.close()  # type: ignore[attr-defined]
        except asyncio.CancelledError:
            self._kill_tree(proc.pid)
            for t in tasks:
                t.cancel()
            raise
        finally:
            self._pgids.discard(proc.pid)
        outs = [r.result() if r.done() and not r.cancelled() else b"" for r in readers]
        code = proc.returncode if proc.returncode is not None else -1
        if code < 0:
            code = 128 - code  # killed by signal N -> 128 + N, as a shell reports it
        return code, outs[0].decode("utf-8", "replace"), outs[1].decode("utf-8", "replace"), timed_out

    def _make_mount_point(self, task_dir: str) -> None:
        """Make the fake root's directory that holds ``task_dir`` (its first component the host
        lacks, or a private one), so the sandbox mounts it; the wrapper creates the rest inside."""
        prefix = PurePosixPath("/")
        assert self.sandbox is not None
        for part in PurePosixPath(task_dir).parts[1:]:
            prefix /= part
            if str(prefix) in self.sandbox.private or not os.path.isdir(prefix) or os.path.islink(prefix):
                self.fs.make_dirs(prefix)
                return
            self.fs.make_dirs(prefix)

    def attach_command(self, argv: Sequence[str], *, tty: bool = False, workdir: str | None = None,
                       env: Mapping[str, str] | None = None) -> HostCommand:
        """``bwrap ... argv`` in the runtime's sandbox, as :meth:`exec` runs a command (the same
        mounts, namespaces and network); with ``tty`` the sandbox keeps the caller's terminal.
        The process dies with the caller (``--die-with-parent``). Without isolation:
        ``NotImplementedError``, since that mode rewrites the task's paths in each command string
        and an attached process would bypass the rewrite."""
        self._check_live()
        if self.sandbox is None:
            raise NotImplementedError("the local runtime without isolation rewrites the task's paths in each "
                                      "command; an attached process would bypass that (use local or docker)")
        environ = self._environment(env)
        task_dir = str(PurePosixPath(self.workdir) / (workdir or "."))
        self.sandbox.prepare(self.fs)
        self._make_mount_point(task_dir)
        environ["PWD"] = task_dir
        script = "exec " + shlex.join(argv)
        if environ.get("PATH"):
            script = f"export PATH={shlex.quote(environ['PATH'])}:\"$PATH\"; {script}"
        proxy = self.spec.proxy if self.spec.network == "proxy" else None
        # The wrapper reports on a status fd that exec() reads; here fd 9, opened on /dev/null.
        inner = self.sandbox.argv(self.fs, self.sandbox.wrap(task_dir, script, 9, proxy, login=False),
                                  network=self.spec.network, proxy=proxy, new_session=not tty)
        return HostCommand(argv=("bash", "-c", 'exec 9>/dev/null; exec "$@"', "agentgym-attach", *inner),
                           env=environ, cwd="/")

    async def read_file(self, path: str) -> bytes:
        self._check_live()
        virtual = PurePosixPath("/") / self.workdir / path
        try:
            if self.sandbox is not None:
                return await asyncio.to_thread(self.fs.read, virtual)
            return await asyncio.to_thread(self.host_path(path).read_bytes)
        except FileNotFoundError as e:
            raise RuntimeFileNotFound(f"no such file {path} (host {self.host_path(path)})") from e
        except OSError as e:
            raise RuntimeError_(f"cannot read {path}: {e}") from e

    async def write_file(self, path: str, data: bytes | str, mode: int = 0o644) -> None:
        self._check_live()
        payload = data.encode() if isinstance(data, str) else data
        if self.sandbox is not None:
            try:
                await asyncio.to_thread(self.fs.write, PurePosixPath("/") / self.workdir / path, payload, mode)
            except OSError as e:
                raise RuntimeError_(f"cannot write {path}: {e}") from e
            return
        target = self.host_path(path)

        def write() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(payload)
            target.chmod(mode)

        await asyncio.to_thread(write)

    async def upload_dir(self, src: str, dst: str) -> None:
        self._check_live()
        if not Path(src).is_dir():
            raise RuntimeError_(f"upload_dir: {src} is not a directory on the host")
        if self.sandbox is not None:
            try:
                await asyncio.to_thread(self.fs.upload, src, PurePosixPath("/") / self.workdir / dst)
            except OSError as e:
                raise RuntimeError_(f"cannot upload {src} to {dst}: {e}") from e
            return
        await asyncio.to_thread(shutil.copytree, src, self.host_path(dst), symlinks=True, dirs_exist_ok=True)

    async def seal(self, spec: VerifierSpec) -> Sealed:
        """In the sandbox no agent process outlives its command (each ran in a pid namespace that
        died with it) and the host's system paths were read-only to the agent, so the verifier
        runs in a sandbox over the same files with ``spec.reward_dir`` and ``spec.mounts`` made
        fresh directories (a symlink or files the agent left there are removed and recorded).
        ``spec.trusted_image`` is not needed: the programs are the host's. Without isolation
        there is nothing to seal: ``NotImplementedError`` (the verifier then runs in place)."""
        if self.sandbox is None:
            raise NotImplementedError("the local runtime without isolation cannot seal: its verifier runs in place")
        self._check_live()
        evidence: list[str] = []
        reward = await asyncio.to_thread(_fresh_dir, self.root, spec.reward_dir, evidence, "reward-file")
        for host, path in spec.mounts.items():
            await asyncio.to_thread(_fresh_dir, self.root, path, evidence, None)
            await self.upload_dir(host, path)
        # The interpreter running agentgym (its environment has the test tools), then the system
        # directories: all read-only to the agent.
        python_dir = str(PurePosixPath(self.sandbox.inside(sys.executable)).parent)
        return Sealed(runtime=self, reward_dir=reward, evidence=evidence, path=f"{python_dir}:{SYSTEM_PATH}",
                      isolation="bubblewrap sandbox: host system paths read-only to the agent, no agent process left")

    async def snapshot(self, tag: str) -> str:
        """Copy the fake root; returns ``dir:<path>``, a ``RuntimeSpec.image`` that starts from it.
        ``tag`` names the copy (``<tempdir>/agentgym-snapshot-<tag>``). Symlinks are copied as
        symlinks; sockets and pipes are left out."""
        self._check_live()
        safe = re.sub(r"[^\w.-]+", "_", tag)
        dest = Path(tempfile.gettempdir()) / f"agentgym-snapshot-{safe}"
        if dest.exists():
            await asyncio.to_thread(shutil.rmtree, dest)
        await asyncio.to_thread(shutil.copytree, self.root, dest, symlinks=True, ignore=_special_files)
        return f"{SNAPSHOT_SCHEME}{dest}"

    async def stop(self) -> None:
        """Kill running commands and delete the temp directory. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self.kill_processes()
        await asyncio.to_thread(shutil.rmtree, self._base, True)

    def _kill_tree(self, leader: int) -> None:
        """Kill a command's processes: its process group (in the sandbox, bwrap's: the sandbox
        dies with it); without isolation also its session and whatever carries this runtime's
        id (processes that left with ``setsid``)."""
        _killpg(leader)
        if self.sandbox is None:
            kill_marked(RUNTIME_ID_ENV, self.id, session=leader)

    def kill_processes(self) -> None:
        """Kill every process this runtime's commands started that still runs (synchronous: safe
        from signal handlers and ``close()``)."""
        for pgid in list(self._pgids):
            self._kill_tree(pgid)
        if self.sandbox is None:
            kill_marked(RUNTIME_ID_ENV, self.id)

    async def end_processes(self) -> None:
        """Kill what earlier commands left running; the files stay."""
        self.kill_processes()


def _special_files(directory: str, names: list[str]) -> set[str]:
    """Entries ``copytree`` cannot copy (sockets, pipes, devices)."""
    skip = set()
    for name in names:
        with contextlib.suppress(OSError):
            mode = os.lstat(os.path.join(directory, name)).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
                skip.add(name)
    return skip


def _fresh_dir(root: Path, path: str, evidence: list[str], kind: str | None) -> Path:
    """Make ``path`` (under the fake ``root``) an empty real directory, replacing any symlink on
    the way without following it; what was there is recorded in ``evidence`` as ``kind``."""
    current = root
    for part in PurePosixPath(path).parts[1:]:
        current = current / part
        if current.is_symlink() or (current.exists() and not current.is_dir()):
            if kind:
                evidence.append(f"{kind}: {path} was replaced by a link or file before the verifier ran")
            current.unlink()
        current.mkdir(exist_ok=True)
    leftovers = list(current.iterdir())
    if leftovers and kind:
        evidence.append(f"{kind}: {len(leftovers)} file(s) in {path} before the verifier ran")
    for child in leftovers:
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    return current


async def _read_capped(stream: asyncio.StreamReader | None) -> bytes:
    if stream is None:
        return b""
    buf = bytearray()
    dropped = 0
    while chunk := await stream.read(65536):
        room = MAX_OUTPUT_BYTES - len(buf)
        buf += chunk[: max(room, 0)]
        dropped += max(0, len(chunk) - max(room, 0))
    if dropped:
        buf += f"\n[agentgym: {dropped} more bytes dropped]\n".encode()
    return bytes(buf)


def _killpg(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _session_of(pid: str) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return -1
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[3]) if len(fields) > 3 else -1  # field 6: session id


def _marked(pid: str, needle: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return needle in f.read().split(b"\0")
    except OSError:
        return False


def kill_marked(name: str, value: str, session: int | None = None, rounds: int = 20) -> int:
    """SIGKILL every process whose environment has ``name=value`` (or, given ``session``, whose
    session is that one). They are first stopped with SIGSTOP, pass after pass, until a pass
    finds none new, so a process forking meanwhile cannot leave a child behind. Returns how
    many were killed. Processes of other users are not visible to a non-root caller."""
    needle = f"{name}={value}".encode()
    me = os.getpid()
    found: set[int] = set()
    for _ in range(rounds):
        new = set()
        try:
            pids = [p for p in os.listdir("/proc") if p.isdigit()]
        except OSError:
            break
        for p in pids:
            pid = int(p)
            if pid == me or pid in found:
                continue
            if (session is not None and _session_of(p) == session) or _marked(p, needle):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGSTOP)
                    new.add(pid)
        if not new:
            break
        found |= new
    for pid in found:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return len(found)


class LocalBackend(RuntimeBackend):
    """Starts :class:`LocalRuntime` sandboxes in ``tmp_root`` (the system temp dir by default).

    Args:
        tmp_root: where fake roots are made.
        mapped_roots: the task's top-level directories (private to each runtime).
        isolation: ``bubblewrap`` (the default: each command in a ``bwrap`` sandbox; starting
            a runtime fails when bubblewrap is missing or cannot run here) or ``none`` (no
            isolation at all: commands run on the host as the calling user; also
            ``get_backend("local-unsafe")``).
        bwrap: the bubblewrap executable.
    """

    name = "local"
    uses_images = False

    def __init__(self, tmp_root: str | None = None, mapped_roots: tuple[str, ...] = MAPPED_ROOTS, *,
                 isolation: str = "bubblewrap", bwrap: str = "bwrap") -> None:
        if isolation not in ISOLATIONS:
            raise ConfigError(f"isolation must be one of {', '.join(ISOLATIONS)}, got {isolation!r}")
        self.tmp_root = tmp_root
        self.mapped_roots = mapped_roots
        self.isolation = isolation
        self.bwrap = bwrap
        self.name = "local" if isolation == "bubblewrap" else UNSAFE_BACKEND
        self._checked = False
        self._live: weakref.WeakSet[LocalRuntime] = weakref.WeakSet()

    def describe_isolation(self) -> str:
        if self.isolation == "none":
            return ("LOCAL runtime WITHOUT isolation (local-unsafe): commands run on this machine "
                    "with your user's access to its files and network")
        return ("local runtime, each command in a bubblewrap sandbox (host files read-only, private "
                "/app /tmp /root, own process namespace, no network but the proxy)")

    def _check_bubblewrap(self) -> None:
        if self._checked:
            return
        problem = bubblewrap_problem(self.bwrap)
        if problem:
            raise RuntimeError_(
                f"the local runtime runs every command in a bubblewrap sandbox, and {problem}. "
                "Install it (`apt-get install bubblewrap`), or, for trusted code on a machine that "
                f"cannot run it, use the runtime without isolation: `--runtime {UNSAFE_BACKEND}` / "
                f"get_backend({UNSAFE_BACKEND!r}) / LocalBackend(isolation='none').")
        self._checked = True

    async def start(self, spec: RuntimeSpec) -> LocalRuntime:
        """Create a fresh fake root (a copy of a ``dir:`` snapshot when ``spec.image`` names one;
        any other image is ignored: there is nothing to run it with)."""
        if not PurePosixPath(spec.workdir).is_absolute():
            raise ConfigError(f"workdir must be absolute, got {spec.workdir!r}")
        sandbox = None
        if self.isolation == "bubblewrap":
            await asyncio.to_thread(self._check_bubblewrap)
            if spec.network == "proxy":
                assert spec.proxy is not None  # RuntimeSpec checks it
                if not _is_socket(spec.proxy.socket):
                    raise RuntimeError_(f"the proxy socket {spec.proxy.socket} does not exist: start the proxy "
                                        "(Proxy.start()) before the runtime")
            private = (*self.mapped_roots, spec.workdir, "/tmp", "/root")
            # Other runtimes' fake roots and the proxy's journal (other episodes' files) stay out.
            hide = [self.tmp_root or tempfile.gettempdir(), *(spec.proxy.hide if spec.proxy else ()), *spec.hidden]
            sandbox = Bubblewrap(private, hide=hide, bwrap=self.bwrap)
        base = Path(tempfile.mkdtemp(prefix=PREFIX, dir=self.tmp_root))
        owner = {"pid": os.getpid(), "start": proc_start_time(os.getpid()), "id": uuid.uuid4().hex}
        (base / "owner.json").write_text(json.dumps(owner))
        if spec.image and spec.image.startswith(SNAPSHOT_SCHEME):
            src = spec.image[len(SNAPSHOT_SCHEME):]
            if not Path(src).is_dir():
                shutil.rmtree(base, ignore_errors=True)
                raise RuntimeError_(f"snapshot directory {src} does not exist")
            await asyncio.to_thread(shutil.copytree, src, base / "fs", symlinks=True)
        runtime = LocalRuntime(base, spec, self.mapped_roots, sandbox)
        self._live.add(runtime)
        return runtime

    def close(self) -> None:
        """Kill every process of the runtimes this backend started that were not stopped, and
        delete their directories (synchronous: for a run that is stopping). Idempotent."""
        for runtime in list(self._live):
            if not runtime._stopped:
                runtime._stopped = True
                runtime.kill_processes()
                shutil.rmtree(runtime._base, ignore_errors=True)
        self._live.clear()

    async def cleanup(self) -> int:
        """Remove what local runtimes whose creating process is gone left: kill the sandbox
        processes still running from their directories (a run killed with SIGKILL usually takes
        its ``bwrap`` processes with it, ``--die-with-parent``, but not always), then delete the
        directories."""
        removed = 0
        for base in Path(self.tmp_root or tempfile.gettempdir()).glob(f"{PREFIX}*"):
            try:
                owner = json.loads((base / "owner.json").read_text())
            except (OSError, ValueError):
                continue
            if not pid_alive(int(owner.get("pid", 0)), str(owner.get("start", ""))):
                for pid in processes_using(base):
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)  # bwrap: its sandbox dies with it
                await asyncio.to_thread(shutil.rmtree, base, True)
                removed += 1
        return removed


def processes_using(base: Path) -> list[int]:
    """Pids of this user's processes whose command line names a path under ``base`` (the
    ``bwrap`` of a runtime binds its directories by path)."""
    needle = (str(base) + "/").encode()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if needle in cmdline:
            found.append(int(entry.name))
    return found


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False
