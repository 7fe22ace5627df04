"""Weight sync of the vLLM adapter: the exact requests ``update_weights`` sends, in order.

A tiny aiohttp server stands in for ``VLLM_SERVER_DEV_MODE=1 vllm serve``: it records every
request (method, path, query, JSON body, auth header), answers the dev routes the way vLLM does
(``/pause`` -> ``{"status": "paused"}``, ``/collective_rpc`` -> ``{"results": [...]}``,
``/reset_prefix_cache`` -> an empty 200), and enforces what a real server would only get wrong
silently: no ``/v1/completions`` while paused, no ``/pause`` while one of our completions runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from agentgym.engines.vllm import VLLMEngine
from agentgym.errors import EngineError
from agentgym.types import SamplingParams
from tests.unit.engines.test_vllm_contract import MODEL, MODELS_BODY, completion_body

Handler = Callable[[dict[str, Any]], Awaitable[tuple[int, Any]]]


class StandIn:
    """The fake server's state: what it saw, and per-path behaviour tests can replace."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.violations: list[str] = []
        self.paused = False
        self.active_completions = 0
        self.release = asyncio.Event()  # set at teardown: stalled handlers return
        self.arrived: dict[str, asyncio.Event] = {}
        self.handlers: dict[str, Handler] = {
            "/pause": self._ok({"status": "paused"}),
            "/resume": self._ok({"status": "resumed"}),
            "/collective_rpc": self._ok({"results": [None]}),
            "/reset_prefix_cache": self._ok(None),
            "/v1/completions": self._ok(completion_body([11, 12], [-0.5, -0.25])),
        }

    @staticmethod
    def _ok(payload: Any) -> Handler:
        async def handler(record: dict[str, Any]) -> tuple[int, Any]:
            return 200, payload
        return handler

    async def stall(self, record: dict[str, Any]) -> tuple[int, Any]:
        await self.release.wait()
        return 200, None

    def arrival(self, path: str) -> asyncio.Event:
        return self.arrived.setdefault(path, asyncio.Event())

    def requests(self, *, completions: bool = False) -> list[tuple[str, str, dict[str, str], Any]]:
        return [(s["method"], s["path"], s["query"], s["json"]) for s in self.seen
                if completions or s["path"] not in ("/v1/completions", "/v1/models")]

    def paths(self) -> list[str]:
        return [s["path"] for s in self.seen]

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        record = {"method": request.method, "path": request.path, "query": dict(request.query), "json": body,
                  "auth": request.headers.get("Authorization")}
        self.seen.append(record)
        self.arrival(request.path).set()
        if request.path == "/v1/models":
            return web.json_response(MODELS_BODY)
        if request.path == "/v1/completions":
            if self.paused:
                self.violations.append("/v1/completions while paused")
            self.active_completions += 1
        elif request.path == "/pause" and self.active_completions:
            self.violations.append(f"/pause with {self.active_completions} completions running")
        try:
            status, payload = await self.handlers[request.path](record)
        finally:
            if request.path == "/v1/completions":
                self.active_completions -= 1
        if status == 200 and request.path == "/pause":
            self.paused = True
        elif status == 200 and request.path == "/resume":
            self.paused = False
        if payload is None:
            return web.Response(status=status)
        if isinstance(payload, str):
            return web.Response(status=status, text=payload)
        return web.json_response(payload, status=status)


@asynccontextmanager
async def stand_in() -> AsyncIterator[tuple[str, StandIn]]:
    server = StandIn()
    app = web.Application()
    app.router.add_get("/v1/models", server.dispatch)
    for path in server.handlers:
        app.router.add_post(path, server.dispatch)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", server
    finally:
        server.release.set()
        await runner.cleanup()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """The checkpoint the server was started from: config, tokenizer, old weights and their index."""
    src = tmp_path / "served"
    src.mkdir()
    (src / "config.json").write_text(json.dumps({"architectures": ["Qwen2ForCausalLM"], "tie_word_embeddings": True}))
    (src / "generation_config.json").write_text(json.dumps({"eos_token_id": 2}))
    (src / "tokenizer.json").write_text(json.dumps({"version": "1.0", "model": {"type": "BPE"}}))
    (src / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|im_end|>"}))
    (src / "model.safetensors").write_bytes(b"old weights")
    (src / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {}}))
    (src / "README.md").write_text("not part of a checkpoint")
    return src


def state_dict() -> dict[str, Any]:
    import torch

    g = torch.Generator().manual_seed(0)
    emb = torch.randn(8, 4, generator=g)
    return {
        "model.embed_tokens.weight": emb,
        "lm_head.weight": emb,  # tied: the same storage twice
        "model.layers.0.mlp.down_proj.weight": torch.randn(6, 4, generator=g).t(),  # not contiguous
        "model.norm.weight": torch.ones(4, dtype=torch.bfloat16),
    }


def engine_for(url: str, tmp_path: Path, source: Path, **kwargs: Any) -> VLLMEngine:
    kwargs.setdefault("weights_dir", tmp_path / "weights")
    return VLLMEngine(url, model=MODEL, tokenizer_path=source, max_model_len=64, **kwargs)


def dev_dirs(weights: Path) -> list[str]:
    return sorted(p.name for p in weights.iterdir())


EXPECTED = {
    "v0.16": lambda d: [
        ("POST", "/pause", {"mode": "wait", "clear_cache": "true"}, None),
        ("POST", "/collective_rpc", {}, {"method": "reload_weights",
                                         "kwargs": {"weights_path": d, "is_checkpoint_format": True},
                                         "timeout": 900.0}),
        ("POST", "/reset_prefix_cache", {"reset_running_requests": "true"}, None),
        ("POST", "/resume", {}, None),
    ],
    "v0.12": lambda d: [
        ("POST", "/pause", {"wait_for_inflight_requests": "true", "clear_cache": "true"}, None),
        ("POST", "/collective_rpc", {}, {"method": "update_config",
                                         "kwargs": {"overrides": {"model_config": {"model": d}}}, "timeout": 60.0}),
        ("POST", "/collective_rpc", {}, {"method": "reload_weights", "timeout": 900.0}),
        ("POST", "/reset_prefix_cache", {"reset_running_requests": "true"}, None),
        ("POST", "/resume", {}, None),
    ],
}


@pytest.mark.parametrize("protocol", ["v0.16", "v0.12"])
def test_request_sequence_is_pinned(protocol: str, tmp_path: Path, source: Path) -> None:
    async def main() -> Any:
        async with stand_in() as (url, server):
            engine = engine_for(url, tmp_path, source, api_key="sk-test", reload_protocol=protocol)
            try:
                await engine.update_weights(state_dict(), version=3)
                gen = await engine.generate([1, 2, 3], SamplingParams())
                return server, engine.policy_version, gen
            finally:
                await engine.aclose()

    server, version, gen = asyncio.run(main())
    assert server.requests() == EXPECTED[protocol](str(tmp_path / "weights" / "v3"))
    assert server.paths()[-1] == "/v1/completions" and not server.violations
    assert {s["auth"] for s in server.seen} == {"Bearer sk-test"}
    assert version == 3 and gen.policy_version == 3


@pytest.mark.parametrize("protocol", ["v0.16", "v0.12"])
def test_the_server_reloads_a_complete_loadable_checkpoint(protocol: str, tmp_path: Path, source: Path) -> None:
    import torch
    from safetensors.torch import load_file

    weights = tmp_path / "weights"
    sd = state_dict()
    seen_at_reload: dict[str, Any] = {}

    async def main() -> None:
        async with stand_in() as (url, server):
            async def reload(record: dict[str, Any]) -> tuple[int, Any]:
                if record["json"]["method"] == "update_config":
                    seen_at_reload["path"] = record["json"]["kwargs"]["overrides"]["model_config"]["model"]
                    return 200, {"results": [None]}
                path = Path(record["json"].get("kwargs", {}).get("weights_path") or seen_at_reload["path"])
                seen_at_reload.update(path=str(path), listing=dev_dirs(weights), files=sorted(os.listdir(path)),
                                      tensors=load_file(path / "model.safetensors"),
                                      config=json.loads((path / "config.json").read_text()))
                return 200, {"results": [None]}

            server.handlers["/collective_rpc"] = reload
            engine = engine_for(url, tmp_path, source, reload_protocol=protocol)
            try:
                await engine.update_weights(sd, version=1)
            finally:
                await engine.aclose()

    asyncio.run(main())
    assert seen_at_reload["path"] == str(weights / "v1")
    assert seen_at_reload["listing"] == ["v1"]  # no scratch directory left beside it
    assert seen_at_reload["files"] == ["config.json", "generation_config.json", "model.safetensors",
                                       "tokenizer.json", "tokenizer_config.json"]  # no old index, no README
    assert seen_at_reload["config"] == json.loads((source / "config.json").read_text())
    tensors = seen_at_reload["tensors"]
    assert set(tensors) == set(sd)
    for name, t in sd.items():
        assert tensors[name].dtype == t.dtype and torch.equal(tensors[name], t), name


def test_the_checkpoint_appears_under_its_final_name_only_when_complete(tmp_path: Path, source: Path) -> None:
    weights = tmp_path / "weights"
    written_into: list[Path] = []

    def save(sd: dict[str, Any], directory: Path) -> None:
        assert directory.parent == weights and directory.name.startswith(".v5.")
        (directory / "config.json").write_text("{}")
        assert not (weights / "v5").exists()  # nothing under the final name while writing
        (directory / "model.safetensors").write_bytes(b"weights")
        assert not (weights / "v5").exists()
        written_into.append(directory)

    async def main() -> Any:
        async with stand_in() as (url, server):
            async def pause(record: dict[str, Any]) -> tuple[int, Any]:
                record["listing"] = sorted(os.listdir(weights / "v5"))  # complete before the server is touched
                return 200, {"status": "paused"}

            server.handlers["/pause"] = pause
            engine = engine_for(url, tmp_path, source, save_checkpoint=save)
            try:
                await engine.update_weights({}, version=5)
                return server
            finally:
                await engine.aclose()

    server = asyncio.run(main())
    assert server.seen[0]["listing"] == ["config.json", "model.safetensors"]
    assert not written_into[0].exists() and dev_dirs(weights) == ["v5"]


@pytest.mark.parametrize(("save", "match"), [
    (lambda sd, d: (d / "model.safetensors").write_bytes(b"x"), "config.json"),
    (lambda sd, d: (d / "config.json").write_text("{}"), "weight files"),
    (lambda sd, d: 1 / 0, "writing the checkpoint.*ZeroDivisionError"),
])
def test_a_failed_checkpoint_write_touches_nothing(save: Any, match: str, tmp_path: Path, source: Path) -> None:
    async def main() -> Any:
        async with stand_in() as (url, server):
            engine = engine_for(url, tmp_path, source, save_checkpoint=save)
            try:
                with pytest.raises(EngineError, match=match):
                    await engine.update_weights({}, version=1)
                return server, engine.policy_version
            finally:
                await engine.aclose()

    server, version = asyncio.run(main())
    assert server.seen == [] and version == 0
    assert dev_dirs(tmp_path / "weights") == []  # the scratch directory is gone too


def test_reload_failure_still_resumes_and_keeps_the_version(tmp_path: Path, source: Path) -> None:
    async def main() -> Any:
        async with stand_in() as (url, server):
            async def fail(record: dict[str, Any]) -> tuple[int, Any]:
                return 500, "RuntimeError: size mismatch for model.norm.weight"

            server.handlers["/collective_rpc"] = fail
            engine = engine_for(url, tmp_path, source)
            try:
                with pytest.raises(EngineError) as info:
                    await engine.update_weights(state_dict(), version=1)
                gen = await engine.generate([1, 2], SamplingParams())  # the server serves again
                return server, engine.policy_version, gen, str(info.value)
            finally:
                await engine.aclose()

    server, version, gen, message = asyncio.run(main())
    assert [r[1] for r in server.requests()] == ["/pause", "/collective_rpc", "/resume"]
    assert "step 'reload_weights'" in message and "HTTP 500" in message and "size mismatch" in message
    assert "unknown state" in message and "/resume answered 200" in message
    assert version == 0 and gen.policy_version == 0 and not server.paused


def test_missing_dev_routes_name_the_fix(tmp_path: Path, source: Path) -> None:
    async def main() -> Any:
        async with stand_in() as (url, server):
            async def missing(record: dict[str, Any]) -> tuple[int, Any]:
                return 404, {"detail": "Not Found"}

            server.handlers["/pause"] = server.handlers["/resume"] = missing
            engine = engine_for(url, tmp_path, source)
            try:
                with pytest.raises(EngineError) as info:
                    await engine.update_weights(state_dict(), version=1)
                return server, engine.policy_version, str(info.value)
            finally:
                await engine.aclose()

    server, version, message = asyncio.run(main())
    assert [r[1] for r in server.requests()] == ["/pause", "/resume"]
    assert "step 'pause'" in message and "HTTP 404" in message and "VLLM_SERVER_DEV_MODE=1" in message
    assert "/resume failed too" in message and version == 0


@pytest.mark.parametrize("step", ["pause", "reload_weights", "reset_prefix_cache", "resume"])
def test_a_stalled_step_times_out_and_resume_is_still_sent(step: str, tmp_path: Path, source: Path) -> None:
    path = {"pause": "/pause", "reload_weights": "/collective_rpc", "reset_prefix_cache": "/reset_prefix_cache",
            "resume": "/resume"}[step]

    async def main() -> Any:
        async with stand_in() as (url, server):
            server.handlers[path] = server.stall
            engine = engine_for(url, tmp_path, source, update_timeout_s=0.3, control_timeout_s=0.3)
            try:
                t = time.monotonic()
                with pytest.raises(EngineError) as info:
                    await engine.update_weights(state_dict(), version=1)
                return server, engine.policy_version, str(info.value), time.monotonic() - t
            finally:
                await engine.aclose()

    server, version, message, elapsed = asyncio.run(main())
    assert f"step '{step}'" in message and "no answer within 0.3 s" in message
    assert elapsed < 2.0, elapsed  # the stand-in would have stalled until teardown
    assert server.paths()[-1] == "/resume" and version == 0
    if step == "resume":
        assert "may still be paused" in message


def test_cancelling_an_update_still_resumes(tmp_path: Path, source: Path) -> None:
    async def main() -> Any:
        async with stand_in() as (url, server):
            server.handlers["/collective_rpc"] = server.stall
            engine = engine_for(url, tmp_path, source)
            try:
                task = asyncio.create_task(engine.update_weights(state_dict(), version=1))
                await server.arrival("/collective_rpc").wait()
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                gen = await engine.generate([1, 2], SamplingParams())
                return server, engine.policy_version, gen
            finally:
                await engine.aclose()

    server, version, gen = asyncio.run(main())
    assert server.paths() == ["/pause", "/collective_rpc", "/resume", "/v1/completions"]
    assert version == 0 and gen.policy_version == 0 and not server.violations


def test_generate_during_an_update_waits_for_resume(tmp_path: Path, source: Path) -> None:
    async def main() -> Any:
        async with stand_in() as (url, server):
            async def slow_reload(record: dict[str, Any]) -> tuple[int, Any]:
                await asyncio.sleep(0.3)
                return 200, {"results": [None]}

            server.handlers["/collective_rpc"] = slow_reload
            engine = engine_for(url, tmp_path, source)
            try:
                update = asyncio.create_task(engine.update_weights(state_dict(), version=7))
                await server.arrival("/pause").wait()
                gens = await asyncio.gather(*(engine.generate([1, 2], SamplingParams()) for _ in range(3)))
                await update
                return server, gens
            finally:
                await engine.aclose()

    server, gens = asyncio.run(main())
    assert server.paths() == ["/pause", "/collective_rpc", "/reset_prefix_cache", "/resume"] + ["/v1/completions"] * 3
    assert not server.violations and [g.policy_version for g in gens] == [7, 7, 7]


def test_an_update_waits_for_generations_already_sent(tmp_path: Path, source: Path) -> None:
    async def main() -> Any:
        async with stand_in() as (url, server):
            async def slow_completion(record: dict[str, Any]) -> tuple[int, Any]:
                await asyncio.sleep(0.3)
                return 200, completion_body([5], [-0.1])

            server.handlers["/v1/completions"] = slow_completion
            engine = engine_for(url, tmp_path, source)
            try:
                gens = [asyncio.create_task(engine.generate([1, 2], SamplingParams())) for _ in range(2)]
                while server.active_completions < 2:
                    await asyncio.sleep(0.01)
                await engine.update_weights(state_dict(), version=1)
                return server, await asyncio.gather(*gens), engine.policy_version
            finally:
                await engine.aclose()

    server, gens, version = asyncio.run(main())
    assert server.paths() == ["/v1/completions"] * 2 + ["/pause", "/collective_rpc", "/reset_prefix_cache", "/resume"]
    assert not server.violations  # /pause came only after both completions had answered
    assert [g.policy_version for g in gens] == [0, 0] and version == 1


def test_an_update_gives_up_on_generations_that_do_not_finish(tmp_path: Path, source: Path) -> None:
    import httpx

    async def main() -> Any:
        async with stand_in() as (url, server):
            server.handlers["/v1/completions"] = server.stall
            client = httpx.AsyncClient(base_url=url, timeout=30)  # longer than the engine's timeout_s
            engine = engine_for(url, tmp_path, source, client=client, timeout_s=0.3)
            try:
                gen = asyncio.create_task(engine.generate([1, 2], SamplingParams()))
                await server.arrival("/v1/completions").wait()
                with pytest.raises(EngineError, match=r"1 generate\(\) calls were still running after 0.3 s"):
                    await engine.update_weights(state_dict(), version=1)
                gen.cancel()
                return server, engine.policy_version
            finally:
                await client.aclose()

    server, version = asyncio.run(main())
    assert server.paths() == ["/v1/completions"] and version == 0


def test_old_versions_are_pruned(tmp_path: Path, source: Path) -> None:
    weights = tmp_path / "weights"
    (weights / "v0").mkdir(parents=True)  # a previous run's
    (weights / ".v9.abc123.partial").mkdir()  # a crashed write
    (weights / "notes").mkdir()  # not ours: never touched
    listings = []

    async def main() -> None:
        async with stand_in() as (url, server):
            engine = engine_for(url, tmp_path, source, keep_weights=2)
            try:
                for version in (1, 2, 3, 3):
                    await engine.update_weights(state_dict(), version=version)
                    listings.append(dev_dirs(weights))

                async def fail(record: dict[str, Any]) -> tuple[int, Any]:
                    return 500, "boom"

                server.handlers["/collective_rpc"] = fail
                with pytest.raises(EngineError):
                    await engine.update_weights(state_dict(), version=4)
                listings.append(dev_dirs(weights))
                server.handlers["/collective_rpc"] = StandIn._ok({"results": [None]})
                await engine.update_weights(state_dict(), version=5)
                listings.append(dev_dirs(weights))
            finally:
                await engine.aclose()

    asyncio.run(main())
    assert listings == [
        ["notes", "v1"],
        ["notes", "v1", "v2"],
        ["notes", "v2", "v3"],
        ["notes", "v2", "v3"],  # version 3 pushed again: replaced in place
        ["notes", "v2", "v3", "v4"],  # a failed version stays for inspection...
        ["notes", "v3", "v5"],  # ...until the next successful update
    ]


def test_misuse_is_refused(tmp_path: Path, source: Path) -> None:
    with pytest.raises(EngineError, match="reload_protocol"):
        VLLMEngine("http://127.0.0.1:1", model=MODEL, reload_protocol="v0.9")  # type: ignore[arg-type]
    with pytest.raises(EngineError, match="keep_weights"):
        VLLMEngine("http://127.0.0.1:1", model=MODEL, keep_weights=0)
    with pytest.raises(EngineError, match="update_timeout_s"):
        VLLMEngine("http://127.0.0.1:1", model=MODEL, update_timeout_s=0)

    async def main() -> None:
        async with stand_in() as (url, server):
            no_dir = VLLMEngine(url, model=MODEL, tokenizer_path=source)
            with pytest.raises(EngineError, match="weights_dir"):
                await no_dir.update_weights(state_dict(), version=1)
            hub = VLLMEngine(url, model="Qwen/Qwen3-0.6B", weights_dir=tmp_path / "w")
            with pytest.raises(EngineError, match="not a local checkpoint directory"):
                await hub.update_weights(state_dict(), version=1)

            server.handlers["/collective_rpc"] = server.stall
            engine = engine_for(url, tmp_path, source, update_timeout_s=1.0)
            first = asyncio.create_task(engine.update_weights(state_dict(), version=1))
            await server.arrival("/collective_rpc").wait()
            with pytest.raises(EngineError, match="still running"):
                await engine.update_weights(state_dict(), version=2)
            with pytest.raises(EngineError, match="reload_weights"):
                await first
            for e in (no_dir, hub, engine):
                await e.aclose()
            assert server.paths() == ["/pause", "/collective_rpc", "/resume"]

    asyncio.run(main())
