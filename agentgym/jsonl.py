"""Append-only JSON Lines files that survive a crash mid-write.

A process killed while writing leaves half a line. Readers skip a line that does not parse;
writers that append later first end that torn line, so their own records stay whole.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


def append_lines(path: str | os.PathLike[str], lines: Iterable[str], fsync: bool = False) -> None:
    """Append ``lines`` (without newlines) to ``path``, one per line, creating parents."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    torn = False
    if p.exists() and p.stat().st_size:
        with open(p, "rb") as f:
            f.seek(-1, os.SEEK_END)
            torn = f.read(1) != b"\n"
    with open(p, "a", encoding="utf-8") as f:
        if torn:
            f.write("\n")
        for line in lines:
            f.write(line + "\n")
        f.flush()
        if fsync:
            os.fsync(f.fileno())


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
