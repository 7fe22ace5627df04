"""``HarborEnv``: a suite of tasks in the Harbor / Terminal-Bench layout (:mod:`.task`).

Each task runs in its own image (built from ``environment/Dockerfile`` with the host network,
nothing pulled); the verifier ``tests/test.sh`` is copied in only to evaluate and writes the
reward to ``/logs/verifier/reward.txt`` (or ``reward.json``).

>>> from agentgym import registries
>>> env = registries.envs.make("terminal/basic-v0")
>>> [t.id for t in env.tasks()][:2]
['fix-python-script', 'hello-file']
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from agentgym.env import Env, Evaluation, Stage
from agentgym.envs.harbor.task import (
    DEFAULT_REWARD_KEY,
    DEFAULT_VERIFIER_TIMEOUT_S,
    OUTPUT_TAIL,
    REWARD_JSON,
    REWARD_TXT,
    SOLUTION_DIR,
    TESTS_DIR,
    dockerfile_instructions,
    is_task_dir,
    load_task,
    parse_reward,
    unloadable_task,
)
from agentgym.envs.harbor.tb1 import parse_pytest_summary
from agentgym.errors import EnvError
from agentgym.runtime.base import ExecResult, Runtime, RuntimeBackend, RuntimeSpec
from agentgym.runtime.standins import OFFLINE_PRELUDE
from agentgym.types import Task
from agentgym.verify import run_verifier

__all__ = ["HarborEnv"]


def tail(text: str) -> str:
    return text[-OUTPUT_TAIL:]


def read_rewards(txt: str | None, raw_json: str | None) -> tuple[dict[str, float] | None, str]:
    """Every reward the verifier wrote, as Harbor reads them: ``reward.json`` (an object of
    finite numbers, all keys kept) when present, else ``reward.txt`` (one number, the key
    ``reward``); ``(None, why)`` when neither holds rewards."""
    if raw_json is not None:
        try:
            data = json.loads(raw_json)
        except ValueError:
            return None, f"{REWARD_JSON} is not JSON: {raw_json[:200]!r}"
        if not isinstance(data, Mapping) or not data:
            return None, f"{REWARD_JSON} does not hold a reward object ({{\"key\": number}}): {raw_json[:200]!r}"
        rewards: dict[str, float] = {}
        for key, value in data.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                return None, f"{REWARD_JSON}: {key!r} is not a finite number: {value!r}"
            rewards[str(key)] = float(value)
        return rewards, "ok"
    if txt is not None:
        try:
            return {DEFAULT_REWARD_KEY: parse_reward(txt)}, "ok"
        except ValueError:
            return None, f"{REWARD_TXT} does not hold a number: {txt[:200]!r}"
    return None, f"the verifier wrote neither {REWARD_TXT} nor {REWARD_JSON}"


def read_reward(txt: str | None, raw_json: str | None, key: str = DEFAULT_REWARD_KEY) -> tuple[float | None, str]:
    """The training reward: key ``key`` of :func:`read_rewards`; ``(None, why)`` when it is
    missing (the message lists the keys there are)."""
    rewards, reason = read_rewards(txt, raw_json)
    if rewards is None:
        return None, reason
    if key not in rewards:
        return None, (f"the verifier's rewards have no key {key!r} (keys: {', '.join(sorted(rewards))}); choose the "
                      "training reward with HarborEnv(reward_key=...) or [metadata.agentgym] reward_key")
    return rewards[key], "ok"


class HarborEnv(Env):
    """A suite of Harbor (or Terminal-Bench 1) tasks: every subdirectory of ``path`` that has a
    ``task.toml``, an ``instruction.md`` or a ``task.yaml``.

    Args:
        path: the suite directory, or a single task directory.
        task_ids: keep only these tasks (in this order); ``None`` keeps all, sorted by id.
        env_id: the env id (``self.id``, and ``Task.env`` of its tasks).
        image_prefix: tag prefix of the images built from task Dockerfiles.
        reward_key: the ``reward.json`` key that is the training reward (default ``reward``; a
            task's ``[metadata.agentgym] reward_key`` wins). Every key is kept in
            ``Evaluation.details["rewards"]``.

    A task that cannot be read (a bad ``task.toml``) is listed, and says why it cannot run
    (:meth:`unsupported`), instead of failing the whole suite; a single task directory that
    cannot be read raises :class:`EnvError`.

    Use: :meth:`~agentgym.env.Env.start` a runtime for a task (builds its image when needed), let
    the agent work, then :meth:`evaluate`. :meth:`oracle` runs the reference solution.
    """

    def __init__(self, path: str | os.PathLike[str], task_ids: Sequence[str] | None = None,
                 env_id: str = "harbor", image_prefix: str = "agentgym/harbor-",
                 reward_key: str | None = None) -> None:
        self.path = Path(path).absolute()  # task dirs are mounted into containers: no relative paths
        self.task_ids = list(task_ids) if task_ids is not None else None
        self.id = env_id
        self.image_prefix = image_prefix
        self.reward_key = reward_key
        self._tasks: list[Task] | None = None

    def __repr__(self) -> str:
        return f"HarborEnv(id={self.id!r}, path={str(self.path)!r})"

    def tasks(self) -> list[Task]:
        if self._tasks is None:
            if not self.path.is_dir():
                raise EnvError(f"{self.id}: suite directory {self.path} does not exist")
            if is_task_dir(self.path):
                self._tasks = [load_task(self.path, env_id=self.id, image_prefix=self.image_prefix)]
                return list(self._tasks)
            dirs = sorted(d for d in self.path.iterdir() if d.is_dir() and is_task_dir(d))
            by_id = {d.name: d for d in dirs}
            if self.task_ids is not None:
                missing = [t for t in self.task_ids if t not in by_id]
                if missing:
                    raise EnvError(f"{self.id}: no task {', '.join(map(repr, missing))} in {self.path}; "
                                   f"tasks: {', '.join(sorted(by_id))}")
                dirs = [by_id[t] for t in self.task_ids]
            tasks = []
            for d in dirs:
                try:
                    tasks.append(load_task(d, env_id=self.id, image_prefix=self.image_prefix))
                except EnvError as e:
                    tasks.append(unloadable_task(d, e, env_id=self.id))
            self._tasks = tasks
        return list(self._tasks)

    def notes(self, task: Task) -> list[str]:
        """What of the task's ``task.toml``/``task.yaml`` agentgym does not honour."""
        return list(task.metadata.get("notes") or [])

    # -- runtimes --------------------------------------------------------------------------------
    def unsupported(self, task: Task, backend: RuntimeBackend) -> str | None:
        """Why the task cannot run: what its definition asks that agentgym lacks (several steps, a
        compose sidecar...), else, without images (the local runtime), unless it declares
        ``[metadata.agentgym] local = true``."""
        if task.metadata.get("unsupported"):
            return str(task.metadata["unsupported"])
        if backend.uses_images or task.metadata.get("local"):
            return None
        return str(task.metadata.get("local_reason") or "the task does not declare local support")

    async def setup(self, task: Task, runtime: Runtime) -> None:
        """Without an image (the local runtime), replay the Dockerfile's ``COPY``/``ADD`` of
        build-context files (its ``RUN`` steps are the host's business); in a container the
        image already holds everything. Then run the task's ``[environment.healthcheck]`` until
        it passes (Harbor's semantics: ``retries`` consecutive failures after
        ``start_period_sec`` fail the start)."""
        if not runtime.uses_images and task.dockerfile_dir:
            await self._replay_copies(task, runtime)
        if task.metadata.get("healthcheck"):
            await self._healthcheck(task, runtime, dict(task.metadata["healthcheck"]))

    async def _healthcheck(self, task: Task, runtime: Runtime, check: dict[str, Any]) -> None:
        interval = float(check.get("interval_sec", 5.0))
        start_interval = float(check.get("start_interval_sec", 5.0))
        timeout = float(check.get("timeout_sec", 30.0))
        start_period = float(check.get("start_period_sec", 0.0))
        retries = int(check.get("retries", 3))
        started = time.monotonic()
        failures = 0
        while True:
            result = await runtime.exec(str(check["command"]), timeout=timeout, workdir=task.workdir)
            if result.ok:
                return
            in_start_period = time.monotonic() - started < start_period
            if not in_start_period:
                failures += 1
                if failures >= retries:
                    raise EnvError(f"{task.id}: the healthcheck failed {failures} times: {check['command']!r} "
                                   f"(exit {result.exit_code}): {tail(result.stdout + result.stderr)[-500:]}")
            await asyncio.sleep(start_interval if in_start_period else interval)

    async def _replay_copies(self, task: Task, runtime: Runtime) -> None:
        assert task.dockerfile_dir is not None
        ctx = Path(task.dockerfile_dir)
        workdir = "/"
        for word, args in dockerfile_instructions((ctx / "Dockerfile").read_text()):
            if word == "WORKDIR":
                workdir = str(PurePosixPath(workdir) / args.strip("\"'"))
            elif word in ("COPY", "ADD"):
                items = json.loads(args) if args.startswith("[") else [a for a in args.split() if not a.startswith("--")]
                if any(a.startswith("--from") for a in args.split()):
                    raise EnvError(f"{task.id}: cannot replay multi-stage `{word} {args}` locally")
                *sources, dest = items
                dest_dir = dest.endswith("/") or len(sources) > 1
                target = str(PurePosixPath(workdir) / dest)
                for src in sources:
                    host = ctx / src
                    if host.is_dir():
                        await runtime.upload_dir(str(host), target)
                    elif host.is_file():
                        path = f"{target}/{host.name}" if dest_dir else target
                        await runtime.write_file(path, host.read_bytes(), mode=host.stat().st_mode & 0o777)
                    else:
                        raise EnvError(f"{task.id}: `{word} {args}`: {host} does not exist")

    # -- evaluation ------------------------------------------------------------------------------
    async def evaluate(self, task: Task, runtime: Runtime) -> Evaluation:
        """Run the task's verifier where the agent cannot reach it
        (:func:`agentgym.verify.run_verifier`: a fresh container over the agent's files with the
        task image's own programs, the tests mounted at ``/tests``, an empty ``/logs/verifier``
        read on the host). Harbor: ``bash /tests/test.sh`` and its ``reward.json`` (every key,
        in ``details["rewards"]``; the training reward is ``reward_key``) or ``reward.txt``.
        Terminal-Bench 1: ``bash /tests/run-tests.sh``, graded by its pytest parser.

        A verifier that times out, writes no reward or an unparsable one has not scored the
        episode: :class:`EnvError` (the episode is unscorable, never reward 0). Signs of tampering
        go to ``details["tampering"]``.
        """
        if task.metadata.get("unsupported"):
            raise EnvError(f"{task.id}: cannot be scored: {task.metadata['unsupported']}")
        if task.metadata.get("format") == "terminal-bench":
            return await self._evaluate_tb1(task, runtime)
        steps = list(task.metadata.get("step_defs") or [])
        if steps:  # the last step's verifier on the final state (an episode runs every stage)
            return await self.evaluate_stage(task, runtime, len(steps) - 1, final=True)
        if not task.tests_dir:
            raise EnvError(f"{task.id}: no tests/test.sh to evaluate with")
        timeout = float(task.metadata.get("verifier_timeout_s", DEFAULT_VERIFIER_TIMEOUT_S))
        env = {"TEST_DIR": TESTS_DIR, **dict(task.metadata.get("verifier_env") or {})}
        run = await run_verifier(runtime, f"{OFFLINE_PRELUDE}bash {TESTS_DIR}/test.sh", trusted_image=task.image,
                                 mounts={task.tests_dir: TESTS_DIR}, env=env, timeout=timeout, workdir=task.workdir)
        details = self._check_run(task, run.result, timeout)
        details.update(isolation=run.isolation, tampering=run.evidence)
        rewards, reason = read_rewards(run.text("reward.txt"), run.text("reward.json"))
        key = self._reward_key(task)
        reward, why = read_reward(run.text("reward.txt"), run.text("reward.json"), key)
        if reward is None:
            raise EnvError(f"{task.id}: the verifier did not score the episode: {why if rewards else reason} "
                           f"(exit {run.result.exit_code}; output tail: "
                           f"{tail(run.result.stdout + run.result.stderr)[-800:]})")
        details.update(reward_file="ok", rewards=dict(rewards or {}), reward_key=key)
        return Evaluation(reward=reward, details=details)

    def _check_run(self, task: Task, result: ExecResult, timeout: float) -> dict[str, Any]:
        """The verifier run's details; :class:`EnvError` when it timed out or was killed."""
        details: dict[str, Any] = {
            "exit_code": result.exit_code, "duration_s": round(result.duration_s, 3),
            "stdout": tail(result.stdout), "stderr": tail(result.stderr),
        }
        if result.timed_out:
            raise EnvError(f"{task.id}: verifier timed out after {timeout:g}s; output tail:\n{tail(result.stdout)}")
        if result.exit_code >= 128 and not result.oom_killed:
            # Killed by a signal: something (the agent's code it ran, as root) may have written a
            # reward and stopped it before it wrote its own. Not a score.
            raise EnvError(f"{task.id}: the verifier was killed by signal {result.exit_code - 128} before it "
                           f"finished; the episode is unscored. Output tail:\n{tail(result.stdout + result.stderr)}")
        if result.oom_killed:
            details["oom_killed"] = True
        return details

    async def _evaluate_tb1(self, task: Task, runtime: Runtime) -> Evaluation:
        timeout = float(task.metadata.get("verifier_timeout_s", 60.0))
        root = Path(str(task.metadata["path"]))
        with tempfile.TemporaryDirectory(prefix="agentgym-tb1-") as tmp:
            # Terminal-Bench copies run-tests.sh and the contents of tests/ into /tests.
            if task.tests_dir:
                shutil.copytree(task.tests_dir, tmp, dirs_exist_ok=True)
            shutil.copy2(root / "run-tests.sh", Path(tmp) / "run-tests.sh")
            os.chmod(tmp, 0o755)
            run = await run_verifier(runtime, f"{OFFLINE_PRELUDE}bash {TESTS_DIR}/run-tests.sh", trusted_image=task.image,
                                     mounts={tmp: TESTS_DIR}, env=dict(task.metadata.get("verifier_env") or {}),
                                     timeout=timeout, workdir=task.workdir)
        details = self._check_run(task, run.result, timeout)
        details.update(isolation=run.isolation, tampering=run.evidence)
        try:
            tests = parse_pytest_summary(run.result.stdout + "\n" + run.result.stderr)
        except ValueError as e:
            raise EnvError(f"{task.id}: the tests did not run to a pytest summary ({e}); the episode is unscored. "
                           f"Output tail:\n{tail(run.result.stdout + run.result.stderr)[-1500:]}") from e
        resolved = all(v == "passed" for v in tests.values())
        details.update(tests=tests, resolved=resolved, rewards={DEFAULT_REWARD_KEY: float(resolved)},
                       reward_key=DEFAULT_REWARD_KEY)
        return Evaluation(reward=float(resolved), details=details)

    def runtime_spec(self, task: Task, **overrides: Any) -> RuntimeSpec:
        """The default spec, with every step's tests and solutions hidden too (a sandbox that
        shows the host, the local runtime, must not show them)."""
        root = Path(str(task.metadata.get("path") or ""))
        extra = tuple(str(p) for p in (root / "tests", root / "solution", root / "steps")
                      if task.metadata.get("step_defs") and p.exists())
        spec = super().runtime_spec(task, **overrides)
        return dataclasses.replace(spec, hidden=tuple(dict.fromkeys((*spec.hidden, *extra)))) if extra else spec

    # -- multi-step tasks (Harbor's [[steps]]) ----------------------------------------------------
    def stages(self, task: Task) -> list[Stage]:
        """One stage per ``[[steps]]`` entry (its ``instruction.md`` and agent timeout), else one."""
        steps = list(task.metadata.get("step_defs") or [])
        if not steps:
            return super().stages(task)
        return [Stage(name=s["name"], instruction=s["instruction"], timeout_s=s["agent_timeout_s"]) for s in steps]

    async def prepare_stage(self, task: Task, runtime: Runtime, index: int) -> None:
        """A step's files: ``steps/<name>/workdir/`` uploaded into the workdir and its
        ``setup.sh`` run there, then the step's healthcheck. On a runtime that verified the
        previous step in place, its tests and reward directory are emptied first."""
        steps = list(task.metadata.get("step_defs") or [])
        if not steps:
            return
        step = steps[index]
        if index and not runtime.uses_images:
            await runtime.exec(f"find {TESTS_DIR} /logs/verifier -mindepth 1 -delete 2>/dev/null; true", timeout=60)
        if step["workdir_dir"]:
            await runtime.upload_dir(step["workdir_dir"], task.workdir)
            if (Path(step["workdir_dir"]) / "setup.sh").is_file():
                result = await runtime.exec(f"bash {task.workdir.rstrip('/')}/setup.sh", timeout=600,
                                            workdir=task.workdir)
                if not result.ok:
                    raise EnvError(f"{task.id}: step {step['name']!r}: setup.sh exited {result.exit_code}: "
                                   f"{tail(result.stdout + result.stderr)[-800:]}")
        if step["healthcheck"]:
            await self._healthcheck(task, runtime, dict(step["healthcheck"]))

    async def evaluate_stage(self, task: Task, runtime: Runtime, index: int, *, final: bool) -> Evaluation:
        """A step's verifier: its ``tests/`` over the task's ``tests/`` at ``/tests``, its
        ``test.sh`` (else the task's), its timeout and env. Steps before the last are verified
        without ending the episode (:attr:`~agentgym.runtime.base.VerifierSpec.keep`)."""
        steps = list(task.metadata.get("step_defs") or [])
        if not steps:
            return await super().evaluate_stage(task, runtime, index, final=final)
        step = steps[index]
        with tempfile.TemporaryDirectory(prefix="agentgym-step-") as tmp:
            for source in (task.tests_dir or str(Path(str(task.metadata["path"])) / "tests"), step["tests_dir"]):
                if source and Path(source).is_dir():
                    shutil.copytree(source, tmp, dirs_exist_ok=True)
            os.chmod(tmp, 0o755)
            if not (Path(tmp) / "test.sh").is_file():
                raise EnvError(f"{task.id}: step {step['name']!r} has no tests/test.sh (nor has the task)")
            timeout = float(step["verifier_timeout_s"])
            env = {"TEST_DIR": TESTS_DIR, **dict(step["verifier_env"])}
            run = await run_verifier(runtime, f"{OFFLINE_PRELUDE}bash {TESTS_DIR}/test.sh", trusted_image=task.image,
                                     mounts={tmp: TESTS_DIR}, env=env, timeout=timeout, workdir=task.workdir,
                                     keep=not final)
        details = self._check_run(task, run.result, timeout)
        details.update(isolation=run.isolation, tampering=run.evidence, step=step["name"])
        rewards, reason = read_rewards(run.text("reward.txt"), run.text("reward.json"))
        if rewards is None:
            raise EnvError(f"{task.id}: the verifier of step {step['name']!r} did not score it: {reason} (exit "
                           f"{run.result.exit_code}; output tail: {tail(run.result.stdout + run.result.stderr)[-800:]})")
        key = self._reward_key(task)
        details.update(reward_file="ok", rewards=dict(rewards), reward_key=key)
        return Evaluation(reward=rewards.get(key, 0.0), details=details)

    def continue_after(self, task: Task, index: int, evaluation: Evaluation) -> bool:
        """Harbor's ``min_reward``: a number gates the ``reward`` key, a table each of its keys
        (a missing key fails)."""
        steps = list(task.metadata.get("step_defs") or [])
        gate = steps[index]["min_reward"] if steps else None
        if gate is None:
            return True
        thresholds = {DEFAULT_REWARD_KEY: float(gate)} if isinstance(gate, (int, float)) else dict(gate)
        rewards = dict(evaluation.details.get("rewards") or {})
        return all(rewards.get(k, float("-inf")) >= float(v) for k, v in thresholds.items())

    def combine(self, task: Task, evaluations: Sequence[Evaluation]) -> Evaluation:
        """Harbor's ``multi_step_reward_strategy``: ``mean`` (default) averages every key over
        the steps that ran (a key a step lacks counts 0); ``final`` keeps the last step's. The
        training reward is ``reward_key`` of the result; each step's evaluation is kept in
        ``details["stages"]``."""
        per_step = [dict(e.details.get("rewards") or {}) for e in evaluations]
        if task.metadata.get("multi_step_reward_strategy") == "final":
            rewards = per_step[-1]
        else:
            keys = sorted({k for r in per_step for k in r})
            rewards = {k: sum(r.get(k, 0.0) for r in per_step) / len(per_step) for k in keys}
        key = self._reward_key(task)
        if key not in rewards:
            raise EnvError(f"{task.id}: the steps' rewards have no key {key!r} (keys: {', '.join(sorted(rewards))}); "
                           "choose the training reward with HarborEnv(reward_key=...) or [metadata.agentgym] reward_key")
        last = evaluations[-1].details
        details = {"rewards": rewards, "reward_key": key, "reward_file": "ok",
                   "strategy": task.metadata.get("multi_step_reward_strategy", "mean"),
                   "stages": [dict(e.details) for e in evaluations],
                   "steps_run": len(evaluations), "steps": len(task.metadata.get("step_defs") or []),
                   "tampering": [t for e in evaluations for t in e.details.get("tampering") or []],
                   **{k: last[k] for k in ("stdout", "stderr", "exit_code", "isolation") if k in last}}
        return Evaluation(reward=rewards[key], step_rewards=[e.reward for e in evaluations], details=details)

    async def oracle_stage(self, task: Task, runtime: Runtime, index: int) -> ExecResult:
        """A step's ``solution/solve.sh`` (else the task's ``solution/``), as :meth:`oracle` runs it."""
        steps = list(task.metadata.get("step_defs") or [])
        if not steps:
            return await self.oracle(task, runtime)
        solution = steps[index]["solution_dir"] or task.solution_dir
        if not solution:
            raise EnvError(f"{task.id}: step {steps[index]['name']!r} has no solution/solve.sh")
        await runtime.exec(f"find {SOLUTION_DIR} -mindepth 1 -delete 2>/dev/null; true", timeout=60)
        await runtime.upload_dir(solution, SOLUTION_DIR)
        env = dict(task.metadata.get("solution_env") or {})
        return await runtime.exec(f"bash {SOLUTION_DIR}/solve.sh", timeout=steps[index]["agent_timeout_s"], env=env,
                                  workdir=task.workdir)

    def _reward_key(self, task: Task) -> str:
        return str(task.metadata.get("reward_key") or self.reward_key or DEFAULT_REWARD_KEY)

    async def oracle(self, task: Task, runtime: Runtime) -> ExecResult:
        """Upload ``solution/`` to ``/solution`` and run ``bash /solution/solve.sh`` in the
        workdir (agent timeout); Terminal-Bench 1: ``solution.sh``, the same way. Returns its
        result; raises EnvError when there is no solution."""
        script = task.metadata.get("solution_script")
        if script:
            await runtime.write_file(f"{SOLUTION_DIR}/solution.sh", Path(str(script)).read_bytes(), mode=0o755)
            return await runtime.exec(f"bash {SOLUTION_DIR}/solution.sh", timeout=task.limits.timeout_s,
                                      workdir=task.workdir, env={"DEBIAN_FRONTEND": "noninteractive"})
        if not task.solution_dir:
            raise EnvError(f"{task.id}: no solution/solve.sh")
        await runtime.upload_dir(task.solution_dir, SOLUTION_DIR)
        env = dict(task.metadata.get("solution_env") or {})
        return await runtime.exec(f"bash {SOLUTION_DIR}/solve.sh", timeout=task.limits.timeout_s, env=env,
                                  workdir=task.workdir)
