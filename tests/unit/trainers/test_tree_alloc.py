from __future__ import annotations

import itertools
import random

import pytest
import torch

from agentgym.errors import ConfigError
from agentgym.trainers.batch import StepBatch
from agentgym.trainers.tree_alloc import (
    allocate_prefix_continuations,
    allocate_root_budget,
    backup_values,
    batch_value_targets,
    best_prefixes,
    prefix_value,
    root_value,
)

torch.set_num_threads(1)


def test_root_value_literals() -> None:
    assert root_value(0.5, 1) == 0.0
    assert root_value(0.5, 2) == 0.5
    assert root_value(0.5, 3) == 0.75
    assert root_value(0.0, 8) == 0.0 and root_value(1.0, 8) == 0.0
    assert root_value(0.2, 2) == pytest.approx(1 - 0.04 - 0.64)


def test_prefix_value_literals() -> None:
    assert prefix_value(0.25, 1.0, 1) == 0.75   # a success from an unlikely prefix: 75% a rerun fails
    assert prefix_value(0.25, 0.0, 1) == 0.25   # a failure from the same prefix
    assert prefix_value(0.25, 1.0, 2) == 0.9375
    assert prefix_value(1.0, 1.0, 5) == 0.0


def _compositions(total: int, n: int, lo: int, hi: int | None) -> list[tuple[int, ...]]:
    top = total if hi is None else hi
    return [c for c in itertools.product(range(lo, top + 1), repeat=n) if sum(c) == total]


@pytest.mark.parametrize("seed", range(30))
def test_root_allocation_is_optimal_against_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randint(1, 4)
    rates = [rng.choice([0.0, 1.0, rng.random(), rng.random(), 0.5]) for _ in range(n)]
    lo = rng.randint(0, 2)
    hi = rng.choice([None, lo + 3])
    budget = rng.randint(n * lo, n * lo + 8 if hi is None else n * hi)
    alloc = allocate_root_budget(rates, budget, min_per_task=lo, max_per_task=hi)
    assert sum(alloc) == budget and all(m >= lo and (hi is None or m <= hi) for m in alloc)
    best = max(sum(root_value(v, m) for v, m in zip(rates, c, strict=True))
               for c in _compositions(budget, n, lo, hi))
    assert sum(root_value(v, m) for v, m in zip(rates, alloc, strict=True)) == pytest.approx(best, abs=1e-12)


def test_root_allocation_hand_worked_and_edges() -> None:
    # extra units: 0.5 gains 0.25, 0.125, 0.0625; 0.95 gains 0.0475, 0.0429, 0.0407; 0.0 gains nothing
    assert allocate_root_budget([0.5, 0.95, 0.0], 12, min_per_task=2) == [5, 5, 2]
    assert allocate_root_budget([0.0, 1.0, 0.0], 9, min_per_task=1) == [3, 3, 3]  # zero gains spread evenly
    assert allocate_root_budget([0.5, 0.99], 8, min_per_task=2) == [6, 2]  # 0.99's gain 0.0099 < 0.5's 0.03125
    assert allocate_root_budget([0.5, 0.99], 8, min_per_task=2, max_per_task=4) == [4, 4]
    with pytest.raises(ConfigError, match="cannot give"):
        allocate_root_budget([0.5, 0.5], 3, min_per_task=2)
    with pytest.raises(ConfigError, match="cap"):
        allocate_root_budget([0.5, 0.5], 10, min_per_task=2, max_per_task=4)
    with pytest.raises(ConfigError, match="probability"):
        allocate_root_budget([1.5], 4)


@pytest.mark.parametrize("seed", range(20))
def test_prefix_allocation_is_optimal_against_brute_force(seed: int) -> None:
    rng = random.Random(100 + seed)
    cands = [(rng.random(), float(rng.random() < 0.5)) for _ in range(rng.randint(1, 4))]
    budget = rng.randint(0, 7)
    alloc = allocate_prefix_continuations(cands, budget)
    assert sum(alloc) == budget
    best = max(sum(prefix_value(v, r, k) for (v, r), k in zip(cands, c, strict=True))
               for c in _compositions(budget, len(cands), 0, None))
    got = sum(prefix_value(v, r, k) for (v, r), k in zip(cands, alloc, strict=True))
    assert got == pytest.approx(best, abs=1e-12)


def test_prefix_choices_hand_worked() -> None:
    cands = [(0.9, 1.0), (0.5, 1.0), (0.2, 1.0), (0.2, 0.0)]
    # gains (1-p) p^k, p = V for successes, 1 - V for failures: 0.1/0.09; 0.5/0.25; 0.8/0.16; 0.2/0.16
    # -> 0.8 (idx 2), 0.5 (1), 0.25 (1), 0.2 (3)
    assert allocate_prefix_continuations(cands, 4) == [0, 2, 1, 1]
    assert allocate_prefix_continuations(cands, 4, max_per_prefix=1) == [1, 1, 1, 1]
    assert best_prefixes(cands, k=2, n=2) == [2, 1]  # V_pref(k=2): 0.19, 0.75, 0.96, 0.36


def test_backup_values_hand_worked() -> None:
    #        0
    #      /   \
    #     1     2 (fail)
    #    / \
    #   3   4        3: success, 4: two rollouts ended here (1, 0)
    values, counts = backup_values([-1, 0, 0, 1, 1], {2: 0.0, 3: 1.0, 4: [1.0, 0.0]})
    assert counts == [4, 3, 1, 1, 2]
    assert values == pytest.approx([0.5, 2 / 3, 0.0, 1.0, 0.5])
    # V(y) = (1/n_y) sum n_c V(c): node 1 = (1*1.0 + 2*0.5) / 3
    assert values[1] == pytest.approx((1 * values[3] + 2 * values[4]) / 3)
    # a rollout ending at an interior node counts as a leaf of that node
    values, counts = backup_values([-1, 0, 1], {1: 0.0, 2: 1.0})
    assert counts == [2, 2, 1] and values == pytest.approx([0.5, 0.5, 1.0])
    assert backup_values([-1, 0], {}) == ([0.0, 0.0], [0, 0])
    with pytest.raises(ConfigError, match="cycle"):
        backup_values([1, 0], {0: 1.0})


def test_batch_value_targets() -> None:
    # A = 1-2-3 (1), B = 1-4 (0), C = 1-2-5 (1), D = 6 (0); group 1: E = 11-12 (0.5)
    b = StepBatch.from_arrays(
        group_ids=[0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1], traj_ids=[0, 0, 0, 1, 1, 2, 2, 2, 3, 4, 4],
        step_rewards=[0] * 11, episode_rewards=[1, 1, 1, 0, 0, 1, 1, 1, 0, 0.5, 0.5],
        tree_node=[1, 2, 3, 1, 4, 1, 2, 5, 6, 11, 12], tree_parent=[0, 1, 2, 0, 1, 0, 1, 2, 0, 10, 11])
    expected = [2 / 3, 1.0, 1.0, 2 / 3, 0.0, 2 / 3, 1.0, 1.0, 0.0, 0.5, 0.5]
    assert batch_value_targets(b).tolist() == pytest.approx(expected)
