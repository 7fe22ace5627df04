"""Tree allocation (TRACE-style): spend the rollout budget where outcomes will differ.

A group whose samples all succeed or all fail has zero group-relative advantage and teaches
nothing, so the budget goes where a group is likely to hold both outcomes.

* **Root allocation** — split ``M`` rollouts over tasks with predicted success rates ``v_i``:
  maximise ``sum_i V_root(v_i, m_i)``, ``V_root(v, m) = 1 - v^m - (1 - v)^m`` (the probability
  that ``m`` samples hold a success and a failure), subject to ``sum m_i = M`` and
  ``m_min <= m_i (<= m_max)``. :func:`allocate_root_budget` is greedy on the marginal gain.
* **Prefix expansion** — a finished rollout with outcome ``r`` and a prefix ``H`` of predicted
  success ``V(H)``: ``k`` more continuations from ``H`` reach the other outcome at least once with
  probability ``V_pref = 1 - [r V(H) + (1 - r)(1 - V(H))]^k``. :func:`allocate_prefix_continuations`
  is greedy on its marginal gain; :func:`best_prefixes` picks the prefixes to give ``k`` each.
* **Value targets** — the predictor ``V(H)`` is trained on outcomes backed up through the tree:
  ``V(y) = (1/n_y) sum_{c in children(y)} n_c V(c)``, ``n`` = leaves below (:func:`backup_values`).

Why greedy is optimal. Both objectives are separable sums of functions of one integer each, and
each function has non-increasing increments:

* ``V_root(v, m+1) - V_root(v, m) = v^m (1 - v) + (1 - v)^m v`` — a sum of two non-increasing
  geometric sequences in ``m`` (``0 <= v <= 1``), so ``V_root`` is concave in ``m``;
* ``V_pref(k+1) - V_pref(k) = p^k (1 - p)`` with ``p = r V + (1-r)(1-V)`` in ``[0, 1]`` — likewise.

Maximising a separable concave function under one budget constraint with lower/upper bounds is
solved exactly by starting at the lower bounds and repeatedly giving one unit to the item with
the largest marginal gain (Gross 1956; the exchange argument: any allocation that differs from the
greedy one can swap a unit from an item whose last increment is smaller to one whose next
increment is larger without losing value). The tests check this against brute force.
Ties go to the item with fewer units, then the lower index, so the split is deterministic and
spreads evenly when every gain is 0 (``v`` of exactly 0 or 1).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from agentgym.errors import ConfigError

from .batch import StepBatch

__all__ = [
    "allocate_prefix_continuations",
    "allocate_root_budget",
    "backup_values",
    "batch_value_targets",
    "best_prefixes",
    "prefix_value",
    "root_value",
]


def root_value(v: float, m: int) -> float:
    """``V_root(v, m) = 1 - v^m - (1 - v)^m``: chance that ``m`` samples hold both outcomes.

    >>> root_value(0.5, 2), root_value(0.5, 1), round(root_value(0.9, 8), 4)
    (0.5, 0.0, 0.5695)
    """
    return 1.0 - v ** m - (1.0 - v) ** m


def prefix_value(value: float, outcome: float, k: int) -> float:
    """``V_pref = 1 - [r V + (1 - r)(1 - V)]^k``: chance that ``k`` continuations from a prefix of
    predicted success ``V`` reach an outcome other than the observed ``r`` at least once.

    >>> prefix_value(0.25, 1.0, 2)   # a success whose prefix looked unlikely to succeed
    0.9375
    """
    p_same = outcome * value + (1.0 - outcome) * (1.0 - value)
    return 1.0 - p_same ** k


def _check_probability(name: str, xs: Sequence[float]) -> None:
    for i, x in enumerate(xs):
        if not 0.0 <= x <= 1.0:
            raise ConfigError(f"{name}[{i}] = {x} is not a probability in [0, 1]")


def _greedy(start: list[int], budget: int, cap: int | None, increment: Callable[[int, int], float]) -> list[int]:
    """Give ``budget`` units one at a time to the item with the largest ``increment(i, m)``."""
    alloc = list(start)
    heap = [(-increment(i, m), m, i) for i, m in enumerate(alloc) if cap is None or m < cap]
    heapq.heapify(heap)
    for _ in range(budget):
        if not heap:
            raise ConfigError(f"budget exceeds {len(alloc)} items x cap {cap}; raise the cap or lower the budget")
        _, m, i = heapq.heappop(heap)
        alloc[i] = m + 1
        if cap is None or m + 1 < cap:
            heapq.heappush(heap, (-increment(i, m + 1), m + 1, i))
    return alloc


def allocate_root_budget(success_rates: Sequence[float], budget: int, min_per_task: int = 2,
                         max_per_task: int | None = None) -> list[int]:
    """Rollouts per task maximising ``sum_i V_root(v_i, m_i)`` with ``sum m_i = budget``.

    >>> allocate_root_budget([0.5, 0.95, 0.0], 12, min_per_task=2)
    [5, 5, 2]
    """
    _check_probability("success_rates", success_rates)
    n = len(success_rates)
    if min_per_task < 0 or budget < n * min_per_task:
        raise ConfigError(f"budget {budget} cannot give {n} tasks {min_per_task} rollouts each")
    if max_per_task is not None and max_per_task < min_per_task:
        raise ConfigError(f"max_per_task {max_per_task} < min_per_task {min_per_task}")

    def increment(i: int, m: int) -> float:
        v = success_rates[i]
        return v ** m * (1.0 - v) + (1.0 - v) ** m * v

    return _greedy([min_per_task] * n, budget - n * min_per_task, max_per_task, increment)


def allocate_prefix_continuations(candidates: Sequence[tuple[float, float]], budget: int,
                                  max_per_prefix: int | None = None) -> list[int]:
    """Extra continuations per prefix, maximising ``sum V_pref``; ``candidates`` are ``(V(H), r)``.

    >>> allocate_prefix_continuations([(0.9, 1.0), (0.5, 1.0), (0.2, 1.0)], 4)
    [0, 2, 2]
    """
    _check_probability("prefix values", [c[0] for c in candidates])
    _check_probability("outcomes", [c[1] for c in candidates])
    if budget < 0:
        raise ConfigError(f"budget must be >= 0, got {budget}")

    def increment(i: int, k: int) -> float:
        value, outcome = candidates[i]
        p_same = outcome * value + (1.0 - outcome) * (1.0 - value)
        return p_same ** k * (1.0 - p_same)

    return _greedy([0] * len(candidates), budget, max_per_prefix, increment)


def best_prefixes(candidates: Sequence[tuple[float, float]], k: int, n: int) -> list[int]:
    """Indices of the ``n`` prefixes with the largest ``V_pref`` for ``k`` continuations each
    (best first; ties to the lower index)."""
    scores = [prefix_value(v, r, k) for v, r in candidates]
    return sorted(range(len(candidates)), key=lambda i: (-scores[i], i))[:n]


def backup_values(parents: Sequence[int], leaf_values: Mapping[int, float | Sequence[float]]) -> tuple[list[float], list[int]]:
    """Back values up a tree: ``V(y) = (1/n_y) sum_c n_c V(c)``, ``n`` = leaves below.

    ``parents[i]`` is node ``i``'s parent (-1 for a root). ``leaf_values`` maps a node to the
    outcome of the rollout(s) that ended there (a list when several did). A node that both ends a
    rollout and has children counts its own outcomes as leaves too, which keeps ``V(y)`` the mean
    outcome of every rollout through ``y``. Nodes with no rollout below get 0 and ``n = 0``.
    Returns ``(values, leaf_counts)``.

    >>> backup_values([-1, 0, 0, 1, 1], {2: 0.0, 3: 1.0, 4: 1.0})
    ([0.6666666666666666, 1.0, 0.0, 1.0, 1.0], [3, 2, 1, 1, 1])
    """
    n_nodes = len(parents)
    total = [0.0] * n_nodes
    count = [0] * n_nodes
    for node, vals in leaf_values.items():
        seq = [float(vals)] if isinstance(vals, (int, float)) else [float(x) for x in vals]
        total[node] += sum(seq)
        count[node] += len(seq)
    depth = [-1] * n_nodes
    for i in range(n_nodes):  # iterative depth with path compression
        path: list[int] = []
        j = i
        while j != -1 and depth[j] == -1:
            if len(path) > n_nodes:
                raise ConfigError("backup_values: parents contain a cycle")
            path.append(j)
            j = parents[j]
        d = 0 if j == -1 else depth[j] + 1
        for node in reversed(path):
            depth[node] = d
            d += 1
    for node in sorted(range(n_nodes), key=lambda x: -depth[x]):
        p = parents[node]
        if p != -1:
            total[p] += total[node]
            count[p] += count[node]
    values = [total[i] / count[i] if count[i] else 0.0 for i in range(n_nodes)]
    return values, count


def batch_value_targets(batch: StepBatch) -> Tensor:
    """float[R]: the backed-up value of each row's ``tree_node`` (mean score of every trajectory
    through that prefix), from the batch's tree (one chain per trajectory when it has none). These
    are the prefix predictor's training targets; scores are trajectory reward sums (use 0/1 rewards
    for success probabilities)."""
    from .advantages.tree import tree_structure  # late: keeps this module light for planners

    node_t, parent_t = tree_structure(batch)
    if batch.num_rows == 0:
        return torch.zeros(0)
    uniq, inv = torch.unique(torch.cat([node_t, parent_t]), return_inverse=True)
    r = batch.num_rows
    node, parent = inv[:r].tolist(), inv[r:].tolist()
    parents = [-1] * int(uniq.numel())
    for n, p in zip(node, parent, strict=True):
        parents[n] = p
    full = batch.full_step_rewards().double()
    score = torch.zeros(batch.num_trajectories, dtype=torch.float64).index_add_(0, batch.traj_ids, full).tolist()
    last = batch.last_row_mask()
    leaves: dict[int, list[float]] = {}
    for row in torch.nonzero(last).squeeze(1).tolist():
        leaves.setdefault(node[row], []).append(score[int(batch.traj_ids[row])])
    values, _ = backup_values(parents, leaves)
    return torch.tensor([values[n] for n in node], dtype=torch.float32)
