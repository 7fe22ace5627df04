"""A warm pool: sandboxes started ahead of the episodes that will use them.

:class:`WarmPool` wraps a :class:`~agentgym.runtime.base.RuntimeBackend` and is one itself, so
:meth:`Env.start <agentgym.env.Env.start>` and everything above it work unchanged. The rollout
declares what it will start (:meth:`WarmPool.expect`: this spec, that many times); the pool
starts up to ``size`` of those sandboxes in the background, and :meth:`WarmPool.start` hands one
over in microseconds when its spec matches. Each sandbox is used once: the episode stops it,
and the pool starts the next one while the episode runs.

- **Keys**: a spec's every field but its labels (the image, which carries the task and the
  harness layer, the network, the proxy endpoint, limits, mounts). A warm sandbox carries the
  pool's labels (``agentgym.pool=1``), not the episode's.
- **Bounded by demand**: the pool never starts more sandboxes of a spec than were expected,
  so a run leaves none unused behind when its last episode starts; warming follows the order
  in which specs were expected (the order the episodes run in).
- **Concurrency limits**: ``max_starting`` bounds sandbox starts at once (warm-ups and cold
  starts together: what the Docker engine takes at once); with ``size=0`` the pool warms
  nothing and is only that limit.
- **No sandbox outlives the pool**: :meth:`aclose` cancels the warm-ups, waits for them and
  stops every sandbox not handed over (the rollout calls it at the end of a run and on a
  stop; the backend's own :meth:`~agentgym.runtime.base.RuntimeBackend.close` removes anything
  still starting in a thread).

>>> import asyncio
>>> from agentgym.runtime import RuntimeSpec, get_backend
>>> async def demo() -> tuple[int, int, str]:
...     pool = WarmPool(get_backend("local-unsafe"), size=2)
...     spec = RuntimeSpec(network="host")
...     pool.expect(spec, 3)                       # three episodes of this sandbox will come
...     await pool.wait_warm()                     # (a rollout does not wait: it starts episodes)
...     ready = pool.ready_count()                 # two started ahead (size=2)
...     rt = await pool.start(spec)                # handed over at once; a third warms up
...     out = (await rt.exec("echo hi", timeout=10)).stdout.strip()
...     await rt.stop()
...     await pool.aclose()
...     return ready, pool.stats.warm_hits, out
>>> asyncio.run(demo())
(2, 1, 'hi')
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar

from agentgym.errors import RuntimeError_
from agentgym.runtime.base import Runtime, RuntimeBackend, RuntimeSpec

__all__ = ["PoolStats", "WarmPool", "spec_key"]

log = logging.getLogger(__name__)

POOL_LABEL = "agentgym.pool"


def spec_key(spec: RuntimeSpec) -> str:
    """What makes two specs interchangeable for the pool: every field but ``labels``."""
    fields = dataclasses.asdict(dataclasses.replace(spec, labels={}))
    return json.dumps(fields, sort_keys=True, default=str)


@dataclass
class PoolStats:
    """What the pool did (for run summaries and benchmarks)."""

    warm_hits: int = 0
    """Starts served by a sandbox that was already up."""
    waited: int = 0
    """Starts served by a warm-up that was under way when they came (they waited for it)."""
    cold: int = 0
    """Starts that started a sandbox on the spot (nothing was warm or warming)."""
    warmed: int = 0
    """Sandboxes the pool started ahead."""
    failed: int = 0
    """Warm-ups that failed (their starts fall back to a cold start)."""
    discarded: int = 0
    """Warm sandboxes stopped unused (by :meth:`WarmPool.aclose`)."""
    handoff_s: list[float] = field(default_factory=list)
    """Seconds each start took, as the caller saw it."""

    def to_json(self) -> dict[str, Any]:
        h = sorted(self.handoff_s)
        return {"warm_hits": self.warm_hits, "waited": self.waited, "cold": self.cold, "warmed": self.warmed,
                "failed": self.failed, "discarded": self.discarded,
                "handoff_p50_ms": round(1000 * h[len(h) // 2], 3) if h else None}


class _Slot:
    """The sandboxes of one spec: expected starts not yet served, ready ones, warm-ups under way."""

    def __init__(self, spec: RuntimeSpec) -> None:
        self.spec = spec
        self.remaining = 0
        self.ready: deque[Runtime] = deque()
        self.starting = 0
        self.waiters = 0
        """Starts waiting for a warm-up under way (each has claimed one)."""
        self.arrived = asyncio.Condition()


class WarmPool(RuntimeBackend):
    """Sandboxes of expected specs started ahead, up to ``size`` at once (see the module docstring).

    Args:
        backend: the backend that starts the sandboxes (the pool does not close it).
        size: most sandboxes ready or warming at once, over all specs (0: none, the pool only
            limits starts).
        max_starting: most sandbox starts at once, warm-ups and cold starts together (``None``:
            no limit).
    """

    uses_images: ClassVar[bool] = True  # set per instance from the wrapped backend

    def __init__(self, backend: RuntimeBackend, *, size: int = 4, max_starting: int | None = None) -> None:
        if size < 0 or (max_starting is not None and max_starting < 1):
            raise ValueError(f"size must be >= 0 and max_starting >= 1, got {size}, {max_starting}")
        self.backend = backend
        self.size = size
        self.name = backend.name
        self.uses_images = backend.uses_images  # type: ignore[misc]  # mirrors the wrapped backend
        self.isolation = backend.isolation
        self.enforced_limits = backend.enforced_limits  # type: ignore[misc]
        self.stats = PoolStats()
        self._slots: dict[str, _Slot] = {}
        self._starts = asyncio.Semaphore(max_starting) if max_starting else None
        self._warming: set[asyncio.Task[None]] = set()
        self._closed = False

    # -- the RuntimeBackend interface, delegated ------------------------------------------------
    @property
    def status_listener(self) -> Any:
        return self.backend.status_listener

    @status_listener.setter
    def status_listener(self, value: Any) -> None:
        self.backend.status_listener = value

    def describe_isolation(self) -> str:
        return self.backend.describe_isolation()

    async def ensure_image(self, image: str, dockerfile_dir: str | None) -> str:
        return await self.backend.ensure_image(image, dockerfile_dir)

    async def cleanup(self) -> int:
        return await self.backend.cleanup()

    def close(self) -> None:
        """Stop warming (sandboxes still up are the wrapped backend's to remove when it closes;
        prefer :meth:`aclose`, which stops them)."""
        self._closed = True
        for task in self._warming:
            task.cancel()

    def __getattr__(self, name: str) -> Any:  # backend-specific extras (live_containers, run_id...)
        if name == "backend":
            raise AttributeError(name)
        return getattr(self.backend, name)

    # -- the pool -------------------------------------------------------------------------------
    def expect(self, spec: RuntimeSpec, count: int) -> None:
        """Declare ``count`` more starts of ``spec`` to come; warming begins at once."""
        if self._closed or count <= 0:
            return
        key = spec_key(spec)
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot(dataclasses.replace(spec, labels={POOL_LABEL: "1"}))
        slot.remaining += count
        self._fill()

    def forget(self, spec: RuntimeSpec, count: int) -> None:
        """``count`` expected starts of ``spec`` will not come after all (a cancelled episode):
        no more is warmed for them."""
        slot = self._slots.get(spec_key(spec))
        if slot is not None:
            slot.remaining = max(0, slot.remaining - count)

    def ready_count(self) -> int:
        return sum(len(s.ready) for s in self._slots.values())

    def warming_count(self) -> int:
        return sum(s.starting for s in self._slots.values())

    async def wait_warm(self) -> None:
        """Wait until no warm-up is under way (tests and benchmarks; a run does not wait)."""
        while self._warming:
            await asyncio.gather(*list(self._warming), return_exceptions=True)

    async def start(self, spec: RuntimeSpec) -> Runtime:
        """A sandbox of ``spec``: a warm one when there is one (or one is warming), else one
        started now. Expected starts not served warm are served cold, so ``start`` always works."""
        if self._closed:
            raise RuntimeError_("the warm pool is closed (the run is stopping)")
        t0 = time.perf_counter()
        slot = self._slots.get(spec_key(spec))
        runtime: Runtime | None = None
        if slot is not None and slot.remaining > 0:
            slot.remaining -= 1
            if not slot.ready and slot.starting > slot.waiters:
                # A warm-up under way, not yet claimed by another start, comes sooner than a cold start.
                slot.waiters += 1
                try:
                    async with slot.arrived:
                        await slot.arrived.wait_for(lambda: bool(slot.ready) or slot.starting == 0)
                finally:
                    slot.waiters -= 1
                if slot.ready:
                    self.stats.waited += 1
                    runtime = slot.ready.popleft()
            elif slot.ready:
                runtime = slot.ready.popleft()
                self.stats.warm_hits += 1
            self._fill()
        if runtime is None:
            self.stats.cold += 1
            runtime = await self._start(spec)
        self.stats.handoff_s.append(time.perf_counter() - t0)
        return runtime

    async def _start(self, spec: RuntimeSpec) -> Runtime:
        if self._starts is None:
            return await self.backend.start(spec)
        async with self._starts:
            return await self.backend.start(spec)

    def _fill(self) -> None:
        """Start warm-ups while under ``size``, in the order the specs were expected."""
        if self._closed:
            return
        busy = sum(len(s.ready) + s.starting for s in self._slots.values())
        for slot in self._slots.values():
            while busy < self.size and len(slot.ready) + slot.starting - slot.waiters < slot.remaining:
                slot.starting += 1
                busy += 1
                task = asyncio.ensure_future(self._warm(slot))
                self._warming.add(task)
                task.add_done_callback(self._warming.discard)
            if busy >= self.size:
                return

    async def _warm(self, slot: _Slot) -> None:
        runtime: Runtime | None = None
        try:
            runtime = await self._start(slot.spec)
            self.stats.warmed += 1
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the starts it would have served go cold (and report the error)
            self.stats.failed += 1
            log.warning("a warm-up of %s failed: %s", slot.spec.image or "a sandbox", e)
        finally:
            slot.starting -= 1
            if runtime is not None:
                if self._closed:
                    await _stop_quietly(runtime)
                    self.stats.discarded += 1
                else:
                    slot.ready.append(runtime)
            async with slot.arrived:
                slot.arrived.notify_all()

    async def aclose(self) -> None:
        """Cancel the warm-ups, wait for them, and stop every sandbox not handed over. Idempotent."""
        self._closed = True
        for task in list(self._warming):
            task.cancel()
        await asyncio.gather(*list(self._warming), return_exceptions=True)
        unused = [rt for slot in self._slots.values() for rt in slot.ready]
        for slot in self._slots.values():
            slot.ready.clear()
            slot.remaining = 0
        await asyncio.gather(*(_stop_quietly(rt) for rt in unused))
        self.stats.discarded += len(unused)


async def _stop_quietly(runtime: Runtime) -> None:
    with contextlib.suppress(Exception):
        await runtime.stop()
