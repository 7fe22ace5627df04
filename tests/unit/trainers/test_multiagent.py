"""Multi-agent training data: sub-agent links (and the v1 fallback), the reference rewards through
the links, what select_multiagent_groups leaves out and why, alignment to D per main rollout,
collation of the links, and M-GRPO's checks on them."""

from __future__ import annotations

import dataclasses

import pytest

from agentgym.errors import ConfigError
from agentgym.trainers.advantages.mgrpo import (
    align_group_subagents,
    mgrpo_advantages,
    mgrpo_advantages_reference,
    reference_rewards,
    subagent_links,
    well_formed,
)
from agentgym.trainers.batch import StepBatch
from agentgym.trainers.multiagent import MultiAgentConfig, multiagent_config, select_multiagent_groups
from agentgym.types import Segment, Step, StopReason, Trajectory, TrajectoryGroup

SEG = Segment(input_ids=(1, 2, 3), action_mask=(0, 1, 1), obs_mask=(0, 0, 0), logprobs=(0.0, -0.5, -0.5),
              turn_index=(-1, 0, 0), policy_version=(0, 0, 0))


def traj(tid: str, agent: str = "main", *, reward: float = 0.0, task: str = "t", session: str | None = None,
         parent: str | None = None, valid: bool = True, tokens: bool = True,
         stop: StopReason = StopReason.COMPLETED) -> Trajectory:
    session = session or (parent or tid)
    step = Step(index=0, call_id=f"{tid}-c0", segment_index=0, action_span=(1, 3), obs_span=(0, 1), valid=valid,
                agent_id=agent)
    return Trajectory(id=tid, task_id=task, session_id=session, segments=(SEG,) if tokens else (),
                      steps=(step,), reward=reward, stop_reason=stop, agent_id=agent,
                      parent_trajectory_id=parent, sampled_tokens=2)


def episode(main_id: str, reward: float, n_subs: int, *, task: str = "t", main_valid: bool = True,
            sub_valid: tuple[bool, ...] = (), stop: StopReason = StopReason.COMPLETED) -> list[Trajectory]:
    out = [traj(main_id, reward=reward, task=task, valid=main_valid, stop=stop)]
    for i in range(n_subs):
        ok = sub_valid[i] if i < len(sub_valid) else True
        out.append(traj(f"{main_id}/sub-{i + 1}", f"sub-{i + 1}", reward=reward, task=task, parent=main_id,
                        valid=ok, stop=stop))
    return out


def test_links_follow_parent_trajectory_id_else_the_session() -> None:
    trajs = [traj("m1"), traj("m1/sub-1", "sub-1", parent="m1"),
             traj("m2"), dataclasses.replace(traj("x", "sub-1"), session_id="m2"),  # v1 data: no parent field
             traj("lost", "sub-1", session="nowhere"),
             traj("far", "sub-1", parent="m1", session="elsewhere")]  # the field wins over the session
    assert subagent_links(trajs) == {"m1/sub-1": "m1", "x": "m2", "far": "m1"}


def test_reference_rewards_flow_down_from_the_main_outcome() -> None:
    trajs = (episode("ok", 1.0, 2, sub_valid=(True, False))          # correct: 1.0; subs 1.0 / malformed 0
             + episode("wrong", 0.0, 1)                              # wrong but well-formed: 0.1; sub 0.1
             + episode("broken", 1.0, 1, main_valid=False)           # malformed main: 0.0; its sub 0.1
             + [traj("orphan", "sub-1", reward=0.7, session="gone")])  # no main: keeps its reward
    out = {t.id: t for t in reference_rewards(trajs)}
    assert [out[i].reward for i in ("ok", "ok/sub-1", "ok/sub-2", "wrong", "wrong/sub-1", "broken", "broken/sub-1",
                                    "orphan")] == [1.0, 1.0, 0.0, 0.1, 0.1, 0.0, 0.1, 0.7]
    assert out["ok/sub-2"].metadata["episode_reward"] == 1.0 and "episode_reward" not in out["orphan"].metadata
    # a partial episode reward below the threshold is not correct
    assert reference_rewards(episode("half", 0.5, 0))[0].reward == 0.1
    assert reference_rewards(episode("half", 0.5, 0), success_threshold=0.5)[0].reward == 1.0
    assert not well_formed(dataclasses.replace(traj("empty"), steps=()))


def test_alignment_follows_the_links_and_names_duplicates() -> None:
    group = TrajectoryGroup("t", tuple(episode("a", 1.0, 1) + episode("b", 0.0, 3)
                                       + [traj("stray", "sub-1", parent="zzz")]))
    out = align_group_subagents(group, 2, rng=0)
    ids = [t.id for t in out.trajectories]
    assert ids[:3] == ["a", "a/sub-1", "a/sub-1#dup1"] and ids[3] == "b" and len(ids) == 6
    assert all(t.parent_trajectory_id == "a" for t in out.trajectories[1:3])
    assert "stray" not in ids


def test_select_leaves_out_infra_failures_token_less_episodes_and_groups_without_signal() -> None:
    trajs = (episode("a", 1.0, 2, task="t1") + episode("b", 0.0, 3, task="t1")
             + episode("c", 1.0, 1, task="t1", stop=StopReason.RUNTIME_ERROR)   # infra: dropped with its sub
             + episode("d", 0.0, 1, task="t2") + episode("e", 0.0, 1, task="t2")  # all 0.1 / 0.1: no signal
             + [dataclasses.replace(traj("f", task="t3"), segments=()), traj("f/sub-1", "sub-1", parent="f", task="t3")]
             + [dataclasses.replace(traj("b/sub-9", "sub-9", parent="b", task="t1"), segments=())])
    groups, counts = select_multiagent_groups(trajs, MultiAgentConfig(subagents_per_main=2),
                                              drop_stop_reasons=["runtime_error"], rng=0)
    assert counts["episodes_dropped_infra"] == 1 and counts["episodes_without_tokens"] == 1
    assert counts["subagents_without_tokens"] == 1 and counts["groups"] == 3 and counts["groups_with_signal"] == 1
    assert counts["subagents_before_alignment"] == 5 and counts["subagents_after_alignment"] == 4
    (g,) = groups
    assert g.task_id == "t1" and [t.id for t in g.trajectories if t.agent_id == "main"] == ["a", "b"]
    assert sorted({t.reward for t in g.trajectories}) == [0.1, 1.0]
    # every group, signal or not, when asked; env rewards leave the episode's reward everywhere
    groups, _ = select_multiagent_groups(trajs, MultiAgentConfig(rewards="env"), skip_groups_without_signal=False)
    assert [g.task_id for g in groups] == ["t1", "t2"] and {t.reward for t in groups[1].trajectories} == {0.0}


def test_collation_carries_the_links_and_mgrpo_checks_them() -> None:
    groups, _ = select_multiagent_groups(episode("a", 1.0, 1) + episode("b", 0.0, 2), MultiAgentConfig(), rng=0)
    batch = StepBatch.from_groups(groups)
    assert batch.parent_traj is not None
    assert batch.parent_traj.tolist() == [-1, 0, 0, -1, 3, 3]  # a, a/sub-1, its duplicate, b, b's two workers
    result = mgrpo_advantages(batch)
    assert result.metrics["mgrpo/subagents_per_main"] == 2.0 and result.metrics["mgrpo/agent_groups"] == 2
    assert result.rows.tolist() == pytest.approx(mgrpo_advantages_reference(batch).rows.tolist(), abs=1e-6)
    # a sub-agent whose main rollout is in another task group would be credited with another task's outcome
    crossed = StepBatch.from_arrays(group_ids=[0, 1], traj_ids=[0, 1], step_rewards=[0, 0], episode_rewards=[1, 1],
                                    agent_ids=["main", "sub-1"], parent_traj=[-1, 0])
    for estimator in (mgrpo_advantages, mgrpo_advantages_reference):
        with pytest.raises(ConfigError, match="another task group"):
            estimator(crossed)
    with pytest.raises(ConfigError, match="parent_traj"):
        StepBatch.from_arrays(group_ids=[0], traj_ids=[0], step_rewards=[0], parent_traj=[3])


def test_sub_agent_ids_of_the_planner_share_one_role() -> None:
    b = StepBatch.from_arrays(group_ids=[0] * 4, traj_ids=[0, 1, 2, 3], step_rewards=[0] * 4,
                              episode_rewards=[1, 0.1, 1, 0.1], agent_ids=["main", "main", "sub-1", "sub-2"])
    assert [round(x, 3) for x in mgrpo_advantages(b).rows.tolist()] == [0.707, -0.707, 0.707, -0.707]


def test_config() -> None:
    assert multiagent_config("grpo", None) is None
    assert multiagent_config("mgrpo", None) == MultiAgentConfig()
    assert multiagent_config("mgrpo", {"subagents_per_main": 4}).subagents_per_main == 4  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="needs estimator='mgrpo'"):
        multiagent_config("gigpo", {})
    with pytest.raises(ConfigError, match="bad multi_agent table"):
        multiagent_config("mgrpo", {"d": 2})
    for bad in ({"subagents_per_main": 0}, {"rewards": "x"}, {"policies": "x"}, {"roles": ["a", "a"]}):
        with pytest.raises(ConfigError):
            MultiAgentConfig(**bad)  # type: ignore[arg-type]
    cfg = MultiAgentConfig(policies="per-agent", roles=("main", "sub"))
    assert [cfg.policy_role(a) for a in ("main", "sub-3", "critic-1")] == ["main", "sub", "main"]


def test_the_example_config_builds_its_harness_and_multi_agent_settings() -> None:
    from pathlib import Path

    from agentgym import registries
    from agentgym.trainers.config import load_config

    path = Path(__file__).resolve().parents[3] / "examples" / "train" / "tiny-team-mgrpo.toml"
    cfg = load_config(path, ["multi_agent.policies=per-agent"])
    multi = multiagent_config(cfg.estimator, cfg.multi_agent)
    assert multi == MultiAgentConfig(subagents_per_main=3, rewards="reference", policies="per-agent")
    harness = registries.harnesses.make(cfg.harness, **cfg.harness_kwargs)
    assert (harness.split, harness.planner_tools, harness.worker_max_steps) == ("lines", "inspect", 4)
    assert len(registries.envs.make(cfg.env).tasks()) == 1000
