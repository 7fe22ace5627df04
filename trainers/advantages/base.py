"""The one estimator signature: ``estimator(batch: StepBatch, config) -> AdvantageResult``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from torch import Tensor

from ..batch import StepBatch

__all__ = ["AdvantageResult", "Estimator"]


@dataclass(frozen=True, eq=False)
class AdvantageResult:
    """What every advantage estimator returns."""

    rows: Tensor
    """float[R]: advantage per step row."""
    tokens: Tensor | None
    """float[S, L]: ``batch.row_to_tokens(rows)``; ``None`` when the batch carries no tokens."""
    metrics: dict[str, float] = field(default_factory=dict)
    """Scalars for logging (``"adv/mean"``, ``"gigpo/step_group_size"`` ...)."""


class Estimator(Protocol):
    def __call__(self, batch: StepBatch, config: Any = None, /) -> AdvantageResult: ...
