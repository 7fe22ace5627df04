"""``agentgym check env``: does every task of an environment build, score 0 when nothing is done,
and score 1 after its reference solution?

A verifier that passes an untouched task rewards doing nothing; one that cannot score the
oracle's solution 1 (or crashes, or writes no reward) never rewards anything. Both poison
training silently, so :func:`check_env` runs each task twice, each time in a fresh runtime
started through the :class:`~agentgym.env.Env` contract only (``start``, ``oracle``,
``evaluate``), and reports per task what went wrong with the verifier's output tail.

>>> import asyncio
>>> from agentgym.env import Env, Evaluation, Stage
>>> from agentgym.runtime import get_backend
>>> from agentgym.types import Task
>>> class Echo(Env):
...     id = "demo/echo-v0"
...     def tasks(self):
...         return [Task(id="hi", instruction="write hi to /app/out", env=self.id)]
...     async def evaluate(self, task, runtime):
...         r = await runtime.exec("cat /app/out", timeout=10)
...         return Evaluation(reward=float(r.stdout.strip() == "hi"))
...     async def oracle(self, task, runtime):
...         return await runtime.exec("echo hi > /app/out", timeout=10)
>>> report = asyncio.run(check_env(Echo(), get_backend("local")))
>>> [(c.task_id, c.nothing, c.oracle, c.ok) for c in report.results], report.ok
([('hi', 0.0, 1.0, True)], True)
>>> print(format_line(report.results[0]))  # doctest: +NORMALIZE_WHITESPACE
hi  -  nothing=0 ok  oracle=1 ok
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from agentgym.env import Env, Evaluation, Stage
from agentgym.errors import AgentGymError, EnvError
from agentgym.runtime.base import RuntimeBackend
from agentgym.stages import run_stages
from agentgym.types import Task

__all__ = ["EnvCheck", "TaskCheck", "check_env", "check_task", "format_failure", "format_line", "format_summary",
           "select_tasks"]

OUTPUT_TAIL = 2000
"""Characters of a failing verifier's (or oracle's, or build's) output kept in the report."""


@dataclass(frozen=True)
class TaskCheck:
    """What :func:`check_task` found for one task."""

    task_id: str
    build_s: float | None = None
    """Seconds to build (or find up to date) the task's image; ``None`` without images."""
    nothing: float | None = None
    """The reward of an untouched task (expected 0); ``None`` when it was not scored."""
    oracle: float | None = None
    """The reward after the reference solution (expected 1); ``None`` when it was not scored."""
    problems: tuple[str, ...] = ()
    """What failed, in words (empty: the task passed)."""
    output: str = ""
    """The output tail behind the first problem: the verifier's, the oracle's or the build's."""
    skipped: str | None = None
    """Why the task cannot run on this runtime (not a failure)."""
    built: bool = True
    """``False`` when the image failed to build (nothing was scored)."""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems and self.skipped is None

    @property
    def failed(self) -> bool:
        return bool(self.problems)


@dataclass(frozen=True)
class EnvCheck:
    """What :func:`check_env` found for every selected task."""

    env_id: str
    backend: str
    results: list[TaskCheck] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[TaskCheck]:
        return [r for r in self.results if r.failed]

    @property
    def ok(self) -> bool:
        """No task failed and at least one was checked (all skipped checks nothing)."""
        return not self.failed and any(r.ok for r in self.results)


def select_tasks(env: Env, task_ids: Sequence[str] | None = None) -> list[Task]:
    """The tasks of ``env`` named in ``task_ids`` (in that order), or all of them; an unknown id
    raises :class:`~agentgym.errors.EnvError` naming some of the env's tasks."""
    tasks = env.tasks()
    if not task_ids:
        return tasks
    by_id = {t.id: t for t in tasks}
    missing = [t for t in task_ids if t not in by_id]
    if missing:
        shown = ", ".join(list(by_id)[:12]) + (f", ... ({len(by_id)} in all)" if len(by_id) > 12 else "")
        raise EnvError(f"{env.id}: no task {', '.join(map(repr, missing))}; tasks: {shown}")
    return [by_id[t] for t in task_ids]


def _tail(text: str) -> str:
    return text[-OUTPUT_TAIL:]


def _verifier_output(ev: Evaluation) -> str:
    parts = [str(ev.details.get(k) or "") for k in ("stdout", "stderr")]
    return _tail("\n".join(p for p in parts if p.strip()))


def _describe(e: BaseException) -> str:
    if isinstance(e, AgentGymError):
        return f"{type(e).__name__}: {e}"
    return "".join(traceback.format_exception_only(type(e), e)).strip()


@dataclass
class _Outcome:
    """One scoring run: its reward, what went wrong, the output behind it."""

    reward: float | None = None
    problem: str | None = None
    output: str = ""


async def _score(env: Env, task: Task, backend: RuntimeBackend, image: str | None, *, solve: bool) -> _Outcome:
    """Start a fresh runtime, optionally run the oracle, evaluate."""
    out = _Outcome()
    runtime = await env.start(task, backend, image=image)

    async def act(stage: Stage, index: int) -> None:
        if not solve:
            return
        try:
            result = await env.oracle_stage(task, runtime, index)
        except AgentGymError as e:  # no reference solution, or it could not be started
            out.problem = out.problem or _describe(e).partition("\n")[0]
            return
        if not result.ok and out.problem is None:
            how = "timed out" if result.timed_out else f"exited {result.exit_code}"
            out.problem = f"the oracle (reference solution) {how}" + (f" in stage {stage.name!r}" if stage.name else "")
            out.output = _tail(result.stdout + result.stderr)

    try:
        try:
            ev = await run_stages(env, task, runtime, act)
        except AgentGymError as e:  # no reward file, a crash, a timeout: loud, with the tail
            first, _, rest = str(e).partition("\n")
            out.problem = out.problem or f"evaluate failed: {first}"
            out.output = out.output or _tail(rest or first)
            return out
        out.reward = ev.reward
        want = 1.0 if solve else 0.0
        if ev.reward != want and out.problem is None:
            out.problem = (f"scores {ev.reward:g}, expected 1: the verifier does not pass the reference solution"
                           if solve else
                           f"scores {ev.reward:g}, expected 0: the verifier passes an untouched task")
            out.output = _verifier_output(ev)
        return out
    finally:
        await runtime.stop()


async def check_task(env: Env, task: Task, backend: RuntimeBackend,
                     on_status: Callable[[str], None] | None = None) -> TaskCheck:
    """Build ``task``'s image, then score it untouched and after ``env.oracle``, each in a fresh
    runtime of ``backend``. Failures are recorded on the result, never raised."""
    say = on_status or (lambda message: None)
    t0 = time.perf_counter()
    reason = env.unsupported(task, backend)
    if reason:
        return TaskCheck(task.id, skipped=f"cannot run on the {backend.name} runtime: {reason}")
    image: str | None = None
    build_s: float | None = None
    if backend.uses_images and task.image is not None:
        say(f"{task.id}: building {task.image}")
        try:
            image = await backend.ensure_image(task.image, task.dockerfile_dir)
        except Exception as e:
            return TaskCheck(task.id, build_s=time.perf_counter() - t0, problems=("the image does not build",),
                             output=_tail(_describe(e)), built=False, seconds=time.perf_counter() - t0)
        build_s = time.perf_counter() - t0
    problems: list[str] = []
    output = ""
    rewards: dict[str, float | None] = {}
    for name, solve in (("nothing", False), ("oracle", True)):
        say(f"{task.id}: {'running the oracle' if solve else 'doing nothing'}, then the verifier")
        try:
            outcome = await _score(env, task, backend, image, solve=solve)
        except Exception as e:  # start, setup or the oracle itself failed
            first, _, rest = _describe(e).partition("\n")
            outcome = _Outcome(problem=first, output=_tail(rest))
        rewards[name] = outcome.reward
        if outcome.problem:
            problems.append(f"{name}: {outcome.problem}")
            output = output or outcome.output
    return TaskCheck(task.id, build_s=build_s, nothing=rewards["nothing"], oracle=rewards["oracle"],
                     problems=tuple(problems), output=output, seconds=time.perf_counter() - t0)


async def check_env(env: Env, backend: RuntimeBackend, *, task_ids: Sequence[str] | None = None,
                    on_status: Callable[[str], None] | None = None,
                    on_result: Callable[[TaskCheck], None] | None = None) -> EnvCheck:
    """:func:`check_task` for every task of ``env`` (or those in ``task_ids``, in that order),
    one after another. ``on_status`` hears what is running, ``on_result`` each task's result.
    Raises :class:`~agentgym.errors.EnvError` for an unknown task id."""
    t0 = time.perf_counter()
    tasks = select_tasks(env, task_ids)
    results = []
    for task in tasks:
        result = await check_task(env, task, backend, on_status)
        results.append(result)
        if on_result:
            on_result(result)
    return EnvCheck(env.id, backend.name, results, time.perf_counter() - t0)


def _verdict(reward: float | None, want: float, failed: bool) -> str:
    if reward is None:
        return "FAIL" if failed else "-"
    return "ok" if reward == want else "FAIL"


def _clip(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_line(check: TaskCheck, width: int = 0) -> str:
    """One line: task id, build seconds, ``nothing=0 ok|FAIL``, ``oracle=1 ok|FAIL``, the first
    problem (clipped; :func:`format_failure` has them all)."""
    build = "-" if check.build_s is None else f"{check.build_s:.1f}s"
    head = f"{check.task_id:<{width}}  {build:>6}"
    if check.skipped:
        return f"{head}  skipped: {check.skipped}"
    if check.built:
        line = (f"{head}  nothing=0 {_verdict(check.nothing, 0.0, check.failed):<4}  "
                f"oracle=1 {_verdict(check.oracle, 1.0, check.failed):<4}")
    else:
        line = f"{head}  nothing=0 -     oracle=1 -   "
    if check.problems:
        more = len(check.problems) - 1
        line += "  " + _clip(check.problems[0]) + (f" (+{more} more)" if more else "")
    return line.rstrip()


def format_failure(check: TaskCheck) -> str:
    """A failing task's problems and the output tail behind them (for the loud part of a report)."""
    lines = [f"--- {check.task_id}: {len(check.problems)} problem(s)"]
    lines += [f"  - {p}" for p in check.problems]
    if check.output.strip():
        lines.append("  output tail:")
        lines += ["    " + line for line in check.output.rstrip().splitlines()]
    return "\n".join(lines)


def format_summary(report: EnvCheck) -> str:
    """``N tasks: a ok, b FAILED (ids), c skipped on <backend> in S s``."""
    failed = report.failed
    skipped = sum(1 for r in report.results if r.skipped)
    passed = sum(1 for r in report.results if r.ok)
    text = f"{report.env_id}: {len(report.results)} task(s) on {report.backend}: {passed} ok"
    if failed:
        text += f", {len(failed)} FAILED ({', '.join(r.task_id for r in failed)})"
    if skipped:
        text += f", {skipped} skipped"
    return text + f" in {report.seconds:.1f}s"
