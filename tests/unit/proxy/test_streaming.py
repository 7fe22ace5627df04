"""Streaming in every dialect: tokens reach the client as the engine samples them, at a cost
linear in the completion's length, and the journal records exactly what non-streaming records."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from agentgym.engines.scripted import ScriptedEngine
from agentgym.reconstruct import reconstruct
from agentgym.tokens.stream import IncrementalDetokenizer

from .conftest import BASH_TOOL, root_url

ANTHROPIC_TOOL = {"name": "bash", "description": "Run a shell command",
                  "input_schema": BASH_TOOL["function"]["parameters"]}


def request_for(dialect: str, stream: bool, seed: int | None = None, max_tokens: int = 24) -> tuple[str, dict[str, Any]]:
    """(path, body) of one first request in ``dialect``."""
    if dialect == "chat":
        body: dict[str, Any] = {"model": "m", "messages": [{"role": "system", "content": "Be brief."},
                                                           {"role": "user", "content": "List the files."}],
                                "tools": [BASH_TOOL], "stream": stream, "max_tokens": max_tokens}
        if seed is not None:
            body["seed"] = seed
        return "/v1/chat/completions", body
    if dialect == "responses":
        body = {"model": "m", "instructions": "Be brief.", "input": "List the files.", "stream": stream,
                "tools": [{"type": "function", "name": "bash", "parameters": BASH_TOOL["function"]["parameters"]}],
                "max_output_tokens": max_tokens}
        if seed is not None:
            body["seed"] = seed
        return "/v1/responses", body
    return "/v1/messages", {"model": "m", "system": "Be brief.", "max_tokens": max_tokens, "stream": stream,
                            "messages": [{"role": "user", "content": "List the files."}], "tools": [ANTHROPIC_TOOL]}


def text_deltas(dialect: str, events: list[dict[str, Any]]) -> list[str]:
    if dialect == "chat":
        return [e["choices"][0]["delta"].get("content") or "" for e in events if e.get("choices")]
    if dialect == "responses":
        return [e["delta"] for e in events if e.get("type") == "response.output_text.delta"]
    return [e["delta"]["text"] for e in events if e.get("type") == "content_block_delta"
            and e["delta"]["type"] == "text_delta"]


async def stream_events(url: str, body: dict[str, Any], stop_after: int | None = None,
                        ) -> list[tuple[float, dict[str, Any]]]:
    out: list[tuple[float, dict[str, Any]]] = []
    async with httpx.AsyncClient(timeout=60) as c, c.stream("POST", url, json=body) as r:
        assert r.status_code == 200
        async for line in r.aiter_lines():
            if line.startswith("data: {"):
                out.append((time.perf_counter(), orjson.loads(line[6:])))
                if stop_after is not None and len(out) >= stop_after:
                    break
    return out


@pytest.mark.parametrize("dialect", ["chat", "responses", "anthropic"])
def test_the_first_chunk_arrives_before_generation_ends(tokenizer: Any, make_proxy: Any, dialect: str) -> None:
    reply = "Looking at the files now, one by one, carefully. " * 2
    engine = ScriptedEngine(tokenizer, [reply], token_delay_s=0.02)
    h = make_proxy(engine)
    sid = h.proxy.open_session()
    path, body = request_for(dialect, stream=True, max_tokens=200)
    events = h.run(stream_events(root_url(h) + f"/s/{sid}" + path, body))
    texts = [(t, d) for (t, e) in events for d in text_deltas(dialect, [e]) if d]
    assert "".join(d for _, d in texts) == reply
    n = len(engine.prompts and h.proxy.calls(sid)[0].completion_ids)
    assert len(texts) > n // 2  # token by token, not one block at the end
    assert texts[-1][0] - texts[0][0] > 0.02 * n / 2  # the first text came well before the last token


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from agentgym.models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-proxy"), seed=0, sft_steps=0)


@pytest.mark.parametrize("dialect", ["chat", "responses", "anthropic"])
def test_streamed_and_unstreamed_runs_record_the_same_ids_and_logprobs(tiny_dir: Path, tmp_path: Path,
                                                                       dialect: str) -> None:
    from agentgym.engines.embedded import EmbeddedEngine
    from agentgym.proxy.server import Proxy

    async def run(stream: bool) -> Any:
        engine = EmbeddedEngine(tiny_dir, seed=1234)  # the same per-request seeds in both runs
        proxy = Proxy(engine, tmp_path / f"{dialect}-{stream}")
        await proxy.start()
        try:
            sid = proxy.open_session()
            path, body = request_for(dialect, stream)
            async with httpx.AsyncClient(timeout=120) as c:
                r = await c.post(f"http://127.0.0.1:{proxy.port}/s/{sid}{path}", json=body)
                assert r.status_code == 200, r.text
            return proxy.calls(sid)[0]
        finally:
            await proxy.stop()
            await engine.aclose()

    streamed, plain = asyncio.run(run(True)), asyncio.run(run(False))
    assert streamed.completion_ids == plain.completion_ids and len(plain.completion_ids) > 1
    assert streamed.completion_logprobs == plain.completion_logprobs
    assert streamed.prompt_ids == plain.prompt_ids and streamed.response == plain.response


def test_detokenising_a_stream_is_linear_in_its_length(tokenizer: Any) -> None:
    ids = tokenizer.encode("The quick brown fox jumps over the lazy dog. " * 400, add_special_tokens=False)
    decoded: list[int] = []

    class Counting:
        def decode(self, window: list[int], skip_special_tokens: bool = False) -> str:
            decoded.append(len(window))
            return str(tokenizer.backend_tokenizer.decode(window, skip_special_tokens=skip_special_tokens))

    detok = IncrementalDetokenizer(Counting())
    text = "".join(detok.push([t]) for t in ids)
    assert text == tokenizer.decode(ids)
    assert sum(decoded) <= 8 * len(ids)  # a bounded window per token, never the whole prefix


def test_a_long_streamed_reply_costs_time_linear_in_its_length(tokenizer: Any, make_proxy: Any) -> None:
    word = tokenizer.encode(" fox", add_special_tokens=False)
    eos = tokenizer.convert_tokens_to_ids(tokenizer.eos_token)

    def seconds(n: int) -> float:
        h = make_proxy(ScriptedEngine(tokenizer, [word * n + [eos]]))
        sid = h.proxy.open_session()
        path, body = request_for("chat", stream=True)
        body["max_tokens"] = n + 1
        t0 = time.perf_counter()
        events = h.run(stream_events(root_url(h) + f"/s/{sid}" + path, body))
        assert len(text_deltas("chat", [e for _, e in events])) > n // 2
        return time.perf_counter() - t0

    # 4x the tokens: ~4x the time when linear, ~16x when quadratic. Best of a few runs each (a
    # loaded machine's pauses only add time), and a bound between the two: 10x.
    small = min(seconds(2048) for _ in range(3))
    large = min(seconds(8192) for _ in range(2))
    assert large < 10 and large < 10 * small, (small, large)  # was 23.8 s for 8,192 tokens, growing with the square


def test_a_client_that_leaves_mid_stream_leaves_nothing_trainable(tokenizer: Any, make_proxy: Any) -> None:
    engine = ScriptedEngine(tokenizer, ["one two three four five six seven eight nine ten " * 3], token_delay_s=0.02)
    h = make_proxy(engine)
    sid = h.proxy.open_session()
    path, body = request_for("chat", stream=True, max_tokens=200)

    async def leave() -> None:
        await stream_events(root_url(h) + f"/s/{sid}" + path, body, stop_after=3)
        await asyncio.sleep(1.0)

    h.run(leave())
    calls = h.proxy.calls(sid)
    assert len(calls) == 1 and not calls[0].delivered and calls[0].finish_reason == "cancelled"
    traj = reconstruct(calls, task_id="t", trajectory_id=sid)[0]
    assert traj.trained_tokens == 0 and traj.sampled_tokens == len(calls[0].completion_ids) > 0


def test_streamed_tool_calls_come_whole_after_the_streamed_text(tokenizer: Any, make_proxy: Any) -> None:
    reply = ('Let me look.\n<tool_call>\n{"name": "bash", "arguments": {"command": "ls -la"}}\n</tool_call>'
             "\nThen I will read it.")
    h = make_proxy(ScriptedEngine(tokenizer, [reply, reply]))
    sid = h.proxy.open_session()
    path, body = request_for("chat", stream=True, max_tokens=200)
    events = [e for _, e in h.run(stream_events(root_url(h) + f"/s/{sid}" + path, body))]
    plain = h.run(_post(root_url(h) + f"/s/{sid}" + path, {**body, "stream": False})).json()["choices"][0]["message"]
    deltas = [e["choices"][0]["delta"] for e in events if e.get("choices")]
    content = "".join(d.get("content") or "" for d in deltas)
    first_call = next(i for i, d in enumerate(deltas) if d.get("tool_calls"))
    assert all(not d.get("content") for d in deltas[first_call:])
    # Text after the closing tag is shown, not dropped (and it is trained: it was sampled).
    assert content == plain["content"] == "Let me look.\nThen I will read it."
    assert plain["tool_calls"][0]["function"]["name"] == "bash"
    # ... and every token of the reply the harness went on with (the second: a retry of the same
    # prompt) is trained, the text after the tool call included.
    calls = h.proxy.calls(sid)
    traj = reconstruct(calls, task_id="t", trajectory_id=sid)[0]
    assert traj.trained_tokens == len(calls[1].completion_ids) == traj.sampled_tokens // 2


async def _post(url: str, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as c:
        return await c.post(url, json=body)
