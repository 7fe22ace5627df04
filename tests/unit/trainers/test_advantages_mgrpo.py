from __future__ import annotations

import random

import pytest
import torch

from agentgym.errors import ConfigError
from agentgym.trainers.advantages.mgrpo import (
    MGRPOConfig,
    align_group_subagents,
    align_subagents,
    main_agent_reward,
    mgrpo_advantages,
    mgrpo_advantages_reference,
    subagent_reward,
)
from agentgym.trainers.advantages.synthetic import random_step_batch
from agentgym.trainers.batch import StepBatch
from agentgym.types import StopReason, Trajectory, TrajectoryGroup

torch.set_num_threads(1)
EPS = 1e-6


def test_reference_rewards() -> None:
    assert [main_agent_reward(True, True), main_agent_reward(False, True), main_agent_reward(True, False)] == [
        1.0, 0.1, 0.0]
    assert subagent_reward(1.0, True) == 1.0
    assert subagent_reward(0.1, True) == 0.1
    assert subagent_reward(0.0, True) == 0.1
    assert subagent_reward(1.0, False) == 0.0


def test_subagent_reward_reads_main_reward_back_from_a_float32_batch() -> None:
    # 0.1 stored in a float32 StepBatch reads back as 0.10000000149011612 != 0.1: still "wrong but
    # well-formed", so the sub-agent gets 0.1, not the 1.0 of a correct main answer.
    b = StepBatch.from_arrays(group_ids=[0, 0, 0], traj_ids=[0, 1, 2], step_rewards=[0] * 3,
                              episode_rewards=[main_agent_reward(False, True), main_agent_reward(True, False),
                                               main_agent_reward(True, True)])
    main = b.episode_rewards.tolist()
    assert main[0] != 0.1  # the float32 round trip this test is about
    assert [subagent_reward(r, True) for r in main] == [0.1, 0.1, 1.0]
    assert [subagent_reward(r, False) for r in main] == [0.0, 0.0, 0.0]
    assert subagent_reward(0.3 - 0.2, True) == 0.1  # float arithmetic: 0.09999999999999998
    assert subagent_reward(0.5, True) == 1.0


def test_hand_worked_separate_agent_groups() -> None:
    # task 0: mains score 1, 0.1, 0.1 (2 rows for the first); subs score 1, 0 -> separate groups.
    # task 1: a single main (raw score / (1 + eps)) and two equal subs (0, no std guard -> 0/eps = 0).
    b = StepBatch.from_arrays(
        group_ids=[0, 0, 0, 0, 0, 0, 1, 1, 1],
        traj_ids=[0, 0, 1, 2, 3, 4, 5, 6, 7],
        step_rewards=[0] * 9,
        episode_rewards=[1, 1, 0.1, 0.1, 1, 0, 0.1, 1, 1],
        agent_ids=["main", "main", "main", "main", "sub:0", "sub:1", "main", "sub:0", "sub:0"],
    )
    out = mgrpo_advantages(b).rows.tolist()
    # mains: mean 0.4, unbiased std sqrt((0.36 + 0.09 + 0.09)/2) = 0.5196152
    hi, lo = 0.6 / (0.5196152 + EPS), -0.3 / (0.5196152 + EPS)
    # subs: mean 0.5, std 0.7071068
    s = 0.5 / (0.7071068 + EPS)
    assert out == pytest.approx([hi, hi, lo, lo, s, -s, 0.1 / (1 + EPS), 0.0, 0.0], abs=1e-6)
    # grouping by full id separates sub:0 from sub:1 (two singletons: raw scores)
    by_id = mgrpo_advantages(b, MGRPOConfig(agent_key="id")).rows.tolist()
    assert by_id[4:6] == pytest.approx([1 / (1 + EPS), 0.0], abs=1e-7)


def test_trajectory_mixing_agents_is_rejected() -> None:
    b = StepBatch.from_arrays(group_ids=[0, 0], traj_ids=[0, 0], step_rewards=[0, 0], agent_ids=["main", "sub:0"])
    with pytest.raises(ConfigError, match="mixes agents"):
        mgrpo_advantages(b)
    with pytest.raises(ConfigError, match="mixes agents"):
        mgrpo_advantages_reference(b)


@pytest.mark.parametrize("seed", range(16))
def test_vectorised_matches_reference(seed: int) -> None:
    b = random_step_batch(seed, groups=4, trajectories_per_group=1 + seed % 9,
                          agents=("main", "sub:0", "sub:1", "critic"), continuous_rewards=seed % 2 == 0)
    for cfg in (MGRPOConfig(), MGRPOConfig(agent_key="id"), MGRPOConfig(stats_over="steps")):
        torch.testing.assert_close(mgrpo_advantages(b, cfg).rows, mgrpo_advantages_reference(b, cfg).rows,
                                   atol=1e-6, rtol=0)


def test_alignment_sizes_and_provenance() -> None:
    subs = {f"m{i}": [f"m{i}-s{j}" for j in range(n)] for i, n in enumerate([0, 1, 2, 3, 4, 7])}
    out = align_subagents(subs, 3, rng=123)
    assert {k: len(v) for k, v in out.items()} == {"m0": 0, "m1": 3, "m2": 3, "m3": 3, "m4": 3, "m5": 3}
    assert out["m1"] == ["m1-s0"] * 3
    assert out["m2"][:2] == ["m2-s0", "m2-s1"] and out["m2"][2] in subs["m2"]  # all kept + one duplicate
    assert out["m3"] == subs["m3"]  # exactly D: untouched
    for k in ("m4", "m5"):  # dropped at random: a subset, original order, no repeats
        assert len(set(out[k])) == 3 and out[k] == [s for s in subs[k] if s in out[k]]
    assert align_subagents(subs, 3, rng=123) == out  # seeded
    assert align_subagents(subs, 3, rng=random.Random(123)) == out
    draws = {tuple(align_subagents(subs, 3, rng=seed)["m5"]) for seed in range(20)}
    assert len(draws) > 1  # actually random
    with pytest.raises(ConfigError):
        align_subagents(subs, 0, rng=0)


def _traj(tid: str, session: str, agent: str) -> Trajectory:
    return Trajectory(id=tid, task_id="t", session_id=session, segments=(), steps=(), reward=0.0,
                      stop_reason=StopReason.COMPLETED, agent_id=agent)


def test_align_group_subagents_by_session() -> None:
    group = TrajectoryGroup("t", (
        _traj("a", "s1", "main"), _traj("a1", "s1", "sub:0"),
        _traj("b", "s2", "main"), _traj("b1", "s2", "sub:0"), _traj("b2", "s2", "sub:1"), _traj("b3", "s2", "sub:2"),
        _traj("orphan", "s9", "sub:0"),
    ))
    out = align_group_subagents(group, 2, rng=0)
    ids = [t.id for t in out.trajectories]
    assert ids[:3] == ["a", "a1", "a1#dup1"]
    assert ids[3] == "b" and len(ids) == 6 and set(ids[4:]) <= {"b1", "b2", "b3"}
    assert "orphan" not in ids and len(set(ids)) == len(ids)
