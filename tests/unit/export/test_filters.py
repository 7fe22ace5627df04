"""TrajectoryFilter: each field narrows, the card records what narrowed, bad names are refused."""

from __future__ import annotations

from typing import Any

import pytest

from agentgym.errors import ConfigError
from agentgym.filters import TrajectoryFilter, apply_filter
from agentgym.types import BreakReason, Segment, StopReason, Trajectory


def seg(n: int, *, version: int = 0, brk: BreakReason = BreakReason.START) -> Segment:
    return Segment(input_ids=tuple(range(n)), action_mask=(0,) * (n - 2) + (1, 1), obs_mask=(0,) * n,
                   logprobs=(0.0,) * n, turn_index=(0,) * n, policy_version=(version,) * n, break_reason=brk)


def traj(i: int, **kw: Any) -> Trajectory:
    base: dict[str, Any] = dict(id=f"t{i}", task_id="x", session_id=f"s{i}", segments=(seg(10),), steps=(),
                                reward=1.0, stop_reason=StopReason.COMPLETED, harness="agentgym/react-v0",
                                env="terminal/basic-v0")
    return Trajectory(**{**base, **kw})


POOL = [
    traj(0),
    traj(1, reward=0.0, stop_reason=StopReason.STEP_LIMIT),
    traj(2, stop_reason=StopReason.EVAL_ERROR, reward=0.0),
    traj(3, harness="mini-swe-agent/mini-v2"),
    traj(4, segments=(seg(500),)),
    traj(5, segments=(seg(10), seg(12, brk=BreakReason.HISTORY_EDITED))),
    traj(6, agent_id="helper", parent_trajectory_id="t0"),
    traj(7, segments=(seg(10, version=3),)),
]


@pytest.mark.parametrize(("flt", "kept"), [
    (TrajectoryFilter(), [0, 1, 2, 3, 4, 5, 6, 7]),
    (TrajectoryFilter(min_reward=0.5), [0, 3, 4, 5, 6, 7]),
    (TrajectoryFilter(max_reward=0.5), [1, 2]),
    (TrajectoryFilter(stop_reasons=("completed",)), [0, 3, 4, 5, 6, 7]),
    (TrajectoryFilter(scorable_only=True), [0, 1, 3, 4, 5, 6, 7]),
    (TrajectoryFilter(harnesses=("mini-swe-agent/mini-v2",)), [3]),
    (TrajectoryFilter(max_tokens=100), [0, 1, 2, 3, 5, 6, 7]),
    (TrajectoryFilter(min_tokens=100), [4]),
    (TrajectoryFilter(exclude_breaks=("history_edited",)), [0, 1, 2, 3, 4, 6, 7]),
    (TrajectoryFilter(lineage="main"), [0, 1, 2, 3, 4, 5, 7]),
    (TrajectoryFilter(lineage="sub"), [6]),
    (TrajectoryFilter(min_policy_version=1), [7]),
    (TrajectoryFilter(max_policy_version=2), [0, 1, 2, 3, 4, 5, 6]),
])
def test_each_field_narrows(flt: TrajectoryFilter, kept: list[int]) -> None:
    out, dropped = apply_filter(POOL, flt)
    assert [int(t.id[1:]) for t in out] == kept
    assert sum(dropped.values()) == len(POOL) - len(kept)


def test_drop_reasons_are_counted_by_kind_and_the_card_sees_only_what_narrows() -> None:
    flt = TrajectoryFilter(min_reward=0.5, lineage="main", exclude_breaks=("history_edited",))
    _, dropped = apply_filter(POOL, flt)
    assert dropped == {"reward": 2, "break_reason": 1, "lineage": 1}
    assert flt.describe() == {"min_reward": 0.5, "lineage": "main", "exclude_breaks": ["history_edited"]}
    assert TrajectoryFilter().describe() == {}


def test_unknown_names_are_refused_with_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown stop reason.*completed"):
        TrajectoryFilter(stop_reasons=("done",))
    with pytest.raises(ConfigError, match=r"unknown break reason.*history_edited"):
        TrajectoryFilter(exclude_breaks=("edited",))
    with pytest.raises(ConfigError, match="lineage must be one of"):
        TrajectoryFilter(lineage="children")
