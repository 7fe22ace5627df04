"""Terminal-Bench 1 tasks (``task.yaml``), read into :class:`~agentgym.types.Task`.

A Terminal-Bench 1 task (``terminal-bench`` 0.2 on PyPI, its ``TaskPaths``) is a directory::

    my-task/
      task.yaml            instruction, difficulty, timeouts, parser (Terminal-Bench's ``Task`` model)
      Dockerfile           the sandbox (the build context is the task directory)
      docker-compose.yaml  the 'client' service; other services are sidecars (not supported)
      run-tests.sh         copied with tests/ into /tests and run after the agent
      tests/               test files (test_outputs.py)
      solution.sh          the oracle (solution.yaml, keystrokes, is not supported)

Scoring follows Terminal-Bench's harness: ``run-tests.sh`` and the contents of ``tests/`` go to
``/tests``, ``bash /tests/run-tests.sh`` runs in the task's workdir with ``TEST_DIR=/tests``
(within ``max_test_timeout_sec``), and its output is read by Terminal-Bench's pytest parser
(:func:`parse_pytest_summary`, a port of ``terminal_bench.parsers.PytestParser``): the task is
resolved, reward 1, when every test in pytest's short summary passed; else 0. Output without a
short summary has not scored the episode (:class:`~agentgym.errors.EnvError`).

>>> parse_pytest_summary("=== short test summary info ===\\nPASSED t.py::test_a\\nFAILED t.py::test_b - boom")
{'test_a': 'passed', 'test_b': 'failed'}
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agentgym.envs.harbor.task import compose_services, dockerfile_workdir, strip_canary
from agentgym.errors import EnvError
from agentgym.types import Task, TaskLimits

__all__ = ["TB1_FIELDS", "load_tb1_task", "parse_pytest_summary"]

TB1_FIELDS: dict[str, str] = {
    "instruction": "honoured", "author_name": "honoured", "author_email": "honoured", "difficulty": "honoured",
    "category": "honoured", "tags": "honoured", "parser_name": "honoured", "max_agent_timeout_sec": "honoured",
    "max_test_timeout_sec": "honoured", "run_tests_in_same_shell": "reported", "disable_asciinema": "honoured",
    "estimated_duration_sec": "honoured", "expert_time_estimate_min": "honoured",
    "junior_time_estimate_min": "honoured",
}
"""Terminal-Bench's ``Task`` fields and what agentgym does with each (see
:data:`agentgym.envs.harbor.task.SCHEMA`); asciinema recording is not agentgym's business."""
DIFFICULTIES = ("easy", "medium", "hard", "unknown")
CLIENT_SERVICE = "client"
DEFAULT_AGENT_TIMEOUT_S = 360.0
DEFAULT_TEST_TIMEOUT_S = 60.0

_SUMMARY = re.compile(r"=+\s*short test summary info\s*=+", re.I)
_PASSING = {"PASSED": "passed", "XFAIL": "passed", "SKIPPED": "passed"}
_FAILING = {"FAILED": "failed", "XPASS": "failed", "ERROR": "failed"}


def parse_pytest_summary(output: str) -> dict[str, str]:
    """Test name -> ``passed``/``failed`` from pytest's short test summary, as Terminal-Bench's
    ``PytestParser`` reads it (``XFAIL`` and ``SKIPPED`` pass; ``XPASS`` and ``ERROR`` fail; the
    name is what follows ``::``). ``ValueError`` when there is no short summary."""
    parts = _SUMMARY.split(output, maxsplit=1)
    if len(parts) < 2:
        raise ValueError("No short test summary info found in the provided content.")
    results: dict[str, str] = {}
    for line in parts[1].splitlines():
        if line.startswith("FAILED"):
            pieces = line.split(" - ")
            if len(pieces) > 1:
                line = " - ".join(pieces[:-1])
        words = line.split(maxsplit=1)
        if len(words) <= 1:
            continue
        status = words[0].strip().strip(":")
        verdict = _PASSING.get(status) or _FAILING.get(status)
        name = words[1].strip().split("::", maxsplit=1)[-1]
        if verdict and name:
            results[name] = verdict
    return results


def _instruction(data: Mapping[str, Any], path: Path) -> str:
    if isinstance(data.get("instruction"), str):
        return data["instruction"]
    # Early Terminal-Bench tasks: descriptions: [{key: base, description: ...}]
    for item in data.get("descriptions") or []:
        if isinstance(item, Mapping) and item.get("key") == "base" and isinstance(item.get("description"), str):
            return str(item["description"])
    raise EnvError(f"{path}: no instruction (a string field 'instruction' is required)")


def load_tb1_task(path: str | os.PathLike[str], *, env_id: str = "harbor",
                  image_prefix: str = "agentgym/harbor-") -> Task:
    """Read one Terminal-Bench 1 task directory (see the module docstring) into a :class:`Task`
    scored by :class:`~agentgym.envs.harbor.HarborEnv`. ``metadata["notes"]`` lists what is not
    honoured and ``metadata["unsupported"]`` why the task cannot run (empty when it can)."""
    import yaml

    root = Path(path)
    config_file = root / "task.yaml"
    try:
        data = yaml.safe_load(config_file.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise EnvError(f"{config_file}: cannot read it: {e}") from e
    if not isinstance(data, Mapping):
        raise EnvError(f"{config_file}: expected a mapping of fields, got {type(data).__name__}")
    instruction = strip_canary(_instruction(data, config_file))
    notes = [f"unknown key {k} (Terminal-Bench ignores it too)" for k in data
             if k not in TB1_FIELDS and k != "descriptions"]
    blockers: list[str] = []
    difficulty = str(data.get("difficulty", "unknown"))
    if difficulty not in DIFFICULTIES:
        raise EnvError(f"{config_file}: difficulty must be one of {', '.join(DIFFICULTIES)}, got {difficulty!r}")
    try:
        agent_timeout = float(data.get("max_agent_timeout_sec", DEFAULT_AGENT_TIMEOUT_S))
        test_timeout = float(data.get("max_test_timeout_sec", DEFAULT_TEST_TIMEOUT_S))
    except (TypeError, ValueError) as e:
        raise EnvError(f"{config_file}: {e}") from e
    parser = str(data.get("parser_name", "pytest"))
    if parser != "pytest":
        blockers.append(f"parser_name = {parser!r}: only Terminal-Bench's pytest parser is supported")
    if data.get("run_tests_in_same_shell"):
        notes.append("run_tests_in_same_shell: the tests run in a fresh sealed sandbox, not the agent's shell")

    dockerfile_name = "Dockerfile"
    compose = root / "docker-compose.yaml"
    if compose.is_file():
        services = compose_services(compose)
        sidecars = sorted(name for name in services if name != CLIENT_SERVICE)
        if sidecars:
            blockers.append(f"docker-compose.yaml runs sidecar service(s) {', '.join(sidecars)}: compose services "
                            "other than 'client' are not supported (no docker compose here)")
        build = (services.get(CLIENT_SERVICE) or {}).get("build") if isinstance(services.get(CLIENT_SERVICE),
                                                                                 Mapping) else None
        if isinstance(build, Mapping):
            dockerfile_name = str(build.get("dockerfile") or dockerfile_name)
            if str(build.get("context") or ".") not in (".", "./"):
                blockers.append(f"docker-compose.yaml builds from context {build['context']!r}: only the task "
                                "directory is supported")
    if dockerfile_name != "Dockerfile":
        blockers.append(f"docker-compose.yaml names the Dockerfile {dockerfile_name!r}: only 'Dockerfile' is supported")
    dockerfile = root / "Dockerfile"
    if not dockerfile.is_file():
        raise EnvError(f"Terminal-Bench task {root}: the Dockerfile is missing")
    solution = root / "solution.sh"
    if not solution.is_file() and (root / "solution.yaml").is_file():
        notes.append("solution.yaml (keystrokes): the oracle is not supported, only solution.sh")
    if not (root / "run-tests.sh").is_file():
        raise EnvError(f"Terminal-Bench task {root}: run-tests.sh is missing")
    task_id = root.name
    metadata: dict[str, Any] = {
        "format": "terminal-bench",
        "difficulty": difficulty,
        "category": data.get("category", "software_engineering"),
        "tags": list(data.get("tags") or []),
        "name": task_id,
        "description": "",
        "author": data.get("author_name", "unknown"),
        "verifier_timeout_s": test_timeout,
        "verifier_env": {"TEST_DIR": "/tests"},
        "solution_env": {},
        "reward_key": None,
        "healthcheck": None,
        "steps": [],
        "local": False,
        "local_reason": "Terminal-Bench tasks run in their image",
        "notes": notes,
        "unsupported": "; ".join(blockers),
        "path": str(root),
        "solution_script": str(solution) if solution.is_file() else None,
        "terminal_bench": dict(data),
    }
    return Task(
        id=task_id,
        instruction=instruction,
        env=env_id,
        image=f"{image_prefix}{task_id}:latest".lower(),
        dockerfile_dir=str(root),
        workdir=dockerfile_workdir(dockerfile.read_text()),
        limits=TaskLimits(timeout_s=agent_timeout, memory="2048m", cpus=1.0),
        env_vars={"TEST_DIR": "/tests"},
        network="host",
        tests_dir=str(root / "tests") if (root / "tests").is_dir() else None,
        solution_dir=None,
        metadata=metadata,
    )
