from __future__ import annotations

import pytest
import torch

from agentgym import registries
from agentgym.errors import ConfigError
from agentgym.trainers.advantages.grpo import (
    GRPOConfig,
    drgrpo_advantages,
    drgrpo_advantages_reference,
    grpo_advantages,
    grpo_advantages_reference,
)
from agentgym.trainers.advantages.synthetic import random_step_batch
from agentgym.trainers.batch import StepBatch

torch.set_num_threads(1)
EPS = 1e-6


def _batch() -> StepBatch:
    # group 0: scores 1 (0.25 step reward + 0.75 terminal, two rows), 0, 2; group 1: singleton 3;
    # group 2: all equal 0.5
    return StepBatch.from_arrays(
        group_ids=[0, 0, 0, 0, 1, 2, 2],
        traj_ids=[0, 0, 1, 2, 3, 4, 5],
        step_rewards=[0.25, 0, 0, 0, 0, 0, 0],
        episode_rewards=[0.75, 0.75, 0, 2, 3, 0.5, 0.5],
    )


def test_grpo_hand_worked_over_trajectories() -> None:
    # mean 1, unbiased std 1; singleton: mean 0 std 1; equal scores: exactly 0
    rows = grpo_advantages(_batch(), GRPOConfig(stats_over="trajectories")).rows.tolist()
    expected = [0.0, 0.0, -1 / (1 + EPS), 1 / (1 + EPS), 3 / (1 + EPS), 0.0, 0.0]
    assert rows == pytest.approx(expected, abs=1e-7)
    assert rows[5] == 0.0 and rows[6] == 0.0


def test_grpo_hand_worked_over_steps() -> None:
    # default (verl-agent): rows of group 0 carry scores [1, 1, 0, 2] -> mean 1, unbiased std 0.8164966
    rows = grpo_advantages(_batch()).rows.tolist()
    z = 1 / (0.8164966 + EPS)
    assert rows == pytest.approx([0.0, 0.0, -z, z, 3 / (1 + EPS), 0.0, 0.0], abs=1e-6)
    assert rows[0] == 0.0 and rows[5] == 0.0


def test_drgrpo_hand_worked() -> None:
    assert drgrpo_advantages(_batch(), {"stats_over": "trajectories"}).rows.tolist() == [
        0.0, 0.0, -1.0, 1.0, 3.0, 0.0, 0.0]
    assert drgrpo_advantages(_batch()).rows.tolist() == [0.0, 0.0, -1.0, 1.0, 3.0, 0.0, 0.0]


def test_stats_over_steps_weighs_long_trajectories() -> None:
    # a 3-step success and a 1-step failure: per trajectory mean 0.5; per row mean 0.75
    b = StepBatch.from_arrays(group_ids=[0, 0, 0, 0], traj_ids=[0, 0, 0, 1], step_rewards=[0, 0, 0, 0],
                              episode_rewards=[1, 1, 1, 0])
    assert drgrpo_advantages(b, {"stats_over": "trajectories"}).rows.tolist() == [0.5, 0.5, 0.5, -0.5]
    assert drgrpo_advantages(b).rows.tolist() == [0.25, 0.25, 0.25, -0.75]
    with pytest.raises(ConfigError, match="stats_over"):
        GRPOConfig(stats_over="tokens")  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", range(20))
def test_vectorised_matches_reference(seed: int) -> None:
    b = random_step_batch(seed, groups=5, trajectories_per_group=int(1 + seed % 6), continuous_rewards=seed % 2 == 0)
    for over in ("steps", "trajectories"):
        cfg = {"stats_over": over}
        torch.testing.assert_close(grpo_advantages(b, cfg).rows, grpo_advantages_reference(b, cfg).rows,
                                   atol=1e-6, rtol=0)
        torch.testing.assert_close(drgrpo_advantages(b, cfg).rows, drgrpo_advantages_reference(b, cfg).rows,
                                   atol=1e-6, rtol=0)


def test_registry_and_config_mapping() -> None:
    b = _batch()
    via_registry = registries.estimators.get("grpo")(b, {"eps": 0.5, "stats_over": "trajectories"})
    assert via_registry.rows[3].item() == pytest.approx(1 / 1.5)
    assert grpo_advantages(b, GRPOConfig(eps=0.5, stats_over="trajectories")).rows.tolist() == via_registry.rows.tolist()
    with pytest.raises(ConfigError, match="unknown GRPOConfig field"):
        grpo_advantages(b, {"epsilon": 0.5})


def test_tokens_follow_rows() -> None:
    b = StepBatch.from_arrays(group_ids=[0, 0], traj_ids=[0, 1], step_rewards=[0, 0], episode_rewards=[1, 0],
                              input_ids=[[1, 2, 3], [4, 5, 0]], action_mask=[[0, 1, 1], [0, 1, 0]],
                              token_row=[[-1, 0, 0], [1, 1, -1]])
    out = drgrpo_advantages(b)
    assert out.tokens is not None
    assert out.tokens.tolist() == [[0.0, 0.5, 0.5], [0.0, -0.5, 0.0]]
    assert drgrpo_advantages(_batch()).tokens is None
