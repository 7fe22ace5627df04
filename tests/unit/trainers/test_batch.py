from __future__ import annotations

import pytest
import torch

from agentgym.errors import ConfigError
from agentgym.trainers.batch import StepBatch
from agentgym.types import Segment, Step, StopReason, Trajectory, TrajectoryGroup

torch.set_num_threads(1)


def _segment(n: int, action: list[tuple[int, int]], obs: list[tuple[int, int]]) -> Segment:
    am = [0] * n
    om = [0] * n
    turn = [-1] * n  # like the reconstructor: -1 on the initial prompt, the step index after it
    for step, (lo, hi) in enumerate(action):
        am[lo:hi] = [1] * (hi - lo)
        turn[hi - 4:hi] = [step] * 4
    for lo, hi in obs:
        om[lo:hi] = [1] * (hi - lo)
    return Segment(
        input_ids=tuple(range(100, 100 + n)), action_mask=tuple(am), obs_mask=tuple(om),
        logprobs=tuple(-0.5 if a else 0.0 for a in am), turn_index=tuple(turn), policy_version=tuple([0] * n),
    )


def _traj(tid: str, reward: float, anchors: list[str], agent: str = "main") -> Trajectory:
    # layout per turn: 2 obs tokens then 2 action tokens, after a 3-token initial prompt
    n = 3 + 4 * len(anchors)
    steps = []
    for i, a in enumerate(anchors):
        obs_lo = 3 + 4 * i
        # the first step's obs_span starts at 0 (initial prompt included), as the reconstructor writes it
        steps.append(Step(index=i, call_id=f"{tid}-{i}", segment_index=0, action_span=(obs_lo + 2, obs_lo + 4),
                          obs_span=(0 if i == 0 else obs_lo, obs_lo + 2), anchor=a, reward=0.5 * i, valid=i != 1))
    seg = _segment(n, [(s.action_span[0], s.action_span[1]) for s in steps],
                   [(3 + 4 * s.index, 5 + 4 * s.index) for s in steps])
    return Trajectory(id=tid, task_id="t", session_id=tid, segments=(seg,), steps=tuple(steps), reward=reward,
                      stop_reason=StopReason.COMPLETED, agent_id=agent)


def test_from_groups_rows_tokens_and_tree() -> None:
    a = _traj("a", 1.0, ["x", "y", "z"])
    b = _traj("b", 0.0, ["x", "y", "w"])
    c = _traj("c", 2.0, ["q"], agent="sub:0")
    groups = [TrajectoryGroup("t", (a, b), parents={"b": ("a", 2)}), TrajectoryGroup("u", (c,))]
    batch = StepBatch.from_groups(groups, pad_id=-7)
    assert batch.group_ids.tolist() == [0, 0, 0, 0, 0, 0, 1]
    assert batch.traj_ids.tolist() == [0, 0, 0, 1, 1, 1, 2]
    assert batch.step_index.tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert batch.anchors == ["x", "y", "z", "x", "y", "w", "q"]
    assert batch.episode_rewards.tolist() == [1, 1, 1, 0, 0, 0, 2]
    assert batch.step_rewards.tolist() == [0, 0.5, 1.0, 0, 0.5, 1.0, 0]
    assert batch.full_step_rewards().tolist() == [0, 0.5, 2.0, 0, 0.5, 1.0, 2.0]
    assert batch.valid.tolist() == [True, False, True, True, False, True, True]
    assert batch.agent_ids == ["main"] * 6 + ["sub:0"]
    assert batch.agent_index.tolist() == [0] * 6 + [1]
    assert batch.anchor_index.tolist() == [0, 1, 2, 0, 1, 3, 4]
    # b branched from a at turn 2: turns 0, 1 share a's nodes; turn 2 is new
    assert batch.tree_node is not None and batch.tree_parent is not None
    node, parent = batch.tree_node.tolist(), batch.tree_parent.tolist()
    assert node[3:5] == node[0:2] and node[5] != node[2]
    assert parent[0] == parent[3] and parent[0] not in node  # the group's root
    assert parent[1:3] == node[0:2] and parent[5] == node[1]
    assert parent[6] != parent[0]  # other group, other root
    # tokens: 3 sequences, padded to the longest (15 tokens) with pad_id
    assert batch.input_ids.shape == (3, 15)
    assert batch.input_ids[2, 7:].eq(-7).all() and batch.attention_mask[2].tolist() == [1] * 7 + [0] * 8
    assert batch.token_row[0].tolist() == [-1, -1, -1, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    assert batch.token_row[1].tolist() == [-1, -1, -1, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5]
    assert batch.token_row[2].tolist() == [-1, -1, -1, 6, 6, 6, 6] + [-1] * 8
    assert batch.old_logprobs[0].tolist() == [0, 0, 0] + [0, 0, -0.5, -0.5] * 3
    assert batch.seq_traj is not None and batch.seq_traj.tolist() == [0, 1, 2]
    assert torch.equal(batch.observation_body_mask, batch.obs_mask)
    adv = batch.row_to_tokens(torch.arange(7, dtype=torch.float32) + 1)
    assert adv[0].tolist() == [0, 0, 0, 0, 0, 1, 1, 0, 0, 2, 2, 0, 0, 3, 3]
    assert adv[2].tolist() == [0, 0, 0, 0, 0, 7, 7] + [0] * 8


def test_from_arrays_densifies_and_defaults() -> None:
    b = StepBatch.from_arrays(group_ids=[7, 7, 3, 3, 7], traj_ids=[10, 10, 4, 5, 6], step_rewards=[1, 2, 3, 4, 5])
    assert b.group_ids.tolist() == [0, 0, 1, 1, 0]
    assert b.traj_ids.tolist() == [0, 0, 1, 2, 3]
    assert b.step_index.tolist() == [0, 1, 0, 0, 0]
    assert b.episode_rewards.tolist() == [0] * 5
    assert len(set(b.anchors)) == 5 and b.valid.all()
    assert not b.has_tokens and b.row_to_tokens(torch.zeros(5)).shape == (0, 0)
    assert b.num_rows == 5 and b.num_trajectories == 4 and b.num_groups == 2


def test_action_row_mask_marks_rows_that_own_an_action_token() -> None:
    b = StepBatch.from_arrays(group_ids=[0, 0, 0], traj_ids=[0, 0, 1], step_rewards=[0, 0, 0],
                              input_ids=[[1, 1, 1, 1], [1, 1, 1, 1]],
                              token_row=[[-1, 0, 1, 1], [2, 2, -1, -1]],
                              action_mask=[[1, 1, 0, 0], [0, 1, 0, 0]])
    # row 1 has tokens but no action token; the action token at position 0 belongs to no row
    assert b.action_row_mask().tolist() == [True, False, True]
    no_tokens = StepBatch.from_arrays(group_ids=[0, 0], traj_ids=[0, 1], step_rewards=[0, 0])
    assert no_tokens.action_row_mask().tolist() == [True, True]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"group_ids": [0, 0, 0], "traj_ids": [0, 1, 0], "step_rewards": [0, 0, 0]}, "contiguous"),
        ({"group_ids": [0, 1], "traj_ids": [0, 0], "step_rewards": [0, 0]}, "same group_ids"),
        ({"group_ids": [0, 0], "traj_ids": [0, 0], "step_rewards": [0, 0], "step_index": [1, 0]}, "time order"),
        ({"group_ids": [0, 0], "traj_ids": [0, 0], "step_rewards": [0, 0], "episode_rewards": [1, 0]}, "constant"),
        ({"group_ids": [0, 0], "traj_ids": [0, 0], "step_rewards": [0]}, "shape"),
    ],
)
def test_from_arrays_rejects_bad_batches(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        StepBatch.from_arrays(**kwargs)  # type: ignore[arg-type]


def test_from_groups_empty_obs_span_claims_only_the_action() -> None:
    seg = Segment(input_ids=(1, 2, 3, 4), action_mask=(0, 0, 1, 1), obs_mask=(0, 1, 0, 0),
                  logprobs=(0, 0, -1, -1), turn_index=(0, 0, 0, 0), policy_version=(0, 0, 0, 0))
    step = Step(index=0, call_id="c", segment_index=0, action_span=(2, 4))  # obs_span left at (0, 0)
    traj = Trajectory(id="a", task_id="t", session_id="s", segments=(seg,), steps=(step,), reward=1.0,
                      stop_reason=StopReason.COMPLETED)
    batch = StepBatch.from_groups([TrajectoryGroup("t", (traj,))])
    assert batch.token_row.tolist() == [[-1, -1, 0, 0]]


def test_from_groups_on_reconstructed_calls() -> None:
    from agentgym.reconstruct import reconstruct
    from agentgym.types import Call

    c0 = Call(call_id="c0", session_id="s", index=0, agent_id="main", parent_call_id=None, break_reason=None,
              request={"messages": [{"role": "user", "content": "task"}]}, prompt_ids=(1, 2, 3),
              completion_ids=(4, 5), completion_logprobs=(-0.1, -0.2))
    c1 = Call(call_id="c1", session_id="s", index=1, agent_id="main", parent_call_id="c0", break_reason=None,
              request={"messages": [{"role": "user", "content": "task"}, {"role": "assistant", "content": "x"},
                                    {"role": "tool", "content": "out  0.5s"}]},
              prompt_ids=(1, 2, 3, 4, 5, 6, 7), completion_ids=(8, 9), completion_logprobs=(-0.3, -0.4),
              obs_spans=((5, 7),), new_from=5)
    trajs = reconstruct([c0, c1], task_id="t", trajectory_id="tr", reward=1.0)
    batch = StepBatch.from_groups([TrajectoryGroup("t", tuple(trajs))])
    assert batch.token_row.tolist() == [[-1, -1, -1, 0, 0, 1, 1, 1, 1]]  # initial prompt belongs to no step
    assert batch.action_mask.tolist() == [[0, 0, 0, 1, 1, 0, 0, 1, 1]]
    assert batch.obs_mask.tolist() == [[0, 0, 0, 0, 0, 1, 1, 0, 0]]
    assert batch.anchors == ["task", "out <dur>"]
    assert batch.full_step_rewards().tolist() == [0.0, 1.0]
