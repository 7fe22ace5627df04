"""Imported tasks, unmodified, offline, in real containers (issue 9's done-when):

- a Harbor task whose Dockerfile starts ``FROM ubuntu:24.04`` and whose ``tests/test.sh``
  installs uv with ``curl -LsSf https://astral.sh/uv/0.9.7/install.sh | sh``, then runs
  ``uvx --with pytest==8.4.1 ...``: doing nothing scores 0, the oracle 1;
- a Terminal-Bench 1 task (``task.yaml``, ``FROM ghcr.io/laude-institute/t-bench/python-3-13``,
  the template's ``run-tests.sh``: ``uv init; uv add pytest==8.4.1; uv run pytest``), graded by
  Terminal-Bench's pytest parser: 0 and 1;
- ``agentgym check env`` on the directory of fixture tasks, as a user runs it (a multi-step task
  included; the compose-sidecar task is skipped, naming its sidecar).

The base images are local stand-ins (:mod:`agentgym.runtime.standins`), built on first use.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from agentgym.env import Evaluation
from agentgym.runtime.docker import DockerBackend
from agentgym.runtime.standins import STANDIN_LABEL
from agentgym.sources import env_from

pytestmark = [pytest.mark.docker, pytest.mark.slow]

FIXTURE_TASKS = Path(__file__).resolve().parents[2] / "fixtures" / "tasks"


def evaluate(backend: DockerBackend, target: Path, *, solve: bool) -> Evaluation:
    env = env_from(str(target))
    task = env.tasks()[0]

    async def main() -> Evaluation:
        rt = await env.start(task, backend)
        try:
            if solve:
                result = await env.oracle(task, rt)
                assert result.ok, result.stdout + result.stderr
            return await env.evaluate(task, rt)
        finally:
            await rt.stop()

    return asyncio.run(main())


def test_an_unmodified_harbor_task_from_ubuntu_that_installs_uv_scores_offline(docker_backend: DockerBackend) -> None:
    task_dir = FIXTURE_TASKS / "harbor-ubuntu-uv"
    nothing = evaluate(docker_backend, task_dir, solve=False)
    solved = evaluate(docker_backend, task_dir, solve=True)
    assert (nothing.reward, solved.reward) == (0.0, 1.0), solved.details
    log = str(solved.details["stdout"]) + str(solved.details["stderr"])
    assert "serving uv's installer" in log  # the curl shim, not the internet
    assert "3 passed" in log and "pytest-8.4.1" in log
    assert solved.details["rewards"] == {"reward": 1.0}
    # The FROM image is agentgym's stand-in (the real one cannot be pulled here).
    labels = docker_backend.client.api.inspect_image("ubuntu:24.04")["Config"]["Labels"]
    assert STANDIN_LABEL in labels


def test_a_terminal_bench_1_task_is_graded_by_its_pytest_parser(docker_backend: DockerBackend) -> None:
    task_dir = FIXTURE_TASKS / "tb1-word-count"
    nothing = evaluate(docker_backend, task_dir, solve=False)
    solved = evaluate(docker_backend, task_dir, solve=True)
    assert nothing.reward == 0.0 and nothing.details["tests"] == {"test_top_file_exists": "failed",
                                                                   "test_top_ten_words": "failed"}
    assert solved.reward == 1.0 and set(solved.details["tests"].values()) == {"passed"}, solved.details


def test_check_env_on_a_directory_of_imported_tasks(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "agentgym.cli", "check", "env", str(FIXTURE_TASKS), "--runtime",
                        "docker"], capture_output=True, text=True, timeout=1800, cwd=tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "harbor-ubuntu-uv" in out and "tb1-word-count" in out
    # The multi-step task runs its two steps in one container (the first verified on a copy).
    assert out.count("nothing=0 ok    oracle=1 ok") == 3 and "harbor-multi-step" in out
    assert "skipped: cannot run on the docker runtime: environment/docker-compose.yaml runs sidecar service(s) db" in out
    assert "3 ok, 1 skipped" in out


def test_per_task_limits_reach_the_container(docker_backend: DockerBackend, tmp_path: Path) -> None:
    import shutil

    task_dir = tmp_path / "limited"
    shutil.copytree(FIXTURE_TASKS / "harbor-ubuntu-uv", task_dir)
    toml = task_dir / "task.toml"
    toml.write_text(toml.read_text().replace("cpus = 1", "cpus = 0.5") + "\n[metadata.agentgym]\npids_limit = 64\n")
    env = env_from(str(task_dir))
    task = env.tasks()[0]

    async def main() -> dict[str, object]:
        rt = await env.start(task, docker_backend)
        try:
            return docker_backend.client.api.inspect_container(rt.container_id)["HostConfig"]  # type: ignore[attr-defined, no-any-return]
        finally:
            await rt.stop()

    host = asyncio.run(main())
    assert (host["PidsLimit"], host["NanoCpus"], host["Memory"]) == (64, 500_000_000, 1024 * 2**20)


def test_a_swe_bench_file_given_as_env_is_graded_by_swebench(tmp_path: Path) -> None:
    """``--env instances.jsonl`` reaches SWEEnv: the untouched repository is not resolved, the
    gold patch is (swebench's parser and resolution status, ``tests/integration/envs/test_swe.py``)."""
    from agentgym.envs import SWE_INSTANCES

    instances = tmp_path / "instances.jsonl"
    instances.write_text(SWE_INSTANCES.read_text().splitlines()[0] + "\n")
    r = subprocess.run([sys.executable, "-m", "agentgym.cli", "check", "env", str(instances), "--runtime", "docker"],
                       capture_output=True, text=True, timeout=1800, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "nothing=0 ok    oracle=1 ok" in r.stdout and "1 task(s) on docker: 1 ok" in r.stdout
