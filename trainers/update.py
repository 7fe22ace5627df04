"""From trajectories to one policy update: group, estimate advantages, take an optimizer step.

>>> metrics = policy_update(model, optimizer, trajectories, estimator="grpo")   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from agentgym import registries
from agentgym.errors import TrainerError
from agentgym.trainers.batch import StepBatch
from agentgym.trainers.step import train_step
from agentgym.types import Trajectory, group_by_task


def policy_update(model: nn.Module, optimizer: torch.optim.Optimizer, trajectories: Sequence[Trajectory], *,
                  estimator: str = "grpo", estimator_config: Mapping[str, Any] | Any = None,
                  loss: str = "ppo-clip", temperature: float = 1.0, pad_id: int = 0,
                  micro_batch_size: int | None = 4, **train_kwargs: Any) -> dict[str, float]:
    """One update on the trajectories that have trainable tokens (main agent only by default).

    Returns the training metrics plus ``rows`` (steps), ``groups`` and ``adv_abs_mean``.
    """
    usable = [t for t in trajectories if t.segments and t.trained_tokens > 0]
    if not usable:
        raise TrainerError("no trajectory has trainable tokens: every episode failed before the model "
                           "answered (see each trajectory's error)")
    groups = group_by_task(usable)
    batch = StepBatch.from_groups(groups, pad_id=pad_id)
    result = registries.estimators.get(estimator)(batch, estimator_config)
    adv_tokens = result.tokens if result.tokens is not None else batch.row_to_tokens(result.rows)
    metrics = train_step(model, optimizer, batch, adv_tokens, loss=loss, temperature=temperature,
                         micro_batch_size=micro_batch_size, **train_kwargs)
    metrics.update(rows=float(result.rows.numel()), groups=float(len(groups)),
                   adv_abs_mean=float(result.rows.abs().mean()) if result.rows.numel() else 0.0)
    return metrics
