"""Append-only JSON Lines files that survive a crash or a full disk mid-write.

A process killed while writing leaves half a line. Readers skip a line that does not parse;
writers that append later first end that torn line, so their own records stay whole. A write
that fails (a full disk, a quota, an I/O error) is undone: the file is cut back to where it
was, so the error never leaves half a record behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


def append_lines(path: str | os.PathLike[str], lines: Iterable[str], fsync: bool = False) -> None:
    """Append ``lines`` (without newlines) to ``path``, one per line, creating parents.

    All or nothing: the lines go out in one write, and when it fails (``OSError``: no space
    left, read-only file system...) the file is truncated back to its size before the call and
    the error is raised."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    payload = "".join(line + "\n" for line in lines).encode("utf-8")
    fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size:
            with open(p, "rb") as f:
                f.seek(size - 1)
                if f.read(1) != b"\n":  # a torn line from a crash: end it before ours
                    payload = b"\n" + payload
        try:
            view = memoryview(payload)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if fsync:
                os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)  # never leave half a record (truncating needs no space)
            raise
    finally:
        os.close(fd)


def read_records(path: str | os.PathLike[str], parse: Callable[[Any], T]) -> list[T]:
    """Parse every line of ``path`` with ``parse``; a line that does not parse (a torn write) is
    skipped with a warning. Errors other than malformed data (a wrong schema version) propagate."""
    p = Path(path)
    if not p.exists():
        return []
    out: list[T] = []
    with open(p, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append(parse(json.loads(line)))
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                log.warning("%s:%d: skipping an unreadable record (%s)", p, n, type(e).__name__)
    return out
