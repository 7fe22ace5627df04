"""Episodes of one task starting together build its image once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from agentgym.harness import Harness, HarnessContext, ImageLayer, Launch
from agentgym.runtime.base import RuntimeBackend, RuntimeSpec
from agentgym.runtime.images import ImageCache
from agentgym.types import Task


class CountingBackend(RuntimeBackend):
    name = "docker"

    def __init__(self) -> None:
        self.builds: list[tuple[str, str]] = []

    async def start(self, spec: RuntimeSpec) -> Any:
        raise NotImplementedError

    async def ensure_image(self, image: str, dockerfile_dir: str | None) -> str:
        await asyncio.sleep(0.05)  # a build takes time: concurrent callers overlap
        dockerfile = (Path(dockerfile_dir) / "Dockerfile").read_text() if dockerfile_dir else ""
        self.builds.append((image, dockerfile))
        return image


class LayeredHarness(Harness):
    id = "test/layered-v0"

    def image_layer(self) -> ImageLayer:
        return ImageLayer(dockerfile="RUN echo layer", cache_key="k")

    def launch(self, ctx: HarnessContext, runtime: Any) -> Launch:
        return Launch(cmd="true")


def test_concurrent_episodes_build_each_image_once() -> None:
    backend = CountingBackend()
    statuses: list[str] = []
    cache = ImageCache(backend, on_status=statuses.append)
    tasks = [Task(id=f"t{i}", instruction="x", env="e/x-v0", image=f"img/t{i}:1") for i in range(2)]

    async def main() -> list[str | None]:
        return await asyncio.gather(*(cache.image_for(t, LayeredHarness()) for t in tasks for _ in range(8)))

    images = asyncio.run(main())
    assert len(backend.builds) == 4  # per task: its image, then the harness layer on top
    layer_builds = [b for b in backend.builds if "RUN echo layer" in b[1]]
    assert sorted(b[1].splitlines()[0] for b in layer_builds) == ["FROM img/t0:1", "FROM img/t1:1"]
    assert len(set(images)) == 2 and all(i and i.startswith("agentgym/test-layered-v0:") for i in images)
    assert any(s.startswith("preparing image img/t0:1") for s in statuses)
