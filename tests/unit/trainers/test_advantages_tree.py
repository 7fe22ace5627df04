from __future__ import annotations

import pytest
import torch

from agentgym.errors import ConfigError
from agentgym.trainers.advantages.synthetic import random_step_batch
from agentgym.trainers.advantages.tree import TreeConfig, tree_advantages, tree_advantages_reference
from agentgym.trainers.batch import StepBatch
from agentgym.types import Step, StopReason, Trajectory, TrajectoryGroup

torch.set_num_threads(1)

# group 0 (root 0): A = 1-2-3 (score 1); B branches after node 1 -> 4 (score 0);
# C branches after node 2 -> 5 (score 1); D starts fresh -> 6 (score 0).
# group 1 (root 10): E = 11-12 alone (score 0.5).
ROWS = dict(
    group_ids=[0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1],
    traj_ids=[0, 0, 0, 1, 1, 2, 2, 2, 3, 4, 4],
    step_rewards=[0] * 11,
    episode_rewards=[1, 1, 1, 0, 0, 1, 1, 1, 0, 0.5, 0.5],
    tree_node=[1, 2, 3, 1, 4, 1, 2, 5, 6, 11, 12],
    tree_parent=[0, 1, 2, 0, 1, 0, 1, 2, 0, 10, 11],
)


def test_hand_worked_tree() -> None:
    # leaf values (leave-one-out, group 0 total 2 over 4): A, C = 1 - 1/3 = 2/3; B, D = -2/3; E alone = 0.5
    # V(3)=V(5)=2/3, V(4)=V(6)=-2/3, V(2)=2/3, V(1)=(2/3-2/3+2/3)/3=2/9, V(root0)=0; V=0.5 on group 1's tree
    out = tree_advantages(StepBatch.from_arrays(**ROWS)).rows.tolist()
    expected = [4 / 9, 10 / 9, 2 / 3, 4 / 9, -14 / 9, 4 / 9, 10 / 9, 2 / 3, -4 / 3, 0.5, 0.5]
    assert out == pytest.approx(expected, abs=1e-6)


def test_scale_by_leaves() -> None:
    out = tree_advantages(StepBatch.from_arrays(**ROWS), TreeConfig(scale_by_leaves=True)).rows.tolist()
    assert out[0] == pytest.approx(4 / 9 / 3**0.5, abs=1e-6)  # node 1 has 3 leaves below
    assert out[1] == pytest.approx(10 / 9 / 2**0.5, abs=1e-6)
    assert out[2] == pytest.approx(2 / 3, abs=1e-6)


def test_leaf_at_an_interior_node() -> None:
    # F stops at node 1, which A continues through: V(1) averages A (1) and F (-1)
    b = StepBatch.from_arrays(group_ids=[0, 0, 0], traj_ids=[0, 0, 1], step_rewards=[0, 0, 0],
                              episode_rewards=[1, 1, 0], tree_node=[1, 2, 1], tree_parent=[0, 1, 0])
    assert tree_advantages(b).rows.tolist() == pytest.approx([0.0, 2.0, 0.0])


def test_without_tree_fields_each_trajectory_is_a_chain() -> None:
    b = StepBatch.from_arrays(group_ids=[0, 0, 0], traj_ids=[0, 0, 1], step_rewards=[0, 0, 0],
                              episode_rewards=[1, 1, 0])
    # leaf values +1 / -1; the first step of a chain doubles (V(root) = 0), later steps keep V
    assert tree_advantages(b).rows.tolist() == pytest.approx([2.0, 1.0, -2.0])
    assert tree_advantages_reference(b).rows.tolist() == pytest.approx([2.0, 1.0, -2.0])


def test_inconsistent_trees_are_rejected() -> None:
    two_parents = StepBatch.from_arrays(group_ids=[0, 0], traj_ids=[0, 1], step_rewards=[0, 0],
                                        tree_node=[1, 1], tree_parent=[0, 2])
    with pytest.raises(ConfigError, match="two different parents"):
        tree_advantages(two_parents)
    cycle = StepBatch.from_arrays(group_ids=[0, 0], traj_ids=[0, 0], step_rewards=[0, 0],
                                  tree_node=[1, 2], tree_parent=[2, 1])
    with pytest.raises(ConfigError, match="cycle"):
        tree_advantages(cycle)


def _traj(tid: str, reward: float, turns: range) -> Trajectory:
    steps = tuple(Step(index=i, call_id=f"{tid}{i}", segment_index=0, action_span=(0, 0)) for i in turns)
    return Trajectory(id=tid, task_id="t", session_id=tid, segments=(), steps=steps, reward=reward,
                      stop_reason=StopReason.COMPLETED)


def test_from_groups_tree_matches_hand_built_tree() -> None:
    # the same tree as ROWS group 0, built from TrajectoryGroup.parents (branched copies keep replayed turns)
    group = TrajectoryGroup("t", (_traj("A", 1, range(3)), _traj("B", 0, range(2)), _traj("C", 1, range(3)),
                                  _traj("D", 0, range(1))),
                            parents={"B": ("A", 1), "C": ("A", 2)})
    out = tree_advantages(StepBatch.from_groups([group])).rows.tolist()
    assert out == pytest.approx([4 / 9, 10 / 9, 2 / 3, 4 / 9, -14 / 9, 4 / 9, 10 / 9, 2 / 3, -4 / 3], abs=1e-6)


@pytest.mark.parametrize("seed", range(20))
def test_vectorised_matches_reference(seed: int) -> None:
    b = random_step_batch(seed, groups=4, trajectories_per_group=1 + seed % 9, mean_steps=1 + seed % 7,
                          tree=seed % 4 != 3, continuous_rewards=seed % 2 == 0)
    for cfg in (TreeConfig(), TreeConfig(scale_by_leaves=True)):
        torch.testing.assert_close(tree_advantages(b, cfg).rows, tree_advantages_reference(b, cfg).rows,
                                   atol=1e-6, rtol=0)
