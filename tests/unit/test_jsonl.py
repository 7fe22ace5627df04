"""JSON Lines appends are all or nothing: a crash leaves at most a torn line that readers skip
and writers end, and a failed write (a full disk) leaves nothing at all."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest

from agentgym import jsonl


def test_a_write_that_fails_halfway_is_undone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "j.jsonl"
    jsonl.append_lines(path, [json.dumps({"n": 1})])
    before = path.read_bytes()
    real_write = os.write

    def half_then_full(fd: int, data: Any) -> int:
        if len(data) > 10:  # the disk takes ten bytes, then is full
            real_write(fd, bytes(data[:10]))
            return 10
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(jsonl.os, "write", half_then_full)
    with pytest.raises(OSError, match="No space left"):
        jsonl.append_lines(path, [json.dumps({"n": 2, "pad": "x" * 100}), json.dumps({"n": 3})])
    monkeypatch.undo()
    assert path.read_bytes() == before
    jsonl.append_lines(path, [json.dumps({"n": 4})])
    assert jsonl.read_records(path, lambda r: r["n"]) == [1, 4]


def test_a_torn_line_from_a_crash_is_ended_before_the_next_record(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_text('{"n": 1}\n{"n": 2, "tor')
    jsonl.append_lines(path, ['{"n": 3}'])
    assert jsonl.read_records(path, lambda r: r["n"]) == [1, 3]
