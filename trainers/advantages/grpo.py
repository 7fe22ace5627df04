"""GRPO and Dr.GRPO: group-relative advantages of the trajectory score, spread over the step rows.

A trajectory's score ``s`` is the sum of its rewards ``r_t`` (terminal reward included). Within
each task group: ``A = (s - mean) / (std + eps)`` with unbiased std (GRPO) or ``A = s - mean``
(Dr.GRPO); every row of a trajectory gets the trajectory's advantage.

``stats_over`` says what the mean and std run over:

* ``"steps"`` (default, the verl-agent reference: ``compute_mean_std_cross_steps=True``): every
  step row carries its trajectory's score, so longer trajectories weigh more — the same
  statistics as GiGPO's episode advantage. A group of one *row* uses mean 0, std 1.
* ``"trajectories"``: each trajectory counts once (textbook GRPO). A group of one trajectory
  uses mean 0, std 1.

With mean 0, std 1 GRPO gives ``s / (1 + eps)`` and Dr.GRPO gives ``s``.

>>> from agentgym.trainers.batch import StepBatch
>>> b = StepBatch.from_arrays(group_ids=[0, 0, 0], traj_ids=[0, 0, 1], step_rewards=[0, 1, 3])
>>> drgrpo_advantages(b, {"stats_over": "trajectories"}).rows.tolist()
[-1.0, -1.0, 1.0]
>>> [round(x, 4) for x in drgrpo_advantages(b).rows.tolist()]   # rows: mean (1 + 1 + 3) / 3
[-0.6667, -0.6667, 1.3333]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch

from agentgym.errors import ConfigError

from ..batch import StepBatch
from ._common import (
    dense,
    full_rewards_reference,
    group_normalize,
    make_result,
    normalize_reference,
    resolve_config,
    rows_by_trajectory,
    trajectory_scores,
)
from .base import AdvantageResult

__all__ = [
    "DrGRPOConfig",
    "GRPOConfig",
    "drgrpo_advantages",
    "drgrpo_advantages_reference",
    "grpo_advantages",
    "grpo_advantages_reference",
]


StatsOver = Literal["steps", "trajectories"]


def check_stats_over(stats_over: str) -> None:
    if stats_over not in ("steps", "trajectories"):
        raise ConfigError(f"stats_over must be 'steps' or 'trajectories', got {stats_over!r}")


@dataclass(frozen=True)
class GRPOConfig:
    eps: float = 1e-6
    """Added to the std before dividing."""
    stats_over: StatsOver = "steps"
    """``"steps"``: mean/std over step rows (verl-agent reference); ``"trajectories"``: each once."""

    def __post_init__(self) -> None:
        check_stats_over(self.stats_over)


@dataclass(frozen=True)
class DrGRPOConfig:
    """Dr.GRPO: GRPO without the std division."""

    stats_over: StatsOver = "steps"
    """``"steps"``: mean over step rows (verl-agent reference); ``"trajectories"``: each once."""

    def __post_init__(self) -> None:
        check_stats_over(self.stats_over)


def trajectory_group_advantages(batch: StepBatch, traj_group: torch.Tensor, *, scale: bool, eps: float,
                                stats_over: StatsOver) -> torch.Tensor:
    """float64[R]: normalise trajectory scores within ``traj_group`` (long[T]), per row or per
    trajectory (``stats_over``), and spread over rows."""
    score, _ = trajectory_scores(batch)
    gid, g = dense(traj_group)
    if stats_over == "steps":
        return group_normalize(score[batch.traj_ids], gid[batch.traj_ids], g, scale=scale, unbiased=True,
                               eps=eps, singleton="raw")
    adv_t = group_normalize(score, gid, g, scale=scale, unbiased=True, eps=eps, singleton="raw")
    return adv_t[batch.traj_ids]


def trajectory_group_advantages_reference(batch: StepBatch, traj_key: Mapping[int, Any], *, scale: bool,
                                          eps: float, stats_over: StatsOver) -> list[float]:
    """Per-row loop twin of :func:`trajectory_group_advantages`; ``traj_key``: traj id -> group key."""
    full = full_rewards_reference(batch)
    by_traj = rows_by_trajectory(batch)
    score = {t: sum(full[i] for i in rows) for t, rows in by_traj.items()}
    adv = [0.0] * batch.num_rows
    if stats_over == "steps":
        member_rows: dict[Any, list[int]] = {}
        for i, t in enumerate(batch.traj_ids.tolist()):
            member_rows.setdefault(traj_key[t], []).append(i)
        traj_of = batch.traj_ids.tolist()
        for rows in member_rows.values():
            for i, a in zip(rows, normalize_reference([score[traj_of[i]] for i in rows], scale=scale, unbiased=True,
                                                      eps=eps, singleton="raw"), strict=True):
                adv[i] = a
        return adv
    members: dict[Any, list[int]] = {}
    for t in by_traj:
        members.setdefault(traj_key[t], []).append(t)
    for trajs in members.values():
        for t, a in zip(trajs, normalize_reference([score[t] for t in trajs], scale=scale, unbiased=True, eps=eps,
                                                    singleton="raw"), strict=True):
            for i in by_traj[t]:
                adv[i] = a
    return adv


def _group_of_traj(batch: StepBatch) -> dict[int, int]:
    return dict(zip(batch.traj_ids.tolist(), batch.group_ids.tolist(), strict=True))


def grpo_advantages(batch: StepBatch, config: GRPOConfig | Mapping[str, Any] | None = None) -> AdvantageResult:
    """GRPO: ``(s - mean_u) / (std_u + eps)`` per task group, unbiased std (see the module docstring)."""
    cfg = resolve_config(config, GRPOConfig)
    _, group_t = trajectory_scores(batch)
    adv = trajectory_group_advantages(batch, group_t, scale=True, eps=cfg.eps, stats_over=cfg.stats_over)
    return make_result(batch, adv, {})


def grpo_advantages_reference(batch: StepBatch,
                              config: GRPOConfig | Mapping[str, Any] | None = None) -> AdvantageResult:
    """Plain loop version of :func:`grpo_advantages` (for tests)."""
    cfg = resolve_config(config, GRPOConfig)
    adv = trajectory_group_advantages_reference(batch, _group_of_traj(batch), scale=True, eps=cfg.eps,
                                                stats_over=cfg.stats_over)
    return make_result(batch, torch.tensor(adv, dtype=torch.float64), {})


def drgrpo_advantages(batch: StepBatch,
                      config: DrGRPOConfig | Mapping[str, Any] | None = None) -> AdvantageResult:
    """Dr.GRPO: ``s - mean_u`` per task group, no std division (see the module docstring)."""
    cfg = resolve_config(config, DrGRPOConfig)
    _, group_t = trajectory_scores(batch)
    adv = trajectory_group_advantages(batch, group_t, scale=False, eps=0.0, stats_over=cfg.stats_over)
    return make_result(batch, adv, {})


def drgrpo_advantages_reference(batch: StepBatch,
                                config: DrGRPOConfig | Mapping[str, Any] | None = None) -> AdvantageResult:
    """Plain loop version of :func:`drgrpo_advantages` (for tests)."""
    cfg = resolve_config(config, DrGRPOConfig)
    adv = trajectory_group_advantages_reference(batch, _group_of_traj(batch), scale=False, eps=0.0,
                                                stats_over=cfg.stats_over)
    return make_result(batch, torch.tensor(adv, dtype=torch.float64), {})
