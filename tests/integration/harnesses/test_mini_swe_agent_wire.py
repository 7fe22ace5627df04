"""What mini-swe-agent 2.4.6 sends, recorded against a scripted server (``mini`` from the locked
host virtualenv, local runtime, no Docker) and pinned by the fixtures in ``tests/fixtures/wire/``.

The proxy's contract tests replay those fixtures; this test fails when the real ``mini`` stops
sending what they contain. Installs come only from ``harnesses/locks/mini-swe-agent.txt``, so
it passes on a fresh machine today and in a year; after updating the lock, regenerate the
fixtures with ``AGENTGYM_REGEN_WIRE_FIXTURES=1`` and review both diffs together.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from agentgym.harness import HarnessContext
from agentgym.harnesses.mini_swe_agent import SUBMIT_SENTINEL, TRAJ_NAME, MiniSweAgentHarness
from agentgym.types import StopReason, Task
from tests.integration.harnesses.fake_openai import FakeOpenAI, text, tool_call

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "wire"
REQUEST_FIXTURE = FIXTURES / "mini_swe_agent_request.json"
SESSION_FIXTURE = FIXTURES / "mini_swe_agent_session.json"
API_KEY = "sk-agentgym-test"
KEPT_HEADERS = ("Authorization", "Content-Type", "Accept", "Accept-Encoding", "User-Agent", "X-Stainless-Lang",
                "X-Stainless-Package-Version", "X-Stainless-Async", "x-stainless-retry-count",
                "x-stainless-read-timeout")


def _script() -> list[dict[str, Any]]:
    parallel = tool_call("echo hello > hello.txt && cat hello.txt", content=None, call_id="call_2a")
    parallel["message"]["reasoning_content"] = "Two commands at once."
    parallel["message"]["tool_calls"].append({"id": "call_2b", "type": "function", "function": {
        "name": "bash", "arguments": json.dumps({"command": "ls; exit 3"})}})
    return [
        tool_call("pwd", content="Let me look around first.", call_id="call_1"),
        parallel,                                             # content null, reasoning, 2 tool calls
        text("I am done."),                                   # no tool call: a format error
        tool_call(f"echo {SUBMIT_SENTINEL}", content="Submitting.", call_id="call_3"),
    ]


def _sanitise_text(s: str, workdir: str) -> str:
    s = re.sub(r"<system_information>\n.*?\n</system_information>",
               "<system_information>\nLinux 6.1.0 #1 SMP PREEMPT_DYNAMIC x86_64\n</system_information>", s, flags=re.S)
    return s.replace(workdir, "/app")


def _sanitise(exchange: dict[str, Any], workdir: str) -> dict[str, Any]:
    """Drop what depends on the machine (uname, temp paths, ports, runtime versions)."""
    ex = copy.deepcopy(exchange)
    body = ex["body"]
    for m in body["messages"]:
        if isinstance(m.get("content"), str):
            m["content"] = _sanitise_text(m["content"], workdir)
    headers = {k: v for k, v in ex["headers"].items() if k in KEPT_HEADERS}
    return {"method": ex["method"], "path": re.sub(r"^/s/[^/]+/", "/s/<session>/", ex["path"]),
            "headers": headers, "body": body, "response": ex["response"]}


async def _run(srv: FakeOpenAI, tmp_path: Path) -> tuple[Any, dict[str, Any], str]:
    from agentgym.runtime.base import RuntimeSpec
    from agentgym.runtime.local import LocalBackend

    harness = MiniSweAgentHarness()
    task = Task(id="wire", instruction="Create hello.txt containing hello.", env="test/fake-v0", workdir="/app")
    ctx = HarnessContext(task=task, base_url=srv.base_url, model="policy", api_key=API_KEY, max_steps=10,
                         output_dir="/tmp/agentgym-harness")
    async with await LocalBackend(tmp_root=str(tmp_path)).start(RuntimeSpec(workdir="/app")) as rt:
        result = await harness.run(ctx, rt, timeout=240)
        assert harness.stop_reason(result) == StopReason.COMPLETED, result.stdout[-3000:] + result.stderr[-3000:]
        traj = json.loads(await rt.read_file(f"/tmp/agentgym-harness/{TRAJ_NAME}"))
        return result, traj, rt.process_path("/app")  # "/app" in the sandbox


def test_mini_wire_format_matches_fixtures(tmp_path: Path, mini_venv_python: str) -> None:
    with FakeOpenAI(_script()) as srv:
        result, traj, workdir = asyncio.run(_run(srv, tmp_path))
    assert result.exit_code == 0
    assert traj["info"]["exit_status"] == "Submitted"
    exchanges = [_sanitise(r, workdir) for r in srv.requests]
    assert len(exchanges) == 4
    if os.environ.get("AGENTGYM_REGEN_WIRE_FIXTURES") == "1":
        FIXTURES.mkdir(parents=True, exist_ok=True)
        REQUEST_FIXTURE.write_text(json.dumps(exchanges[1]["body"], indent=2) + "\n")
        SESSION_FIXTURE.write_text(json.dumps({
            "harness": "mini-swe-agent 2.4.6 (`mini -y --exit-immediately`, litellm -> openai SDK)",
            "recorded_by": "tests/integration/harnesses/test_mini_swe_agent_wire.py",
            "notes": [
                "Non-streaming POST /chat/completions; body keys: model, messages, tools (no sampling args by default).",
                "Assistant messages are echoed with a non-standard provider_specific_fields key; content is omitted "
                "(not null) when the reply had none; reasoning_content is echoed back.",
                "A reply without a tool call is dropped from the history and replaced by a user 'Tool call error' "
                "message (exchange 3 does not extend exchange 2's completion).",
                "The episode ends when a command's output starts with COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT; no "
                "request follows it.",
            ],
            "exchanges": exchanges,
        }, indent=2) + "\n")
    recorded = json.loads(SESSION_FIXTURE.read_text())["exchanges"]
    assert [e["body"] for e in exchanges] == [e["body"] for e in recorded]
    assert json.loads(REQUEST_FIXTURE.read_text()) == exchanges[1]["body"]
    assert_documented_shape(exchanges)
    for got in exchanges:
        assert got["path"] == "/s/<session>/v1/chat/completions"
        assert got["headers"]["Authorization"] == f"Bearer {API_KEY}"
        assert got["headers"]["Content-Type"] == "application/json"
        assert got["headers"]["User-Agent"].startswith("OpenAI/Python")


def assert_documented_shape(ex: list[dict[str, Any]]) -> None:
    """The facts the proxy and the docs rely on, read from what the real ``mini`` just sent."""
    body = ex[1]["body"]
    assert set(body) == {"model", "messages", "tools"}
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "tool"]
    assistant = body["messages"][2]
    assert assistant["provider_specific_fields"] == {"refusal": None}
    assert assistant["tool_calls"][0]["function"] == {"arguments": '{"command": "pwd"}', "name": "bash"}
    assert body["messages"][3]["tool_call_id"] == assistant["tool_calls"][0]["id"]
    assert body["tools"][0]["function"]["name"] == "bash"
    null_content = ex[2]["body"]["messages"][4]
    assert "content" not in null_content and null_content["reasoning_content"] == "Two commands at once."
    assert [m.get("tool_call_id") for m in ex[2]["body"]["messages"][5:]] == ["call_2a", "call_2b"]
    # the reply without a tool call (exchange 3's response) is not in exchange 4's history
    assert ex[3]["body"]["messages"][:7] == ex[2]["body"]["messages"]
    assert ex[3]["body"]["messages"][7]["role"] == "user"
    assert ex[3]["body"]["messages"][7]["content"].startswith("Tool call error")
