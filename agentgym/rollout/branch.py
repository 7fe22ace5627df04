"""Branches: an episode that replays another episode's first calls, then samples (tree rollouts).

A :class:`Branch` of trajectory E at turn ``t`` is run like any episode (same harness, same task,
a fresh runtime) in a proxy session that answers its first ``t`` requests with E's recorded calls
(:mod:`agentgym.proxy.replay`). The branch's trajectory records where it came from in
``metadata["branch"]`` (:data:`BRANCH_KEY`)::

    {"parent": E's id, "turn": t, "shared_turns": k, "replayed": k,
     "divergence": null | "prompt_differs" | "agent_differs" | "ended_early", "divergence_call": i}

``shared_turns`` is how many leading turns it shares with E, token for token: ``t`` when the
harness asked the same ``t`` requests, fewer when it diverged (the divergence names the first
call that differed, which was sampled). :func:`agentgym.types.group_by_task` turns these into
``TrajectoryGroup.parents``, so a dataset of branches reads back as trees.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentgym.errors import ConfigError
from agentgym.proxy.calllog import read_calls
from agentgym.types import BRANCH_KEY, Call, Divergence, Trajectory

__all__ = ["BRANCH_KEY", "Branch", "branch_from", "branch_summary"]


@dataclass(frozen=True)
class Branch:
    """Replay ``calls`` (the first ``turn`` calls of trajectory ``parent_id``), then sample. A
    branch at turn 0 replays nothing: it is a fresh episode of ``task_id`` (a continuation from
    the task's root)."""

    parent_id: str
    task_id: str
    turn: int
    calls: tuple[Call, ...]


def branch_from(trajectory: Trajectory, turn: int, calls_dir: str | os.PathLike[str]) -> Branch:
    """A branch of a main-agent ``trajectory`` at ``turn`` (``1 <= turn <= num_steps``), its calls
    read from the run's call journal (``<run>/calls``): the calls of its first ``turn`` steps."""
    steps = sorted(trajectory.steps, key=lambda s: s.index)
    if not 1 <= turn <= len(steps):
        raise ConfigError(f"cannot branch {trajectory.id} at turn {turn}: it has {len(steps)} turns (use 1..{len(steps)})")
    path = Path(calls_dir) / f"{trajectory.session_id}.jsonl"
    by_id = {c.call_id: c for c in read_calls(path)}
    missing = [s.call_id for s in steps[:turn] if s.call_id not in by_id]
    if missing:
        raise ConfigError(f"cannot branch {trajectory.id}: calls {missing[:3]} are not in {path}")
    return Branch(parent_id=trajectory.id, task_id=trajectory.task_id, turn=turn,
                  calls=tuple(by_id[s.call_id] for s in steps[:turn]))


def branch_summary(branch: Branch, calls: Sequence[Call]) -> dict[str, Any]:
    """What a branch episode's calls say about its replay (``metadata["branch"]``)."""
    calls = sorted(calls, key=lambda c: c.index)
    replayed = sum(1 for c in calls if c.replayed_from is not None)
    diverged = next((c for c in calls if c.divergence is not None), None)
    divergence = diverged.divergence if diverged is not None else None
    if divergence is None and replayed < branch.turn:
        divergence = Divergence.ENDED_EARLY
    return {"parent": branch.parent_id, "turn": branch.turn, "shared_turns": replayed, "replayed": replayed,
            "divergence": divergence.value if divergence is not None else None,
            "divergence_call": diverged.index if diverged is not None else None}
