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

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from agentgym.env import Env, Evaluation
from agentgym.envs.harbor.task import (
    DEFAULT_VERIFIER_TIMEOUT_S,
    OUTPUT_TAIL,
    REWARD_JSON,
    REWARD_TXT,
    SOLUTION_DIR,
    TESTS_DIR,
    dockerfile_instructions,
    load_harbor_task,
    parse_reward,
)
from agentgym.errors import EnvError
from agentgym.runtime.base import ExecResult, Runtime, RuntimeBackend
from agentgym.types import Task
from agentgym.verify import run_verifier

__all__ = ["HarborEnv"]


def tail(text: str) -> str:
    return text[-OUTPUT_TAIL:]


def read_reward(txt: str | None, raw_json: str | None) -> tuple[float | None, str]:
    """The reward from ``reward.txt`` (a float) or else ``reward.json`` (its ``reward`` key, or
    its first value); ``(None, why)`` when neither holds one."""
    if txt is not None:
        try:
            return parse_reward(txt), "ok"
        except ValueError:
            return None, f"{REWARD_TXT} does not hold a number: {txt[:200]!r}"
    if raw_json is None:
        return None, f"the verifier wrote neither {REWARD_TXT} nor {REWARD_JSON}"
    try:
        data = json.loads(raw_json)
        value = data.get("reward", next(iter(data.values()))) if isinstance(data, Mapping) else data
        return parse_reward(str(value)), "ok"
    except (ValueError, StopIteration, TypeError):
        return None, f"{REWARD_JSON} does not hold a reward: {raw_json[:200]!r}"


class HarborEnv(Env):
    """A suite of Harbor tasks: every subdirectory of ``path`` that has a ``task.toml`` or an
    ``instruction.md``.

    Args:
        path: the suite directory, or a single task directory.
        task_ids: keep only these tasks (in this order); ``None`` keeps all, sorted by id.
        env_id: the env id (``self.id``, and ``Task.env`` of its tasks).
        image_prefix: tag prefix of the images built from task Dockerfiles.

    Use: :meth:`~agentgym.env.Env.start` a runtime for a task (builds its image when needed), let
    the agent work, then :meth:`evaluate`. :meth:`oracle` runs the reference solution.
    """

    def __init__(self, path: str | os.PathLike[str], task_ids: Sequence[str] | None = None,
                 env_id: str = "harbor", image_prefix: str = "agentgym/harbor-") -> None:
        self.path = Path(path).absolute()  # task dirs are mounted into containers: no relative paths
        self.task_ids = list(task_ids) if task_ids is not None else None
        self.id = env_id
        self.image_prefix = image_prefix
        self._tasks: list[Task] | None = None

    def __repr__(self) -> str:
        return f"HarborEnv(id={self.id!r}, path={str(self.path)!r})"

    def tasks(self) -> list[Task]:
        if self._tasks is None:
            if not self.path.is_dir():
                raise EnvError(f"{self.id}: suite directory {self.path} does not exist")
            if (self.path / "instruction.md").is_file():
                dirs = [self.path]
            else:
                dirs = sorted(d for d in self.path.iterdir()
                              if d.is_dir() and ((d / "task.toml").is_file() or (d / "instruction.md").is_file()))
            by_id = {d.name: d for d in dirs}
            if self.task_ids is not None:
                missing = [t for t in self.task_ids if t not in by_id]
                if missing:
                    raise EnvError(f"{self.id}: no task {', '.join(map(repr, missing))} in {self.path}; "
                                   f"tasks: {', '.join(sorted(by_id))}")
                dirs = [by_id[t] for t in self.task_ids]
            self._tasks = [load_harbor_task(d, env_id=self.id, image_prefix=self.image_prefix) for d in dirs]
        return list(self._tasks)

    # -- runtimes --------------------------------------------------------------------------------
    def unsupported(self, task: Task, backend: RuntimeBackend) -> str | None:
        """Tasks run in their own image; without images (the local runtime) only those that
        declare ``[metadata.agentgym] local = true`` run."""
        if backend.uses_images or task.metadata.get("local"):
            return None
        return str(task.metadata.get("local_reason") or "the task does not declare local support")

    async def setup(self, task: Task, runtime: Runtime) -> None:
        """Without an image (the local runtime), replay the Dockerfile's ``COPY``/``ADD`` of
        build-context files (its ``RUN`` steps are the host's business). In a container the
        image already holds everything."""
        if runtime.uses_images or not task.dockerfile_dir:
            return
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
        """Run ``bash /tests/test.sh`` as the verifier, where the agent cannot reach it
        (:func:`agentgym.verify.run_verifier`: a fresh container over the agent's files with the
        task image's own programs, ``tests/`` mounted at ``/tests``, an empty ``/logs/verifier``
        read on the host), and read ``reward.txt`` (or ``reward.json``) from what it wrote.

        A verifier that times out, writes no reward or an unparsable one has not scored the
        episode: :class:`EnvError` (the episode is unscorable, never reward 0). Signs of tampering
        go to ``details["tampering"]``.
        """
        if not task.tests_dir:
            raise EnvError(f"{task.id}: no tests/test.sh to evaluate with")
        timeout = float(task.metadata.get("verifier_timeout_s", DEFAULT_VERIFIER_TIMEOUT_S))
        env = {"TEST_DIR": TESTS_DIR, **dict(task.metadata.get("verifier_env") or {})}
        run = await run_verifier(runtime, f"bash {TESTS_DIR}/test.sh", trusted_image=task.image,
                                 mounts={task.tests_dir: TESTS_DIR}, env=env, timeout=timeout, workdir=task.workdir)
        result = run.result
        details: dict[str, Any] = {
            "exit_code": result.exit_code, "duration_s": round(result.duration_s, 3),
            "stdout": tail(result.stdout), "stderr": tail(result.stderr), "isolation": run.isolation,
            "tampering": run.evidence,
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
        reward, reason = read_reward(run.text("reward.txt"), run.text("reward.json"))
        if reward is None:
            raise EnvError(f"{task.id}: the verifier did not score the episode: {reason} (exit {result.exit_code}; "
                           f"output tail: {tail(result.stdout + result.stderr)[-800:]})")
        details["reward_file"] = "ok"
        return Evaluation(reward=reward, details=details)

    async def oracle(self, task: Task, runtime: Runtime) -> ExecResult:
        """Upload ``solution/`` to ``/solution`` and run ``bash /solution/solve.sh`` in the
        workdir (agent timeout). Returns its result; raises EnvError when there is no solution."""
        if not task.solution_dir:
            raise EnvError(f"{task.id}: no solution/solve.sh")
        await runtime.upload_dir(task.solution_dir, SOLUTION_DIR)
        env = dict(task.metadata.get("solution_env") or {})
        return await runtime.exec(f"bash {SOLUTION_DIR}/solve.sh", timeout=task.limits.timeout_s, env=env,
                                  workdir=task.workdir)
