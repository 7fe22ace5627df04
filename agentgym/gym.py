"""Any registered environment as a ``gymnasium.Env``, for in-process agents: text in, text out.

``reset`` starts a fresh runtime for one task (``task_id``, ``options["task_id"]`` or a seeded
random pick) and returns its instruction. ``step(command)`` runs a shell command and returns
``exit code: N`` plus its output; ``step("submit")`` (or the step limit) runs the env's
verifier and returns its reward. A multi-step task (:meth:`Env.stages`) answers ``submit`` with
its next instruction until the last one, whose ``submit`` returns the combined reward. Runtimes are async; they run on a private event-loop thread.

>>> import agentgym
>>> env = agentgym.make("terminal/hello-file-v0", backend="local")
>>> obs, info = env.reset(seed=0)
>>> info["task_id"]
'hello-file'
>>> env.step("printf 'Hello, agentgym!\\n' > /app/hello.txt")[0]
'exit code: 0\\n'
>>> obs, reward, terminated, truncated, info = env.step("submit")
>>> reward, terminated
(1.0, True)
>>> env.close()
"""

from __future__ import annotations

import asyncio
import random
import string
import threading
from typing import Any

import gymnasium
from gymnasium import spaces

from agentgym.env import Env, Evaluation
from agentgym.errors import EnvError
from agentgym.runtime.base import ExecResult, Runtime, RuntimeBackend
from agentgym.types import Task

__all__ = ["SUBMIT", "GymEnv", "make"]

SUBMIT = "submit"
"""The action that ends an episode and runs the verifier."""


class GymEnv(gymnasium.Env):
    """An :class:`~agentgym.env.Env` as a ``gymnasium.Env`` (shell commands in, text out).

    Args:
        env: an :class:`~agentgym.env.Env`, a registered env id, a task directory, a SWE-bench-style
            file or ``module:attr`` (:func:`agentgym.sources.env_from`).
        task_id: always run this task (default: ``options["task_id"]`` or a seeded random pick).
        backend: a runtime backend or its name (``docker``, ``local``, ``auto``).
        max_steps: commands before the episode is truncated (and evaluated).
        command_timeout: seconds per command.
        max_output: characters of command output kept (the tail).
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 - gymnasium declares it so

    def __init__(self, env: Env | str, task_id: str | None = None, backend: RuntimeBackend | str = "docker",
                 max_steps: int = 30, command_timeout: float = 60.0, max_output: int = 10_000) -> None:
        from agentgym.runtime import get_backend
        from agentgym.sources import env_from

        self.env: Env = env_from(env)
        self.task_id = task_id
        self._own_backend = isinstance(backend, str)
        self.backend = get_backend(backend) if isinstance(backend, str) else backend
        self.max_steps = max_steps
        self.command_timeout = command_timeout
        self.max_output = max_output
        self.observation_space = spaces.Text(max_length=1_000_000, charset=string.printable)
        self.action_space = spaces.Text(max_length=100_000, charset=string.printable)
        self.task: Task | None = None
        self.runtime: Runtime | None = None
        self._steps = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="agentgym-gym-loop", daemon=True)
        self._thread.start()

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _stop_runtime(self) -> None:
        if self.runtime is not None:
            self._run(self.runtime.stop())
            self.runtime = None

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        self._stop_runtime()
        wanted = (options or {}).get("task_id") or self.task_id
        self.task = self.env.task(wanted) if wanted else random.Random(seed).choice(self.env.tasks())
        self.runtime = self._run(self.env.start(self.task, self.backend))
        self._steps = 0
        self._stages = self.env.stages(self.task)
        self._stage = 0
        self._evaluations: list[Evaluation] = []
        self._run(self.env.prepare_stage(self.task, self.runtime, 0))
        info: dict[str, Any] = {"task_id": self.task.id, "workdir": self.task.workdir}
        if len(self._stages) > 1:
            info.update(stage=self._stages[0].name, stages=len(self._stages))
        return self._stages[0].instruction, info

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self.runtime is None or self.task is None:
            raise EnvError("call reset() before step()")
        self._steps += 1
        if action.strip() == SUBMIT:
            return self._finish(terminated=True)
        result: ExecResult = self._run(self.runtime.exec(action, timeout=self.command_timeout,
                                                         workdir=self.task.workdir))
        output = (result.stdout + result.stderr)[-self.max_output:]
        note = " (timed out)" if result.timed_out else ""
        obs = f"exit code: {result.exit_code}{note}\n{output}"
        info = {"exit_code": result.exit_code, "timed_out": result.timed_out, "oom_killed": result.oom_killed}
        if self._steps >= self.max_steps:
            _, reward, _, _, final_info = self._finish(terminated=False)
            return obs, reward, False, True, {**info, **final_info}
        return obs, 0.0, False, False, info

    def _finish(self, terminated: bool) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """Verify the current stage; a multi-stage task then goes on to its next instruction (the
        observation), unless this was its last stage, the step limit is reached or the stage
        gates the rest (:meth:`Env.continue_after`)."""
        assert self.runtime is not None and self.task is not None
        task, stages = self.task, self._stages
        final = self._stage == len(stages) - 1
        evaluation: Evaluation = self._run(self.env.evaluate_stage(task, self.runtime, self._stage, final=final))
        self._evaluations.append(evaluation)
        if not final and terminated and self.env.continue_after(task, self._stage, evaluation):
            self._stage += 1
            self._run(self.env.prepare_stage(task, self.runtime, self._stage))
            return (stages[self._stage].instruction, 0.0, False, False,
                    {"stage": stages[self._stage].name, "stage_evaluation": dict(evaluation.details)})
        if len(stages) > 1:
            evaluation = self.env.combine(task, self._evaluations)
        self._stop_runtime()
        return (f"reward: {evaluation.reward:g}", evaluation.reward, terminated, not terminated,
                {"evaluation": dict(evaluation.details)})

    def close(self) -> None:
        try:
            self._stop_runtime()
        finally:
            if self._own_backend:
                self.backend.close()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)


def make(env_id: str, **kwargs: Any) -> GymEnv:
    """An environment (a registered id, a task directory, a SWE-bench-style file, ``module:attr``)
    as a ``gymnasium.Env`` (see :class:`GymEnv` for ``kwargs``)."""
    return GymEnv(env_id, **kwargs)
