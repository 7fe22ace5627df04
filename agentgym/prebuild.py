"""``agentgym prebuild``: build every task image of an environment ahead of a run, and with a
harness its layer on top (through :class:`~agentgym.runtime.images.ImageCache`, as a rollout
would), so the first episodes do not wait minutes for ``docker build``.

Builds are cached by content: :meth:`~agentgym.runtime.base.RuntimeBackend.ensure_image` skips
an image whose build context (and base images) have not changed, so a second prebuild takes
seconds. Tasks that share an image tag and build context are built once.

>>> import asyncio
>>> from agentgym import registries
>>> from agentgym.runtime import get_backend
>>> env = registries.envs.make("terminal/hello-file-v0")
>>> asyncio.run(prebuild(env, get_backend("local")))   # the local runtime runs no images
[]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agentgym.check import select_tasks
from agentgym.env import Env
from agentgym.runtime.base import RuntimeBackend
from agentgym.runtime.images import ImageCache, Layered

__all__ = ["BuiltImage", "prebuild"]

TASK_LAYER = "task"


@dataclass(frozen=True)
class BuiltImage:
    """One image :func:`prebuild` built (or found up to date)."""

    task_id: str
    image: str | None
    """The tag, ``None`` when the build failed."""
    seconds: float
    layer: str = TASK_LAYER
    """``"task"`` for the task's own image, else the id of the harness whose layer it adds."""
    error: str | None = None
    skipped: str | None = None
    """Why the task's image was not built: the task cannot run on this backend."""

    @property
    def ok(self) -> bool:
        return self.error is None


async def prebuild(env: Env, backend: RuntimeBackend, *, harness: Layered | None = None,
                   task_ids: Sequence[str] | None = None, on_start: Callable[[str], None] | None = None,
                   on_built: Callable[[BuiltImage], None] | None = None) -> list[BuiltImage]:
    """Build the image of every selected task of ``env`` (then ``harness``'s layer on it), one
    after another; returns what was built, failures included (``error``: the build's message),
    without raising for them, and the tasks that cannot run on ``backend`` (``skipped``). Nothing
    happens on a backend that runs no images."""
    if not backend.uses_images:
        return []
    say = on_start or (lambda message: None)
    cache = ImageCache(backend)
    built: list[BuiltImage] = []
    seen: set[tuple[str, str | None]] = set()

    def record(item: BuiltImage) -> None:
        built.append(item)
        if on_built:
            on_built(item)

    for task in select_tasks(env, task_ids):
        reason = env.unsupported(task, backend)
        if reason:
            record(BuiltImage(task.id, None, 0.0, skipped=reason))
            continue
        if task.image is None or (task.image, task.dockerfile_dir) in seen:
            continue
        seen.add((task.image, task.dockerfile_dir))
        say(f"{task.id}: {task.image}")
        t0 = time.perf_counter()
        try:
            tag = await backend.ensure_image(task.image, task.dockerfile_dir)
        except Exception as e:
            record(BuiltImage(task.id, None, time.perf_counter() - t0, error=str(e)))
            continue
        record(BuiltImage(task.id, tag, time.perf_counter() - t0))
        if harness is not None:
            say(f"{task.id}: {harness.id} layer on {tag}")
            t0 = time.perf_counter()
            try:
                layered = await cache.image_for(task, harness)
            except Exception as e:
                record(BuiltImage(task.id, None, time.perf_counter() - t0, layer=harness.id, error=str(e)))
                continue
            record(BuiltImage(task.id, layered, time.perf_counter() - t0, layer=harness.id))
    return built
