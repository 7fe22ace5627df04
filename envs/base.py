"""The environment boundary: a task suite, how to build its sandboxes, and ``evaluate``."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentgym.runtime.base import Runtime
from agentgym.trainers.anchors import normalize_observation
from agentgym.types import Task


@dataclass(frozen=True)
class Evaluation:
    """What ``evaluate`` found: the terminal reward, optional per-step rewards, details."""

    reward: float
    step_rewards: Sequence[float] | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


def default_anchor(observation: str) -> str:
    """Anchor-state key of an observation (see :func:`agentgym.trainers.anchors.normalize_observation`)."""
    return normalize_observation(observation)


class Env(abc.ABC):
    """A suite of tasks sharing one family (terminal, swe, gui)."""

    id: str = ""

    @abc.abstractmethod
    def tasks(self) -> list[Task]:
        """All tasks of the suite, in a stable order."""

    def task(self, task_id: str) -> Task:
        for t in self.tasks():
            if t.id == task_id:
                return t
        from agentgym.errors import EnvError

        raise EnvError(f"{self.id}: no task {task_id!r}; tasks: {', '.join(t.id for t in self.tasks())}")

    async def setup(self, task: Task, runtime: Runtime) -> None:
        """Prepare a fresh runtime before the harness starts (default: nothing)."""
        return None

    @abc.abstractmethod
    async def evaluate(self, task: Task, runtime: Runtime) -> Evaluation:
        """Turn the runtime's final state into a reward."""

    def anchor(self, observation: str) -> str:
        """Anchor-state key for step-level grouping (GiGPO); override for env-specific state."""
        return default_anchor(observation)
