"""What a fuzzing storm found, each fixed: unsafe ids, lost journal records, 500s that are the
client's fault, and requests that froze every other client."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentgym.engines.scripted import ScriptedEngine
from agentgym.reconstruct import reconstruct
from agentgym.types import BreakReason

from .conftest import post, root_url

GOOD = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def files_under(path: Path) -> set[Path]:
    return {p for p in path.rglob("*")}


@pytest.mark.parametrize("sid", ["%2Ftmp%2Fpwned", "..%2F..%2Fescaped", "a" * 300, "x%00y", ".hidden", "-dash",
                                 "%C3%A9t%C3%A9"])
def test_session_ids_from_urls_cannot_escape_the_journal(tokenizer: Any, make_custom_proxy: Any, tmp_path: Path,
                                                          sid: str) -> None:
    h = make_custom_proxy(ScriptedEngine(tokenizer, lambda ids, n: "ok"), allow_new_sessions=True)
    before = files_under(tmp_path)
    r = h.run(post(f"{root_url(h)}/s/{sid}/v1/chat/completions", json=GOOD))
    assert r.status_code in (400, 404), r.text
    assert r.json()["error"]["code"] in ("invalid_id", "not_found")
    assert files_under(tmp_path) - before <= {tmp_path / "custom0" / "calls"}  # nothing written anywhere
    assert not Path("/tmp/pwned.jsonl").exists()
    ok = h.run(post(f"{root_url(h)}/s/fine-id/v1/chat/completions", json=GOOD))
    assert ok.status_code == 200 and (tmp_path / "custom0" / "calls" / "fine-id.jsonl").is_file()


@pytest.mark.parametrize("agent", ["../x", "a/b", "a" * 200, "x\ty"])
def test_agent_ids_are_checked_too(tokenizer: Any, make_proxy: Any, agent: str) -> None:
    h = make_proxy(ScriptedEngine(tokenizer, lambda ids, n: "ok"))
    sid = h.proxy.open_session()
    r = h.run(post(h.proxy.base_url(sid) + "/chat/completions", json=GOOD, headers={"X-AgentGym-Agent": agent}))
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_id"
    assert h.proxy.calls(sid) == []


def test_a_reply_the_journal_could_not_hold_is_never_a_200(tokenizer: Any, make_proxy: Any,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    h = make_proxy(ScriptedEngine(tokenizer, lambda ids, n: f"reply {n}"))
    sid = h.proxy.open_session()
    writer = h.proxy.journal._writer

    def broken(path: Path) -> Any:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer, "_open", broken)
    r = h.run(post(h.proxy.base_url(sid) + "/chat/completions", json=GOOD))
    assert r.status_code == 500 and r.json()["error"]["code"] == "journal_error"
    monkeypatch.undo()
    retry = h.run(post(h.proxy.base_url(sid) + "/chat/completions", json=GOOD))
    assert retry.status_code == 200
    calls = h.proxy.calls(sid)
    assert [c.delivered for c in calls] == [False, True]
    assert calls[1].break_reason == BreakReason.RETRY  # not mislabelled: the same prompt, asked again
    traj = reconstruct(calls, task_id="t", trajectory_id=sid)[0]
    # The lost reply was sampled but never delivered: delivered_fraction counts it.
    assert traj.trained_tokens == len(calls[1].completion_ids) and traj.delivered_fraction < 1
    assert h.proxy.journal.read(sid)[-1] == calls[1]


def _raw(body: str) -> bytes:
    return body.encode()


NESTED = "[" * 1000 + "]" * 1000
DEEP_ARGS = json.dumps({"a": 1})[:-1] + ', "b": ' + "[" * 990 + "]" * 990 + "}"


@pytest.mark.parametrize(("case", "body", "headers", "code"), [
    ("tool_calls not an array", {"messages": [{"role": "assistant", "content": "x", "tool_calls": "ls"},
                                              {"role": "user", "content": "go"}]}, None, "invalid_request_error"),
    ("tool_calls items not objects", {"messages": [{"role": "assistant", "content": "x", "tool_calls": [1]},
                                                   {"role": "user", "content": "go"}]}, None, "invalid_request_error"),
    ("stream_options not an object", {**GOOD, "stream": True, "stream_options": ["x"]}, None, "invalid_request_error"),
    ("lone surrogate in content", _raw('{"messages": [{"role": "user", "content": "a\\ud800b"}]}'), None,
     "invalid_json"),
    ("lone surrogate in name", _raw('{"messages": [{"role": "user", "content": "a", "name": "\\udfff"}]}'), None,
     "invalid_json"),
    ("lone surrogate in model", _raw('{"model": "\\ud800", "messages": [{"role": "user", "content": "a"}]}'), None,
     "invalid_json"),
    ("JSON nested 1000 deep", _raw('{"messages": [{"role": "user", "content": "a"}], "metadata": {"x": '
                                   + NESTED + "}}"), None, "invalid_request_error"),
    ("JSON nested 2000 deep", _raw('{"metadata": ' + "[" * 2000 + "]" * 2000 + "}"), None, "invalid_json"),
    ("integer of 5000 digits", _raw('{"messages": [{"role": "user", "content": "a"}], "seed": ' + "9" * 5000 + "}"),
     None, "invalid_json"),
    ("tool arguments nested 990 deep", {"messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "1", "type": "function", "function": {"name": "bash", "arguments": DEEP_ARGS}}]},
        {"role": "tool", "tool_call_id": "1", "content": "x"}]}, None, "invalid_request_error"),
    ("gzip header on a plain body", _raw(json.dumps(GOOD)), {"Content-Encoding": "gzip"}, "invalid_body"),
    ("seed of 2**64", {**GOOD, "seed": 2**64}, None, "invalid_request_error"),
    ("seed below -2**63", {**GOOD, "seed": -(2**63) - 1}, None, "invalid_request_error"),
    ("temperature not finite", _raw('{"messages": [{"role": "user", "content": "a"}], "temperature": 1e999}'), None,
     "invalid_json"),
])
def test_client_mistakes_are_400s_and_the_proxy_keeps_serving(tokenizer: Any, make_proxy: Any, case: str,
                                                              body: Any, headers: Any, code: str) -> None:
    h = make_proxy(ScriptedEngine(tokenizer, lambda ids, n: "fine"))
    sid = h.proxy.open_session()
    url = h.proxy.base_url(sid) + "/chat/completions"
    if isinstance(body, bytes):
        r = h.run(post(url, content=body, headers={"Content-Type": "application/json", **(headers or {})}))
    else:
        r = h.run(post(url, json=body, headers=headers))
    assert r.status_code == 400, (case, r.status_code, r.text[:300])
    assert r.json()["error"]["code"] == code, r.text[:300]
    assert h.proxy.calls(sid) == []
    assert h.run(post(url, json=GOOD)).status_code == 200


def test_a_real_gzip_body_is_read(tokenizer: Any, make_proxy: Any) -> None:
    h = make_proxy(ScriptedEngine(tokenizer, lambda ids, n: "fine"))
    sid = h.proxy.open_session()
    r = h.run(post(h.proxy.base_url(sid) + "/chat/completions", content=gzip.compress(json.dumps(GOOD).encode()),
                   headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}))
    assert r.status_code == 200


def test_a_vanishing_temperature_never_writes_nan(tokenizer: Any, make_proxy: Any) -> None:
    class NaNEngine(ScriptedEngine):
        async def generate(self, prompt_ids: Any, sampling: Any) -> Any:
            import dataclasses

            g = await super().generate(prompt_ids, sampling)
            return dataclasses.replace(g, logprobs=(float("nan"),) * len(g.logprobs))

    h = make_proxy(NaNEngine(tokenizer, lambda ids, n: "x"))
    sid = h.proxy.open_session()
    r = h.run(post(h.proxy.base_url(sid) + "/chat/completions", json={**GOOD, "temperature": 1e-40}))
    assert r.status_code == 500 and r.json()["error"]["code"] == "engine_error"  # an engine bug, not a NaN on disk
    assert "non-finite" in h.proxy.session_errors(sid)[0]
    assert h.proxy.calls(sid) == []


def test_the_engine_context_limit_is_the_proxys(tokenizer: Any, make_custom_proxy: Any) -> None:
    class Short(ScriptedEngine):
        max_model_len = 40

    h = make_custom_proxy(Short(tokenizer, lambda ids, n: "x"))  # as `agentgym serve` builds it: no limit given
    assert h.proxy.max_model_len == 40
    sid = h.proxy.open_session()
    r = h.run(post(h.proxy.base_url(sid) + "/chat/completions",
                   json={"messages": [{"role": "user", "content": "word " * 60}]}))
    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"
    assert h.proxy.context_overflow(sid)


def test_huge_requests_are_refused_without_freezing_other_clients(tokenizer: Any, make_custom_proxy: Any) -> None:
    h = make_custom_proxy(ScriptedEngine(tokenizer, lambda ids, n: "ok"), max_model_len=32768)
    sid = h.proxy.open_session()
    other = h.proxy.open_session()
    big = {"messages": [{"role": "user", "content": "lorem ipsum dolor " * 700_000}]}  # ~12 MB
    payload = json.dumps(big).encode()

    async def main() -> tuple[httpx.Response, list[float]]:
        async def small() -> list[float]:
            lat = []
            await asyncio.sleep(0.05)
            for _ in range(20):
                t0 = time.perf_counter()
                r = await post(h.proxy.base_url(other) + "/chat/completions", json=GOOD)
                assert r.status_code == 200
                lat.append(time.perf_counter() - t0)
            return lat

        huge = asyncio.ensure_future(post(h.proxy.base_url(sid) + "/chat/completions", content=payload,
                                          headers={"Content-Type": "application/json"}, timeout=120))
        lat = await small()
        return await huge, lat

    r, lat = h.run(main())
    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"
    assert max(lat) < 2.0, lat  # it was 20-69 s: the whole body was rendered and tokenised on the loop first
    too_big = h.run(post(h.proxy.base_url(sid) + "/chat/completions", content=b" " * (33 * 1024 * 1024),
                         headers={"Content-Type": "application/json"}, timeout=120))
    assert too_big.status_code == 413
