"""What Claude Code 2.1.332 sends, and that the proxy serves all of it: the real ``claude`` (from the
npm lock, installed offline on the host), local runtime, against agentgym's proxy with a scripted
engine that answers in the model's own tool-call format.

The facts about the wire that the Anthropic dialect relies on are pinned in
``tests/fixtures/wire/claude_code_requests.json``; after updating the lock, regenerate them with
``AGENTGYM_REGEN_WIRE_FIXTURES=1`` and review the diff together with the dialect.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from agentgym.engines.scripted import ScriptedEngine
from agentgym.harness import HarnessContext
from agentgym.harnesses.claude_code import ClaudeCodeHarness
from agentgym.proxy.server import Proxy
from agentgym.reconstruct import reconstruct
from agentgym.types import BreakReason, StopReason, Task

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "wire" / "claude_code_requests.json"
CALL = ('I will write the file.\n<tool_call>\n{"name": "Bash", "arguments": {"command": '
        '"printf \'Hello, agentgym!\\\\n\' > hello.txt", "description": "Write hello.txt"}}\n</tool_call>')
DONE = "hello.txt now holds the line."


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from agentgym.models.tiny import train_tokenizer

    return train_tokenizer()


def replies(tokenizer: Any) -> Any:
    def reply(ids: Any, n: int) -> str:
        return DONE if "tool_response" in tokenizer.decode(list(ids)[-300:]) else CALL
    return reply


class Recording(Proxy):
    """The proxy, plus a record of each request's path and headers (the journal has the bodies)."""

    seen: list[dict[str, Any]]

    def app(self) -> web.Application:
        app = super().app()
        self.seen = []

        @web.middleware
        async def record(request: web.Request, handler: Any) -> web.StreamResponse:
            resp = await handler(request)
            self.seen.append({"path": request.path_qs, "headers": dict(request.headers), "status": resp.status})
            return resp

        app.middlewares.append(record)
        return app


def facts(seen: list[dict[str, Any]], calls: list[Any]) -> dict[str, Any]:
    """What the dialect relies on, from each request, free of machine-specific values."""
    out = []
    for s, c in zip(seen, calls, strict=True):
        body = c.request
        out.append({
            "path": s["path"].split("/v1/", 1)[1],
            "anthropic-version": s["headers"].get("anthropic-version"),
            "anthropic-beta": sorted(s["headers"].get("anthropic-beta", "").split(",")),
            "user-agent": s["headers"].get("User-Agent"),
            "body_keys": sorted(body),
            "stream": body.get("stream"), "max_tokens": body.get("max_tokens"),
            "thinking": body.get("thinking"), "output_config": body.get("output_config"),
            "context_management": body.get("context_management"),
            "system_blocks": [sorted(b) for b in body.get("system", [])],
            "tools": [[t["name"], sorted(t)] for t in body.get("tools", [])],
            "messages": [[m["role"], "str" if isinstance(m["content"], str) else
                          [sorted(b) for b in m["content"]]] for m in body["messages"]],
        })
    return {"requests": out}


def test_claude_code_runs_against_the_proxy_and_its_wire_is_pinned(tokenizer: Any, tmp_path: Path) -> None:
    from agentgym.runtime.base import RuntimeSpec
    from agentgym.runtime.local import LocalBackend

    async def main() -> tuple[Any, Any, Any, str]:
        proxy = Recording(ScriptedEngine(tokenizer, replies(tokenizer), model_name="policy"), tmp_path / "run")
        await proxy.start()
        try:
            sid = proxy.open_session()
            harness = ClaudeCodeHarness()
            task = Task(id="wire", instruction="Create hello.txt containing `Hello, agentgym!`.", env="test/x-v0",
                        workdir="/app")
            ctx = HarnessContext(task=task, base_url=proxy.base_url(sid), model="policy", max_steps=8)
            (tmp_path / "rt").mkdir()
            async with await LocalBackend(tmp_root=str(tmp_path / "rt")).start(RuntimeSpec(workdir="/app")) as rt:
                result = await harness.run(ctx, rt, timeout=600)
                written = await rt.read_file("/app/hello.txt")
            return result, proxy.calls(sid), list(proxy.seen), written
        finally:
            await proxy.stop()

    result, calls, seen, written = asyncio.run(main())
    assert ClaudeCodeHarness().stop_reason(result) == StopReason.COMPLETED, result.stdout[-2000:] + result.stderr[-2000:]
    assert written == b"Hello, agentgym!\n"
    assert [s["status"] for s in seen] == [200] * len(calls) and len(calls) >= 2
    main_calls = [c for c in calls if c.agent_id == "main"]
    assert [c.break_reason for c in main_calls] == [BreakReason.START] + [None] * (len(main_calls) - 1)
    assert all(c.dialect == "anthropic" and c.delivered for c in calls)
    traj = reconstruct(calls, task_id="wire", trajectory_id="w")[0]
    assert traj.delivered_fraction == 1.0 and len(traj.segments) == 1

    got = facts(seen, calls)
    if os.environ.get("AGENTGYM_REGEN_WIRE_FIXTURES"):
        FIXTURE.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    assert got == json.loads(FIXTURE.read_text())
