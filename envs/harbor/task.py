"""The Harbor task layout, read into :class:`~agentgym.types.Task`.

A task is a directory::

    my-task/
      instruction.md          what the agent is told (leading canary comment lines are dropped)
      task.toml               timeouts, resources, metadata (Harbor's TaskConfig, below)
      environment/Dockerfile  the sandbox (built with the host network; nothing is pulled)
      solution/solve.sh       oracle solution (never shown to the agent)
      tests/test.sh           verifier: writes /logs/verifier/reward.txt or reward.json

and a suite is a directory of task directories (Terminal-Bench 1's ``task.yaml`` layout is
read by :mod:`.tb1`; :func:`load_task` picks the reader).

``task.toml`` is Harbor's ``TaskConfig`` (schema 1.4, ``harbor`` 0.26 on PyPI). Its fields, and
what agentgym does with each, are :data:`SCHEMA`: every field is either honoured, or reported
(:meth:`HarborEnv.notes <agentgym.envs.harbor.HarborEnv.notes>`, ``agentgym envs show``, a
warning on load), or makes the task unsupported with the reason (a compose sidecar, Windows, a
GPU, a separate verifier environment). Keys Harbor does not know are reported too (Harbor
ignores them). Multi-step tasks (``[[steps]]``, ``steps/<name>/``) run as Harbor runs them:
one stage per step in one sandbox (:meth:`HarborEnv.stages <agentgym.envs.harbor.HarborEnv.stages>`).
``tests/unit/envs/test_harbor_schema.py`` proves this reader equal to Harbor's own model on
Harbor's template tasks and pins :data:`SCHEMA` to the model's fields.

agentgym reads one extension, ``[metadata.agentgym]``: ``local = true`` declares that the task
also runs on the :class:`~agentgym.runtime.local.LocalRuntime` (``local_reason`` says why not),
``reward_key`` names the ``reward.json`` key that is the training reward (default ``reward``),
and ``pids_limit`` caps the sandbox's processes.

>>> from agentgym.envs import TERMINAL_TASKS
>>> task = load_harbor_task(TERMINAL_TASKS / "hello-file", env_id="terminal/basic-v0")
>>> task.id, task.image, task.workdir
('hello-file', 'agentgym/harbor-hello-file:latest', '/app')
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from agentgym.errors import EnvError
from agentgym.types import Task, TaskLimits

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 needs the tomli backport
    import tomli as tomllib

__all__ = ["SCHEMA", "dockerfile_instructions", "dockerfile_workdir", "is_task_dir", "load_harbor_task",
           "load_task", "parse_reward", "strip_canary"]

TESTS_DIR = "/tests"
SOLUTION_DIR = "/solution"
LOGS_DIR = "/logs"
REWARD_TXT = "/logs/verifier/reward.txt"
REWARD_JSON = "/logs/verifier/reward.json"
DEFAULT_AGENT_TIMEOUT_S = 600.0
DEFAULT_VERIFIER_TIMEOUT_S = 600.0
DEFAULT_REWARD_KEY = "reward"
OUTPUT_TAIL = 4000
MAIN_SERVICE = "main"

HONOURED = "honoured"
REPORTED = "reported"
UNSUPPORTED = "unsupported"
SCHEMA: dict[str, dict[str, str]] = {
    "": {"schema_version": HONOURED, "version": HONOURED, "task": HONOURED, "metadata": HONOURED,
         "verifier": HONOURED, "agent": HONOURED, "environment": HONOURED, "solution": HONOURED,
         "source": HONOURED, "multi_step_reward_strategy": HONOURED, "steps": HONOURED,
         "artifacts": REPORTED},
    "task": {"name": HONOURED, "version": HONOURED, "description": HONOURED, "authors": HONOURED,
             "keywords": HONOURED},
    "verifier": {"timeout_sec": HONOURED, "env": HONOURED, "user": REPORTED, "environment_mode": UNSUPPORTED,
                 "environment": UNSUPPORTED, "collect": UNSUPPORTED, "network_mode": REPORTED,
                 "allowed_hosts": REPORTED},
    "agent": {"timeout_sec": HONOURED, "user": REPORTED, "network_mode": REPORTED, "allowed_hosts": REPORTED},
    "environment": {"build_timeout_sec": HONOURED, "docker_image": HONOURED, "os": UNSUPPORTED, "cpus": HONOURED,
                    "memory_mb": HONOURED, "memory": HONOURED, "storage_mb": REPORTED, "storage": REPORTED,
                    "gpus": UNSUPPORTED, "gpu_types": UNSUPPORTED, "tpu": UNSUPPORTED, "mcp_servers": REPORTED,
                    "env": HONOURED, "skills_dir": REPORTED, "healthcheck": HONOURED, "workdir": HONOURED,
                    "allow_internet": HONOURED, "network_mode": HONOURED, "allowed_hosts": REPORTED},
    "solution": {"env": HONOURED},
}
"""Section -> field -> what agentgym does with it: ``honoured``; ``reported`` (ignored, and said
so when set); ``unsupported`` (when set to anything but its default, the task cannot run and
says why). ``""`` is the top level."""


def _size_to_mb(size: str) -> int:
    """Harbor's deprecated size strings: ``"4G"``, ``"512M"``, ``"1024K"``."""
    s = size.strip().upper()
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


_CANARY = re.compile(r"^(<!--.*canary.*-->|#.*canary.*)$", re.I)


def strip_canary(text: str) -> str:
    """Drop leading canary comment lines (and the blank lines after them), as Harbor does."""
    lines = text.split("\n")
    i = 0
    while i < len(lines) and _CANARY.match(lines[i].strip()):
        i += 1
    if i:
        while i < len(lines) and not lines[i].strip():
            i += 1
    return "\n".join(lines[i:])


_ENV_TEMPLATE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


def resolve_env_templates(values: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``${VAR}`` and ``${VAR:-default}`` in values, from the host's environment (Harbor's
    ``[environment] env`` syntax); ``KeyError`` names a variable that is unset and has no default."""
    environ = os.environ if environ is None else environ

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise KeyError(name)

    return {str(k): _ENV_TEMPLATE.sub(sub, str(v)) for k, v in values.items()}


def is_task_dir(path: Path) -> bool:
    """Whether ``path`` is a task directory of either layout."""
    return any((path / name).is_file() for name in ("task.toml", "instruction.md", "task.yaml"))


def load_task(path: str | os.PathLike[str], *, env_id: str = "harbor", image_prefix: str = "agentgym/harbor-") -> Task:
    """A task directory of either layout: Harbor (``task.toml``) or Terminal-Bench 1 (``task.yaml``)."""
    root = Path(path)
    if (root / "task.yaml").is_file() and not (root / "task.toml").is_file():
        from agentgym.envs.harbor.tb1 import load_tb1_task

        return load_tb1_task(root, env_id=env_id, image_prefix=image_prefix)
    return load_harbor_task(root, env_id=env_id, image_prefix=image_prefix)


def _walk_unknown(config: Mapping[str, Any]) -> list[str]:
    """Keys of ``config`` that Harbor's TaskConfig does not define."""
    unknown = [k for k in config if k not in SCHEMA[""]]
    for section, fields in SCHEMA.items():
        value = config.get(section) if section else None
        if isinstance(value, Mapping):
            unknown += [f"{section}.{k}" for k in value if k not in fields]
    return unknown


def compose_services(path: Path) -> dict[str, Any]:
    """The ``services`` of a docker-compose file (``{}`` when it has none)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise EnvError(f"{path}: cannot read it: {e}") from e
    services = data.get("services") if isinstance(data, Mapping) else None
    return dict(services) if isinstance(services, Mapping) else {}


def _network(config: Mapping[str, Any], notes: list[str], where: str) -> str | None:
    """``host``/``none`` from a section's ``network_mode``/``allow_internet``, or ``None`` (unset)."""
    mode = config.get("network_mode")
    if mode is None and config.get("allow_internet") is not None:
        mode = "public" if config["allow_internet"] else "no-network"
    if mode is None:
        return None
    if mode == "allowlist":
        hosts = ", ".join(config.get("allowed_hosts") or []) or "none listed"
        notes.append(f"{where}.network_mode = 'allowlist' ({hosts}): allowlists are not supported, "
                     "the sandbox gets no network")
        return "none"
    if mode not in ("public", "no-network"):
        raise ValueError(f"{where}.network_mode must be 'public', 'no-network' or 'allowlist', got {mode!r}")
    return "host" if mode == "public" else "none"


def load_harbor_task(path: str | os.PathLike[str], *, env_id: str = "harbor",
                     image_prefix: str = "agentgym/harbor-") -> Task:
    """Read one Harbor task directory into a :class:`Task`.

    ``Task.id`` is the directory name. ``Task.image`` is ``[environment] docker_image`` when
    set, else ``<image_prefix><id>:latest`` built from ``environment/``. Verifier settings and
    the parsed config go to ``Task.metadata`` (``verifier_timeout_s``, ``verifier_env``,
    ``solution_env``, ``reward_key``, ``healthcheck``, ``difficulty``, ``category``, ``tags``,
    ``local``, ``harbor``...), read by :class:`~agentgym.envs.harbor.HarborEnv` only;
    ``metadata["notes"]`` lists what is not honoured and ``metadata["unsupported"]`` why the
    task cannot run at all (empty when it can). Raises :class:`EnvError` naming the file at
    fault when the directory is not a task.
    """
    root = Path(path)
    if not root.is_dir():
        raise EnvError(f"Harbor task {root} is not a directory")
    config: dict[str, Any] = {}
    toml_file = root / "task.toml"
    if toml_file.is_file():
        try:
            config = tomllib.loads(toml_file.read_text())
        except tomllib.TOMLDecodeError as e:
            raise EnvError(f"{toml_file}: invalid TOML: {e}") from e
    steps = config.get("steps") or []
    instruction_file = root / "instruction.md"
    if not instruction_file.is_file() and not steps:
        raise EnvError(f"Harbor task {root}: instruction.md is missing")

    def section(name: str) -> dict[str, Any]:
        value = config.get(name) or {}
        if not isinstance(value, Mapping):
            raise EnvError(f"{toml_file}: [{name}] must be a table, got {type(value).__name__}")
        return dict(value)

    meta, verifier, agent = section("metadata"), section("verifier"), section("agent")
    environment, solution, package = section("environment"), section("solution"), section("task")
    notes: list[str] = []
    blockers: list[str] = []
    ext = dict(meta.pop("agentgym", {}) or {})
    try:
        memory_mb = environment.get("memory_mb")
        if environment.get("memory"):
            memory_mb = _size_to_mb(str(environment["memory"]))
        memory_mb = int(memory_mb) if memory_mb is not None else 2048
        cpus = float(environment["cpus"]) if environment.get("cpus") is not None else 1.0
        if not math.isfinite(cpus) or cpus <= 0:
            raise ValueError(f"environment.cpus must be a positive number, got {environment['cpus']!r}")
        agent_timeout = float(agent.get("timeout_sec") or DEFAULT_AGENT_TIMEOUT_S)
        verifier_timeout = float(verifier.get("timeout_sec") or DEFAULT_VERIFIER_TIMEOUT_S)
        build_timeout = float(environment.get("build_timeout_sec", 600.0))
        pids = int(ext["pids_limit"]) if ext.get("pids_limit") is not None else None
        storage_mb = environment.get("storage_mb")
        if environment.get("storage"):
            storage_mb = _size_to_mb(str(environment["storage"]))
        network = _network(environment, notes, "environment") or "host"
    except (TypeError, ValueError) as e:
        raise EnvError(f"{toml_file}: {e}") from e

    # What agentgym does not honour: reported, or (when it changes what the task is) a blocker.
    notes += [f"unknown key {k} (Harbor ignores it too)" for k in _walk_unknown(config)]
    step_defs = _steps(root, steps, notes, blockers, agent_timeout=agent_timeout, verifier_env=verifier) \
        if steps else []
    strategy = config.get("multi_step_reward_strategy") or "mean"
    if strategy not in ("mean", "final"):
        raise EnvError(f"{toml_file}: multi_step_reward_strategy must be 'mean' or 'final', got {strategy!r}")
    if str(environment.get("os", "linux")).lower() != "linux":
        blockers.append(f"environment.os = {environment['os']!r}: only Linux containers run here")
    if environment.get("gpus") or environment.get("tpu") or environment.get("gpu_types"):
        blockers.append("needs an accelerator (environment.gpus/gpu_types/tpu): not provided to task sandboxes")
    if verifier.get("environment") is not None or verifier.get("environment_mode") == "separate":
        blockers.append("a separate verifier environment ([verifier.environment] / environment_mode = 'separate'): "
                        "agentgym's verifier runs over the agent's final files")
    if verifier.get("collect"):
        blockers.append("[[verifier.collect]] hooks run in compose services, which are not supported")
    for where, sec in (("verifier", verifier), ("agent", agent)):
        if sec.get("user") is not None:
            notes.append(f"{where}.user = {sec['user']!r}: runs as the image's default user (root)")
        if sec.get("network_mode") is not None or sec.get("allowed_hosts"):
            hosts = f" (allowed_hosts {', '.join(sec.get('allowed_hosts') or [])})" if sec.get("allowed_hosts") else ""
            notes.append(f"{where}.network_mode = {sec.get('network_mode')!r}{hosts}: not applied per phase (the "
                         "agent reaches only the proxy in rollouts; the verifier never has a network)")
    if environment.get("storage_mb") or environment.get("storage"):
        notes.append("environment.storage_mb: disk size is not limited")
    if environment.get("mcp_servers"):
        names = ", ".join(str(s.get("name")) for s in environment["mcp_servers"] if isinstance(s, Mapping))
        notes.append(f"environment.mcp_servers ({names}): MCP servers are not started for the agent")
    if environment.get("skills_dir"):
        notes.append(f"environment.skills_dir = {environment['skills_dir']!r}: skills are not copied to the agent")
    if config.get("artifacts"):
        notes.append("artifacts: not collected")
    if (root / "trajectory.json").is_file():
        notes.append("trajectory.json: prior agent context is not given to the agent")
    if network == "host" and environment.get("network_mode") == "public":
        notes.append("environment.network_mode = 'public': the verifier still runs without a network "
                     "(test-time tools such as uv come from the image: docs/environments.md)")

    env_dir = root / "environment"
    dockerfile = env_dir / "Dockerfile"
    compose = env_dir / "docker-compose.yaml"
    if not compose.is_file():
        compose = env_dir / "docker-compose.yml"
    if compose.is_file():
        services = compose_services(compose)
        sidecars = sorted(name for name in services if name != MAIN_SERVICE)
        if sidecars:
            blockers.append(f"{compose.relative_to(root)} runs sidecar service(s) {', '.join(sidecars)}: compose "
                            "services other than 'main' are not supported (no docker compose here)")
        else:
            notes.append(f"{compose.relative_to(root)}: its 'main' service settings are not applied (the image "
                         "is built from environment/Dockerfile)")
    docker_image = environment.get("docker_image")
    if not docker_image and not dockerfile.is_file():
        if compose.is_file():
            blockers.append("the environment is a compose file without environment/Dockerfile")
        else:
            raise EnvError(f"Harbor task {root}: needs environment/Dockerfile or [environment] docker_image")
    workdir = dockerfile_workdir(dockerfile.read_text()) if dockerfile.is_file() else "/app"
    workdir = str(environment.get("workdir") or workdir)
    try:
        env_vars = resolve_env_templates(dict(environment.get("env") or {}))
        verifier_env = resolve_env_templates(dict(verifier.get("env") or {}))
        solution_env = resolve_env_templates(dict(solution.get("env") or {}))
    except KeyError as e:
        blockers.append(f"an env value needs the host variable {e.args[0]}, which is not set")
        env_vars, verifier_env, solution_env = {}, {}, {}
    healthcheck = environment.get("healthcheck")
    if healthcheck is not None and not (isinstance(healthcheck, Mapping) and healthcheck.get("command")):
        raise EnvError(f"{toml_file}: environment.healthcheck needs a command")

    tests_dir = root / "tests"
    solution_dir = root / "solution"
    task_id = root.name
    if instruction_file.is_file():
        instruction = strip_canary(instruction_file.read_text())
    else:  # a multi-step task: its first step's instruction (the agent gets each in turn)
        instruction = step_defs[0]["instruction"] if step_defs else ""
    reward_key = ext.get("reward_key")
    metadata: dict[str, Any] = {
        "format": "harbor",
        "difficulty": meta.get("difficulty"),
        "category": meta.get("category"),
        "tags": list(meta.get("tags") or package.get("keywords") or []),
        "name": package.get("name", task_id),
        "description": package.get("description", ""),
        "source": config.get("source"),
        "verifier_timeout_s": verifier_timeout,
        "verifier_env": verifier_env,
        "solution_env": solution_env,
        "reward_key": str(reward_key) if reward_key else None,
        "healthcheck": dict(healthcheck) if healthcheck else None,
        "build_timeout_s": build_timeout,
        "storage_mb": storage_mb,
        "steps": [str(s.get("name")) for s in steps if isinstance(s, Mapping)],
        "step_defs": step_defs,
        "multi_step_reward_strategy": strategy,
        "local": bool(ext.get("local", False)),
        "local_reason": str(ext.get("local_reason") or (
            "" if ext.get("local") else "the task does not declare [metadata.agentgym] local = true")),
        "notes": notes,
        "unsupported": "; ".join(blockers),
        "path": str(root),
        "harbor": config,
    }
    return Task(
        id=task_id,
        instruction=instruction,
        env=env_id,
        image=docker_image or f"{image_prefix}{task_id}:latest".lower(),
        dockerfile_dir=None if docker_image or not dockerfile.is_file() else str(env_dir),
        workdir=workdir,
        limits=TaskLimits(timeout_s=agent_timeout, memory=f"{memory_mb}m", cpus=cpus, pids=pids),
        env_vars=env_vars,
        network=network,
        tests_dir=str(tests_dir) if (tests_dir / "test.sh").is_file() else None,
        solution_dir=str(solution_dir) if (solution_dir / "solve.sh").is_file() else None,
        metadata=metadata,
    )


def _steps(root: Path, steps: list[Any], notes: list[str], blockers: list[str], *, agent_timeout: float,
           verifier_env: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Harbor's ``[[steps]]``: each step's instruction, limits, tests, solution and workdir, as
    Harbor runs them (``steps/<name>/``: ``instruction.md``, ``tests/`` over the task's
    ``tests/``, ``solution/solve.sh``, ``workdir/`` uploaded before the step with its
    ``setup.sh`` run)."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, step in enumerate(steps):
        if not isinstance(step, Mapping) or not step.get("name"):
            raise EnvError(f"{root / 'task.toml'}: [[steps]] entry {i + 1} needs a name")
        name = str(step["name"])
        if name.casefold() in seen or "/" in name or name in (".", ".."):
            raise EnvError(f"{root / 'task.toml'}: step name {name!r} is repeated or not a directory name")
        seen.add(name.casefold())
        d = root / "steps" / name
        if not (d / "instruction.md").is_file():
            raise EnvError(f"Harbor task {root}: steps/{name}/instruction.md is missing")
        agent = dict(step.get("agent") or {})
        verifier = dict(step.get("verifier") or {})
        for key in step:
            if key not in ("name", "agent", "verifier", "min_reward", "healthcheck", "artifacts"):
                notes.append(f"unknown key steps.{name}.{key} (Harbor ignores it too)")
        if verifier.get("environment") is not None or verifier.get("environment_mode") == "separate":
            blockers.append(f"step {name!r} has a separate verifier environment, which is not supported")
        if verifier.get("collect"):
            blockers.append(f"step {name!r} has [[steps.verifier.collect]] hooks (compose services): not supported")
        for where, sec in (("agent", agent), ("verifier", verifier)):
            if sec.get("user") is not None:
                notes.append(f"steps.{name}.{where}.user = {sec['user']!r}: runs as the image's default user (root)")
            if sec.get("network_mode") is not None:
                notes.append(f"steps.{name}.{where}.network_mode = {sec['network_mode']!r}: not applied per phase")
        if step.get("artifacts"):
            notes.append(f"steps.{name}.artifacts: not collected")
        tests = d / "tests"
        solution = d / "solution"
        workdir = d / "workdir"
        out.append({
            "name": name,
            "instruction": strip_canary((d / "instruction.md").read_text()),
            "agent_timeout_s": float(agent.get("timeout_sec") or agent_timeout),
            # Harbor's step verifier keeps its own default (600 s), not the task's.
            "verifier_timeout_s": float(verifier.get("timeout_sec") or DEFAULT_VERIFIER_TIMEOUT_S),
            "verifier_env": resolve_env_templates({**dict(verifier_env.get("env") or {}),
                                                   **dict(verifier.get("env") or {})}),
            "min_reward": step.get("min_reward"),
            "healthcheck": dict(step["healthcheck"]) if step.get("healthcheck") else None,
            "tests_dir": str(tests) if tests.is_dir() else None,
            "solution_dir": str(solution) if (solution / "solve.sh").is_file() else None,
            "workdir_dir": str(workdir) if workdir.is_dir() else None,
        })
    return out


def unloadable_task(path: Path, error: Exception, *, env_id: str) -> Task:
    """A stand-in for a task directory that cannot be read: listed, never run (its
    ``metadata["unsupported"]`` is the error), so one broken task does not hide a suite."""
    return Task(id=path.name, instruction="", env=env_id, image=None,
                metadata={"format": "unreadable", "unsupported": f"cannot be loaded: {error}", "notes": [],
                          "path": str(path), "local": False})


def parse_reward(text: str) -> float:
    """A finite float from ``reward.txt`` (surrounding whitespace allowed); ``ValueError`` else."""
    value = float(text.strip())
    if not math.isfinite(value):
        raise ValueError(f"reward {value} is not finite")
    return value
