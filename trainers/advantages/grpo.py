"""GRPO and Dr.GRPO: trajectory-level group-relative advantages, spread over the step rows.

A trajectory's score ``s`` is the sum of its rewards ``r_t`` (terminal reward included). Within
each task group: ``A = (s - mean) / (std + eps)`` with unbiased std (GRPO) or ``A = s - mean``
(Dr.GRPO). Each trajectory counts once, however many steps it has (contrast GiGPO's episode
advantage, which weighs rows). A group of one trajectory uses mean 0, std 1, so GRPO gives
``s / (1 + eps)`` and Dr.GRPO gives ``s``. Every row of a trajectory gets the trajectory's advantage.

>>> from agentgym.trainers.batch import StepBatch
>>> b = StepBatch.from_arrays(group_ids=[0, 0, 0], traj_ids=[0, 0, 1], step_rewards=[0, 1, 3])
>>> drgrpo_advantages(b).rows.tolist()
[-1.0, -1.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

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


@dataclass(frozen=True)
class GRPOConfig:
    eps: float = 1e-6
    """Added to the std before dividing."""


@dataclass(frozen=True)
class DrGRPOConfig:
    """Dr.GRPO has no knobs: it is GRPO without the std division."""


def trajectory_group_advantages(batch: StepBatch, traj_group: torch.Tensor, *, scale: bool,
                                eps: float) -> torch.Tensor:
    """float64[R]: normalise trajectory scores within ``traj_group`` (long[T]) and spread over rows."""
    score, _ = trajectory_scores(batch)
    gid, g = dense(traj_group)
    adv_t = group_normalize(score, gid, g, scale=scale, unbiased=True, eps=eps, singleton="raw")
    return adv_t[batch.traj_ids]


def trajectory_group_advantages_reference(batch: StepBatch, traj_key: Mapping[int, Any], *, scale: bool,
                                          eps: float) -> list[float]:
    """Per-row loop twin of :func:`trajectory_group_advantages`; ``traj_key``: traj id -> group key."""
    full = full_rewards_reference(batch)
    by_traj = rows_by_trajectory(batch)
    members: dict[Any, list[int]] = {}
    for t in by_traj:
        members.setdefault(traj_key[t], []).append(t)
    adv = [0.0] * batch.num_rows
    for trajs in members.values():
        scores = [sum(full[i] for i in by_traj[t]) for t in trajs]
        for t, a in zip(trajs, normalize_reference(scores, scale=scale, unbiased=True, eps=eps,
                                                    singleton="raw"), strict=True):
            for i in by_traj[t]:
                adv[i] = a
    return adv


def _group_of_traj(batch: StepBatch) -> dict[int, int]:
    return dict(zip(batch.traj_ids.tolist(), batch.group_ids.tolist(), strict=True))


def grpo_advantages(batch: StepBatch, config: GRPOConfig | Mapping[str, Any] | None = None) -> AdvantageResult:
    """GRPO: ``(s - mean_u) / (std_u + eps)`` per task group, unbiased std."""
    cfg = resolve_config(config, GRPOConfig)
    _, group_t = trajectory_scores(batch)
    return make_result(batch, trajectory_group_advantages(batch, group_t, scale=True, eps=cfg.eps), {})


def grpo_advantages_reference(batch: StepBatch,
                              config: GRPOConfig | Mapping[str, Any] | None = None) -> AdvantageResult:
    """Plain loop version of :func:`grpo_advantages` (for tests)."""
    cfg = resolve_config(config, GRPOConfig)
    adv = trajectory_group_advantages_reference(batch, _group_of_traj(batch), scale=True, eps=cfg.eps)
    return make_result(batch, torch.tensor(adv, dtype=torch.float64), {})


def drgrpo_advantages(batch: StepBatch,
                      config: DrGRPOConfig | Mapping[str, Any] | None = None) -> AdvantageResult:
    """Dr.GRPO: ``s - mean_u`` per task group (no std division)."""
    resolve_config(config, DrGRPOConfig)
    _, group_t = trajectory_scores(batch)
    return make_result(batch, trajectory_group_advantages(batch, group_t, scale=False, eps=0.0), {})


def drgrpo_advantages_reference(batch: StepBatch,
                                config: DrGRPOConfig | Mapping[str, Any] | None = None) -> AdvantageResult:
    """Plain loop version of :func:`drgrpo_advantages` (for tests)."""
    resolve_config(config, DrGRPOConfig)
    adv = trajectory_group_advantages_reference(batch, _group_of_traj(batch), scale=False, eps=0.0)
    return make_result(batch, torch.tensor(adv, dtype=torch.float64), {})
