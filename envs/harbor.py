"""Terminal environments in the Harbor / Terminal-Bench task layout.

A task is a directory::

    my-task/
      instruction.md          what the agent is told
      task.toml               timeouts, resources, metadata (Harbor schema, see below)
      environment/Dockerfile  the sandbox (built with the host network; nothing is pulled)
      solution/solve.sh       oracle solution (never shown to the agent)
      tests/test.sh           verifier: writes a float to /logs/verifier/reward.txt

and a suite is a directory of task directories. ``task.toml`` follows Harbor's ``TaskConfig``:
``version``/``schema_version``, ``[task]`` (name, description, keywords), ``[metadata]``
(free-form: difficulty, category, tags), ``[verifier]`` (timeout_sec, env), ``[agent]``
(timeout_sec), ``[environment]`` (build_timeout_sec, docker_image, cpus, memory_mb, storage_mb,
allow_internet, network_mode, env; the deprecated ``memory = "4G"`` is read too) and
``[solution]`` (env). Unknown keys are ignored, as Harbor ignores them.

agentgym reads one extension, ``[metadata.agentgym]``: ``local = true`` declares that the task
also runs on the :class:`~agentgym.runtime.local.LocalRuntime` (its scripts prefix absolute
paths with ``${AGENTGYM_ROOT:-}``, and its Dockerfile's RUN steps are satisfied by the host),
and ``local_reason`` says why not when it is false.

>>> from agentgym import registries
>>> env = registries.envs.make("terminal/basic-v0")
>>> [t.id for t in env.tasks()][:2]
['fix-python-script', 'hello-file']
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from agentgym.envs.base import Env, Evaluation
from agentgym.errors import EnvError
from agentgym.runtime.base import ExecResult, Runtime, RuntimeBackend, RuntimeSpec
from agentgym.types import Task, TaskLimits

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 needs the tomli backport
    import tomli as tomllib

TESTS_DIR = "/tests"
SOLUTION_DIR = "/solution"
LOGS_DIR = "/logs"
REWARD_TXT = "/logs/verifier/reward.txt"
REWARD_JSON = "/logs/verifier/reward.json"
DEFAULT_AGENT_TIMEOUT_S = 600.0
DEFAULT_VERIFIER_TIMEOUT_S = 600.0
OUTPUT_TAIL = 4000


def _size_to_mb(size: str) -> int:
    """Harbor's deprecated size strings: ``"4G"``, ``"512M"``, ``"1024K"``."""
    s = size.strip().upper().removesuffix("B")
    units = {"G": 1024.0, "M": 1.0, "K": 1 / 1024}
    if s and s[-1] in units:
        return int(float(s[:-1]) * units[s[-1]])
    raise ValueError(f"invalid size {size!r}: expected e.g. '4G' or '512M'")


def _dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        word, _, rest = current.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    return out


def dockerfile_workdir(text: str, default: str = "/app") -> str:
    """The last ``WORKDIR`` of a Dockerfile (relative ones resolved), else ``default``."""
    workdir = None
    for word, args in _dockerfile_instructions(text):
        if word == "WORKDIR":
            workdir = str(PurePosixPath(workdir or "/") / args.strip("\"'"))
    return workdir or default


def load_harbor_task(path: str | os.PathLike[str], *, env_id: str = "harbor",
                     image_prefix: str = "agentgym/harbor-") -> Task:
    """Read one Harbor task directory into a :class:`Task`.

    ``Task.id`` is the directory name. ``Task.image`` is ``[environment] docker_image`` when
    set, else ``<image_prefix><id>:latest`` built from ``environment/``. Verifier settings and
    the parsed config go to ``Task.metadata`` (``verifier_timeout_s``, ``verifier_env``,
    ``solution_env``, ``network``, ``difficulty``, ``category``, ``tags``, ``harbor``...).
    Raises :class:`EnvError` naming the file at fault.
    """
    root = Path(path)
    if not root.is_dir():
        raise EnvError(f"Harbor task {root} is not a directory")
    instruction_file = root / "instruction.md"
    if not instruction_file.is_file():
        raise EnvError(f"Harbor task {root}: instruction.md is missing")
    config: dict[str, Any] = {}
    toml_file = root / "task.toml"
    if toml_file.is_file():
        try:
            config = tomllib.loads(toml_file.read_text())
        except tomllib.TOMLDecodeError as e:
            raise EnvError(f"{toml_file}: invalid TOML: {e}") from e
    meta = dict(config.get("metadata") or {})
    verifier = config.get("verifier") or {}
    agent = config.get("agent") or {}
    environment = config.get("environment") or {}
    solution = config.get("solution") or {}
    package = config.get("task") or {}
    try:
        memory_mb = int(environment.get("memory_mb", 2048))
        if environment.get("memory"):
            memory_mb = _size_to_mb(str(environment["memory"]))
        cpus = float(environment.get("cpus", 1))
        agent_timeout = float(agent.get("timeout_sec") or DEFAULT_AGENT_TIMEOUT_S)
        verifier_timeout = float(verifier.get("timeout_sec") or DEFAULT_VERIFIER_TIMEOUT_S)
        build_timeout = float(environment.get("build_timeout_sec", 600.0))
    except (TypeError, ValueError) as e:
        raise EnvError(f"{toml_file}: {e}") from e

    env_dir = root / "environment"
    dockerfile = env_dir / "Dockerfile"
    docker_image = environment.get("docker_image")
    if not docker_image and not dockerfile.is_file():
        raise EnvError(f"Harbor task {root}: needs environment/Dockerfile or [environment] docker_image")
    workdir = dockerfile_workdir(dockerfile.read_text()) if dockerfile.is_file() else "/app"
    network_mode = environment.get("network_mode")
    offline = network_mode == "no-network" or environment.get("allow_internet") is False
    tests_dir = root / "tests"
    solution_dir = root / "solution"
    task_id = root.name
    ext = meta.pop("agentgym", {}) or {}
    metadata: dict[str, Any] = {
        "difficulty": meta.get("difficulty"),
        "category": meta.get("category"),
        "tags": list(meta.get("tags") or package.get("keywords") or []),
        "name": package.get("name", task_id),
        "description": package.get("description", ""),
        "verifier_timeout_s": verifier_timeout,
        "verifier_env": dict(verifier.get("env") or {}),
        "solution_env": dict(solution.get("env") or {}),
        "environment_env": dict(environment.get("env") or {}),
        "build_timeout_s": build_timeout,
        "storage_mb": environment.get("storage_mb"),
        "network": "none" if offline else "host",
        "local": bool(ext.get("local", False)),
        "local_reason": str(ext.get("local_reason") or (
            "" if ext.get("local") else "the task does not declare [metadata.agentgym] local = true")),
        "path": str(root),
        "harbor": config,
    }
    return Task(
        id=task_id,
        instruction=instruction_file.read_text(),
        env=env_id,
        image=docker_image or f"{image_prefix}{task_id}:latest".lower(),
        dockerfile_dir=None if docker_image else str(env_dir),
        workdir=workdir,
        limits=TaskLimits(timeout_s=agent_timeout, memory=f"{memory_mb}m", cpus=cpus),
        tests_dir=str(tests_dir) if (tests_dir / "test.sh").is_file() else None,
        solution_dir=str(solution_dir) if (solution_dir / "solve.sh").is_file() else None,
        metadata=metadata,
    )


def _tail(text: str) -> str:
    return text[-OUTPUT_TAIL:]


def parse_reward(text: str) -> float:
    """A finite float from ``reward.txt`` (surrounding whitespace allowed); ``ValueError`` else."""
    value = float(text.strip())
    if not math.isfinite(value):
        raise ValueError(f"reward {value} is not finite")
    return value


class HarborEnv(Env):
    """A suite of Harbor tasks: every subdirectory of ``path`` that has a ``task.toml`` or an
    ``instruction.md``.

    Args:
        path: the suite directory, or a single task directory.
        task_ids: keep only these tasks (in this order); ``None`` keeps all, sorted by id.
        env_id: the env id (``self.id``, and ``Task.env`` of its tasks).
        image_prefix: tag prefix of the images built from task Dockerfiles.

    Use: :meth:`start` a runtime for a task (builds its image when needed), let the agent work,
    then :meth:`evaluate`. :meth:`oracle` runs the reference solution.
    """

    def __init__(self, path: str | os.PathLike[str], task_ids: Sequence[str] | None = None,
                 env_id: str = "harbor", image_prefix: str = "agentgym/harbor-") -> None:
        self.path = Path(path)
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
    def spec(self, task: Task, **overrides: Any) -> RuntimeSpec:
        """The runtime spec of ``task``: its image, workdir, memory, cpus, network and env."""
        fields: dict[str, Any] = dict(
            image=task.image, workdir=task.workdir, memory=task.limits.memory, cpus=task.limits.cpus,
            network=task.metadata.get("network", "host"), env=dict(task.metadata.get("environment_env") or {}))
        fields.update(overrides)
        return RuntimeSpec(**fields)

    @staticmethod
    def local_support(task: Task) -> tuple[bool, str]:
        """Whether ``task`` runs on the local backend, and if not, why."""
        return bool(task.metadata.get("local")), str(task.metadata.get("local_reason", ""))

    async def build(self, backend: RuntimeBackend, task: Task) -> str:
        """Build the task's image if it is missing or its context changed; returns the tag."""
        if backend.name == "local" or task.image is None:
            return task.image or ""
        return await backend.ensure_image(task.image, task.dockerfile_dir)

    async def start(self, task: Task, backend: RuntimeBackend, **spec_overrides: Any) -> Runtime:
        """Build (if needed), start and :meth:`setup` a runtime for ``task``.

        On the local backend, a task that does not declare local support raises EnvError."""
        if backend.name == "local":
            ok, reason = self.local_support(task)
            if not ok:  # before creating anything
                raise EnvError(f"{task.id} cannot run on the local backend: {reason}")
            spec = self.spec(task, image=None, **spec_overrides)
        else:
            await self.build(backend, task)
            spec = self.spec(task, **spec_overrides)
        runtime = await backend.start(spec)
        try:
            await self.setup(task, runtime)
        except BaseException:
            await runtime.stop()
            raise
        return runtime

    async def setup(self, task: Task, runtime: Runtime) -> None:
        """Locally, replay the Dockerfile's ``COPY``/``ADD`` of build-context files (its ``RUN``
        steps are the host's business); a task that does not declare local support raises
        :class:`EnvError`. In a container the image already holds everything."""
        if runtime.backend != "local":
            return
        ok, reason = self.local_support(task)
        if not ok:
            raise EnvError(f"{task.id} cannot run on the local backend: {reason}")
        if not task.dockerfile_dir:
            return
        ctx = Path(task.dockerfile_dir)
        workdir = "/"
        for word, args in _dockerfile_instructions((ctx / "Dockerfile").read_text()):
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
        """Copy ``tests/`` to ``/tests``, run ``bash /tests/test.sh`` under the verifier timeout
        and read ``/logs/verifier/reward.txt`` (or ``reward.json``).

        A missing or unparsable reward file gives reward 0 with ``details["reason"]``. A
        verifier that times out, or a task without tests, raises :class:`EnvError`; runtime
        failures propagate as :class:`~agentgym.errors.RuntimeError_`.
        """
        if not task.tests_dir:
            raise EnvError(f"{task.id}: no tests/test.sh to evaluate with")
        timeout = float(task.metadata.get("verifier_timeout_s", DEFAULT_VERIFIER_TIMEOUT_S))
        # Stale files (an agent may have written its own reward) must not count.
        prep = await runtime.exec(f"rm -rf {TESTS_DIR} {LOGS_DIR}/verifier && mkdir -p {TESTS_DIR} {LOGS_DIR}/verifier",
                                  timeout=60)
        if not prep.ok:
            raise EnvError(f"{task.id}: cannot prepare {TESTS_DIR}: {prep.stderr.strip() or prep.exit_code}")
        await runtime.upload_dir(task.tests_dir, TESTS_DIR)
        env = {"TEST_DIR": TESTS_DIR, **dict(task.metadata.get("verifier_env") or {})}
        result = await runtime.exec(f"bash {TESTS_DIR}/test.sh", timeout=timeout, env=env, workdir=task.workdir)
        details: dict[str, Any] = {
            "exit_code": result.exit_code, "duration_s": round(result.duration_s, 3),
            "stdout": _tail(result.stdout), "stderr": _tail(result.stderr),
        }
        if result.timed_out:
            raise EnvError(f"{task.id}: verifier timed out after {timeout:g}s; output tail:\n{_tail(result.stdout)}")
        if result.oom_killed:
            details["oom_killed"] = True
        reward, reason = await self._read_reward(runtime)
        details["reward_file"] = reason if reward is None else "ok"
        if reward is None:
            details["reason"] = reason
            return Evaluation(reward=0.0, details=details)
        return Evaluation(reward=reward, details=details)

    async def _read_reward(self, runtime: Runtime) -> tuple[float | None, str]:
        try:
            text = (await runtime.read_file(REWARD_TXT)).decode("utf-8", "replace")
        except FileNotFoundError:
            text = None
        if text is not None:
            try:
                return parse_reward(text), "ok"
            except ValueError:
                return None, f"{REWARD_TXT} does not hold a number: {text[:200]!r}"
        try:
            raw = (await runtime.read_file(REWARD_JSON)).decode("utf-8", "replace")
        except FileNotFoundError:
            return None, f"the verifier wrote neither {REWARD_TXT} nor {REWARD_JSON}"
        try:
            data = json.loads(raw)
            value = data.get("reward", next(iter(data.values()))) if isinstance(data, Mapping) else data
            return parse_reward(str(value)), "ok"
        except (ValueError, StopIteration, TypeError):
            return None, f"{REWARD_JSON} does not hold a reward: {raw[:200]!r}"

    async def oracle(self, task: Task, runtime: Runtime) -> ExecResult:
        """Upload ``solution/`` to ``/solution`` and run ``bash /solution/solve.sh`` in the
        workdir (agent timeout). Returns its result; raises EnvError when there is no solution."""
        if not task.solution_dir:
            raise EnvError(f"{task.id}: no solution/solve.sh")
        await runtime.upload_dir(task.solution_dir, SOLUTION_DIR)
        env = dict(task.metadata.get("solution_env") or {})
        return await runtime.exec(f"bash {SOLUTION_DIR}/solve.sh", timeout=task.limits.timeout_s, env=env,
                                  workdir=task.workdir)


# -- gymnasium ------------------------------------------------------------------------------------
SUBMIT = "submit"
"""The action that ends an episode of :class:`HarborGymEnv` and runs the verifier."""


def __getattr__(name: str) -> Any:
    # gymnasium is imported only when the wrapper is asked for.
    if name == "HarborGymEnv":
        return _gym_env_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_GYM_CLASS: list[type] = []


def _gym_env_class() -> type:
    if _GYM_CLASS:
        return _GYM_CLASS[0]
    import asyncio
    import random
    import string
    import threading

    import gymnasium
    from gymnasium import spaces

    class HarborGymEnv(gymnasium.Env):
        """A Harbor suite as a ``gymnasium.Env`` for in-process agents: text in, text out.

        ``reset`` starts a fresh runtime for one task (``task_id``, ``options["task_id"]`` or a
        seeded random pick) and returns its instruction. ``step(command)`` runs a shell command
        and returns ``exit code: N`` plus its output; ``step("submit")`` (or the step limit) runs
        the verifier and returns its reward. Async runtimes run on a private event loop thread.

        >>> env = HarborGymEnv("terminal/hello-file-v0", backend="local")   # doctest: +SKIP
        >>> obs, info = env.reset(seed=0)                                    # doctest: +SKIP
        >>> env.step("printf 'Hello, agentgym!\\\\n' > /app/hello.txt")      # doctest: +SKIP
        >>> obs, reward, terminated, truncated, info = env.step("submit")    # doctest: +SKIP
        """

        metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 - gymnasium declares it so

        def __init__(self, env: HarborEnv | str, task_id: str | None = None,
                     backend: RuntimeBackend | str = "docker", max_steps: int = 30,
                     command_timeout: float = 60.0, max_output: int = 10_000) -> None:
            from agentgym import registries
            from agentgym.runtime import get_backend

            self.env: HarborEnv = registries.envs.make(env) if isinstance(env, str) else env
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
            self._thread = threading.Thread(target=self._loop.run_forever, name="harbor-gym-loop", daemon=True)
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
            tasks = self.env.tasks()
            wanted = (options or {}).get("task_id") or self.task_id
            self.task = self.env.task(wanted) if wanted else random.Random(seed).choice(tasks)
            self.runtime = self._run(self.env.start(self.task, self.backend))
            self._steps = 0
            return self.task.instruction, {"task_id": self.task.id, "workdir": self.task.workdir}

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
            assert self.runtime is not None and self.task is not None
            evaluation: Evaluation = self._run(self.env.evaluate(self.task, self.runtime))
            self._stop_runtime()
            return (f"reward: {evaluation.reward:g}", evaluation.reward, terminated, not terminated,
                    {"evaluation": dict(evaluation.details)})

        def close(self) -> None:
            try:
                self._stop_runtime()
            finally:
                if self._own_backend and hasattr(self.backend, "close"):
                    self.backend.close()
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(timeout=5)

    _GYM_CLASS.append(HarborGymEnv)
    return HarborGymEnv
