"""What Qwen Code 0.24.4 sends, and that the proxy serves all of it: the real ``qwen`` (from the npm
lock, installed offline on the host), local runtime, against agentgym's proxy with a scripted
engine answering in the model's own tool-call format. The facts the OpenAI chat dialect relies on
are pinned in ``tests/fixtures/wire/qwen_code_requests.json`` (regenerate with
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
from agentgym.harnesses.qwen_code import QwenCodeHarness
from agentgym.reconstruct import reconstruct
from agentgym.types import BreakReason, StopReason, Task

from .test_claude_code_wire import Recording

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "wire" / "qwen_code_requests.json"
CALL = ('I will write the file.\n<tool_call>\n{"name": "run_shell_command", "arguments": {"command": '
        '"printf \'Hello, agentgym!\\\\n\' > hello.txt && cat hello.txt"}}\n</tool_call>')
DONE = "hello.txt now holds the line."


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from agentgym.models.tiny import train_tokenizer

    return train_tokenizer()


def facts(seen: list[dict[str, Any]], calls: list[Any]) -> dict[str, Any]:
    """What the dialect relies on, from each request, free of machine-specific values."""
    out = []
    for s, c in zip(seen, calls, strict=True):
        body = c.request
        out.append({
            "path": s["path"].split("/v1/", 1)[1], "accept": s["headers"].get("Accept"),
            "user-agent": s["headers"].get("User-Agent"),
            "body_keys": sorted(body), "model": body.get("model"), "stream": body.get("stream"),
            "stream_options": body.get("stream_options"), "max_tokens": body.get("max_tokens"),
            "tools": [[t.get("type"), t["function"]["name"], sorted(t["function"])] for t in body.get("tools", [])],
            "messages": [[m["role"], sorted(m), "str" if isinstance(m.get("content"), str) else
                          [p.get("type") for p in m.get("content") or []]] for m in body["messages"]],
        })
    return {"requests": out}


def test_qwen_code_runs_against_the_proxy_and_its_wire_is_pinned(tokenizer: Any, tmp_path: Path) -> None:
    from agentgym.runtime.base import RuntimeSpec
    from agentgym.runtime.local import LocalBackend

    def reply(ids: Any, n: int) -> str:
        return DONE if "tool_response" in tokenizer.decode(list(ids)[-300:]) else CALL

    harness = QwenCodeHarness()

    async def main() -> tuple[Any, Any, Any, bytes, str]:
        # its system prompt and tool schemas are ~36k tokens of the tiny tokenizer
        proxy = Recording(ScriptedEngine(tokenizer, reply, model_name="policy"), tmp_path / "run",
                          max_model_len=200_000)
        await proxy.start()
        try:
            sid = proxy.open_session(targets=harness.observation_targets)
            task = Task(id="wire", instruction="Create hello.txt containing `Hello, agentgym!`.", env="test/x-v0",
                        workdir="/app")
            ctx = HarnessContext(task=task, base_url=proxy.base_url(sid), model="policy", max_steps=8,
                                 output_dir="/tmp/agentgym-harness")
            (tmp_path / "rt").mkdir()
            async with await LocalBackend(tmp_root=str(tmp_path / "rt")).start(RuntimeSpec(workdir="/app")) as rt:
                result = await harness.run(ctx, rt, timeout=600)
                written = await rt.read_file("/app/hello.txt")
                log = (await rt.read_file(f"{ctx.output_dir}/qwen.jsonl")).decode()
            return result, proxy.calls(sid), list(proxy.seen), written, log
        finally:
            await proxy.stop()

    result, calls, seen, written, log = asyncio.run(main())
    assert harness.stop_reason(result) == StopReason.COMPLETED, result.stdout[-2000:] + result.stderr[-2000:]
    assert written == b"Hello, agentgym!\n"
    assert [s["status"] for s in seen] == [200] * len(calls) and len(calls) == 2
    assert [c.break_reason for c in calls] == [BreakReason.START, None]
    assert all(c.dialect == "openai" and c.delivered for c in calls)
    traj = reconstruct(calls, task_id="wire", trajectory_id="w")[0]
    assert traj.delivered_fraction == 1.0 and len(traj.segments) == 1
    # the shell result it sent back, and the final answer in its own log
    tool = calls[1].request["messages"][-1]
    assert tool["role"] == "tool" and "Output: Hello, agentgym!\nError: (none)\nExit Code: 0" in tool["content"][0]["text"]
    # ECHO's targets are the command's output, inside the harness's framing of it
    [body], [target] = calls[1].obs_body_spans, calls[1].obs_spans
    assert body[0] < target[0] < target[1] < body[1]
    last = json.loads(log.strip().splitlines()[-1])
    assert last["type"] == "result" and last["subtype"] == "success" and last["result"] == DONE

    got = facts(seen, calls)
    if os.environ.get("AGENTGYM_REGEN_WIRE_FIXTURES"):
        FIXTURE.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    assert got == json.loads(FIXTURE.read_text())


def test_check_harness_runs_qwen_code_to_one_segment(tmp_path: Path) -> None:
    """``agentgym check harness qwen/qwen-code-v0``: its ~36k-token first prompt (tiny tokenizer)
    fits the check's proxy, and its ``check_replies`` solve the check task."""
    from agentgym.harness_check import check_harness
    from agentgym.runtime import get_backend

    backend = get_backend("local")
    try:
        report = asyncio.run(check_harness(QwenCodeHarness(), backend, out_dir=tmp_path / "run"))
    finally:
        backend.close()
    assert report.stop_reason == "completed" and report.error is None, report
    assert report.dialects == ("openai",) and report.streaming and report.calls == 2
    assert report.segments == {"main": 1} and report.delivered_fraction == 1.0 and report.reward == 1.0
