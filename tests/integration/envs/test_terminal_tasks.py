"""Every built-in terminal task (terminal/all-v0): the oracle solution scores 1 and doing nothing
scores 0, in real containers and, where the task declares it can, on the local runtime."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agentgym import registries
from agentgym.envs import BASIC_TASKS
from agentgym.envs.harbor import HarborEnv
from agentgym.errors import EnvError
from agentgym.runtime.base import RuntimeBackend
from agentgym.runtime.docker import DockerBackend
from agentgym.runtime.local import LocalBackend
from agentgym.types import Task

SUITE: HarborEnv = registries.envs.make("terminal/all-v0")
TASKS = SUITE.tasks()
IDS = [t.id for t in TASKS]
LOCAL_TASKS = [t for t in TASKS if SUITE.unsupported(t, LocalBackend()) is None]
CONTAINER_ONLY = [t for t in TASKS if t not in LOCAL_TASKS]


def score(backend: RuntimeBackend, task: Task, *, solve: bool) -> float:
    async def main() -> float:
        rt = await SUITE.start(task, backend)
        try:
            if solve:
                result = await SUITE.oracle(task, rt)
                assert result.ok, f"solve.sh failed ({result.exit_code}): {result.stderr[-2000:]}"
            ev = await SUITE.evaluate(task, rt)
            assert ev.details["reward_file"] == "ok", ev.details
            return ev.reward
        finally:
            await rt.stop()

    return asyncio.run(main())


ISSUE_CATEGORIES = {"file-operations", "data-processing", "scripting", "version-control", "permissions",
                    "databases", "services", "build", "archives"}
"""What the suite must exercise (issue 9): each category has at least one task."""


def test_suite_covers_the_categories_and_every_task_declares_its_metadata() -> None:
    assert len(TASKS) >= 12
    assert {t.metadata["category"] for t in TASKS} >= ISSUE_CATEGORIES
    for task in TASKS:
        assert task.metadata["difficulty"] in ("easy", "medium", "hard"), task.id
        assert task.metadata["tags"], task.id
        assert task.image and task.dockerfile_dir and task.tests_dir and task.solution_dir, task.id
        dockerfile = (Path(task.dockerfile_dir) / "Dockerfile").read_text()
        assert dockerfile.startswith("FROM agentgym/base:bookworm\n"), task.id
        declared = task.metadata["harbor"]["metadata"]["agentgym"]
        assert declared["local"] or declared.get("local_reason"), f"{task.id}: say why it is container-only"


@pytest.mark.docker
@pytest.mark.parametrize("task", TASKS, ids=IDS)
def test_docker_oracle_scores_1_and_doing_nothing_scores_0(docker_backend: DockerBackend, task: Task) -> None:
    assert score(docker_backend, task, solve=False) == 0.0
    assert score(docker_backend, task, solve=True) == 1.0


@pytest.mark.parametrize("task", LOCAL_TASKS, ids=[t.id for t in LOCAL_TASKS])
def test_local_oracle_scores_1_and_doing_nothing_scores_0(tmp_path: object, task: Task) -> None:
    backend = LocalBackend(tmp_root=str(tmp_path))
    assert score(backend, task, solve=False) == 0.0
    assert score(backend, task, solve=True) == 1.0


@pytest.mark.parametrize("task", CONTAINER_ONLY, ids=[t.id for t in CONTAINER_ONLY])
def test_container_only_tasks_are_refused_locally_with_their_reason(tmp_path: object, task: Task) -> None:
    reason = SUITE.unsupported(task, LocalBackend())
    assert reason
    with pytest.raises(EnvError, match="cannot run on the local runtime"):
        asyncio.run(SUITE.start(task, LocalBackend(tmp_root=str(tmp_path))))


def test_the_basic_suite_is_the_quickstarts_four_local_tasks_and_one_container_task() -> None:
    basic = registries.envs.make("terminal/basic-v0")
    assert [t.id for t in basic.tasks()] == list(BASIC_TASKS)
    assert sum(1 for t in basic.tasks() if basic.unsupported(t, LocalBackend()) is None) == 4
    assert len(LOCAL_TASKS) >= 7
