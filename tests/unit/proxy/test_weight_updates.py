"""Weight updates through the proxy: calls in flight finish on the old weights, new ones wait (or
get a 429 with Retry-After) and none is lost; every call records the policy version it was
sampled with, and so does every token the trajectory trains."""

from __future__ import annotations

import asyncio
from typing import Any

from agentgym.engines.scripted import ScriptedEngine
from agentgym.reconstruct import reconstruct

from .conftest import post
from .test_splice import SYSTEM, TASK


class SlowUpdate(ScriptedEngine):
    started: asyncio.Event | None = None

    async def generate(self, prompt_ids: Any, sampling: Any) -> Any:
        if self.started is not None:
            self.started.set()
        return await super().generate(prompt_ids, sampling)

    async def update_weights(self, state_dict: dict[str, Any], version: int) -> None:
        await asyncio.sleep(0.3)
        await super().update_weights(state_dict, version)


def test_requests_during_an_update_wait_and_are_served_on_the_new_weights(tokenizer: Any,
                                                                         make_custom_proxy: Any) -> None:
    engine = SlowUpdate(tokenizer, lambda ids, n: "ok", delay_s=0.2)
    h = make_custom_proxy(engine)
    sids = [h.proxy.open_session() for _ in range(4)]

    async def main() -> list[Any]:
        engine.started = asyncio.Event()
        url = h.proxy.base_url(sids[0]) + "/chat/completions"
        inflight = asyncio.ensure_future(post(url, json={"messages": [SYSTEM, TASK]}))
        await engine.started.wait()  # generating on the old weights
        engine.started = None
        update = asyncio.ensure_future(h.proxy.update_weights({}, version=7))
        await asyncio.sleep(0.05)
        held = [asyncio.ensure_future(post(h.proxy.base_url(s) + "/chat/completions", json={"messages": [TASK]}))
                for s in sids[1:]]
        await update
        return [await inflight, *[await r for r in held]]

    responses = h.run(main())
    assert [r.status_code for r in responses] == [200] * 4  # none lost
    versions = [h.proxy.calls(s)[0].policy_version for s in sids]
    assert versions == [0, 7, 7, 7]  # the call in flight finished on the old weights
    traj = reconstruct(h.proxy.calls(sids[1]), task_id="t", trajectory_id=sids[1])[0]
    seg = traj.segments[0]
    assert {v for v, a in zip(seg.policy_version, seg.action_mask, strict=True) if a} == {7}


def test_reject_mode_answers_429_with_retry_after(tokenizer: Any, make_custom_proxy: Any) -> None:
    engine = SlowUpdate(tokenizer, lambda ids, n: "ok")
    h = make_custom_proxy(engine, on_update="reject", retry_after_s=1.5)
    sid = h.proxy.open_session()
    url = h.proxy.base_url(sid) + "/chat/completions"

    async def main() -> tuple[Any, Any]:
        update = asyncio.ensure_future(h.proxy.update_weights({}, version=2))
        await asyncio.sleep(0.05)
        refused = await post(url, json={"messages": [TASK]})
        await update
        return refused, await post(url, json={"messages": [TASK]})

    refused, after = h.run(main())
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1.5"
    assert refused.json()["error"]["code"] == "updating_weights"
    assert after.status_code == 200 and h.proxy.calls(sid)[0].policy_version == 2
