"""From trajectories to one policy update: group, estimate advantages, take an optimizer step.

Any causal LM works (``model(input_ids=..., attention_mask=..., position_ids=...)`` returning
logits); here a bigram table, and two attempts at one task, one solved:

>>> import torch
>>> from agentgym.types import Segment, Step, StopReason, Trajectory
>>> class Bigram(torch.nn.Module):
...     def __init__(self) -> None:
...         super().__init__()
...         self.table = torch.nn.Embedding(8, 8)
...     def forward(self, input_ids: torch.Tensor, **_: object) -> tuple[torch.Tensor]:
...         return (self.table(input_ids),)
>>> def attempt(i: int, reward: float) -> Trajectory:
...     seg = Segment(input_ids=(1, 2, 3, 4), action_mask=(0, 0, 1, 1), obs_mask=(0, 0, 0, 0),
...                   logprobs=(0.0, 0.0, -2.0, -2.0), turn_index=(-1, -1, 0, 0), policy_version=(0,) * 4)
...     step = Step(index=0, call_id=f"c{i}", segment_index=0, action_span=(2, 4))
...     return Trajectory(id=f"t{i}", task_id="task", session_id=f"s{i}", segments=(seg,), steps=(step,),
...                       reward=reward, stop_reason=StopReason.COMPLETED)
>>> _ = torch.manual_seed(0)
>>> model = Bigram()
>>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
>>> metrics = policy_update(model, optimizer, [attempt(0, 1.0), attempt(1, 0.0)], estimator="grpo")
>>> metrics["rows"], metrics["groups"], metrics["action_tokens"], metrics["skipped"]
(2.0, 1.0, 4.0, 0.0)
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

__all__ = ["policy_update"]


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
