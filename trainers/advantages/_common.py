"""Shared pieces of the estimators: group normalisation, discounted returns, dense keys.

Every vectorised helper has a plain-Python twin used by the ``*_reference`` estimators. Both
compute in float64; the estimators return float32.

Equal values are normalised to exactly 0: when every member of a group has the same value the
group mean is taken to be that value (not ``sum / n``, which can leave a ``1e-17`` residue for
values such as 0.1). HGPO's "drop exact zeros" rule depends on this.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeVar

import torch
from torch import Tensor

from agentgym.errors import ConfigError

from ..batch import StepBatch
from .base import AdvantageResult

C = TypeVar("C")
Singleton = Literal["raw", "zero"]
"""What a one-member group gives: ``"raw"`` = mean 0, std 1 (GRPO, GiGPO episode); ``"zero"`` = 0."""
NormMode = Literal["mean_norm", "mean_std_norm"]
F64 = torch.float64


def resolve_config(config: C | Mapping[str, Any] | None, cls: type[C]) -> C:
    """Accept a config instance, a mapping of its fields (from YAML / CLI), or ``None`` (defaults)."""
    if config is None:
        return cls()
    if isinstance(config, cls):
        return config
    if isinstance(config, Mapping):
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(config) - names)
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} field(s) {unknown}; known: {sorted(names)}")
        return cls(**config)
    raise ConfigError(f"expected {cls.__name__}, a mapping or None, got {type(config).__name__}")


def check_mode(mode: str) -> None:
    if mode not in ("mean_norm", "mean_std_norm"):
        raise ConfigError(f"unknown normalisation mode {mode!r}; use 'mean_norm' or 'mean_std_norm'")


def make_result(batch: StepBatch, rows_f64: Tensor, metrics: dict[str, float]) -> AdvantageResult:
    rows = rows_f64.to(torch.float32)
    if rows.numel():
        metrics = {"adv/mean": float(rows.mean()), "adv/abs_max": float(rows.abs().max()),
                   "adv/zero_frac": float((rows == 0).double().mean()), **metrics}
    return AdvantageResult(rows=rows, tokens=batch.row_to_tokens(rows) if batch.has_tokens else None,
                           metrics=metrics)


# -- vectorised --------------------------------------------------------------------------------
def dense(*keys: Tensor) -> tuple[Tensor, int]:
    """Dense ids (sorted order) of the tuples ``(keys[0][i], keys[1][i], ...)``: ``(ids, count)``.

    Keys must be non-negative. Pairs are combined arithmetically (``a * (max b + 1) + b``) and
    densified with one ``torch.unique`` on a 1-D tensor instead of a lexicographic row sort; an
    intermediate densification happens only if the product could overflow int64.
    """
    ids = keys[0]
    for k in keys[1:]:
        base = int(k.max()) + 1 if k.numel() else 1
        if ids.numel() and (int(ids.max()) + 1) * base >= 2**62:
            ids = torch.unique(ids, return_inverse=True)[1]
        ids = ids * base + k
    if ids.numel() == 0:
        return ids, 0
    uniq, inv = torch.unique(ids, return_inverse=True)
    return inv, int(uniq.numel())


def group_normalize(values: Tensor, gid: Tensor, num_groups: int, *, scale: bool, unbiased: bool,
                    eps: float, singleton: Singleton) -> Tensor:
    """``(v - mean_g) / (std_g + eps)`` (or ``v - mean_g`` when not ``scale``), per group ``gid``.

    ``values`` float64[N]; groups of one member follow ``singleton``.
    """
    if values.numel() == 0:
        return values.clone()
    n = torch.zeros(num_groups, dtype=F64).index_add_(0, gid, torch.ones_like(values))
    mean = torch.zeros(num_groups, dtype=F64).index_add_(0, gid, values) / n
    vmin = torch.full((num_groups,), math.inf, dtype=F64).scatter_reduce_(0, gid, values, "amin")
    vmax = torch.full((num_groups,), -math.inf, dtype=F64).scatter_reduce_(0, gid, values, "amax")
    mean = torch.where(vmin == vmax, vmin, mean)
    dev = values - mean[gid]
    n_row = n[gid]
    if scale:
        ss = torch.zeros(num_groups, dtype=F64).index_add_(0, gid, dev * dev)
        denom = (n - 1.0) if unbiased else n
        std = torch.sqrt(ss / denom.clamp(min=1.0))
        out = dev / (std[gid] + eps)
        raw = values / (1.0 + eps)
    else:
        out = dev
        raw = values
    single = n_row == 1
    if singleton == "raw":
        return torch.where(single, raw, out)
    return torch.where(single, torch.zeros_like(out), out)


def trajectory_positions(batch: StepBatch) -> Tensor:
    """long[R]: position of each row within its trajectory (0, 1, 2 ...), from row order."""
    r = batch.num_rows
    if r == 0:
        return torch.zeros(0, dtype=torch.long)
    starts = torch.cat([torch.ones(1, dtype=torch.bool), batch.traj_ids[1:] != batch.traj_ids[:-1]])
    first = torch.cummax(torch.where(starts, torch.arange(r), torch.zeros(r, dtype=torch.long)), 0).values
    return torch.arange(r) - first


def discounted_returns(rewards: Tensor, traj_ids: Tensor, gamma: float) -> Tensor:
    """``R_t = sum_{k>=t} gamma^(k-t) r_k`` within each trajectory (rows contiguous, time order).

    A log-depth scan: after pass ``d`` each row holds the discounted sum of its next ``2d`` rewards,
    so the loop runs ``ceil(log2(longest trajectory))`` times, never over rows.
    """
    out = rewards.to(F64).clone()
    r = out.numel()
    if r == 0:
        return out
    d = 1
    longest = int(torch.bincount(traj_ids).max())
    while d < longest:
        same = torch.zeros(r, dtype=torch.bool)
        same[: r - d] = traj_ids[d:] == traj_ids[: r - d]
        shifted = torch.zeros_like(out)
        shifted[: r - d] = out[d:]
        out = out + torch.where(same, shifted, torch.zeros_like(shifted)) * (gamma ** d)
        d *= 2
    return out


def full_rewards(batch: StepBatch) -> Tensor:
    """float64[R]: ``r_t`` = step reward, plus the terminal reward on each trajectory's last row."""
    last = batch.last_row_mask().to(F64)
    return batch.step_rewards.to(F64) + batch.episode_rewards.to(F64) * last


def trajectory_scores(batch: StepBatch) -> tuple[Tensor, Tensor]:
    """Per trajectory: ``(score float64[T], group long[T])``; score = sum of ``r_t`` over its rows."""
    t = batch.num_trajectories
    full = full_rewards(batch)
    score = torch.zeros(t, dtype=F64).index_add_(0, batch.traj_ids, full)
    group = torch.zeros(t, dtype=torch.long).scatter_(0, batch.traj_ids, batch.group_ids)
    return score, group


# -- plain python references -----------------------------------------------------------------
def normalize_reference(values: Sequence[float], *, scale: bool, unbiased: bool, eps: float,
                        singleton: Singleton) -> list[float]:
    """The scalar twin of :func:`group_normalize` for one group."""
    n = len(values)
    if n == 1:
        if singleton == "zero":
            return [0.0]
        return [values[0] / (1.0 + eps)] if scale else [values[0]]
    mean = values[0] if all(v == values[0] for v in values) else sum(values) / n
    devs = [v - mean for v in values]
    if not scale:
        return devs
    var = sum(d * d for d in devs) / (n - 1 if unbiased else n)
    std = math.sqrt(var)
    return [d / (std + eps) for d in devs]


def returns_reference(rewards: Sequence[float], gamma: float) -> list[float]:
    """Discounted returns of one trajectory, back to front."""
    out = [0.0] * len(rewards)
    running = 0.0
    for t in reversed(range(len(rewards))):
        running = rewards[t] + gamma * running
        out[t] = running
    return out


def rows_by_trajectory(batch: StepBatch) -> dict[int, list[int]]:
    """Trajectory id -> its row indices in time order."""
    out: dict[int, list[int]] = {}
    for i, t in enumerate(batch.traj_ids.tolist()):
        out.setdefault(t, []).append(i)
    return out


def full_rewards_reference(batch: StepBatch) -> list[float]:
    """``r_t`` per row: step reward, plus the terminal reward on each trajectory's last row."""
    step = batch.step_rewards.double().tolist()
    episode = batch.episode_rewards.double().tolist()
    out = list(step)
    for rows in rows_by_trajectory(batch).values():
        out[rows[-1]] += episode[rows[-1]]
    return out
