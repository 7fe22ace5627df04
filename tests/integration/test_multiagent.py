"""M-GRPO end to end: the planner harness through the real proxy reconstructs into one main and
N sub-agent trajectories linked to it; M-GRPO groups them per agent role with D sub-agents per
main rollout; and training iterations run on them with the tiny model (one shared policy, and one
policy per role)."""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch

from agentgym import registries
from agentgym.engines.scripted import ScriptedEngine
from agentgym.export import read_jsonl
from agentgym.models.tiny import train_tokenizer
from agentgym.rollout.runner import RolloutConfig, RolloutResult, run_rollouts
from agentgym.trainers.advantages.mgrpo import mgrpo_advantages
from agentgym.trainers.batch import StepBatch
from agentgym.trainers.config import TrainConfig
from agentgym.trainers.multiagent import MultiAgentConfig, select_multiagent_groups
from agentgym.types import BreakReason, StopReason, Trajectory
from tests.integration import multiagent_helpers
from tests.integration.multiagent_helpers import ScriptedTeam

EPS = 1e-6


def rollouts(runtime: str, out: Path, samples: int = 2) -> tuple[RolloutResult, ScriptedEngine]:
    tokenizer = train_tokenizer()
    engine = ScriptedEngine(tokenizer, ScriptedTeam(tokenizer))
    config = RolloutConfig(env="terminal/workspace-team-v0", harness="agentgym/planner-v0", samples=samples,
                           task_ids=["ws-0-0"], out_dir=str(out), runtime=runtime, concurrency=1, progress=False,
                           max_steps=6, harness_kwargs={"worker_max_steps": 3, "temperature": 0.0})
    return asyncio.run(run_rollouts(config, engine)), engine


def by_session(trajectories: list[Trajectory]) -> dict[str, list[Trajectory]]:
    out: dict[str, list[Trajectory]] = {}
    for t in trajectories:
        out.setdefault(t.session_id, []).append(t)
    return dict(sorted(out.items(), key=lambda kv: next(t.sample_index for t in kv[1] if t.agent_id == "main")))


def check_episodes(result: RolloutResult, engine: ScriptedEngine) -> list[list[Trajectory]]:
    episodes = list(by_session(result.trajectories).values())
    assert len(episodes) == 2
    tokenizer = engine.tokenizer
    for sample, trajs in enumerate(episodes):
        main, *subs = trajs
        # one main trajectory, then one per worker in the order they were started, each linked to it
        assert main.agent_id == "main" and main.parent_trajectory_id is None and main.sample_index == sample
        assert [t.agent_id for t in subs] == ["sub-1", "sub-2", "sub-3"]
        assert all(t.parent_trajectory_id == main.id and t.id == f"{main.id}/{t.agent_id}" for t in subs)
        assert all(t.session_id == main.session_id and t.reward == main.reward for t in subs)
        assert main.stop_reason == StopReason.COMPLETED and main.error is None
        # the planner: 3 delegations, one ls, the final answer, all in one segment (each call extends the last)
        assert main.num_steps == 5 and len(main.segments) == 1 and main.delivered_fraction == 1.0
        assert [s.action.split("(")[0].split("\n")[-1] for s in main.steps[:4]] == ["delegate"] * 3 + ["bash"]
        for sub in subs:
            assert sub.num_steps == 2 and len(sub.segments) == 1
            assert sub.segments[0].break_reason == BreakReason.START and sub.segments[0].agent_id == sub.agent_id
            assert all(s.agent_id == sub.agent_id for s in sub.steps)
            first_prompt = tokenizer.decode(sub.segments[0].input_ids)
            assert f"You are worker {sub.agent_id} in a team" in first_prompt and "Sub-task from the planner" in first_prompt
        # observation targets: the ls output is environment output, the workers' reports are not
        seg = main.segments[0]
        observed = tokenizer.decode([i for i, o in zip(seg.input_ids, seg.obs_mask, strict=True) if o])
        assert "ws-" not in observed and "report from" not in observed
        assert ("made-by-oracle" in observed) == (sample == 0)
    assert [e[0].reward for e in episodes] == [1.0, 0.0]  # the scripted team fails every second episode
    return episodes


def test_a_planner_session_reconstructs_into_one_main_and_linked_sub_agent_trajectories(tmp_path: Path) -> None:
    result, engine = rollouts("local", tmp_path / "run")
    check_episodes(result, engine)
    # the journal (dataset schema v2) keeps the links
    again = read_jsonl(tmp_path / "run" / "episodes.jsonl")
    assert {t.id: t.parent_trajectory_id for t in again} == {t.id: t.parent_trajectory_id for t in result.trajectories}


@pytest.mark.docker
def test_the_same_in_docker(tmp_path: Path) -> None:
    result, engine = rollouts("docker", tmp_path / "run")
    assert result.backend == "docker"
    check_episodes(result, engine)


def test_mgrpo_groups_agents_apart_with_d_sub_agents_per_main(tmp_path: Path) -> None:
    result, _ = rollouts("local", tmp_path / "run")
    groups, counts = select_multiagent_groups(result.trajectories, MultiAgentConfig(subagents_per_main=2), rng=0)
    assert counts["groups_trained"] == 1 and counts["subagents_before_alignment"] == 6
    assert counts["subagents_after_alignment"] == 4  # D = 2 of the 3 workers per main rollout
    (group,) = groups
    trajs = group.trajectories
    mains = [t for t in trajs if t.agent_id == "main"]
    assert [t.agent_id == "main" for t in trajs] == [True, False, False, True, False, False]
    # reference rewards: the correct main 1.0, the wrong (but well-formed) one 0.1; workers inherit
    assert [t.reward for t in mains] == [1.0, 0.1]
    for t in trajs:
        if t.agent_id != "main":
            main = next(m for m in mains if m.id == t.parent_trajectory_id)
            assert t.reward == (1.0 if main.reward == 1.0 else 0.1)
            assert t.metadata["episode_reward"] == (1.0 if main.reward == 1.0 else 0.0)
    batch = StepBatch.from_groups(groups)
    assert batch.parent_traj is not None
    traj_rows = [(int(t), int(p)) for t, p in zip(batch.traj_ids, batch.parent_traj, strict=True)]
    assert sorted(set(traj_rows)) == [(0, -1), (1, 0), (2, 0), (3, -1), (4, 3), (5, 3)]
    adv = mgrpo_advantages(batch)
    # per trajectory: mains (1.0, 0.1) and the workers (1, 1, 0.1, 0.1) normalised separately
    per_traj = {int(t): float(a) for t, a in zip(batch.traj_ids, adv.rows, strict=True)}
    main_std = (2 * 0.45**2) ** 0.5
    sub_std = (4 * 0.45**2 / 3) ** 0.5
    expected = [0.45 / (main_std + EPS), 0.45 / (sub_std + EPS), 0.45 / (sub_std + EPS),
                -0.45 / (main_std + EPS), -0.45 / (sub_std + EPS), -0.45 / (sub_std + EPS)]
    assert [per_traj[i] for i in range(6)] == pytest.approx(expected, abs=1e-5)
    assert adv.metrics["mgrpo/agent_groups"] == 2 and adv.metrics["mgrpo/subagents_per_main"] == 2.0
    # every row of a trajectory gets its trajectory's advantage, spread over its action tokens only
    assert adv.tokens is not None and bool(((adv.tokens != 0) <= (batch.action_mask > 0)).all())


# -- training ----------------------------------------------------------------------------------
@pytest.fixture
def team_env() -> Any:
    multiagent_helpers.register()
    yield
    registries.envs.unregister(multiagent_helpers.TEAM_ENV_ID)


def train_config(out: Path, **kw: Any) -> TrainConfig:
    base: dict[str, Any] = dict(
        model="tiny", env=multiagent_helpers.TEAM_ENV_ID, harness="agentgym/planner-v0",
        harness_kwargs={"split": "lines", "worker_max_steps": 2}, runtime="local", out=str(out), iterations=1,
        tasks_per_iteration=1, group_size=2, concurrency=2, max_steps=2, max_tokens=32, lr=1e-2, progress=False,
        tensorboard=False, estimator="mgrpo", multi_agent={"subagents_per_main": 2})
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_one_training_iteration_trains_the_planner_and_its_workers(tmp_path: Path, tiny_model: Path,
                                                                   team_env: Any) -> None:
    from agentgym.trainers.train import train

    # rewards="env": every agent gets the alternating episode reward, so the group has a signal
    # whatever the tiny model's formatting (reference rewards are the next test's)
    result = train(train_config(tmp_path / "run", multi_agent={"subagents_per_main": 2, "rewards": "env"}))
    (m,) = result.metrics
    assert m["episodes"] == 2 and m["subagent_trajectories"] == 4 and m["subagents_per_episode"] == 2.0
    assert m["groups_trained"] == 1 and m["subagents_after_alignment"] == 4
    assert m["trained_reward_by_role"] == {"main": 0.5, "sub": 0.5}
    assert m["update"]["optimizer_steps"] == 1 and m["policy_version_after"] == 1
    assert abs(m["first_step_ratio"]["min"] - 1) < 1e-5 and abs(m["first_step_ratio"]["max"] - 1) < 1e-5
    # the update saw the workers' tokens too: more action tokens than the planner sampled
    trajs = read_jsonl(tmp_path / "run" / "rollouts" / "iter-00000" / "episodes.jsonl")
    main_tokens = sum(t.trained_tokens for t in trajs if t.agent_id == "main")
    assert m["update"]["action_tokens"] > main_tokens and m["tokens_trained"] == sum(t.trained_tokens for t in trajs)


class UpdatableScripted(ScriptedEngine):
    """The scripted team as the serving engine of a training run (it takes weight pushes as a
    version bump; its replies stay scripted)."""

    async def update_weights(self, state_dict: dict[str, Any], version: int) -> None:
        self.policy_version = version


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_loop_gives_the_reference_rewards_and_aligns(tmp_path: Path, tiny_model: Path, team_env: Any) -> None:
    """Deterministic rollouts (the scripted team: every reply well-formed, the env's reward
    alternating) through the loop: the planner that succeeded gets 1.0, the other 0.1, and each
    worker its planner's credit; the tiny model trains on them (off-policy: the logprobs are the
    script's)."""
    from agentgym.trainers.train import train

    tokenizer = train_tokenizer()
    engine = UpdatableScripted(tokenizer, ScriptedTeam(tokenizer, fail_every=1000))
    cfg = train_config(tmp_path / "run", concurrency=1, max_tokens=128, multi_agent={"subagents_per_main": 1})
    (m,) = train(cfg, engine=engine).metrics
    assert m["subagents_before_alignment"] == 4 and m["subagents_after_alignment"] == 2
    assert m["trained_reward_by_role"] == pytest.approx({"main": (1.0 + 0.1) / 2, "sub": (1.0 + 0.1) / 2})
    assert m["update"]["optimizer_steps"] == 1 and engine.policy_version == 1
    assert m["advantage"]["abs_mean"] == pytest.approx(2 ** -0.5, abs=1e-4)  # +-0.707 for both roles


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_one_policy_per_agent_role_trains_and_serves_each_role_its_own_model(tmp_path: Path, tiny_model: Path,
                                                                            team_env: Any) -> None:
    from safetensors.torch import load_file

    from agentgym.trainers.train import train

    cfg = train_config(tmp_path / "run", multi_agent={"subagents_per_main": 2, "policies": "per-agent", "rewards": "env"})
    result = train(cfg)
    (m,) = result.metrics
    assert set(m["update_by_role"]) == {"main", "sub"} and m["update"]["optimizer_steps"] == 2
    assert m["update_by_role"]["main"]["optimizer_steps"] == 1 and m["update_by_role"]["sub"]["optimizer_steps"] == 1
    ckpt = tmp_path / "run" / "checkpoints" / "iter-00000"
    start = load_file(str(next(tiny_model.glob("*.safetensors"))))
    main = load_file(str(next((ckpt / "model").glob("*.safetensors"))))
    sub = load_file(str(next((ckpt / "agents" / "sub" / "model").glob("*.safetensors"))))
    moved = [k for k in start if not torch.equal(start[k], main[k])]
    assert moved and any(not torch.equal(main[k], sub[k]) for k in moved)  # two policies, each trained
    assert any(not torch.equal(start[k], sub[k]) for k in start)

    # resume from that checkpoint (both roles' models and optimizers) and run one more iteration:
    # both roles' engines serve version 1, the planner's and the workers' tokens say so
    again = train(dataclasses.replace(cfg, iterations=2))
    assert again.resumed_from == 0 and [x["iteration"] for x in again.metrics] == [0, 1]
    assert (again.metrics[1]["policy_version"], again.metrics[1]["policy_version_after"]) == (1, 2)
    trajs = read_jsonl(tmp_path / "run" / "rollouts" / "iter-00001" / "episodes.jsonl")
    for role in ("main", "sub"):
        versions = {v for t in trajs if t.agent_id.startswith(role) for s in t.segments
                    for v, a in zip(s.policy_version, s.action_mask, strict=True) if a}
        assert versions == {1}, (role, versions)


def test_per_agent_policies_need_the_embedded_engine(team_env: Any) -> None:
    from agentgym.errors import ConfigError
    from agentgym.trainers.train import train

    cfg = train_config(Path(tempfile.mkdtemp()), model="vllm:http://127.0.0.1:9:/x",
                       multi_agent={"policies": "per-agent"})
    with pytest.raises(ConfigError, match="per-agent"):
        train(cfg)
    with pytest.raises(ConfigError, match="needs estimator='mgrpo'"):
        train(train_config(Path(tempfile.mkdtemp()), estimator="grpo"))
