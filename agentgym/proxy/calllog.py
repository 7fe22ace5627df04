"""The call journal: every served call, appended to disk as it completes.

One JSON Lines file per session under ``<root>/calls/``. Appends are line-buffered and
flushed per call, so a crash loses at most the call in flight, and a resumed run reads back
everything that was served.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from agentgym.jsonl import append_lines, read_records
from agentgym.types import Call


class CallLog:
    """Append-only journal of :class:`~agentgym.types.Call` records, keyed by session."""

    def __init__(self, root: str | os.PathLike[str], fsync: bool = False) -> None:
        self.root = Path(root)
        self.dir = self.root / "calls"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self._lock = threading.Lock()

    def path(self, session_id: str) -> Path:
        return self.dir / f"{session_id}.jsonl"

    def append(self, call: Call) -> None:
        line = json.dumps(call.to_json(), ensure_ascii=False, separators=(",", ":"))
        with self._lock:
            append_lines(self.path(call.session_id), [line], fsync=self.fsync)

    def read(self, session_id: str) -> list[Call]:
        """All calls of a session in arrival order; a torn last line (crash mid-write) is skipped."""
        return sorted(read_records(self.path(session_id), Call.from_json), key=lambda c: c.index)

    def sessions(self) -> list[str]:
        return sorted(p.stem for p in self.dir.glob("*.jsonl"))
