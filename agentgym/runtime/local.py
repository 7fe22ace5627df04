"""Local runtime: subprocesses on this machine, in a fresh temporary directory.

**It offers no isolation.** Commands run as the calling user, with full access to the host's
files, network and memory; ``RuntimeSpec.memory``, ``cpus``, ``network`` and ``mounts`` are
not enforced. Use it on machines without Docker, for trusted code, and in tests.

Path mapping
------------
Each runtime gets a temporary directory that plays the container's ``/`` (the *fake root*,
``runtime.root``):

- the file API (``read_file``, ``write_file``, ``upload_dir``, ``exec(workdir=...)``) maps every
  absolute path ``/p`` to ``<root>/p``, and relative paths to the workdir: with the default
  ``workdir="/app"``, ``write_file("/app/x")`` and ``write_file("x")`` both write
  ``<root>/app/x``;
- commands run with ``cwd=<root>/app`` (the spec's workdir), ``HOME=<root>/root`` and
  ``AGENTGYM_ROOT=<root>``; the command *string* is rewritten so that an absolute path whose
  first component is one of ``MAPPED_ROOTS`` (``/app /tests /logs /solution /output`` and the
  workdir's), or a directory of the fake root that the host does not have, points into it:
  ``cat /app/x`` runs ``cat <root>/app/x``, while ``/usr/bin/env``, ``/tmp`` or ``/root`` stay
  the host's (and so does ``/etc``: no isolation). The rewrite is textual: it also applies inside quoted strings
  (``echo /app > f`` writes the host path);
- files that commands run are *not* rewritten: a script that must also run locally writes its
  absolute paths as ``"${AGENTGYM_ROOT:-}/logs/..."`` (empty in a container).

A timeout kills the command's whole process group (it runs in its own session).
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
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from agentgym.errors import ConfigError, RuntimeError_
from agentgym.runtime.base import ExecResult, Runtime, RuntimeBackend, RuntimeFileNotFound, RuntimeSpec

PREFIX = "agentgym-local-"
SNAPSHOT_SCHEME = "dir:"
"""``RuntimeSpec.image`` of the form ``dir:<host path>`` starts from a copy of that fake root
(what :meth:`LocalRuntime.snapshot` returns)."""
MAPPED_ROOTS = ("/app", "/tests", "/logs", "/solution", "/output")
"""Top-level paths a command string always maps into the fake root, even before they exist
(so ``rm -rf /tests`` never reaches the host's ``/tests``)."""
MAX_OUTPUT_BYTES = 16 * 1024 * 1024
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
    """Subprocesses in a fake root directory (see the module docstring: **no isolation**).

    ``workdir`` is the path as the task sees it (``/app``); ``root`` is the fake root on the
    host and :meth:`host_path` maps a task path to the host.
    """

    backend = "local"
    uses_images = False

    def __init__(self, base: Path, spec: RuntimeSpec, mapped_roots: tuple[str, ...] = ()) -> None:
        self._base = base
        self.mapped_roots = mapped_roots
        self.root = base / "fs"
        self.spec = spec
        self.workdir = spec.workdir
        self._pgids: set[int] = set()
        self._stopped = False
        self.host_path(self.workdir).mkdir(parents=True, exist_ok=True)
        self.host_path("/root").mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalRuntime(root={str(self.root)!r})"

    def host_path(self, path: str) -> Path:
        """The host path of a task path: absolute paths live under :attr:`root`, relative paths
        under the workdir. ``..`` cannot climb out of the fake root."""
        virtual = PurePosixPath("/") / self.workdir / path
        parts: list[str] = []
        for part in virtual.parts[1:]:
            if part == "..":
                if parts:
                    parts.pop()
            elif part != ".":
                parts.append(part)
        return self.root.joinpath(*parts)

    def process_path(self, path: str) -> str:
        """The host path of a task path (the runtime's processes run on the host)."""
        return str(self.host_path(path))

    def rewrite(self, cmd: str) -> str:
        """Point absolute paths in ``cmd`` into the fake root when their first component is one of
        :attr:`mapped_roots`, the workdir's, or a directory of the fake root that the host lacks."""
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
        environ.update(HOME=str(self.host_path("/root")), AGENTGYM_ROOT=str(self.root), PWD="")
        environ.update(self.spec.env)
        environ.update(env or {})
        return environ

    async def exec(self, cmd: str, *, timeout: float | None = None, env: Mapping[str, str] | None = None,
                   workdir: str | None = None, login: bool = True) -> ExecResult:
        """Run ``cmd`` with ``bash -lc`` (``-c`` without ``login``) in its own session, ``cwd``
        the mapped workdir.

        The ``PATH`` passed in (the host's by default) is put in front of what the login
        profile sets. On timeout the process group is SIGKILLed and ``timed_out`` is set.
        """
        self._check_live()
        if timeout is not None and timeout <= 0:
            raise ConfigError(f"timeout must be positive, got {timeout}")
        environ = self._environment(env)
        cwd = self.host_path(workdir or self.workdir)
        cwd.mkdir(parents=True, exist_ok=True)
        environ["PWD"] = str(cwd)
        script = self.rewrite(cmd)
        if environ.get("PATH"):
            script = f"export PATH={shlex.quote(environ['PATH'])}:\"$PATH\"; {script}"
        start = time.monotonic()
        try:
            proc = await asyncio.create_subprocess_exec(
                "bash", "-lc" if login else "-c", script, cwd=str(cwd), env=environ, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True)
        except OSError as e:
            raise RuntimeError_(f"cannot run bash: {e}") from e
        self._pgids.add(proc.pid)
        readers = [asyncio.ensure_future(_read_capped(s)) for s in (proc.stdout, proc.stderr)]
        tasks = [asyncio.ensure_future(proc.wait()), *readers]
        try:
            # Wait for the process *and* its output: a background child holding the pipe keeps
            # the command running, as in a container.
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            timed_out = bool(pending)
            if pending:
                _killpg(proc.pid)
                _, pending = await asyncio.wait(pending, timeout=5)
            if pending:  # something left the process group and holds the pipes: stop reading
                for t in pending:
                    t.cancel()
                with contextlib.suppress(Exception):
                    proc._transport.close()  # type: ignore[attr-defined]
        except asyncio.CancelledError:
            _killpg(proc.pid)
            for t in tasks:
                t.cancel()
            raise
        finally:
            self._pgids.discard(proc.pid)
        outs = [r.result() if r.done() and not r.cancelled() else b"" for r in readers]
        code = proc.returncode if proc.returncode is not None else -1
        if code < 0:
            code = 128 - code  # killed by signal N -> 128 + N, as a shell reports it
        return ExecResult(exit_code=code, stdout=outs[0].decode("utf-8", "replace"),
                          stderr=outs[1].decode("utf-8", "replace"), timed_out=timed_out,
                          duration_s=time.monotonic() - start)

    async def read_file(self, path: str) -> bytes:
        self._check_live()
        target = self.host_path(path)
        try:
            return await asyncio.to_thread(target.read_bytes)
        except FileNotFoundError as e:
            raise RuntimeFileNotFound(f"no such file {path} (host {target})") from e
        except OSError as e:
            raise RuntimeError_(f"cannot read {path}: {e}") from e

    async def write_file(self, path: str, data: bytes | str, mode: int = 0o644) -> None:
        self._check_live()
        target = self.host_path(path)
        payload = data.encode() if isinstance(data, str) else data

        def write() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(payload)
            target.chmod(mode)

        await asyncio.to_thread(write)

    async def upload_dir(self, src: str, dst: str) -> None:
        self._check_live()
        if not Path(src).is_dir():
            raise RuntimeError_(f"upload_dir: {src} is not a directory on the host")
        await asyncio.to_thread(shutil.copytree, src, self.host_path(dst), symlinks=True, dirs_exist_ok=True)

    async def snapshot(self, tag: str) -> str:
        """Copy the fake root; returns ``dir:<path>``, a ``RuntimeSpec.image`` that starts from it.
        ``tag`` names the copy (``<tempdir>/agentgym-snapshot-<tag>``)."""
        self._check_live()
        safe = re.sub(r"[^\w.-]+", "_", tag)
        dest = Path(tempfile.gettempdir()) / f"agentgym-snapshot-{safe}"
        if dest.exists():
            await asyncio.to_thread(shutil.rmtree, dest)
        await asyncio.to_thread(shutil.copytree, self.root, dest, symlinks=True)
        return f"{SNAPSHOT_SCHEME}{dest}"

    async def stop(self) -> None:
        """Kill running commands and delete the temp directory. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        for pgid in list(self._pgids):
            _killpg(pgid)
        await asyncio.to_thread(shutil.rmtree, self._base, True)


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


class LocalBackend(RuntimeBackend):
    """Starts :class:`LocalRuntime` sandboxes in ``tmp_root`` (the system temp dir by default).
    **No isolation**: see :mod:`agentgym.runtime.local`."""

    name = "local"
    uses_images = False

    def __init__(self, tmp_root: str | None = None, mapped_roots: tuple[str, ...] = MAPPED_ROOTS) -> None:
        self.tmp_root = tmp_root
        self.mapped_roots = mapped_roots

    async def start(self, spec: RuntimeSpec) -> LocalRuntime:
        """Create a fresh fake root (a copy of a ``dir:`` snapshot when ``spec.image`` names one;
        any other image is ignored: there is nothing to run it with)."""
        if not PurePosixPath(spec.workdir).is_absolute():
            raise ConfigError(f"workdir must be absolute, got {spec.workdir!r}")
        base = Path(tempfile.mkdtemp(prefix=PREFIX, dir=self.tmp_root))
        owner = {"pid": os.getpid(), "start": proc_start_time(os.getpid()), "id": uuid.uuid4().hex}
        (base / "owner.json").write_text(json.dumps(owner))
        if spec.image and spec.image.startswith(SNAPSHOT_SCHEME):
            src = spec.image[len(SNAPSHOT_SCHEME):]
            if not Path(src).is_dir():
                shutil.rmtree(base, ignore_errors=True)
                raise RuntimeError_(f"snapshot directory {src} does not exist")
            await asyncio.to_thread(shutil.copytree, src, base / "fs", symlinks=True)
        return LocalRuntime(base, spec, self.mapped_roots)

    async def cleanup(self) -> int:
        """Delete temp directories of local runtimes whose creating process is gone."""
        removed = 0
        for base in Path(self.tmp_root or tempfile.gettempdir()).glob(f"{PREFIX}*"):
            try:
                owner = json.loads((base / "owner.json").read_text())
            except (OSError, ValueError):
                continue
            if not pid_alive(int(owner.get("pid", 0)), str(owner.get("start", ""))):
                await asyncio.to_thread(shutil.rmtree, base, True)
                removed += 1
        return removed
