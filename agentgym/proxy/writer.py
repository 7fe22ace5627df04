"""The journal's writer: appends lines to session files and acknowledges each once written.

Without fsync a write is a copy into the kernel's page cache (microseconds; it survives a crash
of this process, not of the machine) and is done where it is asked for. With fsync, one thread
writes what is queued a batch at a time, one ``write`` per file, fsyncs each batch once (group
commit) and only then acknowledges its lines. Files are opened append-only, without following
symlinks; a file whose last line is torn (a crash mid-write) gets a newline first.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import queue
import threading
from pathlib import Path
from typing import Any

__all__ = ["Writer"]


class Writer:
    """Appends lines and acknowledges each once it is written. Without fsync a write is a copy
    into the kernel's page cache (microseconds, survives a crash of this process): done where it
    is asked for. With fsync, one thread writes what is queued a batch at a time and fsyncs each
    batch once (group commit) before acknowledging its lines."""

    def __init__(self, fsync: bool) -> None:
        self.fsync = fsync
        self._q: queue.Queue[Any] = queue.Queue()
        self._files: dict[Path, Any] = {}
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def write_now(self, path: Path, line: bytes) -> None:
        """Write in place (no fsync): raises if the write fails."""
        with self._lock:
            f = self._files.get(path) or self._open(path)
            try:
                f.write(line)
                f.flush()
            except Exception:
                self._drop(path)
                raise

    def submit(self, path: Path, line: bytes) -> concurrent.futures.Future[None]:
        fut: concurrent.futures.Future[None] = concurrent.futures.Future()
        if not self.fsync:
            try:
                self.write_now(path, line)
                fut.set_result(None)
            except Exception as e:
                fut.set_exception(e)
            return fut
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="agentgym-journal", daemon=True)
                    self._thread.start()
        self._q.put((path, line, fut))
        return fut

    def sync(self) -> None:
        """Wait until everything queued so far is written."""
        if self._thread is not None:
            fut: concurrent.futures.Future[None] = concurrent.futures.Future()
            self._q.put(("sync", None, fut))
            fut.result(timeout=60)

    def close_file(self, path: Path) -> None:
        if not self.fsync:
            with self._lock:
                self._drop(path)
        elif self._thread is not None:
            self._q.put(("close", path, None))

    def stop(self) -> None:
        if not self.fsync:
            with self._lock:
                for path in list(self._files):
                    self._drop(path)
        if self._thread is not None:
            self._q.put(None)
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while True:
            batch = [self._q.get()]
            while True:
                try:
                    batch.append(self._q.get_nowait())
                except queue.Empty:
                    break
            if self._write(batch):
                break

    def _write(self, batch: list[Any]) -> bool:
        stop = False
        by_path: dict[Path, list[tuple[bytes, concurrent.futures.Future[None]]]] = {}
        closes: list[Path] = []
        syncs: list[concurrent.futures.Future[None]] = []
        for item in batch:
            if item is None:
                stop = True
            elif item[0] == "close":
                closes.append(item[1])
            elif item[0] == "sync":
                syncs.append(item[2])
            else:
                by_path.setdefault(item[0], []).append((item[1], item[2]))
        for path, items in by_path.items():
            try:
                f = self._files.get(path) or self._open(path)
                f.write(b"".join(line for line, _ in items))
                f.flush()
                if self.fsync:
                    os.fsync(f.fileno())
            except Exception as e:
                self._drop(path)
                for _, fut in items:
                    fut.set_exception(e)
                continue
            for _, fut in items:
                fut.set_result(None)
        for path in closes:
            self._drop(path)
        if stop:
            for path in list(self._files):
                self._drop(path)
        for fut in syncs:
            fut.set_result(None)
        return stop

    def _open(self, path: Path) -> Any:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        f = os.fdopen(fd, "ab")
        size = os.fstat(fd).st_size
        if size:
            with open(path, "rb") as r:
                r.seek(size - 1)
                if r.read(1) != b"\n":
                    f.write(b"\n")  # a torn line from a crash: start ours on a fresh one
        if len(self._files) >= 512:
            self._drop(next(iter(self._files)))
        self._files[path] = f
        return f

    def _drop(self, path: Path) -> None:
        f = self._files.pop(path, None)
        if f is not None:
            with contextlib.suppress(OSError):
                f.close()
