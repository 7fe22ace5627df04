"""Anchor states for black-box harnesses, after the fact.

GiGPO and HGPO group steps by *anchor state*: the current observation, without history. The
reconstructor fills ``Step.anchor`` with the environment's anchor function applied to
``Step.observation`` (the rule lives in :mod:`agentgym.observation`). :func:`with_anchors`
recomputes them with another function, for an experiment or an environment that knows better.

>>> from agentgym.types import Step, StopReason, Trajectory
>>> t = Trajectory(id="t", task_id="x", session_id="s", segments=(), reward=0.0,
...                stop_reason=StopReason.COMPLETED, steps=(Step(index=0, call_id="c", segment_index=0,
...                action_span=(0, 0), observation="Done in 0.4s"),))
>>> with_anchors(t).steps[0].anchor, with_anchors(t, str.upper).steps[0].anchor
('Done in <dur>', 'DONE IN 0.4S')
"""

from __future__ import annotations

import dataclasses
from typing import overload

from agentgym.observation import AnchorFn, normalize_observation
from agentgym.types import Trajectory, TrajectoryGroup

__all__ = ["with_anchors"]


@overload
def with_anchors(item: Trajectory, anchor_fn: AnchorFn = ...) -> Trajectory: ...
@overload
def with_anchors(item: TrajectoryGroup, anchor_fn: AnchorFn = ...) -> TrajectoryGroup: ...
def with_anchors(item: Trajectory | TrajectoryGroup,
                 anchor_fn: AnchorFn = normalize_observation) -> Trajectory | TrajectoryGroup:
    """A copy of a trajectory (or of every trajectory of a group) with ``Step.anchor`` recomputed
    as ``anchor_fn(step.observation)``."""
    if isinstance(item, TrajectoryGroup):
        return dataclasses.replace(item, trajectories=tuple(with_anchors(t, anchor_fn) for t in item.trajectories))
    steps = tuple(dataclasses.replace(s, anchor=anchor_fn(s.observation)) for s in item.steps)
    return dataclasses.replace(item, steps=steps)
