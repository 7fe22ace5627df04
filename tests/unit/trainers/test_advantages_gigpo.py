from __future__ import annotations

import pytest
import torch

from agentgym.errors import ConfigError
from agentgym.trainers.advantages.gigpo import (
    GiGPOConfig,
    anchor_step_groups,
    anchor_step_groups_reference,
    gigpo_advantages,
    gigpo_advantages_reference,
)
from agentgym.trainers.advantages.synthetic import random_step_batch
from agentgym.trainers.batch import StepBatch

torch.set_num_threads(1)


def _batch() -> StepBatch:
    # group 0: traj0 sees s0 twice (rows 0, 2), succeeds; traj1 sees s0 then s2, its last action is invalid.
    # group 1: traj2 sees s0 too, but in another task group: it must get its own (singleton) step group.
    return StepBatch.from_arrays(
        group_ids=[0, 0, 0, 0, 0, 1],
        traj_ids=[0, 0, 0, 1, 1, 2],
        step_rewards=[0, 0, 0, 0, 0, 0],
        episode_rewards=[1, 1, 1, 0, 0, 1],
        anchors=["s0", "s1", "s0", "s0", "s2", "s0"],
        valid=[True, True, True, True, False, True],
    )


def test_mean_norm_hand_worked() -> None:
    # scores over group-0 rows [1, 1, 1, 0, -0.1] -> mean 0.58; group 1 single row -> A^E = 1
    # returns (gamma 0.5): [0.25, 0.5, 1, 0, 0 - 0.1], [1]; step group (g0, s0) = rows 0, 2, 3 -> mean 1.25/3
    out = gigpo_advantages(_batch(), GiGPOConfig(gamma=0.5))
    expected = [0.42 - 0.1666667, 0.42, 0.42 + 0.5833333, -0.58 - 0.4166667, -0.68, 1.0]
    assert out.rows.tolist() == pytest.approx(expected, abs=1e-6)
    assert out.metrics["gigpo/step_groups"] == 4.0


def test_mean_std_norm_hand_worked() -> None:
    # A^E: std(unbiased) of [1,1,1,0,-0.1] = 0.5761944; A^S: std of [0.25, 1, 0] = 0.5204165
    out = gigpo_advantages(_batch(), GiGPOConfig(gamma=0.5, mode="mean_std_norm"))
    expected = [0.4086637, 0.7289194, 1.8498143, -1.8072422, -1.1801552, 0.9999990]
    assert out.rows.tolist() == pytest.approx(expected, abs=1e-6)


def test_omega_and_penalty() -> None:
    b = _batch()
    episode_only = gigpo_advantages(b, GiGPOConfig(gamma=0.5, omega=0.0)).rows.tolist()
    assert episode_only == pytest.approx([0.42, 0.42, 0.42, -0.58, -0.68, 1.0], abs=1e-6)
    no_penalty = gigpo_advantages(b, GiGPOConfig(gamma=0.5, omega=0.0, invalid_penalty=0.0)).rows.tolist()
    assert no_penalty == pytest.approx([0.4, 0.4, 0.4, -0.6, -0.6, 1.0], abs=1e-6)


def test_unique_states_and_all_equal_returns_give_zero_step_advantage() -> None:
    b = StepBatch.from_arrays(group_ids=[0, 0, 0, 0], traj_ids=[0, 0, 1, 1], step_rewards=[0.1, 0, 0.1, 0],
                              episode_rewards=[0, 0, 0, 0], anchors=["a", "b", "a", "c"])
    out = gigpo_advantages(b, GiGPOConfig(omega=1.0))
    # both trajectories score 0.1: A^E = 0; "a" has equal returns 0.1 -> exactly 0; "b", "c" singletons
    assert out.rows.tolist() == [0.0, 0.0, 0.0, 0.0]


def test_singleton_task_group_keeps_raw_score() -> None:
    b = StepBatch.from_arrays(group_ids=[0], traj_ids=[0], step_rewards=[0], episode_rewards=[2.0])
    assert gigpo_advantages(b).rows.tolist() == [2.0]
    assert gigpo_advantages(b, {"mode": "mean_std_norm"}).rows.tolist() == pytest.approx([2 / (1 + 1e-6)])


def test_similarity_clusters_join_first_matching_first_member() -> None:
    # ratios: (B,A)=0.5, (C,A)=0.8, (C,B)=0.8, (D,A)=(D,B)=0.667, (D,C)=0.857
    a, b_, c, d = "xxxxyyyy", "yyyyzzzz", "xxxxyyyyzzzz", "xxxxyyyyzzzzwwww"
    batch = StepBatch.from_arrays(group_ids=[0] * 5, traj_ids=[0, 1, 2, 3, 4], step_rewards=[0] * 5,
                                  anchors=[a, b_, c, d, c])
    # C joins A's cluster (first match), D is compared with first members only -> new cluster
    assert anchor_step_groups_reference(batch, True, 0.7) == [0, 1, 0, 2, 0]
    ids, n = anchor_step_groups(batch, True, 0.7)
    assert ids.tolist() == [0, 1, 0, 2, 0] and n == 3
    assert anchor_step_groups_reference(batch, True, 0.9) == [0, 1, 2, 3, 2]
    assert anchor_step_groups_reference(batch, False) == [0, 1, 2, 3, 2]


def test_similarity_never_crosses_task_groups() -> None:
    batch = StepBatch.from_arrays(group_ids=[0, 1], traj_ids=[0, 1], step_rewards=[0, 0], anchors=["same", "same"])
    ids, n = anchor_step_groups(batch, True, 0.5)
    assert n == 2 and ids.tolist() == [0, 1]


def test_bad_config() -> None:
    with pytest.raises(ConfigError, match="mode"):
        GiGPOConfig(mode="zscore")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="similarity_threshold"):
        GiGPOConfig(similarity=True, similarity_threshold=0.0)


@pytest.mark.parametrize("seed", range(24))
def test_vectorised_matches_reference(seed: int) -> None:
    similarity = seed % 3 == 0
    b = random_step_batch(seed, groups=6, trajectories_per_group=1 + seed % 8, mean_steps=1 + seed % 9,
                          continuous_rewards=seed % 2 == 1, fuzzy_anchors=similarity)
    cfg = GiGPOConfig(gamma=[0.95, 1.0, 0.5][seed % 3], omega=[1.0, 0.5][seed % 2],
                      mode="mean_std_norm" if seed % 4 < 2 else "mean_norm", similarity=similarity,
                      similarity_threshold=0.97)
    torch.testing.assert_close(gigpo_advantages(b, cfg).rows, gigpo_advantages_reference(b, cfg).rows,
                               atol=1e-6, rtol=0)
    if similarity:
        ids, _ = anchor_step_groups(b, True, 0.97)
        ref = anchor_step_groups_reference(b, True, 0.97)
        # same partition (ids may be numbered differently)
        assert len(set(zip(ids.tolist(), ref, strict=True))) == len(set(ref)) == len(set(ids.tolist()))
