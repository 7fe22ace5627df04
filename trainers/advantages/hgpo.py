"""HGPO: a hierarchy of step groups keyed by history-consistent anchor sequences.

For the row at position ``i`` of a trajectory in task group ``u`` and each
``k = 1 .. min(H + 1, i + 1)``, the row joins the group ``(k, anchors[i-k+1 .. i])`` within ``u``
(``k = 1``: the current anchor only; keys hold anchors, never actions). In every such group with
at least 2 members::

    a_k = (R - mean) / (std + eps)      mean_std_norm (default), population std (ddof 0)
    a_k = R - mean                      mean_norm

with ``R`` the discounted step return (``r_t`` includes the terminal reward on the last row).
Optionally (``base_group``) the item ``(0, A^E)`` is added, ``A^E`` being GiGPO's episode advantage
in the same mode (no invalid-action penalty). Items whose ``a_k`` is exactly 0 are dropped; the
rest are weighted ``w_k = (k+1)^alpha / (sum_kept (k+1)^alpha + eps)`` and ``A = sum w_k a_k``;
a row with no kept item gets 0. Positions come from row order, so rows must stay in time order.

A row that owns no action token (:meth:`StepBatch.action_row_mask`: a step whose tokens are not
trained) gets 0, as in the reference, which combines the items per token under the action mask:
every item of such a row, the base group's included, is 0 there. The row still counts in the
group statistics of the other rows. A batch without tokens has no such row.

Deliberate difference: groups whose returns are all equal get exactly 0 (the group mean is the
common value), so they are always dropped; a float mean can leave a ``1e-17`` residue that would
otherwise keep such an item with a ``~1e-11`` value and dilute the other items' weights.

The vectorised version loops over ``k`` (``H + 1`` iterations), never over rows: the key of
level ``k`` is the dense id of (key of level ``k - 1``, anchor ``k - 1`` rows back).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from agentgym.errors import ConfigError

from ..batch import StepBatch
from ._common import (
    F64,
    NormMode,
    check_mode,
    dense,
    discounted_returns,
    full_rewards,
    full_rewards_reference,
    group_normalize,
    make_result,
    normalize_reference,
    resolve_config,
    returns_reference,
    rows_by_trajectory,
    trajectory_positions,
)
from .base import AdvantageResult
from .gigpo import gigpo_episode_advantages, gigpo_episode_advantages_reference

__all__ = ["HGPOConfig", "hgpo_advantages", "hgpo_advantages_reference"]


@dataclass(frozen=True)
class HGPOConfig:
    history_length: int = 2
    """``H``: longest history (in previous anchors) a key holds; recipes use 2 or 4."""
    alpha: float = 1.0
    """Weight exponent: ``w_k ∝ (k+1)^alpha`` (0 gives uniform weights)."""
    mode: NormMode = "mean_std_norm"
    gamma: float = 0.95
    """Discount of the step return ``R_t``."""
    base_group: bool = False
    """Add GiGPO's episode advantage as item ``k = 0``."""
    eps: float = 1e-6

    def __post_init__(self) -> None:
        check_mode(self.mode)
        if self.history_length < 0:
            raise ConfigError(f"history_length must be >= 0, got {self.history_length}")


def hgpo_advantages(batch: StepBatch, config: HGPOConfig | Mapping[str, Any] | None = None) -> AdvantageResult:
    """HGPO advantages (vectorised). See the module docstring.

    >>> from agentgym.trainers.batch import StepBatch
    >>> b = StepBatch.from_arrays(group_ids=[0, 0, 0, 0], traj_ids=[0, 0, 1, 1], step_rewards=[0, 0, 0, 0],
    ...                           episode_rewards=[1, 1, 0, 0], anchors=["a", "b", "a", "b"])
    >>> [round(x, 4) for x in hgpo_advantages(b, {"gamma": 1.0, "alpha": 0.0}).rows.tolist()]
    [1.0, 1.0, -1.0, -1.0]
    """
    cfg = resolve_config(config, HGPOConfig)
    scale = cfg.mode == "mean_std_norm"
    r = batch.num_rows
    returns = discounted_returns(full_rewards(batch), batch.traj_ids, cfg.gamma)
    pos = trajectory_positions(batch)
    num = torch.zeros(r, dtype=F64)
    wsum = torch.zeros(r, dtype=F64)
    kept_items = torch.zeros(r, dtype=torch.long)
    if cfg.base_group:
        a0 = gigpo_episode_advantages(batch, cfg.mode, 0.0, cfg.eps)
        kept = a0 != 0
        num += torch.where(kept, a0, 0.0)
        wsum += kept.to(F64)
        kept_items += kept.long()
    key = torch.zeros(r, dtype=torch.long)
    for k in range(1, cfg.history_length + 2):
        rows = torch.nonzero(pos >= k - 1).squeeze(1)
        if rows.numel() == 0:
            break
        if k == 1:
            key, n = dense(batch.group_ids, batch.anchor_index)
        else:
            key_k, n = dense(key[rows], batch.anchor_index[rows - (k - 1)])
            key = torch.zeros(r, dtype=torch.long)
            key[rows] = key_k
        a = group_normalize(returns[rows], key[rows], n, scale=scale, unbiased=False, eps=cfg.eps,
                            singleton="zero")
        kept = a != 0  # singleton groups give 0 and are dropped like any exact zero
        w = float(k + 1) ** cfg.alpha
        num[rows] += torch.where(kept, a * w, 0.0)
        wsum[rows] += kept.to(F64) * w
        kept_items[rows] += kept.long()
    trained = batch.action_row_mask()
    adv = torch.where(trained, num / (wsum + cfg.eps), 0.0)
    kept_items = torch.where(trained, kept_items, 0)
    metrics = {
        "hgpo/kept_items_mean": float(kept_items.double().mean()) if r else 0.0,
        "hgpo/no_item_frac": float((kept_items == 0).double().mean()) if r else 0.0,
    }
    return make_result(batch, adv, metrics)


def hgpo_advantages_reference(batch: StepBatch,
                              config: HGPOConfig | Mapping[str, Any] | None = None) -> AdvantageResult:
    """Plain per-row loop version of :func:`hgpo_advantages` (for tests)."""
    cfg = resolve_config(config, HGPOConfig)
    scale = cfg.mode == "mean_std_norm"
    r = batch.num_rows
    full = full_rewards_reference(batch)
    groups = batch.group_ids.tolist()
    ret = [0.0] * r
    position = [0] * r
    for rows in rows_by_trajectory(batch).values():
        for p, (i, big_r) in enumerate(zip(rows, returns_reference([full[i] for i in rows], cfg.gamma),
                                           strict=True)):
            ret[i] = big_r
            position[i] = p
    # every (task group, k, anchor window) key and its member rows
    members: dict[tuple[int, int, tuple[str, ...]], list[int]] = {}
    for i in range(r):
        for k in range(1, min(cfg.history_length + 1, position[i] + 1) + 1):
            window = tuple(batch.anchors[i - k + 1: i + 1])
            members.setdefault((groups[i], k, window), []).append(i)
    items: list[list[tuple[int, float]]] = [[] for _ in range(r)]
    if cfg.base_group:
        base = gigpo_episode_advantages_reference(batch, cfg.mode, 0.0, cfg.eps)
        for i in range(r):
            items[i].append((0, base[i]))
    for (_, k, _), rows in members.items():
        if len(rows) < 2:
            continue
        for i, a in zip(rows, normalize_reference([ret[i] for i in rows], scale=scale, unbiased=False,
                                                  eps=cfg.eps, singleton="zero"), strict=True):
            items[i].append((k, a))
    trained = [not batch.has_tokens] * r
    for row, act in zip(batch.token_row.flatten().tolist(), batch.action_mask.flatten().tolist(), strict=True):
        if row >= 0 and act > 0:
            trained[row] = True
    adv = [0.0] * r
    for i in range(r):
        kept = [(k, a) for k, a in items[i] if a != 0.0]
        if not kept or not trained[i]:
            continue
        total = sum((k + 1) ** cfg.alpha for k, _ in kept)
        adv[i] = sum((k + 1) ** cfg.alpha / (total + cfg.eps) * a for k, a in kept)
    return make_result(batch, torch.tensor(adv, dtype=F64), {})
