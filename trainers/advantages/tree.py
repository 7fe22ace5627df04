"""TreeRL-style advantages on rollout trees.

Tree structure in a :class:`~agentgym.trainers.batch.StepBatch`: per row, ``tree_node`` is the node
the step reaches (the turn-level prefix through this step) and ``tree_parent`` the node it starts
from (the task's root for a first step). Node ids are batch-unique integers; branched trajectories
share the ids of their common prefix (``StepBatch.from_groups`` builds them from
``TrajectoryGroup.parents``). A batch without tree fields is read as one chain per trajectory
below one root per task group.

1. Each trajectory is a leaf (at the ``tree_node`` of its last row) with score ``s`` = the sum of
   its rewards ``r_t``; its leaf value is ``s`` minus the leave-one-out mean of the other
   trajectories' scores in the same task group (0 when it is alone).
2. ``V(x)`` = mean of the leaf values of the trajectories whose leaf lies in the subtree of ``x``
   (so ``V(root) = 0`` whenever the group has two or more trajectories).
3. A step (segment) from ``parent`` to ``node`` gets ``(V(node) - V(parent)) + V(node)``: local
   progress plus global standing. ``scale_by_leaves`` (off, TreeRL's option) divides by
   ``sqrt(number of leaves below node)``.

The vectorised version computes subtree sums by a bottom-up pass over depth levels (a loop over
the tree depth, i.e. the longest trajectory, never over rows or nodes).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from agentgym.errors import ConfigError

from ..batch import StepBatch
from ._common import (
    F64,
    full_rewards_reference,
    make_result,
    resolve_config,
    rows_by_trajectory,
    trajectory_scores,
)
from ._common import trajectory_positions as _positions
from .base import AdvantageResult

__all__ = ["TreeConfig", "tree_advantages", "tree_advantages_reference", "tree_structure"]


@dataclass(frozen=True)
class TreeConfig:
    scale_by_leaves: bool = False
    """Divide a step's advantage by ``sqrt(|leaves below its node|)`` (TreeRL's normalisation)."""


def tree_structure(batch: StepBatch) -> tuple[Tensor, Tensor]:
    """``(tree_node, tree_parent)`` of the batch, or one chain per trajectory when it has none."""
    if batch.tree_node is not None and batch.tree_parent is not None:
        return batch.tree_node, batch.tree_parent
    g = batch.num_groups
    rows = torch.arange(batch.num_rows)
    node = g + rows
    parent = torch.where(_positions(batch) == 0, batch.group_ids, g + rows - 1)
    return node, parent


def _leaf_values(batch: StepBatch) -> Tensor:
    """float64[T]: trajectory score minus the leave-one-out mean of its task group."""
    score, group_t = trajectory_scores(batch)
    g = batch.num_groups
    total = torch.zeros(g, dtype=F64).index_add_(0, group_t, score)
    n = torch.zeros(g, dtype=F64).index_add_(0, group_t, torch.ones_like(score))
    others = (n[group_t] - 1.0).clamp(min=1.0)
    loo = torch.where(n[group_t] > 1, (total[group_t] - score) / others, torch.zeros_like(score))
    return score - loo


def tree_advantages(batch: StepBatch, config: TreeConfig | Mapping[str, Any] | None = None) -> AdvantageResult:
    """Tree advantages (vectorised). See the module docstring.

    >>> from agentgym.trainers.batch import StepBatch
    >>> # two trajectories share their first step (node 1), then branch (nodes 2 and 3)
    >>> b = StepBatch.from_arrays(group_ids=[0, 0, 0, 0], traj_ids=[0, 0, 1, 1], step_rewards=[0] * 4,
    ...                           episode_rewards=[1, 1, 0, 0], tree_node=[1, 2, 1, 3], tree_parent=[0, 1, 0, 1])
    >>> tree_advantages(b).rows.tolist()
    [0.0, 2.0, 0.0, -2.0]
    """
    cfg = resolve_config(config, TreeConfig)
    r = batch.num_rows
    if r == 0:
        return make_result(batch, torch.zeros(0, dtype=F64), {})
    node_raw, parent_raw = tree_structure(batch)
    uniq, inv = torch.unique(torch.cat([node_raw, parent_raw]), return_inverse=True)
    n_nodes = int(uniq.numel())
    node, parent = inv[:r], inv[r:]
    # parent pointer per node; -1 for roots (never reached by a step)
    lo = torch.full((n_nodes,), n_nodes, dtype=torch.long).scatter_reduce_(0, node, parent, "amin")
    hi = torch.full((n_nodes,), -1, dtype=torch.long).scatter_reduce_(0, node, parent, "amax")
    reached = hi >= 0
    if bool((reached & (lo != hi)).any()):
        raise ConfigError("tree: a node has two different parents; tree_node/tree_parent are inconsistent")
    par = torch.where(reached, hi, torch.full_like(hi, -1))
    # depth by frontier expansion from the roots (one iteration per level)
    depth = torch.where(reached, torch.full_like(par, -1), torch.zeros_like(par))
    level = 0
    while True:
        frontier = (depth == -1) & (depth[par.clamp(min=0)] == level)
        if not bool(frontier.any()):
            break
        level += 1
        depth[frontier] = level
    if bool((depth == -1).any()):
        raise ConfigError("tree: tree_parent pointers contain a cycle")
    # leaf values placed at leaf nodes, then summed bottom-up level by level
    last = batch.last_row_mask()
    leaf_node = torch.zeros(batch.num_trajectories, dtype=torch.long)
    leaf_node[batch.traj_ids[last]] = node[last]
    total = torch.zeros(n_nodes, dtype=F64).index_add_(0, leaf_node, _leaf_values(batch))
    count = torch.zeros(n_nodes, dtype=F64).index_add_(0, leaf_node, torch.ones(leaf_node.shape[0], dtype=F64))
    order = torch.argsort(depth, descending=True, stable=True)
    sizes = torch.bincount(depth, minlength=level + 1).flip(0).tolist()  # deepest level first
    start = 0
    for size in sizes[:-1]:  # every level but the roots pushes into its parents
        nodes = order[start:start + size]
        total.index_add_(0, par[nodes], total[nodes])
        count.index_add_(0, par[nodes], count[nodes])
        start += size
    value = torch.where(count > 0, total / count.clamp(min=1.0), torch.zeros_like(total))
    adv = 2.0 * value[node] - value[parent]
    if cfg.scale_by_leaves:
        adv = adv / torch.sqrt(count[node].clamp(min=1.0))
    return make_result(batch, adv, {"tree/nodes": float(n_nodes), "tree/depth": float(level)})


def tree_advantages_reference(batch: StepBatch,
                              config: TreeConfig | Mapping[str, Any] | None = None) -> AdvantageResult:
    """Plain loop version of :func:`tree_advantages` (for tests)."""
    cfg = resolve_config(config, TreeConfig)
    node_t, parent_t = tree_structure(batch)
    nodes, parents = node_t.tolist(), parent_t.tolist()
    full = full_rewards_reference(batch)
    groups = batch.group_ids.tolist()
    by_traj = rows_by_trajectory(batch)
    score = {t: sum(full[i] for i in rows) for t, rows in by_traj.items()}
    members: dict[int, list[int]] = {}
    for t, rows in by_traj.items():
        members.setdefault(groups[rows[0]], []).append(t)
    leaf_value: dict[int, float] = {}
    for trajs in members.values():
        for t in trajs:
            others = [score[u] for u in trajs if u != t]
            leaf_value[t] = score[t] - (sum(others) / len(others) if others else 0.0)
    children: dict[int, set[int]] = {}
    for n, p in zip(nodes, parents, strict=True):
        children.setdefault(p, set()).add(n)
    leaves_at: dict[int, list[int]] = {}
    for t, rows in by_traj.items():
        leaves_at.setdefault(nodes[rows[-1]], []).append(t)

    def leaves_below(x: int) -> list[int]:
        out: list[int] = []
        stack = [x]
        while stack:
            y = stack.pop()
            out.extend(leaves_at.get(y, []))
            stack.extend(children.get(y, ()))
        return out

    def value(x: int) -> float:
        below = leaves_below(x)
        return sum(leaf_value[t] for t in below) / len(below) if below else 0.0

    adv = []
    for n, p in zip(nodes, parents, strict=True):
        a = (value(n) - value(p)) + value(n)
        if cfg.scale_by_leaves:
            a /= math.sqrt(max(len(leaves_below(n)), 1))
        adv.append(a)
    return make_result(batch, torch.tensor(adv, dtype=F64), {})
