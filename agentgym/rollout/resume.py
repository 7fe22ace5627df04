"""What a run directory says about earlier runs: what is done, what to retry, what was cut short.

Three files in ``<out>`` (all JSON Lines, appended, surviving crashes like the journal):

``episodes.jsonl``
    The journal: one trajectory per line as each episode ends (:mod:`agentgym.export`).
``sessions.jsonl``
    One line as each episode *starts*: its proxy session, task, sample and run id. A session
    here with no trajectory in the journal is a *half episode*: it was in flight when its run
    crashed or was stopped.
``interrupted.jsonl``
    One line per half episode, written by the run that stopped it (on a signal) or by the next
    run that finds it (after a crash): session, task, sample, how many calls it had recorded
    and where they are (``calls/<session>.jsonl``).

What a resumed run does with a half episode: it runs that (task, sample) again **from the
start**, in a new session. The half episode's recorded calls are kept, untouched, in
``calls/<session>.jsonl`` and listed in ``interrupted.jsonl``; they are not trained on and not
exported (a trajectory needs the episode's end: its reward). Fast-forwarding the new attempt
through those calls needs a replay mode of the proxy, which does not exist yet.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agentgym.jsonl import append_lines, read_records
from agentgym.proxy.calllog import read_journal
from agentgym.types import StopReason, Trajectory

__all__ = ["INTERRUPTED_FILE", "SESSIONS_FILE", "HalfEpisode", "ResumeState", "read_resume_state"]

SESSIONS_FILE = "sessions.jsonl"
INTERRUPTED_FILE = "interrupted.jsonl"


@dataclass(frozen=True)
class HalfEpisode:
    """An episode that started and never ended: its run crashed or was stopped."""

    session_id: str
    task_id: str
    sample_index: int
    run_id: str
    calls: int
    """Calls it had recorded (kept in :attr:`calls_path`)."""
    calls_path: str
    """Its call journal, relative to the run directory."""
    reason: str
    """``crash`` (found by a later run) or the signal that stopped its run (``SIGTERM``...)."""
    found_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ResumeState:
    """The run directory before a run starts."""

    done: frozenset[tuple[str, int]]
    """(task, sample) pairs with a finished attempt the run keeps (skipped)."""
    retry: frozenset[tuple[str, int]]
    """(task, sample) pairs whose last attempt failed outside the agent (run again)."""
    half: tuple[HalfEpisode, ...]
    """Half episodes no earlier run has listed yet (a crash's): listed now in ``interrupted.jsonl``."""
    interrupted_pairs: frozenset[tuple[str, int]]
    """(task, sample) pairs with a half episode (any run's) and no finished attempt: these are
    *resumed* (run again from the start)."""
    kept: dict[str, int] = field(default_factory=dict)
    """Task -> episodes in the journal that count toward its group: ended, not ``cancelled``,
    not failed outside the agent (an over-provisioned run skips a task that has enough)."""


def count_calls(path: Path) -> int:
    """The calls a session journal holds (the proxy writes several records per call)."""
    return len(read_journal(path))


def read_resume_state(out: Path, journal: Sequence[Trajectory]) -> ResumeState:
    """Read ``out``'s manifests against its journal (its latest attempts)."""
    mains = [t for t in journal if t.agent_id == "main"]
    done = frozenset((t.task_id, t.sample_index) for t in mains if not t.stop_reason.outside_the_agent)
    retry = frozenset((t.task_id, t.sample_index) for t in mains if t.stop_reason.outside_the_agent)
    ended = {t.session_id for t in journal}
    listed = {r.get("session_id") for r in read_records(out / INTERRUPTED_FILE, dict)}
    half: list[HalfEpisode] = []
    pairs: set[tuple[str, int]] = set()
    for r in read_records(out / SESSIONS_FILE, dict):
        sid = r.get("session_id")
        if not isinstance(sid, str) or sid in ended:
            continue
        pair = (str(r.get("task_id")), int(r.get("sample_index", 0)))
        if pair not in done:
            pairs.add(pair)
        if sid not in listed:
            calls = f"calls/{sid}.jsonl"
            half.append(HalfEpisode(session_id=sid, task_id=pair[0], sample_index=pair[1],
                                    run_id=str(r.get("run_id", "")), calls=count_calls(out / calls),
                                    calls_path=calls, reason="crash", found_at=time.time()))
            listed.add(sid)
    kept: dict[str, int] = {}
    for t in mains:
        if not t.stop_reason.outside_the_agent and t.stop_reason != StopReason.CANCELLED:
            kept[t.task_id] = kept.get(t.task_id, 0) + 1
    return ResumeState(done=done, retry=retry - done, half=tuple(half), interrupted_pairs=frozenset(pairs),
                       kept=kept)


def record_started(out: Path, session_id: str, task_id: str, sample_index: int, run_id: str) -> None:
    """Append the episode's start to ``sessions.jsonl`` (raises ``OSError``)."""
    append_lines(out / SESSIONS_FILE, [json.dumps({"session_id": session_id, "task_id": task_id,
                                                   "sample_index": sample_index, "run_id": run_id,
                                                   "started_at": time.time()})])


def record_interrupted(out: Path, halves: Iterable[HalfEpisode]) -> None:
    """Append half episodes to ``interrupted.jsonl`` (raises ``OSError``)."""
    lines = [json.dumps(h.to_json()) for h in halves]
    if lines:
        append_lines(out / INTERRUPTED_FILE, lines)
