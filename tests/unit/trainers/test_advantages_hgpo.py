from __future__ import annotations

import pytest
import torch

from agentgym.errors import ConfigError
from agentgym.trainers.advantages.hgpo import HGPOConfig, hgpo_advantages, hgpo_advantages_reference
from agentgym.trainers.advantages.synthetic import random_step_batch
from agentgym.trainers.batch import StepBatch

torch.set_num_threads(1)


def _three_paths() -> StepBatch:
    # traj0 a-b-c succeeds; traj1 a-d-c and traj2 a-b-c fail (gamma 1: R = 1 on traj0's rows, else 0)
    return StepBatch.from_arrays(group_ids=[0] * 9, traj_ids=[0, 0, 0, 1, 1, 1, 2, 2, 2], step_rewards=[0] * 9,
                                 episode_rewards=[1, 1, 1, 0, 0, 0, 0, 0, 0], anchors=list("abcadcabc"))


def test_hand_worked_history_groups() -> None:
    # k=1: {a}: R [1,0,0] mean 1/3, pop std 0.4714045 -> +1.4142106 / -0.7071053; {b}: [1,0] -> +-0.999998;
    #      {d}: singleton (no item); {c}: like {a}
    # k=2: (a,b): [1,0] -> +-0.999998; (b,c): [1,0] -> +-0.999998; (a,d), (d,c): singletons
    # weights (k+1)^1: w1 = 2, w2 = 3
    out = hgpo_advantages(_three_paths(), HGPOConfig(history_length=1, gamma=1.0))
    expected = [
        1.4142099,                                   # a: 2*1.4142106 / (2 + eps)
        0.9999978,                                   # b: (2 + 3) * 0.999998 / (5 + eps)
        (2 * 1.4142106 + 3 * 0.999998) / 5.000001,   # c after b
        -0.7071049, 0.0, -0.7071049,                 # traj1: d has no group at any k -> 0
        -0.7071049, -0.9999978, (2 * -0.7071053 + 3 * -0.999998) / 5.000001,
    ]
    assert out.rows.tolist() == pytest.approx(expected, abs=1e-6)
    assert out.metrics["hgpo/no_item_frac"] == pytest.approx(1 / 9)


def test_alpha_zero_is_uniform_and_history_zero_is_current_state_only() -> None:
    b = _three_paths()
    uniform = hgpo_advantages(b, HGPOConfig(history_length=1, gamma=1.0, alpha=0.0)).rows
    assert uniform[2].item() == pytest.approx((1.4142106 + 0.999998) / (2 + 1e-6), abs=1e-6)
    current_only = hgpo_advantages(b, HGPOConfig(history_length=0, gamma=1.0)).rows
    assert current_only[1].item() == pytest.approx(0.999998 * 2 / (2 + 1e-6), abs=1e-6)


def test_base_group_adds_gigpo_episode_item_with_weight_one() -> None:
    # A^E over 9 rows, scores [1,1,1,0,...]: mean 1/3, unbiased std 0.5 -> +1.3333307 / -0.6666653
    out = hgpo_advantages(_three_paths(), HGPOConfig(history_length=1, gamma=1.0, base_group=True)).rows
    assert out[4].item() == pytest.approx(-0.6666653 / (1 + 1e-6), abs=1e-6)  # the d row: only the base item
    assert out[0].item() == pytest.approx((1.3333307 + 2 * 1.4142106) / (3 + 1e-6), abs=1e-6)


def test_exact_zero_items_are_dropped_not_averaged() -> None:
    # s is reached via x (both succeed) and via y (both fail). k=1 {s}: [1,1,0,0] -> +-0.999998.
    # k=2 (x,s) = [1,1] and (y,s) = [0,0] are exact zeros: dropped, so they do not dilute k=1.
    # The x and y rows themselves: equal returns -> only zero items -> A = 0.
    b = StepBatch.from_arrays(group_ids=[0] * 8, traj_ids=[0, 0, 1, 1, 2, 2, 3, 3], step_rewards=[0] * 8,
                              episode_rewards=[1, 1, 1, 1, 0, 0, 0, 0], anchors=list("xsxsysys"))
    out = hgpo_advantages(b, HGPOConfig(history_length=1, gamma=1.0)).rows.tolist()
    hi = 2 * 0.999998 / (2 + 1e-6)
    assert out == pytest.approx([0.0, hi, 0.0, hi, 0.0, -hi, 0.0, -hi], abs=1e-6)
    assert out[0] == 0.0 and out[4] == 0.0


def test_member_exactly_at_the_mean_is_dropped() -> None:
    # {s} returns [0, 0.5, 1]: the middle member's a_1 is exactly 0 -> dropped -> no item -> 0
    b = StepBatch.from_arrays(group_ids=[0, 0, 0], traj_ids=[0, 1, 2], step_rewards=[0, 0, 0],
                              episode_rewards=[0, 0.5, 1], anchors=["s", "s", "s"])
    out = hgpo_advantages(b, HGPOConfig(gamma=1.0, mode="mean_norm")).rows.tolist()
    assert out == pytest.approx([-0.5 * 2 / (2 + 1e-6), 0.0, 0.5 * 2 / (2 + 1e-6)], abs=1e-7)
    assert out[1] == 0.0


def test_same_anchor_in_other_task_group_is_not_shared() -> None:
    b = StepBatch.from_arrays(group_ids=[0, 1], traj_ids=[0, 1], step_rewards=[0, 0], episode_rewards=[1, 0],
                              anchors=["s", "s"])
    assert hgpo_advantages(b).rows.tolist() == [0.0, 0.0]


def test_state_seen_twice_in_one_trajectory() -> None:
    # traj0 visits s twice (R 0.5 then 1 with gamma 0.5); traj1 visits s once (R 0): {s} = [0.5, 1, 0]
    b = StepBatch.from_arrays(group_ids=[0, 0, 0], traj_ids=[0, 0, 1], step_rewards=[0, 0, 0],
                              episode_rewards=[1, 1, 0], anchors=["s", "s", "s"])
    out = hgpo_advantages(b, HGPOConfig(history_length=0, gamma=0.5, mode="mean_norm")).rows.tolist()
    w = 2 / (2 + 1e-6)
    assert out == pytest.approx([0.0, 0.5 * w, -0.5 * w], abs=1e-7)


def _with_tokens(b: StepBatch, untrained: set[int]) -> StepBatch:
    """``b`` with one sequence per trajectory, two tokens per row (observation, action); the rows in
    ``untrained`` get no action token (their action is masked out, e.g. a call that was not trained)."""
    traj = b.traj_ids.tolist()
    n_traj = b.num_trajectories
    length = 2 * max(traj.count(t) for t in range(n_traj))
    token_row = [[-1] * length for _ in range(n_traj)]
    action = [[0] * length for _ in range(n_traj)]
    pos = [0] * n_traj
    for i, t in enumerate(traj):
        token_row[t][pos[t]: pos[t] + 2] = [i, i]
        action[t][pos[t] + 1] = 0 if i in untrained else 1
        pos[t] += 2
    attention = [[1 if r >= 0 else 0 for r in row] for row in token_row]
    return StepBatch.from_arrays(
        group_ids=b.group_ids, traj_ids=b.traj_ids, step_rewards=b.step_rewards, episode_rewards=b.episode_rewards,
        anchors=b.anchors, valid=b.valid, input_ids=attention, attention_mask=attention, action_mask=action,
        token_row=token_row,
    )


def test_row_without_action_tokens_gets_zero_even_with_the_base_group() -> None:
    # Row 4 (the d row of traj1) has no action token. With the base group it has one item, A^E = -0.667:
    # the reference zeroes a row with nothing trained, so its advantage is 0, not -0.667.
    cfg = HGPOConfig(history_length=1, gamma=1.0, base_group=True)
    untrained = _with_tokens(_three_paths(), {4})
    out = hgpo_advantages(untrained, cfg)
    assert out.rows[4].item() == 0.0
    assert hgpo_advantages_reference(untrained, cfg).rows[4].item() == 0.0
    # row 6 (traj2's a, kept items at k = 0 and k = 1) without its action tokens: 0 as well
    both = hgpo_advantages(_with_tokens(_three_paths(), {4, 6}), cfg).rows
    assert both[6].item() == 0.0
    # the other rows keep their values: the untrained rows still count in the group statistics
    plain = hgpo_advantages(_three_paths(), cfg).rows
    assert plain[4].item() == pytest.approx(-0.6666653 / (1 + 1e-6), abs=1e-6)
    assert plain[6].item() != 0.0
    keep = [i for i in range(9) if i not in (4, 6)]
    assert torch.equal(both[keep], plain[keep])
    assert torch.equal(out.tokens, untrained.row_to_tokens(out.rows))  # tokens were 0 there already


@pytest.mark.parametrize("seed", range(8))
def test_vectorised_matches_reference_with_untrained_rows(seed: int) -> None:
    b = random_step_batch(seed, groups=3, trajectories_per_group=2 + seed % 5, mean_steps=2 + seed % 4,
                          anchors_per_group=2 + seed % 3)
    g = torch.Generator().manual_seed(seed)
    untrained = set(torch.nonzero(torch.rand(b.num_rows, generator=g) < 0.3).flatten().tolist())
    tb = _with_tokens(b, untrained)
    cfg = HGPOConfig(history_length=[0, 1, 2, 4][seed % 4], base_group=seed % 2 == 0)
    vec = hgpo_advantages(tb, cfg).rows
    ref = hgpo_advantages_reference(tb, cfg).rows
    torch.testing.assert_close(vec, ref, atol=1e-6, rtol=0)
    assert torch.equal(vec == 0, ref == 0)
    assert bool((vec[sorted(untrained)] == 0).all())


def test_bad_config() -> None:
    with pytest.raises(ConfigError, match="history_length"):
        HGPOConfig(history_length=-1)


@pytest.mark.parametrize("seed", range(24))
def test_vectorised_matches_reference(seed: int) -> None:
    b = random_step_batch(seed, groups=5, trajectories_per_group=1 + seed % 8, mean_steps=1 + seed % 9,
                          anchors_per_group=2 + seed % 5, continuous_rewards=seed % 5 == 4)
    cfg = HGPOConfig(history_length=[0, 1, 2, 4][seed % 4], alpha=[1.0, 0.0, 2.0][seed % 3],
                     mode="mean_std_norm" if seed % 2 else "mean_norm", gamma=[0.95, 1.0][seed % 2],
                     base_group=seed % 3 == 1)
    vec = hgpo_advantages(b, cfg).rows
    ref = hgpo_advantages_reference(b, cfg).rows
    torch.testing.assert_close(vec, ref, atol=1e-6, rtol=0)
    assert torch.equal(vec == 0, ref == 0)  # the drop rule decides the same items
