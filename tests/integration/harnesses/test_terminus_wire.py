"""What our Terminus-style agent sends, recorded against a scripted server (local runtime, the
host's tmux) and pinned by ``tests/fixtures/wire/terminus_session.json``; and what its screens,
parse errors and completion confirmation look like to the model. Regenerate the fixture with
``AGENTGYM_REGEN_WIRE_FIXTURES=1`` after a deliberate change and review the diff."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from agentgym.harness import HarnessContext
from agentgym.harnesses.terminus import LOG_NAME, TerminusHarness, reply
from agentgym.runtime.base import ExecResult
from agentgym.types import StopReason, Task
from tests.integration.harnesses.fake_openai import FakeOpenAI, text

pytestmark = [pytest.mark.timeout(180)]

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "wire" / "terminus_session.json"
API_KEY = "sk-agentgym-test"


def _script() -> list[dict[str, Any]]:
    return [
        text(reply([("echo hello > hello.txt\n", 0.5), ("cat hello.txt\n", 0.5)], analysis="Empty dir.",
                   plan="Write the file, show it.")),
        text("I think the file is there."),                         # not JSON: a parse error
        text("Checking.\n" + reply([("ls\n", 0.5)])),                # extra text: a warning
        text(reply([], complete=True, analysis="Done.", plan="Finish.")),   # asks to confirm
        text(reply([], complete=True, analysis="Sure.", plan="Finish.")),   # confirmed: exit 0
    ]


async def _run(srv: FakeOpenAI, tmp_path: Path, max_steps: int = 10) -> tuple[ExecResult, dict[str, Any], str]:
    from agentgym.runtime.base import RuntimeSpec
    from agentgym.runtime.local import LocalBackend

    harness = TerminusHarness(temperature=0.0, max_tokens=256, retries=0)
    task = Task(id="wire", instruction="Create hello.txt containing hello.", env="test/fake-v0", workdir="/app")
    ctx = HarnessContext(task=task, base_url=srv.base_url, model="policy", api_key=API_KEY, max_steps=max_steps)
    tmp_path.mkdir(parents=True, exist_ok=True)
    async with await LocalBackend(tmp_root=str(tmp_path)).start(RuntimeSpec(workdir="/app")) as rt:
        result = await harness.run(ctx, rt, timeout=120)
        log = json.loads(await rt.read_file(f"/tmp/agentgym-harness/{LOG_NAME}"))
        hello = (await rt.read_file("/app/hello.txt")).decode() if result.exit_code == 0 else ""
        return result, log, hello


def _sanitise(body: dict[str, Any]) -> dict[str, Any]:
    for m in body["messages"]:
        m["content"] = re.sub(r"^\w+@agentgym:", "root@agentgym:", m["content"], flags=re.M)
    return body


def test_terminus_wire_format_matches_fixture(tmp_path: Path) -> None:
    with FakeOpenAI(_script()) as srv:
        result, log, hello = asyncio.run(_run(srv, tmp_path))
    assert result.exit_code == 0, result.stderr[-3000:]
    assert TerminusHarness().stop_reason(result) == StopReason.COMPLETED
    assert hello == "hello\n" and log["exit_status"] == 0
    bodies = [_sanitise(b) for b in srv.bodies]
    assert len(bodies) == 5
    if os.environ.get("AGENTGYM_REGEN_WIRE_FIXTURES") == "1":
        FIXTURE.write_text(json.dumps({
            "harness": "agentgym/terminus-v0 (harnesses/scripts/terminus_agent.py, tmux)",
            "recorded_by": "tests/integration/harnesses/test_terminus_wire.py",
            "notes": [
                "Non-streaming POST /chat/completions; body keys: model, messages, temperature, max_tokens; no tools.",
                "No system message: the protocol, the instruction and the first screen are the first user message.",
                "Assistant messages are echoed as {role, content} exactly as received.",
                "A reply that is not a JSON object gets a 'Previous response had parsing errors' user message.",
                "task_complete is confirmed once; the second true ends the run with no further request.",
            ],
            "exchanges": [{"path": re.sub(r"^/s/[^/]+/", "/s/<session>/", r["path"]), "body": b}
                          for r, b in zip(srv.requests, bodies, strict=True)],
        }, indent=2) + "\n")
    recorded = json.loads(FIXTURE.read_text())["exchanges"]
    assert bodies == [e["body"] for e in recorded]
    for r in srv.requests:
        assert r["path"] == "/s/test-session/v1/chat/completions"
        assert r["headers"]["Authorization"] == f"Bearer {API_KEY}"
    assert_documented_shape(bodies)


def assert_documented_shape(bodies: list[dict[str, Any]]) -> None:
    first = bodies[0]
    assert set(first) == {"model", "messages", "temperature", "max_tokens"}
    assert [m["role"] for m in first["messages"]] == ["user"]
    assert "Create hello.txt containing hello." in first["messages"][0]["content"]
    assert first["messages"][0]["content"].rstrip().endswith("root@agentgym:/app#")
    # each request extends the previous one; assistant messages are echoed verbatim
    for before, after in itertools.pairwise(bodies):
        assert after["messages"][: len(before["messages"])] == before["messages"]
    msgs = bodies[-1]["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant"] * 4 + ["user"]
    assert all(set(m) == {"role", "content"} for m in msgs)
    assert msgs[2]["content"] == ("New Terminal Output:\nroot@agentgym:/app# echo hello > hello.txt\n"
                                  "root@agentgym:/app# cat hello.txt\nhello\nroot@agentgym:/app#")
    assert msgs[4]["content"].startswith("Previous response had parsing errors:\nERROR: No valid JSON")
    assert msgs[6]["content"].startswith("Previous response had warnings:\nWARNINGS: - Extra text detected "
                                         "before JSON object\n\nNew Terminal Output:\nroot@agentgym:/app# ls\nhello.txt")
    assert msgs[8]["content"].startswith("Current terminal state:\n") and "Are you sure" in msgs[8]["content"]


def test_observation_targets_are_the_terminal_text_only(tmp_path: Path) -> None:
    with FakeOpenAI(_script()) as srv:
        asyncio.run(_run(srv, tmp_path))
    h = TerminusHarness()
    msgs = srv.bodies[-1]["messages"]
    seen = []
    for m in msgs[2::2]:
        spans = h.observation_targets(m)
        seen.append([m["content"][a:b] for a, b in spans or ()])
    assert seen[0] == [msgs[2]["content"][len("New Terminal Output:\n"):]]
    assert seen[1] == []  # a parse error is the harness's own text
    assert seen[2][0].startswith("root@agentgym:/app# ls\nhello.txt")
    assert seen[3][0].endswith("root@agentgym:/app#") and "Are you sure" not in seen[3][0]


def test_step_limit_and_a_refusing_api_have_their_exit_statuses(tmp_path: Path) -> None:
    looping = text(reply([("true\n", 0.1)]))
    with FakeOpenAI([], default=looping) as srv:
        result, _, _ = asyncio.run(_run(srv, tmp_path / "a", max_steps=2))
    assert result.exit_code == 3 and TerminusHarness().stop_reason(result) == StopReason.STEP_LIMIT
    assert len(srv.requests) == 2
    from tests.integration.harnesses.fake_openai import error

    with FakeOpenAI([error(400, "maximum context length exceeded")]) as srv:
        result, _, _ = asyncio.run(_run(srv, tmp_path / "b"))
    assert result.exit_code == 4 and "HTTP 400" in result.stderr
    assert TerminusHarness().stop_reason(result) == StopReason.HARNESS_ERROR
