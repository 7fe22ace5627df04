"""``prebuild``: every task image once, the harness layer on top, failures recorded and the
rest still built; a fake backend records the builds (no Docker)."""

from __future__ import annotations

import asyncio
from typing import ClassVar

from agentgym.env import Env, Evaluation
from agentgym.errors import RuntimeError_
from agentgym.prebuild import BuiltImage, prebuild
from agentgym.runtime.base import Runtime, RuntimeBackend, RuntimeSpec
from agentgym.runtime.images import ImageLayer
from agentgym.types import Task


class FakeBackend(RuntimeBackend):
    name = "fake"

    def __init__(self, broken: str = "") -> None:
        self.broken = broken
        self.builds: list[tuple[str, str | None]] = []

    async def start(self, spec: RuntimeSpec) -> Runtime:
        raise NotImplementedError

    async def ensure_image(self, image: str, dockerfile_dir: str | None) -> str:
        self.builds.append((image, dockerfile_dir))
        if image == self.broken:
            raise RuntimeError_(f"building {image} failed at Step 2/2 : RUN false")
        return image


class ThreeTasks(Env):
    id = "demo/three-v0"

    def tasks(self) -> list[Task]:
        return [Task(id="a", instruction="", env=self.id, image="img/a:1", dockerfile_dir="/ctx/a"),
                Task(id="b", instruction="", env=self.id, image="img/b:1", dockerfile_dir="/ctx/b"),
                Task(id="a-again", instruction="", env=self.id, image="img/a:1", dockerfile_dir="/ctx/a")]

    async def evaluate(self, task: Task, runtime: Runtime) -> Evaluation:
        raise NotImplementedError


class Agent:
    id: ClassVar[str] = "demo/agent-v0"

    def image_layer(self) -> ImageLayer | None:
        return None  # nothing to add: the layered image is the task image


def test_each_image_is_built_once_and_failures_do_not_stop_the_rest() -> None:
    backend = FakeBackend(broken="img/a:1")
    seen: list[BuiltImage] = []
    built = asyncio.run(prebuild(ThreeTasks(), backend, on_built=seen.append))
    assert built == seen
    assert [(b.task_id, b.image, b.ok) for b in built] == [("a", None, False), ("b", "img/b:1", True)]
    assert built[0].error is not None and "Step 2/2" in built[0].error
    assert backend.builds == [("img/a:1", "/ctx/a"), ("img/b:1", "/ctx/b")]


def test_with_a_harness_each_task_image_gets_its_layer() -> None:
    built = asyncio.run(prebuild(ThreeTasks(), FakeBackend(), harness=Agent(), task_ids=["b"]))
    assert [(b.task_id, b.layer, b.image) for b in built] == [
        ("b", "task", "img/b:1"), ("b", "demo/agent-v0", "img/b:1")]
