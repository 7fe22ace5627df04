"""Any environment (a registered id, a task directory, a SWE-bench-style file, ``module:attr``)
as a ``gymnasium.Env``, for in-process agents.

:func:`make` asks the env for its adapter (:meth:`agentgym.env.Env.gymnasium`): text families
get a :class:`GymEnv` (text in, text out), a GUI family its own adapter (screenshots in, mouse
and keyboard actions out). Every adapter is an :class:`EpisodeEnv`: ``reset`` starts a fresh
runtime for one task (``task_id``, ``options["task_id"]`` or a seeded random pick), ``step``
acts in it, and submitting (or the step limit) runs the env's verifier and returns its reward.
A multi-step task (:meth:`Env.stages`) answers a submit with its next instruction until the last
one, whose submit returns the combined reward. Runtimes are async; they run on a private
event-loop thread.

:class:`GymEnv` runs each action as a shell command and returns ``exit code: N`` plus its
output; ``step("submit")`` ends the episode. With ``shell="persistent"`` the commands are typed
into one interactive shell that lives for the whole episode (:class:`~agentgym.runtime.shell.ShellSession`:
``cd`` and variables persist, a step that runs past ``command_timeout`` leaves its command
running, and the action ``"\\x03"`` sends Ctrl-C).

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

from agentgym.env import Env, Evaluation, Stage
from agentgym.errors import ConfigError, EnvError
from agentgym.runtime.base import ExecResult, Runtime, RuntimeBackend
from agentgym.runtime.shell import CTRL_C, ShellResult, ShellSession
from agentgym.types import Task

__all__ = ["CTRL_C", "SHELLS", "SUBMIT", "EpisodeEnv", "GymEnv", "make"]

SUBMIT = "submit"
"""The action that ends an episode and runs the verifier."""
SHELLS = ("exec", "persistent")
"""How :class:`GymEnv` runs commands: each in a fresh ``bash -lc``, or typed into one shell."""


class EpisodeEnv(gymnasium.Env):
    """What every agentgym ``gymnasium.Env`` shares: one fresh runtime per episode, the step limit,
    the verifier at the end. Subclasses set ``observation_space`` and ``action_space`` and
    implement :meth:`_begin`, :meth:`_act`, :meth:`_is_submit`, :meth:`_final_observation` and,
    for multi-step tasks, :meth:`_stage_observation`.

    Args:
        env: an :class:`~agentgym.env.Env`, a registered env id, a task directory, a SWE-bench-style
            file or ``module:attr`` (:func:`agentgym.sources.env_from`).
        task_id: always run this task (default: ``options["task_id"]`` or a seeded random pick).
        backend: a runtime backend or its name (``docker``, ``local``, ``auto``).
        max_steps: actions before the episode is truncated (and evaluated).
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 - gymnasium declares it so

    def __init__(self, env: Env | str, task_id: str | None = None, backend: RuntimeBackend | str = "docker",
                 max_steps: int = 30) -> None:
        from agentgym.runtime import get_backend
        from agentgym.sources import env_from

        self.env: Env = env_from(env)
        self.task_id = task_id
        self._own_backend = isinstance(backend, str)
        self.backend = get_backend(backend) if isinstance(backend, str) else backend
        self.max_steps = max_steps
        self.task: Task | None = None
        self.runtime: Runtime | None = None
        self._steps = 0
        self._stages: list[Stage] = []
        self._stage = 0
        self._evaluations: list[Evaluation] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="agentgym-gym-loop", daemon=True)
        self._thread.start()

    # -- what subclasses provide -----------------------------------------------------------------
    def _begin(self, task: Task, runtime: Runtime) -> Any:
        """The first observation of an episode in a freshly started ``runtime`` (its first stage
        prepared: :attr:`_stages` ``[0]`` holds the instruction)."""
        raise NotImplementedError

    def _stage_observation(self, stage: Stage) -> Any:
        """The observation that starts a later stage of a multi-step task (its instruction)."""
        raise NotImplementedError

    def _act(self, action: Any) -> tuple[Any, dict[str, Any]]:
        """Perform ``action``; the observation and the info."""
        raise NotImplementedError

    def _is_submit(self, action: Any) -> bool:
        raise NotImplementedError

    def _final_observation(self, evaluation: Evaluation) -> Any:
        """The observation that goes with the reward (after the runtime is gone)."""
        raise NotImplementedError

    def _end(self) -> None:
        """Release what the episode holds besides the runtime (a shell, a stream); before the
        verifier runs and when the runtime stops. Idempotent."""
        return None

    # -- the gymnasium API -----------------------------------------------------------------------
    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _stop_runtime(self) -> None:
        self._end()
        if self.runtime is not None:
            self._run(self.runtime.stop())
            self.runtime = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        self._stop_runtime()
        wanted = (options or {}).get("task_id") or self.task_id
        self.task = self.env.task(wanted) if wanted else random.Random(seed).choice(self.env.tasks())
        self.runtime = self._run(self.env.start(self.task, self.backend))
        self._steps = 0
        self._stages = self.env.stages(self.task)
        self._stage = 0
        self._evaluations = []
        try:
            self._run(self.env.prepare_stage(self.task, self.runtime, 0))
            obs = self._begin(self.task, self.runtime)
        except BaseException:
            self._stop_runtime()
            raise
        info: dict[str, Any] = {"task_id": self.task.id, "workdir": self.task.workdir}
        if len(self._stages) > 1:
            info.update(stage=self._stages[0].name, stages=len(self._stages))
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        if self.runtime is None or self.task is None:
            raise EnvError("call reset() before step()")
        self._steps += 1
        if self._is_submit(action):
            return self._finish(terminated=True)
        obs, info = self._act(action)
        if self._steps >= self.max_steps:
            _, reward, _, _, final_info = self._finish(terminated=False)
            return obs, reward, False, True, {**info, **final_info}
        return obs, 0.0, False, False, info

    def _finish(self, terminated: bool) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Verify the current stage; a multi-stage task then goes on to its next instruction (the
        observation), unless this was its last stage, the step limit is reached or the stage
        gates the rest (:meth:`Env.continue_after`)."""
        assert self.runtime is not None and self.task is not None
        task, stages = self.task, self._stages
        final = self._stage == len(stages) - 1
        if final:  # nothing of the episode (a shell, a stream) may act while the verifier runs
            self._end()
        evaluation: Evaluation = self._run(self.env.evaluate_stage(task, self.runtime, self._stage, final=final))
        self._evaluations.append(evaluation)
        if not final and terminated and self.env.continue_after(task, self._stage, evaluation):
            self._stage += 1
            self._run(self.env.prepare_stage(task, self.runtime, self._stage))
            return (self._stage_observation(stages[self._stage]), 0.0, False, False,
                    {"stage": stages[self._stage].name, "stage_evaluation": dict(evaluation.details)})
        if len(stages) > 1:
            evaluation = self.env.combine(task, self._evaluations)
        self._stop_runtime()
        return (self._final_observation(evaluation), evaluation.reward, terminated, not terminated,
                {"evaluation": dict(evaluation.details)})

    def close(self) -> None:
        if self._thread.is_alive():
            try:
                self._stop_runtime()
            finally:
                if self._own_backend:
                    self.backend.close()
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(timeout=5)
                if not self._thread.is_alive():
                    self._loop.close()


class GymEnv(EpisodeEnv):
    """An :class:`~agentgym.env.Env` as a ``gymnasium.Env`` (shell commands in, text out).

    Args:
        env, task_id, backend, max_steps: see :class:`EpisodeEnv`.
        command_timeout: seconds per command.
        max_output: characters of command output kept (the tail).
        shell: ``exec`` (each command in a fresh ``bash -lc``; a timeout kills it) or
            ``persistent`` (typed into one interactive shell per episode, through pexpect:
            state persists, a timeout leaves the command running, ``"\\x03"`` is Ctrl-C).
    """

    def __init__(self, env: Env | str, task_id: str | None = None, backend: RuntimeBackend | str = "docker",
                 max_steps: int = 30, command_timeout: float = 60.0, max_output: int = 10_000,
                 shell: str = "exec") -> None:
        if shell not in SHELLS:
            raise ConfigError(f"shell must be one of {', '.join(SHELLS)}, got {shell!r}")
        super().__init__(env, task_id=task_id, backend=backend, max_steps=max_steps)
        self.command_timeout = command_timeout
        self.max_output = max_output
        self.shell = shell
        self.session: ShellSession | None = None
        self.observation_space = spaces.Text(max_length=1_000_000, charset=string.printable)
        self.action_space = spaces.Text(max_length=100_000, charset=string.printable)

    def _begin(self, task: Task, runtime: Runtime) -> str:
        if self.shell == "persistent":
            self.session = ShellSession.open(runtime, workdir=task.workdir, timeout=self.command_timeout)
        return self._stages[0].instruction

    def _stage_observation(self, stage: Stage) -> str:
        return stage.instruction

    def _is_submit(self, action: Any) -> bool:
        return str(action).strip() == SUBMIT

    def _act(self, action: Any) -> tuple[str, dict[str, Any]]:
        assert self.runtime is not None and self.task is not None
        if self.session is not None:
            return self._type(str(action))
        result: ExecResult = self._run(self.runtime.exec(str(action), timeout=self.command_timeout,
                                                         workdir=self.task.workdir))
        output = (result.stdout + result.stderr)[-self.max_output:]
        note = " (timed out)" if result.timed_out else ""
        return (f"exit code: {result.exit_code}{note}\n{output}",
                {"exit_code": result.exit_code, "timed_out": result.timed_out, "oom_killed": result.oom_killed})

    def _type(self, action: str) -> tuple[str, dict[str, Any]]:
        assert self.session is not None
        result: ShellResult = self.session.run(action, timeout=self.command_timeout)
        if result.timed_out:
            head = f"(still running after {self.command_timeout:g}s; send {CTRL_C!r} to interrupt it)"
        elif result.waiting:
            head = "(the shell waits for more input)"
        elif result.exit_code is None:
            head = "(running)"
        else:
            head = f"exit code: {result.exit_code}"
        if result.restarted:
            head = "(the shell had exited: this is a new one)\n" + head
        return (f"{head}\n{result.output[-self.max_output:]}",
                {"exit_code": result.exit_code, "timed_out": result.timed_out, "waiting": result.waiting})

    def _final_observation(self, evaluation: Evaluation) -> str:
        return f"reward: {evaluation.reward:g}"

    def _end(self) -> None:
        if self.session is not None:
            session, self.session = self.session, None
            session.close()


def make(env_id: str | Env, **kwargs: Any) -> gymnasium.Env:
    """An environment (a registered id, a task directory, a SWE-bench-style file, ``module:attr``)
    as a ``gymnasium.Env``: whatever its :meth:`~agentgym.env.Env.gymnasium` returns
    (:class:`GymEnv` for the text families), with ``kwargs`` for the adapter."""
    from agentgym.sources import env_from

    return env_from(env_id).gymnasium(**kwargs)
