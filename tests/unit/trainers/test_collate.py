"""collate_groups: reconstructed trajectory groups -> one StepBatch (StepBatch.from_groups calls it)."""

from __future__ import annotations

import dataclasses

import torch

from agentgym.trainers.batch import StepBatch
from agentgym.trainers.collate import collate_groups
from agentgym.types import Segment, Step, StopReason, Trajectory, TrajectoryGroup

torch.set_num_threads(1)


def _traj(tid: str, turns: int, reward: float) -> Trajectory:
    # a 2-token prompt, then per turn 1 observation token and 2 action tokens
    n = 2 + 3 * turns
    action = [0] * n
    obs = [0] * n
    turn = [-1] * n
    steps = []
    for i in range(turns):
        lo = 2 + 3 * i
        obs[lo] = 1
        action[lo + 1: lo + 3] = [1, 1]
        turn[lo: lo + 3] = [i] * 3
        steps.append(Step(index=i, call_id=f"{tid}{i}", segment_index=0, obs_span=(lo, lo + 1),
                          action_span=(lo + 1, lo + 3), anchor=f"s{i}"))
    seg = Segment(input_ids=tuple(range(1, n + 1)), action_mask=tuple(action), obs_mask=tuple(obs),
                  logprobs=tuple(-0.25 * a for a in action), turn_index=tuple(turn), policy_version=(0,) * n)
    return Trajectory(id=tid, task_id="t", session_id=tid, segments=(seg,), steps=tuple(reversed(steps)),
                      reward=reward, stop_reason=StopReason.COMPLETED)


def test_from_groups_is_collate_groups() -> None:
    groups = [TrajectoryGroup("t", (_traj("a", 3, 1.0), _traj("b", 1, 0.0)), parents={"b": ("a", 1)}),
              TrajectoryGroup("u", (_traj("c", 2, 0.5),))]
    direct = collate_groups(groups, pad_id=9)
    via = StepBatch.from_groups(groups, pad_id=9)
    for f in dataclasses.fields(StepBatch):
        a, b = getattr(direct, f.name), getattr(via, f.name)
        assert (torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b), f.name


def test_every_segment_is_padded_to_the_longest_of_the_batch() -> None:
    batch = collate_groups([TrajectoryGroup("t", (_traj("a", 3, 1.0), _traj("b", 1, 0.0)))], pad_id=9)
    assert batch.input_ids.shape == (2, 11)
    assert batch.attention_mask.sum(-1).tolist() == [11, 5]
    assert batch.input_ids[1, 5:].eq(9).all()
    # steps are sorted by index whatever their order in the trajectory
    assert batch.step_index.tolist() == [0, 1, 2, 0]
    assert batch.token_row[0].tolist() == [-1, -1, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert batch.old_logprobs[1].tolist() == [0, 0, 0, -0.25, -0.25] + [0] * 6


def test_no_groups_gives_an_empty_batch() -> None:
    batch = collate_groups([])
    assert batch.num_rows == 0 and batch.input_ids.shape == (0, 0)
