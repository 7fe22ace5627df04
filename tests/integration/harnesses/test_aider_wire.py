"""What Aider 0.86.2 sends, streaming (its default) and not, recorded against a scripted server
(``aider`` from the locked host virtualenv, local runtime) and pinned by the fixtures
``tests/fixtures/wire/aider_{stream,nostream}.json``. Installs come only from
``harnesses/locks/aider.txt``; after updating the lock, regenerate with
``AGENTGYM_REGEN_WIRE_FIXTURES=1`` and review both diffs together."""

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
from agentgym.harnesses.aider import AiderHarness
from agentgym.runtime.base import ExecResult
from agentgym.types import StopReason, Task
from tests.integration.harnesses.fake_openai import FakeOpenAI, error, text

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "wire"
API_KEY = "sk-agentgym-test"
KEPT_HEADERS = ("Authorization", "Content-Type", "Accept", "User-Agent", "X-Stainless-Package-Version")
BROKEN = "greet.py\n```\ndef greet(:\n    return 'hello'\n```\n"      # a syntax error: aider lints it
FIXED = "greet.py\n```\ndef greet():\n    return 'hello'\n```\n"


@pytest.fixture(scope="session")
def aider_venv() -> Path:
    from agentgym.harnesses.aider import LOCK
    from agentgym.harnesses.wheelhouse import ensure_venv

    return ensure_venv(LOCK)


async def _run(srv: FakeOpenAI, tmp_path: Path, stream: bool) -> tuple[ExecResult, dict[str, str]]:
    from agentgym.runtime.base import RuntimeSpec
    from agentgym.runtime.local import LocalBackend

    task = Task(id="wire", instruction="Write greet.py with a function greet() returning 'hello'.",
                env="test/fake-v0", workdir="/app")
    ctx = HarnessContext(task=task, base_url=srv.base_url, model="policy", api_key=API_KEY)
    tmp_path.mkdir(parents=True, exist_ok=True)
    async with await LocalBackend(tmp_root=str(tmp_path)).start(RuntimeSpec(workdir="/app")) as rt:
        result = await AiderHarness(stream=stream).run(ctx, rt, timeout=300)
        listing = await rt.exec("ls -A /app", timeout=30)
        files = {name: (await rt.read_file(f"/app/{name}")).decode() for name in listing.stdout.split()}
        return result, files


def _sanitise(exchange: dict[str, Any]) -> dict[str, Any]:
    ex = copy.deepcopy(exchange)
    for m in ex["body"]["messages"]:
        if isinstance(m.get("content"), str):  # the date and the platform line of the system prompt
            m["content"] = re.sub(r"Today's date: .*", "Today's date: <date>", m["content"])
            m["content"] = re.sub(r"- Platform: .*", "- Platform: <platform>", m["content"])
            m["content"] = re.sub(r"/\S*/venvs/aider-[^/\s]+/bin/", "<aider-venv>/bin/", m["content"])
    return {"path": re.sub(r"^/s/[^/]+/", "/s/<session>/", ex["path"]),
            "headers": {k: v for k, v in ex["headers"].items() if k in KEPT_HEADERS}, "body": ex["body"]}


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "nostream"])
def test_aider_wire_format_matches_fixtures(tmp_path: Path, aider_venv: Path, stream: bool) -> None:
    with FakeOpenAI([text(BROKEN), text(FIXED)]) as srv:
        result, files = asyncio.run(_run(srv, tmp_path, stream))
    assert result.exit_code == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert AiderHarness().stop_reason(result) == StopReason.COMPLETED
    assert files == {"greet.py": "def greet():\n    return 'hello'\n"}  # no history files in the task dir
    exchanges = [_sanitise(r) for r in srv.requests]
    fixture = FIXTURES / f"aider_{'stream' if stream else 'nostream'}.json"
    if os.environ.get("AGENTGYM_REGEN_WIRE_FIXTURES") == "1":
        fixture.write_text(json.dumps({
            "harness": f"aider-chat 0.86.2 (`aider --yes-always --no-git --message`{'' if stream else ' --no-stream'})",
            "recorded_by": "tests/integration/harnesses/test_aider_wire.py",
            "notes": [
                "POST /chat/completions with model, messages, temperature 0" + (", stream true" if stream else "")
                + "; no tools: edits are plain-text blocks (whole-file format for an unknown model).",
                "A syntax error in an edited Python file is linted and fixed in a second call (a reflection) that "
                "rewrites the history: the task loses its format reminder, the reply is echoed without its final "
                "newline, the 'no files' turn is replaced by the edited file's contents.",
            ],
            "exchanges": exchanges,
        }, indent=2) + "\n")
    recorded = json.loads(fixture.read_text())["exchanges"]
    assert [e["body"] for e in exchanges] == [e["body"] for e in recorded]
    assert [e["headers"] for e in exchanges] == [e["headers"] for e in recorded]
    assert_documented_shape([e["body"] for e in exchanges], stream)


def assert_documented_shape(bodies: list[dict[str, Any]], stream: bool) -> None:
    assert len(bodies) == 2  # the answer, then one lint reflection
    for body in bodies:
        assert set(body) == ({"model", "messages", "temperature", "stream"} if stream
                             else {"model", "messages", "temperature"})
        assert body["model"] == "policy" and body["temperature"] == 0
        assert body.get("stream", False) is stream and "tools" not in body
        assert all(set(m) == {"role", "content"} for m in body["messages"])
    first, second = bodies[0]["messages"], bodies[1]["messages"]
    assert first[0]["role"] == "system" and first[-1]["role"] == "user"
    assert first[-1]["content"].startswith("Write greet.py") and "MUST return the entire content" in first[-1]["content"]
    assert first[5]["content"] == "I am not sharing any files that you can edit yet."
    # The reflection rewrites the history (so the session splits into a new segment):
    # the task loses its format reminder, the reply comes back without its final newline, the
    # "no files" turn is gone and the edited file is shared after an "I updated the files." turn.
    assert second[:5] == first[:5]
    assert first[-1]["content"].startswith(second[5]["content"]) and second[5] != first[-1]
    assert second[6] == {"role": "assistant", "content": BROKEN.rstrip("\n")}
    assert [m["content"] for m in second[7:9]] == ["I updated the files.", "Ok."]
    assert "added these files to the chat" in second[9]["content"] and "def greet(:" in second[9]["content"]
    assert second[-1]["content"].startswith("\n# Fix any errors below") and "SyntaxError" in second[-1]["content"]
    assert all(m["content"] != "I am not sharing any files that you can edit yet." for m in second)


def test_an_api_that_refuses_is_a_harness_error(tmp_path: Path, aider_venv: Path) -> None:
    with FakeOpenAI([error(400, "bad request")], default=error(400, "bad request")) as srv:
        result, files = asyncio.run(_run(srv, tmp_path, stream=True))
    assert result.exit_code == 4, result.stdout[-2000:] + result.stderr[-2000:]
    assert "no answer to its last request" in result.stderr
    assert AiderHarness().stop_reason(result) == StopReason.HARNESS_ERROR
    assert len(srv.requests) == 1 and files == {}

