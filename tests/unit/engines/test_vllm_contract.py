"""Contract of the vLLM adapter: the exact request we send and how a real vLLM body is parsed.

A tiny aiohttp server stands in for ``vllm serve``: it records each request and answers with
bodies shaped like vLLM's (``/v1/models`` with ``max_model_len``; ``/v1/completions`` with
``return_tokens_as_token_ids`` logprobs and ``token_ids``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from agentgym.engines.vllm import VLLMEngine, parse_token_id
from agentgym.errors import EngineError
from agentgym.types import SamplingParams

MODEL = "/models/tiny"

MODELS_BODY = {
    "object": "list",
    "data": [{"id": MODEL, "object": "model", "created": 1732250000, "owned_by": "vllm", "root": MODEL,
              "parent": None, "max_model_len": 64,
              "permission": [{"id": "modelperm-1", "object": "model_permission", "created": 1732250000,
                              "allow_create_engine": False, "allow_sampling": True, "allow_logprobs": True,
                              "allow_search_indices": False, "allow_view": True, "allow_fine_tuning": False,
                              "organization": "*", "group": None, "is_blocking": False}]}],
}


def completion_body(ids: list[int], logprobs: list[float], finish: str = "stop",
                    token_ids: list[int] | None = None) -> dict[str, Any]:
    """A non-streaming /v1/completions body as vLLM returns it (logprobs=1, token ids as strings)."""
    toks = [f"token_id:{i}" for i in ids]
    return {
        "id": "cmpl-5c1d8e4f0a9b4c2e8d7f6a5b4c3d2e1f",
        "object": "text_completion",
        "created": 1732250001,
        "model": MODEL,
        "choices": [{
            "index": 0,
            "text": "<tool_call>\n{\"name\"",
            "logprobs": {
                "text_offset": list(range(len(ids))),
                "token_logprobs": logprobs,
                "tokens": toks,
                "top_logprobs": [{t: lp} for t, lp in zip(toks, logprobs, strict=True)],
            },
            "finish_reason": finish,
            "stop_reason": None,
            "token_ids": token_ids if token_ids is not None else ids,
            "prompt_logprobs": None,
            "prompt_token_ids": None,
        }],
        "service_tier": None,
        "system_fingerprint": None,
        "usage": {"prompt_tokens": 5, "total_tokens": 5 + len(ids), "completion_tokens": len(ids),
                  "prompt_tokens_details": None},
        "kv_transfer_params": None,
    }


Handler = Callable[[dict[str, Any]], tuple[int, Any]]


def serve(handler: Handler, client_fn: Callable[[str, list[dict[str, Any]]], Awaitable[Any]]) -> Any:
    """Run ``client_fn(base_url, requests_seen)`` against a fake vLLM answering with ``handler``."""
    seen: list[dict[str, Any]] = []

    async def models(request: web.Request) -> web.Response:
        seen.append({"method": "GET", "path": request.path})
        return web.json_response(MODELS_BODY)

    async def completions(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append({"method": "POST", "path": request.path, "json": body,
                     "content_type": request.content_type, "auth": request.headers.get("Authorization")})
        status, payload = handler(body)
        if isinstance(payload, str):
            return web.Response(status=status, text=payload)
        return web.json_response(payload, status=status)

    async def main() -> Any:
        app = web.Application()
        app.router.add_get("/v1/models", models)
        app.router.add_post("/v1/completions", completions)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            return await client_fn(f"http://127.0.0.1:{port}", seen)
        finally:
            await runner.cleanup()

    return asyncio.run(main())


def test_request_body_and_parsing() -> None:
    def handler(body: dict[str, Any]) -> tuple[int, Any]:
        return 200, completion_body([1134, 198, 2], [-0.51, -0.02, -1.3])

    async def client(url: str, seen: list[dict[str, Any]]) -> Any:
        engine = VLLMEngine(url + "/v1/", model=MODEL, tokenizer_path=MODEL, api_key="sk-test")
        try:
            sp = SamplingParams(temperature=0.7, top_p=0.95, max_tokens=16, stop=("</tool_call>",), seed=11)
            return await engine.generate([1, 9, 42, 7, 2], sp), seen
        finally:
            await engine.aclose()

    gen, seen = serve(handler, client)
    assert [s["path"] for s in seen] == ["/v1/models", "/v1/completions"]
    post = seen[1]
    assert post["content_type"] == "application/json" and post["auth"] == "Bearer sk-test"
    assert post["json"] == {
        "model": MODEL,
        "prompt": [1, 9, 42, 7, 2],
        "max_tokens": 16,
        "temperature": 0.7,
        "top_p": 0.95,
        "top_k": -1,
        "min_p": 0.0,
        "repetition_penalty": 1.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "n": 1,
        "stream": False,
        "logprobs": 1,
        "return_tokens_as_token_ids": True,
        "return_token_ids": True,
        "skip_special_tokens": False,
        "stop": ["</tool_call>"],
        "seed": 11,
    }
    assert gen.completion_ids == (1134, 198, 2)
    assert gen.logprobs == (-0.51, -0.02, -1.3)
    assert gen.finish_reason == "stop" and gen.policy_version == 0


def test_optional_fields_are_omitted_and_max_tokens_fits_the_context() -> None:
    def handler(body: dict[str, Any]) -> tuple[int, Any]:
        return 200, completion_body([5] * body["max_tokens"], [-1.0] * body["max_tokens"], finish="length")

    async def client(url: str, seen: list[dict[str, Any]]) -> Any:
        engine = VLLMEngine(url, model=MODEL)
        try:
            gen = await engine.generate(list(range(60)), SamplingParams(temperature=1.0, max_tokens=100))
            return gen, seen, engine.max_model_len
        finally:
            await engine.aclose()

    gen, seen, limit = serve(handler, client)
    body = seen[-1]["json"]
    assert "stop" not in body and "seed" not in body
    assert limit == 64 and body["max_tokens"] == 4  # 64 - 60 prompt tokens
    assert gen.finish_reason == "length" and len(gen.completion_ids) == 4


def test_prompt_longer_than_the_server_context_is_refused_before_sending() -> None:
    async def client(url: str, seen: list[dict[str, Any]]) -> Any:
        engine = VLLMEngine(url, model=MODEL)
        try:
            with pytest.raises(EngineError, match="max_model_len is 64"):
                await engine.generate(list(range(64)), SamplingParams())
            return seen
        finally:
            await engine.aclose()

    seen = serve(lambda b: (500, "unused"), client)
    assert [s["path"] for s in seen] == ["/v1/models"]


def test_wrong_model_name() -> None:
    async def client(url: str, seen: list[dict[str, Any]]) -> Any:
        engine = VLLMEngine(url, model="other")
        try:
            with pytest.raises(EngineError, match="serves"):
                await engine.generate([1, 2], SamplingParams())
        finally:
            await engine.aclose()

    serve(lambda b: (500, "unused"), client)


@pytest.mark.parametrize(("status", "payload", "match"), [
    (400, {"object": "error", "message": "This model's maximum context length is 64 tokens.",
           "type": "BadRequestError", "param": None, "code": 400}, "answered 400.*maximum context length"),
    (200, "not json", "non-JSON"),
    (200, {"choices": []}, "unexpected vLLM response"),
    (200, completion_body([1, 2], [-0.1, -0.2], token_ids=[1, 3]), "disagree"),
    (200, completion_body([1, 2], [-0.1, -0.2], finish="abort"), "abort"),
    (200, {**completion_body([1], [-0.1]), "choices": [{**completion_body([1], [-0.1])["choices"][0],
                                                          "logprobs": {"tokens": ["hello"], "token_logprobs": [-0.1]}}]},
     "token_id:N"),
])
def test_server_errors_become_engine_errors(status: int, payload: Any, match: str) -> None:
    async def client(url: str, seen: list[dict[str, Any]]) -> Any:
        engine = VLLMEngine(url, model=MODEL, max_model_len=64)
        try:
            with pytest.raises(EngineError, match=match):
                await engine.generate([1, 2, 3], SamplingParams())
        finally:
            await engine.aclose()

    serve(lambda b: (status, payload), client)


def test_token_ids_field_is_optional() -> None:
    body = completion_body([7, 8], [-0.3, -0.4])
    del body["choices"][0]["token_ids"]  # vLLM before return_token_ids
    gen = VLLMEngine("http://127.0.0.1:1", model=MODEL).parse_response(json.loads(json.dumps(body)))
    assert gen.completion_ids == (7, 8)


def test_unreachable_server() -> None:
    async def main() -> None:
        engine = VLLMEngine("http://127.0.0.1:9", model=MODEL, max_model_len=64, timeout_s=2)
        try:
            with pytest.raises(EngineError, match="not reachable"):
                await engine.generate([1, 2], SamplingParams())
        finally:
            await engine.aclose()

    asyncio.run(main())


def test_parse_token_id() -> None:
    assert parse_token_id("token_id:151645") == 151645
    with pytest.raises(EngineError):
        parse_token_id("token_id:abc")


def test_tokenizer_and_registry(tiny_model_dir: Path) -> None:
    from agentgym import registries

    engine = registries.engines.make("agentgym/vllm-v0", base_url="http://127.0.0.1:8000", model="served-name",
                                     tokenizer_path=tiny_model_dir)
    assert isinstance(engine, VLLMEngine) and engine.model_name == "served-name"
    assert engine.tokenizer.eos_token == "<|im_end|>"
    asyncio.run(engine.aclose())


def stream_chunks(ids: list[int], logprobs: list[float], finish: str = "stop") -> list[str]:
    """SSE lines as vLLM's completion_stream_generator writes them for ``stream: true`` with
    ``logprobs=1``, ``return_tokens_as_token_ids`` and ``return_token_ids`` (one token per chunk;
    prompt ids on the first chunk only; ``model_dump_json`` keeps every field, nulls included)."""
    out = []
    for i, (t, lp) in enumerate(zip(ids, logprobs, strict=True)):
        last = i == len(ids) - 1
        chunk = {"id": "cmpl-5c1d8e4f0a9b4c2e8d7f6a5b4c3d2e1f", "object": "text_completion", "created": 1732250001,
                 "model": MODEL, "choices": [{
                     "index": 0, "text": f"<{t}>",
                     "logprobs": {"text_offset": [i], "token_logprobs": [lp], "tokens": [f"token_id:{t}"],
                                  "top_logprobs": [{f"token_id:{t}": lp}]},
                     "finish_reason": finish if last else None, "stop_reason": None,
                     "prompt_token_ids": [1, 2, 3] if i == 0 else None, "token_ids": [t]}],
                 "usage": None}
        out.append("data: " + json.dumps(chunk) + "\n\n")
    out.append("data: [DONE]\n\n")
    return out


def serve_stream(chunks: list[str], client_fn: Callable[[str, list[dict[str, Any]]], Awaitable[Any]],
                 gap_s: float = 0.0) -> Any:
    seen: list[dict[str, Any]] = []

    async def completions(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        seen.append({"path": request.path, "json": body, "sent": 0})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        try:
            for c in chunks:
                await resp.write(c.encode())
                seen[-1]["sent"] += 1
                await asyncio.sleep(gap_s)
        except (ConnectionError, RuntimeError):
            seen[-1]["aborted"] = True
        return resp

    async def main() -> Any:
        app = web.Application()
        app.router.add_post("/v1/completions", completions)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            return await client_fn(f"http://127.0.0.1:{runner.addresses[0][1]}", seen)
        finally:
            await runner.cleanup()

    return asyncio.run(main())


def test_streaming_request_body_and_chunks_give_what_generate_gives() -> None:
    ids, logprobs = [1134, 198, 2], [-0.51, -0.02, -1.3]

    async def client(url: str, seen: list[dict[str, Any]]) -> Any:
        engine = VLLMEngine(url, model=MODEL, max_model_len=64)
        try:
            sp = SamplingParams(temperature=0.7, top_p=0.95, max_tokens=16, seed=11)
            return [c async for c in engine.stream([1, 9, 42], sp)]
        finally:
            await engine.aclose()

    chunks = serve_stream(stream_chunks(ids, logprobs), client)
    assert [c.ids for c in chunks] == [(1134,), (198,), (2,), ()]
    assert [lp for c in chunks for lp in c.logprobs] == logprobs
    assert [c.finish_reason for c in chunks] == [None, None, None, "stop"]
    body = completion_body(ids, logprobs)  # what generate() would parse for the same tokens
    gen = VLLMEngine("http://127.0.0.1:1", model=MODEL).parse_response(json.loads(json.dumps(body)))
    assert tuple(t for c in chunks for t in c.ids) == gen.completion_ids


def test_streaming_body_is_the_generate_body_with_stream_true() -> None:
    async def client(url: str, seen: list[dict[str, Any]]) -> Any:
        engine = VLLMEngine(url, model=MODEL, max_model_len=64)
        try:
            [c async for c in engine.stream([1, 2], SamplingParams(max_tokens=5, stop=("x",)))]
            return seen, engine.request_body([1, 2], SamplingParams(max_tokens=5, stop=("x",)), 5)
        finally:
            await engine.aclose()

    seen, plain = serve_stream(stream_chunks([5], [-0.1]), client)
    assert seen[0]["json"] == {**plain, "stream": True} and plain["stream"] is False


def test_closing_the_stream_early_closes_the_connection() -> None:
    async def client(url: str, seen: list[dict[str, Any]]) -> Any:
        engine = VLLMEngine(url, model=MODEL, max_model_len=64)
        try:
            agen = engine.stream([1, 2], SamplingParams(max_tokens=50))
            first = await agen.__anext__()  # type: ignore[attr-defined]
            await agen.aclose()  # type: ignore[attr-defined]
            await asyncio.sleep(0.3)
            return first, seen
        finally:
            await engine.aclose()

    first, seen = serve_stream(stream_chunks(list(range(10, 40)), [-0.1] * 30), client, gap_s=0.02)
    assert first.ids == (10,)
    assert seen[0].get("aborted") or seen[0]["sent"] < 31  # vLLM aborts a request whose client left


@pytest.mark.parametrize(("chunks", "match"), [
    (['data: {"error": {"message": "engine died", "type": "InternalServerError", "code": 500}}\n\n',
      "data: [DONE]\n\n"], "engine died"),
    (stream_chunks([1], [-0.1], finish="abort"), "abort"),
    (["data: [DONE]\n\n"], "without a finish_reason"),
])
def test_streaming_errors_become_engine_errors(chunks: list[str], match: str) -> None:
    async def client(url: str, seen: list[dict[str, Any]]) -> Any:
        engine = VLLMEngine(url, model=MODEL, max_model_len=64)
        try:
            with pytest.raises(EngineError, match=match):
                [c async for c in engine.stream([1, 2], SamplingParams())]
        finally:
            await engine.aclose()

    serve_stream(chunks, client)
