"""Property-based fuzzing of all three dialects: whatever arrives — random JSON, valid requests
with one field replaced by garbage, hostile session ids, bad encodings — the proxy answers a
4xx or a 200 (never a 5xx), answers in time, keeps serving the next valid request, and writes
nothing outside its journal directory."""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentgym.engines.scripted import ScriptedEngine
from agentgym.proxy.server import Proxy

from .conftest import BASH_TOOL, tool_reply

PATHS = {"chat": "/v1/chat/completions", "responses": "/v1/responses", "anthropic": "/v1/messages",
         "count": "/v1/messages/count_tokens"}
VALID = {
    "chat": {"model": "m", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
             "tools": [BASH_TOOL], "max_tokens": 16},
    "responses": {"model": "m", "instructions": "Be brief.", "input": [{"role": "user", "content": "hi"}],
                  "tools": [{"type": "function", "name": "bash", "parameters": BASH_TOOL["function"]["parameters"]}],
                  "max_output_tokens": 16},
    "anthropic": {"model": "m", "max_tokens": 16, "system": "Be brief.", "messages": [{"role": "user", "content": "hi"}],
                  "tools": [{"name": "bash", "input_schema": BASH_TOOL["function"]["parameters"]}]},
    "count": {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
}


class Served:
    """A proxy on its own event loop thread, driven by a blocking client."""

    def __init__(self, root: Path, tokenizer: Any) -> None:
        replies = [tool_reply("ls", "Let me look."), "Done.", "<tool_call>\n{broken", "<think>hm</think>ok"]
        self.root = root
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.proxy = Proxy(ScriptedEngine(tokenizer, lambda ids, n: replies[n % len(replies)]), root / "journal",
                           allow_new_sessions=True, max_model_len=4096)
        asyncio.run_coroutine_threadsafe(self.proxy.start(), self.loop).result(30)
        self.base = f"http://127.0.0.1:{self.proxy.port}"
        self.client = httpx.Client(timeout=20)

    def close(self) -> None:
        self.client.close()
        asyncio.run_coroutine_threadsafe(self.proxy.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, tokenizer: Any) -> Iterator[Served]:
    s = Served(tmp_path_factory.mktemp("fuzz"), tokenizer)
    yield s
    s.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20)

FIELDS = ["model", "messages", "input", "system", "instructions", "tools", "tool_choice", "stream", "stream_options",
          "temperature", "top_p", "max_tokens", "max_output_tokens", "seed", "stop", "stop_sequences", "n",
          "metadata", "thinking", "logprobs", "reasoning", "text", "include"]
RAW = [b"", b"{", b"[]", b"null", b'{"messages": "\\ud800"}', b"[" * 3000, b'{"seed": ' + b"9" * 5000 + b"}",
       b"\xff\xfe", '{"messages": [{"role": "user", "content": "é\u0000"}]}'.encode()]


@st.composite
def bodies(draw: Any, dialect: str) -> bytes:
    kind = draw(st.sampled_from(["mutated", "mutated", "message", "random", "raw"]))
    if kind == "raw":
        return draw(st.sampled_from(RAW))
    if kind == "random":
        return json.dumps(draw(json_values)).encode()
    body = json.loads(json.dumps(VALID[dialect]))
    if kind == "message":
        conv = "input" if dialect == "responses" else "messages"
        body[conv] = [*body[conv], draw(json_values)]
    else:
        body[draw(st.sampled_from(FIELDS))] = draw(json_values)
    return json.dumps(body).encode()


session_ids = st.one_of(st.just("fuzz"), st.text(min_size=1, max_size=20),
                        st.sampled_from(["..", "../../x", "/tmp/pwned", "a" * 300, "x\u0000y", "%2e%2e"]))


def files(root: Path) -> set[Path]:
    return set(root.rglob("*"))


@pytest.mark.parametrize("dialect", ["chat", "responses", "anthropic", "count"])
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_whatever_arrives_the_proxy_answers_4xx_or_200_and_keeps_serving(served: Served, dialect: str,
                                                                         data: Any) -> None:
    before = files(served.root)
    sid = quote(data.draw(session_ids), safe="")
    body = data.draw(bodies(dialect))
    headers = {"Content-Type": "application/json"}
    if data.draw(st.booleans()):
        enc = data.draw(st.sampled_from(["gzip", "deflate", "br", "identity", "nonsense"]))
        headers["Content-Encoding"] = enc
        if enc == "gzip" and data.draw(st.booleans()):
            body = gzip.compress(body)
    if data.draw(st.booleans()):
        headers["X-AgentGym-Agent"] = data.draw(st.text(st.characters(min_codepoint=32, max_codepoint=126),
                                                         max_size=10).filter(lambda s: s == s.strip()))
    r = served.client.post(f"{served.base}/s/{sid}{PATHS[dialect]}", content=body, headers=headers)
    assert r.status_code < 500, (r.status_code, r.text[:500], body[:300])
    if r.status_code >= 400 and r.headers.get("Content-Type", "").startswith("application/json"):
        assert r.json()  # an error body in the dialect's shape
    elif r.status_code >= 400:  # refused by the HTTP parser itself (an encoding it cannot decode)
        assert r.status_code == 400 and headers.get("Content-Encoding") not in (None, "identity"), r.text
    ok = served.client.post(f"{served.base}/s/fuzz-ok{PATHS[dialect]}", json=VALID[dialect])
    assert ok.status_code == 200, ok.text[:300]
    new = files(served.root) - before
    journal = served.root / "journal" / "calls"
    assert all(p.parent == journal and p.suffix == ".jsonl" for p in new), new
