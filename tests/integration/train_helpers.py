"""A test environment for the training loop: every group holds a success and a failure.

The loop is what is under test, not an agent's skill, so the reward alternates per task (the
n-th evaluation of a task scores ``n % 2``): any group of two or more samples has a learning
signal, whatever the tiny model does."""

from __future__ import annotations

from collections import Counter
from typing import ClassVar

from agentgym.env import Env, Evaluation
from agentgym.runtime.base import Runtime
from agentgym.runtime.images import BASE_IMAGE
from agentgym.types import Task, TaskLimits

ENV_ID = "test/alternating-v0"


class AlternatingEnv(Env):
    id = ENV_ID

    def __init__(self, num_tasks: int = 4) -> None:
        self.num_tasks = num_tasks
        self.seen: Counter[str] = Counter()

    def tasks(self) -> list[Task]:
        return [Task(id=f"alt-{i}", instruction="List the files here, then stop.", env=self.id, image=BASE_IMAGE,
                     limits=TaskLimits(timeout_s=120, max_steps=2)) for i in range(self.num_tasks)]

    async def evaluate(self, task: Task, runtime: Runtime) -> Evaluation:
        self.seen[task.id] += 1
        return Evaluation(reward=float(self.seen[task.id] % 2))


def register() -> None:
    from agentgym import registries

    registries.envs.register(ENV_ID, "tests.integration.train_helpers:AlternatingEnv",
                             description="test: alternating rewards")


class SharedAlternatingEnv(AlternatingEnv):
    """:class:`AlternatingEnv` whose count lives in the process, not the instance: what a Ray
    worker needs, since it loads the env (``tests.integration.train_helpers:SharedAlternatingEnv``)
    for every piece of work it runs. A worker that evaluates a task twice per iteration scores
    it once 1 and once 0."""

    shared: ClassVar[Counter[str]] = Counter()

    def __init__(self, num_tasks: int = 4) -> None:
        super().__init__(num_tasks)
        self.seen = SharedAlternatingEnv.shared
