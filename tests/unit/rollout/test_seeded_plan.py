"""Seeded episode ids (``RolloutConfig.seed``): a function of (seed, task, sample, attempt), so
two runs of one plan name their episodes alike; an attempt whose id an earlier one used (a retry,
a resume) gets the next attempt's id; a shard runs under the ids its driver gave."""

from __future__ import annotations

from agentgym.rollout.episode import new_session_id
from agentgym.rollout.runner import RolloutConfig, fresh_session_ids, plan_episodes
from agentgym.types import Task


def tasks() -> list[Task]:
    return [Task(id="hello-file", env="x", instruction="hi"), Task(id="log-report", env="x", instruction="hi")]


def ids(config: RolloutConfig) -> list[str | None]:
    return [s.session_id for s in plan_episodes(config, tasks(), run_id="r")]


def test_a_seeded_plan_names_its_episodes_the_same_every_time() -> None:
    config = RolloutConfig(env="x", harness="h", samples=2, seed=3)
    assert ids(config) == ids(config)
    assert ids(config)[0] == new_session_id(tasks()[0], 0, 3) and ids(config)[0].startswith("hello-file-s0-")
    assert ids(config) != ids(RolloutConfig(env="x", harness="h", samples=2, seed=4))
    assert len(set(ids(config))) == 4
    unseeded = RolloutConfig(env="x", harness="h", samples=2)
    assert ids(unseeded) != ids(unseeded)  # fresh randomness


def test_an_id_used_before_moves_to_the_next_attempt() -> None:
    specs = plan_episodes(RolloutConfig(env="x", harness="h", samples=1, seed=3), tasks(), run_id="r")
    used = {specs[0].session_id or "", new_session_id(tasks()[0], 0, 3, attempt=1)}
    again = fresh_session_ids(specs, set(used), 3)
    assert again[0].session_id == new_session_id(tasks()[0], 0, 3, attempt=2)
    assert again[1].session_id == specs[1].session_id  # not used before: unchanged


def test_a_shard_runs_only_its_pairs_under_the_given_ids() -> None:
    config = RolloutConfig(env="x", harness="h", samples=3, seed=3, episodes={("log-report", 2): "given-id"})
    specs = plan_episodes(config, tasks(), run_id="r")
    assert [(s.task.id, s.sample_index, s.session_id) for s in specs] == [("log-report", 2, "given-id")]
