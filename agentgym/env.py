"""The environment contract: a task suite, how to start a sandbox for a task, and ``evaluate``.

An :class:`Env` is a family of tasks (terminal, SWE, GUI...). The rollout service, the
gymnasium adapter (:mod:`agentgym.gym`) and ``agentgym check env`` drive every env through this
one interface::

    runtime = await env.start(task, backend)        # build the image, start, setup
    ...                                             # an agent works in the runtime
    evaluation = await env.evaluate(task, runtime)  # final state -> reward

Implementations live in ``envs/`` (``agentgym.envs``) and register with
``agentgym.registries.envs.register("family/name-v0", "package.module:Class", ...)``.

>>> import asyncio
>>> from agentgym.runtime import get_backend
>>> class Echo(Env):
...     id = "demo/echo-v0"
...     def tasks(self):
...         return [Task(id="hi", instruction="write hi to /app/out", env=self.id)]
...     async def evaluate(self, task, runtime):
...         text = (await runtime.exec("cat /app/out", timeout=10)).stdout
...         return Evaluation(reward=float(text.strip() == "hi"))
>>> async def episode() -> float:
...     env = Echo()
...     runtime = await env.start(env.task("hi"), get_backend("local"))
...     async with runtime:
...         await runtime.write_file("/app/out", "hi\\n")
...         return (await env.evaluate(env.task("hi"), runtime)).reward
>>> asyncio.run(episode())
1.0
"""

from __future__ import annotations

import abc
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentgym.errors import EnvError
from agentgym.observation import normalize_observation
from agentgym.runtime.base import ExecResult, Runtime, RuntimeBackend, RuntimeSpec
from agentgym.types import Task

__all__ = ["Env", "Evaluation", "Stage"]


@dataclass(frozen=True)
class Evaluation:
    """What ``evaluate`` found: the terminal reward, optional per-step rewards, details."""

    reward: float
    step_rewards: Sequence[float] | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    """One instruction of a task: the agent works on it, then it is verified. Most tasks have
    one stage (their instruction); a multi-step task (Harbor's ``[[steps]]``) has several, run in
    one sandbox one after another (:func:`agentgym.stages.run_stages`)."""

    name: str
    instruction: str
    timeout_s: float | None = None
    """The agent's time for this stage (``None``: the task's limit)."""


class Env(abc.ABC):
    """A suite of tasks sharing one family (terminal, swe, gui).

    Subclasses implement :meth:`tasks` and :meth:`evaluate`; the rest has defaults that read the
    task's typed fields. Override :meth:`unsupported` when some tasks cannot run on some
    runtimes, :meth:`setup` to prepare a fresh runtime, :meth:`oracle` to run a reference
    solution, :meth:`anchor` for an env-specific anchor state (GiGPO/HGPO), and
    :meth:`gymnasium` when in-process agents should see something other than text. Tasks with
    several instructions override the stage hooks (:meth:`stages`, :meth:`prepare_stage`,
    :meth:`evaluate_stage`, :meth:`continue_after`, :meth:`combine`, :meth:`oracle_stage`),
    whose defaults make one stage of :meth:`evaluate` and :meth:`oracle`.
    """

    id: str = ""

    @abc.abstractmethod
    def tasks(self) -> list[Task]:
        """All tasks of the suite, in a stable order."""

    def task(self, task_id: str) -> Task:
        for t in self.tasks():
            if t.id == task_id:
                return t
        ids = [t.id for t in self.tasks()]
        close = difflib.get_close_matches(task_id, ids, n=3)
        listing = f"did you mean {', '.join(close)}?" if close else \
            f"tasks: {', '.join(ids[:12])}{f' ... ({len(ids)} in all)' if len(ids) > 12 else ''}"
        raise EnvError(f"{self.id}: no task {task_id!r}; {listing}")

    # -- sandboxes -------------------------------------------------------------------------------
    def unsupported(self, task: Task, backend: RuntimeBackend) -> str | None:
        """Why ``task`` cannot run on ``backend``, or ``None`` when it can (the default)."""
        return None

    def runtime_spec(self, task: Task, **overrides: Any) -> RuntimeSpec:
        """The sandbox of ``task``: its image, workdir, limits, environment and network."""
        fields: dict[str, Any] = dict(image=task.image, workdir=task.workdir, memory=task.limits.memory,
                                      cpus=task.limits.cpus, pids=task.limits.pids, network=task.network,
                                      env=dict(task.env_vars),
                                      hidden=tuple(p for p in (task.tests_dir, task.solution_dir) if p))
        fields.update(overrides)
        return RuntimeSpec(**fields)

    async def start(self, task: Task, backend: RuntimeBackend, *, image: str | None = None,
                    **spec_overrides: Any) -> Runtime:
        """Build the task's image when needed (or run ``image``, e.g. one with a harness layer),
        start a runtime and :meth:`setup` it. Raises :class:`EnvError` when the task cannot run
        on ``backend``, before anything is created."""
        reason = self.unsupported(task, backend)
        if reason:
            raise EnvError(f"{task.id} cannot run on the {backend.name} runtime: {reason}")
        if not backend.uses_images:
            image = None
        elif image is None and task.image is not None:
            image = await backend.ensure_image(task.image, task.dockerfile_dir)
        runtime = await backend.start(self.runtime_spec(task, image=image, **spec_overrides))
        try:
            await self.setup(task, runtime)
        except BaseException:
            await runtime.stop()
            raise
        return runtime

    async def setup(self, task: Task, runtime: Runtime) -> None:
        """Prepare a fresh runtime before the agent starts (default: nothing)."""
        return None

    # -- scoring ---------------------------------------------------------------------------------
    @abc.abstractmethod
    async def evaluate(self, task: Task, runtime: Runtime) -> Evaluation:
        """Turn the runtime's final state into a reward."""

    async def oracle(self, task: Task, runtime: Runtime) -> ExecResult:
        """Run the task's reference solution in ``runtime`` (``agentgym check env`` expects the
        reward 1 after it). The default has none."""
        raise EnvError(f"{self.id}: {task.id} has no reference solution")

    # -- stages (multi-step tasks) -------------------------------------------------------------
    def stages(self, task: Task) -> list[Stage]:
        """The task's instructions, in order (default: its one instruction)."""
        return [Stage(name="", instruction=task.instruction)]

    async def prepare_stage(self, task: Task, runtime: Runtime, index: int) -> None:
        """Prepare the sandbox for stage ``index`` before the agent starts on it (default: nothing)."""
        return None

    async def evaluate_stage(self, task: Task, runtime: Runtime, index: int, *, final: bool) -> Evaluation:
        """Verify stage ``index``. ``final``: the last stage, after which the sandbox is not
        used again (the default, :meth:`evaluate`, is only for that one); otherwise the
        sandbox must stay usable for the next stage."""
        if not final:
            raise EnvError(f"{self.id}: {task.id} has one stage; override evaluate_stage for more")
        return await self.evaluate(task, runtime)

    def continue_after(self, task: Task, index: int, evaluation: Evaluation) -> bool:
        """Whether the stages after ``index`` run, given its evaluation (default: yes)."""
        return True

    def combine(self, task: Task, evaluations: Sequence[Evaluation]) -> Evaluation:
        """The episode's evaluation from its stages' (default: the last one's)."""
        return evaluations[-1]

    async def oracle_stage(self, task: Task, runtime: Runtime, index: int) -> ExecResult:
        """The reference solution of stage ``index`` (default: :meth:`oracle`)."""
        return await self.oracle(task, runtime)

    def notes(self, task: Task) -> list[str]:
        """What of ``task``'s definition agentgym does not honour (fields it ignores, features it
        lacks), one line each: ``agentgym envs show`` lists them and :func:`agentgym.env_from`
        warns about them, so nothing is dropped silently. The default names the task's
        ``metadata["ignored_fields"]``."""
        return [f"ignored field: {name}" for name in task.metadata.get("ignored_fields") or ()]

    # -- in-process agents ----------------------------------------------------------------------
    def gymnasium(self, **options: Any) -> Any:
        """This env as a ``gymnasium.Env`` (what :func:`agentgym.make` returns): by default
        :class:`agentgym.gym.GymEnv`, shell commands in and text out, with ``options`` (``backend``,
        ``task_id``, ``max_steps``, ``shell``...). A family whose agents see something else (the GUI
        family: screenshots) returns its own :class:`agentgym.gym.EpisodeEnv`."""
        from agentgym.gym import GymEnv

        return GymEnv(self, **options)

    def anchor(self, observation: str) -> str:
        """Anchor-state key for step-level grouping (GiGPO); override for env-specific state."""
        return normalize_observation(observation)
