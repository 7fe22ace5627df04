"""The warm pool: sandboxes started ahead, handed over once, bounded by demand, none left behind.

A fake backend counts starts and stops and can be made slow or failing, so each story checks
what the pool did, not how long it took."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from agentgym.runtime.base import ExecResult, Runtime, RuntimeBackend, RuntimeSpec
from agentgym.runtime.pool import POOL_LABEL, WarmPool, spec_key


class FakeRuntime(Runtime):
    def __init__(self, backend: FakeBackend, spec: RuntimeSpec, n: int) -> None:
        self.fake = backend
        self.spec = spec
        self.n = n
        self.stopped = False

    async def exec(self, cmd: str, *, timeout: float | None = None, env: Mapping[str, str] | None = None,
                   workdir: str | None = None, login: bool = True) -> ExecResult:
        return ExecResult(0, cmd)

    async def read_file(self, path: str) -> bytes:
        return b""

    async def write_file(self, path: str, data: bytes | str, mode: int = 0o644) -> None:
        return None

    async def upload_dir(self, src: str, dst: str) -> None:
        return None

    async def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.fake.live.discard(self)


class FakeBackend(RuntimeBackend):
    name = "fake"

    def __init__(self, delay_s: float = 0.0, fail: int = 0) -> None:
        self.delay_s = delay_s
        self.fail = fail
        self.started = 0
        self.live: set[FakeRuntime] = set()
        self.concurrent = 0
        self.most_concurrent = 0
        self.gate: asyncio.Event | None = None

    async def start(self, spec: RuntimeSpec) -> Runtime:
        self.concurrent += 1
        self.most_concurrent = max(self.most_concurrent, self.concurrent)
        try:
            if self.gate is not None:
                await self.gate.wait()
            await asyncio.sleep(self.delay_s)
            if self.fail:
                self.fail -= 1
                raise OSError("no more containers today")
            self.started += 1
            rt = FakeRuntime(self, spec, self.started)
            self.live.add(rt)
            return rt
        finally:
            self.concurrent -= 1


SPEC = RuntimeSpec(image="task-a", labels={"agentgym.session": "one"})
OTHER = RuntimeSpec(image="task-b")


def test_specs_that_differ_only_in_labels_share_a_key() -> None:
    same = RuntimeSpec(image="task-a", labels={"agentgym.session": "two"})
    assert spec_key(SPEC) == spec_key(same)
    assert spec_key(SPEC) != spec_key(OTHER)
    assert spec_key(SPEC) != spec_key(RuntimeSpec(image="task-a", network="none"))


def test_an_expected_spec_is_warmed_and_handed_over_without_a_new_start() -> None:
    async def story() -> None:
        backend = FakeBackend()
        pool = WarmPool(backend, size=2)
        pool.expect(SPEC, 3)
        await pool.wait_warm()
        assert (pool.ready_count(), backend.started) == (2, 2)  # size bounds what is warm at once
        rt = await pool.start(SPEC)
        assert isinstance(rt, FakeRuntime) and rt.n == 1 and rt.spec.labels == {POOL_LABEL: "1"}
        await pool.wait_warm()
        assert (pool.ready_count(), backend.started) == (2, 3)  # the third warmed as the first left
        assert pool.stats.warm_hits == 1 and pool.stats.cold == 0
        await pool.aclose()
    asyncio.run(story())


def test_the_pool_never_warms_more_than_was_expected() -> None:
    async def story() -> None:
        backend = FakeBackend()
        pool = WarmPool(backend, size=8)
        pool.expect(SPEC, 2)
        await pool.wait_warm()
        a, b = await pool.start(SPEC), await pool.start(SPEC)
        await pool.wait_warm()
        assert backend.started == 2 and pool.ready_count() == 0
        c = await pool.start(SPEC)  # beyond what was expected: started on the spot, nothing warmed after
        await pool.wait_warm()
        assert backend.started == 3 and pool.stats.cold == 1 and pool.ready_count() == 0
        for rt in (a, b, c):
            await rt.stop()
        await pool.aclose()
        assert backend.live == set()
    asyncio.run(story())


def test_specs_are_warmed_in_the_order_they_were_expected() -> None:
    async def story() -> None:
        backend = FakeBackend()
        pool = WarmPool(backend, size=2)
        pool.expect(SPEC, 2)
        pool.expect(OTHER, 2)
        await pool.wait_warm()
        assert sorted(rt.spec.image or "" for rt in backend.live) == ["task-a", "task-a"]
        await pool.start(SPEC)
        await pool.wait_warm()
        assert sorted(rt.spec.image or "" for rt in backend.live) == ["task-a", "task-a", "task-b"]
        await pool.aclose()
    asyncio.run(story())


def test_a_start_waits_for_a_warm_up_under_way_instead_of_starting_another() -> None:
    async def story() -> None:
        backend = FakeBackend()
        backend.gate = asyncio.Event()
        pool = WarmPool(backend, size=1)
        pool.expect(SPEC, 1)
        taking = asyncio.ensure_future(pool.start(SPEC))
        await asyncio.sleep(0.01)
        assert not taking.done() and backend.concurrent == 1
        backend.gate.set()
        rt = await taking
        assert backend.started == 1 and pool.stats.waited == 1 and pool.stats.cold == 0
        await rt.stop()
        await pool.aclose()
    asyncio.run(story())


def test_a_failed_warm_up_falls_back_to_a_cold_start() -> None:
    async def story() -> None:
        backend = FakeBackend(fail=1)
        pool = WarmPool(backend, size=1)
        pool.expect(SPEC, 1)
        await pool.wait_warm()
        rt = await pool.start(SPEC)
        assert isinstance(rt, FakeRuntime) and pool.stats.failed == 1 and pool.stats.cold == 1
        await pool.aclose()
    asyncio.run(story())


def test_max_starting_bounds_warm_ups_and_cold_starts_together() -> None:
    async def story() -> None:
        backend = FakeBackend(delay_s=0.02)
        pool = WarmPool(backend, size=6, max_starting=2)
        pool.expect(SPEC, 6)
        cold = [asyncio.ensure_future(pool.start(OTHER)) for _ in range(3)]
        await pool.wait_warm()
        runtimes = await asyncio.gather(*cold)
        assert backend.most_concurrent == 2 and backend.started == 9
        for rt in runtimes:
            await rt.stop()
        await pool.aclose()
    asyncio.run(story())


def test_size_zero_warms_nothing_and_only_limits_starts() -> None:
    async def story() -> None:
        backend = FakeBackend(delay_s=0.01)
        pool = WarmPool(backend, size=0, max_starting=1)
        pool.expect(SPEC, 4)
        await pool.wait_warm()
        assert backend.started == 0
        runtimes = await asyncio.gather(*(pool.start(SPEC) for _ in range(3)))
        assert backend.most_concurrent == 1 and pool.stats.cold == 3
        for rt in runtimes:
            await rt.stop()
    asyncio.run(story())


def test_aclose_stops_the_unused_and_the_ones_still_warming() -> None:
    async def story() -> None:
        backend = FakeBackend()
        pool = WarmPool(backend, size=4)
        pool.expect(SPEC, 5)
        await pool.wait_warm()
        backend.gate = asyncio.Event()
        taken = await pool.start(SPEC)  # a refill begins and hangs at the gate
        await asyncio.sleep(0.01)
        assert pool.warming_count() == 1
        await pool.aclose()
        assert backend.live == {taken}  # only the sandbox an episode holds is left (its episode stops it)
        assert pool.stats.discarded == 3
        with pytest.raises(Exception, match="closed"):
            await pool.start(SPEC)
    asyncio.run(story())


def test_forget_stops_warming_for_episodes_that_will_not_come() -> None:
    async def story() -> None:
        backend = FakeBackend()
        pool = WarmPool(backend, size=1)
        pool.expect(SPEC, 3)
        await pool.wait_warm()
        pool.forget(SPEC, 2)
        rt = await pool.start(SPEC)
        await pool.wait_warm()
        assert backend.started == 1 and pool.ready_count() == 0
        await rt.stop()
        await pool.aclose()
    asyncio.run(story())


def test_the_pool_is_a_backend_with_the_wrapped_ones_name_and_extras() -> None:
    backend: Any = FakeBackend()
    backend.run_id = "r1"
    pool: Any = WarmPool(backend)
    assert pool.name == "fake" and pool.uses_images and pool.run_id == "r1"
