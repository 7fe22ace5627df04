"""with_anchors: recompute Step.anchor with another anchor function."""

from __future__ import annotations

from agentgym.trainers.anchors import with_anchors
from agentgym.types import Step, StopReason, Trajectory, TrajectoryGroup


def test_with_anchors_recomputes_steps() -> None:
    steps = (Step(index=0, call_id="c0", segment_index=0, action_span=(0, 0), observation="a  b", anchor="old"),
             Step(index=1, call_id="c1", segment_index=0, action_span=(0, 0), observation="x\n0.1s"))
    traj = Trajectory(id="t", task_id="k", session_id="s", segments=(), steps=steps, reward=0.0,
                      stop_reason=StopReason.COMPLETED)
    assert [s.anchor for s in with_anchors(traj).steps] == ["a b", "x <dur>"]
    group = with_anchors(TrajectoryGroup("k", (traj,)), lambda o: o[:1])
    assert [s.anchor for s in group.trajectories[0].steps] == ["a", "x"]
    assert traj.steps[0].anchor == "old"  # frozen input untouched
