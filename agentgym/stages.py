"""Running a task's stages: the one loop the rollout, ``agentgym check env`` and the gymnasium
adapter share.

A task has one stage (its instruction) unless its env says otherwise (:meth:`Env.stages`):
Harbor's multi-step tasks have one per ``[[steps]]`` entry. For each stage, in one sandbox:
:meth:`Env.prepare_stage`, the agent's work (``act``), :meth:`Env.evaluate_stage` (the last
stage's verification may consume the sandbox; earlier ones leave it running); a stage whose
evaluation fails :meth:`Env.continue_after` ends the episode early. :meth:`Env.combine` makes
the episode's evaluation from the stages' (one stage: its own).

>>> import asyncio
>>> from agentgym.env import Env, Evaluation
>>> from agentgym.runtime import get_backend
>>> from agentgym.types import Task
>>> class Echo(Env):
...     id = "demo/echo-v0"
...     def tasks(self):
...         return [Task(id="hi", instruction="write hi to /app/out", env=self.id)]
...     async def evaluate(self, task, runtime):
...         text = (await runtime.exec("cat /app/out", timeout=10)).stdout
...         return Evaluation(reward=float(text.strip() == "hi"))
>>> async def episode() -> float:
...     env = Echo()
...     task = env.task("hi")
...     runtime = await env.start(task, get_backend("local"))
...     async def act(stage, index):
...         await runtime.exec("echo hi > /app/out", timeout=10)
...     async with runtime:
...         return (await run_stages(env, task, runtime, act)).reward
>>> asyncio.run(episode())
1.0
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from agentgym.env import Env, Evaluation, Stage
from agentgym.runtime.base import Runtime
from agentgym.types import Task

__all__ = ["Stage", "run_stages"]


Guard = Callable[[Awaitable[Evaluation]], Awaitable[Evaluation]]


async def run_stages(env: Env, task: Task, runtime: Runtime, act: Callable[[Stage, int], Awaitable[object]], *,
                     on_phase: Callable[[str], None] | None = None, verify: Guard | None = None) -> Evaluation:
    """Run every stage of ``task`` in ``runtime`` (see the module docstring). ``act(stage,
    index)`` is the agent's work on a stage; ``on_phase`` hears ``prepare``, ``agent`` and
    ``verify`` as each begins (so a failure can be attributed to its phase); ``verify`` wraps
    each verification (a rollout's time limit and concurrency limit on verifiers). A stage's
    evaluation is in ``details["stages"]`` of a multi-stage result (see :meth:`Env.combine`)."""
    phase = on_phase or (lambda name: None)
    guard: Guard = verify or (lambda aw: aw)
    stages = env.stages(task)
    evaluations: list[Evaluation] = []
    for index, stage in enumerate(stages):
        final = index == len(stages) - 1
        phase("prepare")
        await env.prepare_stage(task, runtime, index)
        phase("agent")
        await act(stage, index)
        phase("verify")
        evaluation = await guard(env.evaluate_stage(task, runtime, index, final=final))
        evaluations.append(evaluation)
        if not final and not env.continue_after(task, index, evaluation):
            break
    return evaluations[0] if len(stages) == 1 else env.combine(task, evaluations)
