"""One training iteration with tree rollouts end to end: the tiny model served by the embedded
engine, the real ReAct harness in the local runtime, the real proxy replaying branch prefixes,
the ``tree`` estimator, an optimizer step and a weight push."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentgym.export import read_jsonl
from agentgym.proxy.calllog import read_calls
from agentgym.trainers.batch import StepBatch
from agentgym.trainers.config import TrainConfig
from agentgym.trainers.train import select_groups, train
from agentgym.types import Trajectory
from tests.integration import train_helpers

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(autouse=True)
def _alternating_env() -> Any:
    train_helpers.register()
    yield
    from agentgym import registries

    registries.envs.unregister(train_helpers.ENV_ID)


def test_one_iteration_spends_the_grpo_budget_as_trees_and_trains_each_token_once(tmp_path: Path,
                                                                                  tiny_model: Path) -> None:
    cfg = TrainConfig(model="tiny", env=train_helpers.ENV_ID, runtime="local", out=str(tmp_path / "run"),
                      iterations=1, tasks_per_iteration=2, group_size=4, concurrency=4, max_steps=3,
                      max_tokens=48, lr=1e-2, progress=False, tensorboard=False, estimator="tree",
                      rollout="tree", tree={"root_fraction": 0.5})
    result = train(cfg)
    (m,) = result.metrics
    tree = m["tree"]
    # the same budget as GRPO (2 tasks x 4): half fresh roots split by V_root, half placed by V_pref
    assert m["episodes"] == 8 and tree["roots"] == 4 and tree["roots_by_task"] == {t: 2 for t in m["tasks"]}
    assert tree["branches"] + tree["fresh_for_unplaced_budget"] == 4
    assert tree["predicted_success"] == {t: 0.5 for t in m["tasks"]}
    assert set(tree["value_targets"]) == set(m["tasks"]) and 0.0 <= tree["divergence_rate"] <= 1.0
    assert (result.out / "tree_predictor.json").is_file()
    assert m["update"]["optimizer_steps"] == 1 and result.policy_version == 1

    rollouts = result.out / "rollouts" / "iter-00000"
    trajs: list[Trajectory] = read_jsonl(rollouts / "episodes.jsonl")
    kids = [t for t in trajs if "branch" in t.metadata]
    assert len(kids) == tree["branches"]
    replayed_tokens = 0
    for kid in kids:
        b = kid.metadata["branch"]
        calls = read_calls(rollouts / "calls" / f"{kid.session_id}.jsonl")
        replayed = [c for c in calls if c.replayed_from is not None]
        assert len(replayed) == b["shared_turns"] <= b["turn"]
        assert (b["divergence"] is None) == (b["shared_turns"] == b["turn"])
        parent = next(t for t in trajs if t.id == b["parent"])
        parent_calls = {c.call_id: c for c in read_calls(rollouts / "calls" / f"{parent.session_id}.jsonl")}
        for c in replayed:  # the parent's exact tokens, served again
            rec = parent_calls[c.replayed_from]
            assert (c.prompt_ids, c.completion_ids, c.policy_version) == (rec.prompt_ids, rec.completion_ids, 0)
            replayed_tokens += len(c.completion_ids)
    # Each sampled token trained once: replayed completions are no branch's actions, so the batch's
    # action tokens are exactly the tokens the engine sampled (the update saw them all).
    groups, _ = select_groups(trajs, cfg)
    batch = StepBatch.from_groups(groups)
    sampled = sum(t.sampled_tokens for g in groups for t in g.trajectories)
    assert int(batch.action_mask.sum()) == sampled == m["update"]["action_tokens"]
    assert m["tokens_trained"] == m["tokens_sampled"]  # over every episode: replayed tokens are neither
    assert replayed_tokens > 0 or not kids
    # the tree reaches the batch: branches share their parent's nodes for the shared turns
    trained = [t for g in groups for t in g.trajectories]
    shared = sum(t.metadata["branch"]["shared_turns"] for t in trained if "branch" in t.metadata
                 and any(p.id == t.metadata["branch"]["parent"] for p in trained))
    assert batch.num_rows - len(set(batch.tree_node.tolist())) == shared
