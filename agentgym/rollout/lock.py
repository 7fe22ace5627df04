"""One run per output directory: an exclusive lock on ``<out>/run.lock``.

Two runs appending to one journal would run the same (task, sample) twice and write duplicate
episodes, so a run takes an exclusive ``flock`` on ``<out>/run.lock`` before it reads or writes
anything there, and writes who holds it (pid, host, command, start time) into the file. A
second run finds the lock taken and refuses, naming the holder. The kernel drops the lock when
the holder exits, however it exits (``SIGKILL`` included), so no stale lock is ever left.

>>> import tempfile
>>> out = tempfile.mkdtemp()
>>> with RunLock(out):
...     try:
...         RunLock(out).acquire()
...     except RunDirLocked as e:
...         print("refused:", "is in use by pid" in str(e))
refused: True
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from agentgym.errors import AgentGymError, storage_error

__all__ = ["LOCK_FILE", "RunDirLocked", "RunLock"]

LOCK_FILE = "run.lock"


class RunDirLocked(AgentGymError, BlockingIOError):
    """Another process is running in this output directory (also a ``BlockingIOError``)."""

    boundary = "rollout"

    def __init__(self, message: str, holder: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.holder = holder or {}

    def __reduce__(self):  # picklable with the holder
        return (type(self), (str(self), self.holder))


class RunLock:
    """An exclusive lock on an output directory, held from :meth:`acquire` to :meth:`release`
    (or for a ``with`` block). Creates the directory; raises :class:`RunDirLocked` when another
    process holds it and :class:`~agentgym.errors.StorageError` when it cannot be written."""

    def __init__(self, out_dir: str | os.PathLike[str], what: str | None = None) -> None:
        self.out = Path(out_dir)
        self.path = self.out / LOCK_FILE
        self.what = what or " ".join(Path(a).name if i == 0 else a for i, a in enumerate(sys.argv))[:300]
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise storage_error(e, self.out, "use the output directory") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunDirLocked(f"{self.out} is in use by {describe_holder(holder)}; wait for that run to end "
                               "(or stop it), or pass another output directory", holder) from None
        except OSError as e:
            os.close(fd)
            raise storage_error(e, self.path, "lock") from None
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.what,
                  "started_at": time.time()}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        except OSError as e:  # locked, but the directory is full or read-only: say so now
            os.close(fd)
            raise storage_error(e, self.path) from None
        self._fd = fd
        return self

    def release(self) -> None:
        """Drop the lock (the file stays, holding the last holder's details). Idempotent."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        data = os.pread(fd, 4096, 0).decode("utf-8", "replace")
        holder = json.loads(data or "{}")
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}


def describe_holder(holder: dict[str, Any]) -> str:
    """``pid 123 on host (agentgym rollout ..., since 12:00:01)``, with what is known."""
    if not holder.get("pid"):
        return "another process"
    since = ""
    if isinstance(holder.get("started_at"), (int, float)):
        since = time.strftime("since %Y-%m-%d %H:%M:%S", time.localtime(holder["started_at"]))
    detail = ", ".join(x for x in (str(holder.get("command") or ""), since) if x)
    return f"pid {holder['pid']} on {holder.get('host', '?')}" + (f" ({detail})" if detail else "")
