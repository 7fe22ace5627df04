"""The Harbor / Terminal-Bench task layout, read into :class:`~agentgym.types.Task`.

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
also runs on the :class:`~agentgym.runtime.local.LocalRuntime` (its Dockerfile's RUN steps are
satisfied by the host, and its scripts prefix absolute paths with ``${AGENTGYM_ROOT:-}``, which
only the runtime without isolation sets), and ``local_reason`` says why not when it is false.

>>> from agentgym.envs import TERMINAL_TASKS
>>> task = load_harbor_task(TERMINAL_TASKS / "hello-file", env_id="terminal/basic-v0")
>>> task.id, task.image, task.workdir
('hello-file', 'agentgym/harbor-hello-file:latest', '/app')
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path, PurePosixPath
from typing import Any

from agentgym.errors import EnvError
from agentgym.types import Task, TaskLimits

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 needs the tomli backport
    import tomli as tomllib

__all__ = ["dockerfile_instructions", "dockerfile_workdir", "load_harbor_task", "parse_reward"]

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


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
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
    for word, args in dockerfile_instructions(text):
        if word == "WORKDIR":
            workdir = str(PurePosixPath(workdir or "/") / args.strip("\"'"))
    return workdir or default


def load_harbor_task(path: str | os.PathLike[str], *, env_id: str = "harbor",
                     image_prefix: str = "agentgym/harbor-") -> Task:
    """Read one Harbor task directory into a :class:`Task`.

    ``Task.id`` is the directory name. ``Task.image`` is ``[environment] docker_image`` when
    set, else ``<image_prefix><id>:latest`` built from ``environment/``. Verifier settings and
    the parsed config go to ``Task.metadata`` (``verifier_timeout_s``, ``verifier_env``,
    ``solution_env``, ``difficulty``, ``category``, ``tags``, ``local``, ``harbor``...), read by
    :class:`~agentgym.envs.harbor.HarborEnv` only.
    The sandbox's environment variables and network go to ``Task.env_vars`` and ``Task.network``.
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
        "build_timeout_s": build_timeout,
        "storage_mb": environment.get("storage_mb"),
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
        env_vars={str(k): str(v) for k, v in dict(environment.get("env") or {}).items()},
        network="none" if offline else "host",
        tests_dir=str(tests_dir) if (tests_dir / "test.sh").is_file() else None,
        solution_dir=str(solution_dir) if (solution_dir / "solve.sh").is_file() else None,
        metadata=metadata,
    )


def parse_reward(text: str) -> float:
    """A finite float from ``reward.txt`` (surrounding whitespace allowed); ``ValueError`` else."""
    value = float(text.strip())
    if not math.isfinite(value):
        raise ValueError(f"reward {value} is not finite")
    return value


