"""What Codex CLI 0.171.0 sends, and that the proxy serves all of it: the real ``codex`` (from the npm
lock, installed offline on the host), local runtime, against agentgym's proxy with a scripted
engine answering in the model's own tool-call format. The facts the Responses dialect relies on
are pinned in ``tests/fixtures/wire/codex_requests.json`` (regenerate with
``AGENTGYM_REGEN_WIRE_FIXTURES=1`` after updating the lock, and review the diff)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from agentgym.engines.scripted import ScriptedEngine
from agentgym.harness import HarnessContext
from agentgym.harnesses.codex import CodexHarness
from agentgym.reconstruct import reconstruct
from agentgym.types import BreakReason, StopReason, Task

from .test_claude_code_wire import Recording

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "wire" / "codex_requests.json"
CALL = ('I will write the file.\n<tool_call>\n{"name": "exec_command", "arguments": {"cmd": '
        '"printf \'Hello, agentgym!\\\\n\' > hello.txt"}}\n</tool_call>')


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from agentgym.models.tiny import train_tokenizer

    return train_tokenizer()


def facts(seen: list[dict[str, Any]], calls: list[Any]) -> dict[str, Any]:
    out = []
    for s, c in zip(seen, calls, strict=True):
        body = c.request
        out.append({
            "path": s["path"].split("/v1/", 1)[1], "accept": s["headers"].get("Accept"),
            "originator": s["headers"].get("originator"),
            "user-agent": s["headers"].get("User-Agent", "").split(" ")[0],
            "body_keys": sorted(body), "stream": body.get("stream"), "store": body.get("store"),
            "tool_choice": body.get("tool_choice"), "parallel_tool_calls": body.get("parallel_tool_calls"),
            "reasoning": body.get("reasoning"), "include": body.get("include"),
            "tools": [[t.get("type"), t.get("name"), sorted(t)] for t in body.get("tools", [])],
            "input": [[i.get("type"), i.get("role"), sorted(i)] for i in body["input"]],
        })
    return {"requests": out}


def test_codex_runs_against_the_proxy_and_its_wire_is_pinned(tokenizer: Any, tmp_path: Path) -> None:
    from agentgym.runtime.base import RuntimeSpec
    from agentgym.runtime.local import LocalBackend

    def reply(ids: Any, n: int) -> str:
        return "Done." if "tool_response" in tokenizer.decode(list(ids)[-300:]) else CALL

    async def main() -> tuple[Any, Any, Any, bytes]:
        proxy = Recording(ScriptedEngine(tokenizer, reply, model_name="policy"), tmp_path / "run")
        await proxy.start()
        try:
            sid = proxy.open_session()
            task = Task(id="wire", instruction="Create hello.txt containing `Hello, agentgym!`.", env="test/x-v0",
                        workdir="/app")
            ctx = HarnessContext(task=task, base_url=proxy.base_url(sid), model="policy", max_steps=8)
            (tmp_path / "rt").mkdir()
            async with await LocalBackend(tmp_root=str(tmp_path / "rt")).start(RuntimeSpec(workdir="/app")) as rt:
                result = await CodexHarness().run(ctx, rt, timeout=600)
                written = await rt.read_file("/app/hello.txt")
            return result, proxy.calls(sid), list(proxy.seen), written
        finally:
            await proxy.stop()

    result, calls, seen, written = asyncio.run(main())
    assert CodexHarness().stop_reason(result) == StopReason.COMPLETED, result.stdout[-2000:] + result.stderr[-2000:]
    assert written == b"Hello, agentgym!\n"
    assert [s["status"] for s in seen] == [200] * len(calls) and len(calls) >= 2
    assert [c.break_reason for c in calls] == [BreakReason.START] + [None] * (len(calls) - 1)
    assert all(c.dialect == "responses" and c.delivered for c in calls)
    traj = reconstruct(calls, task_id="wire", trajectory_id="w")[0]
    assert traj.delivered_fraction == 1.0 and len(traj.segments) == 1

    got = facts(seen, calls)
    if os.environ.get("AGENTGYM_REGEN_WIRE_FIXTURES"):
        FIXTURE.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    assert got == json.loads(FIXTURE.read_text())
