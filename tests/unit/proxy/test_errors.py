"""Bad input gets a clear 4xx in the OpenAI dialect, and the proxy keeps serving."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from agentgym.engines.scripted import ScriptedEngine

GOOD = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


async def post(h: Any, url: str, content: bytes | None = None, json: Any = None) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as c:
        return await c.post(url, content=content, json=json)


@pytest.mark.parametrize(("case", "status", "code", "needle"), [
    ("malformed_json", 400, "invalid_json", "malformed JSON"),
    ("unknown_session", 404, "session_not_found", "unknown session"),
    ("missing_messages", 400, "invalid_request_error", "missing required field 'messages'"),
    ("unsupported_param", 400, "unsupported_parameter", "logit_bias"),
    ("n_greater_than_1", 400, "unsupported_value", "n=1"),
    ("bad_role", 400, "invalid_request_error", "role"),
    ("bad_temperature", 400, "invalid_request_error", "temperature"),
    ("image_content", 400, "unsupported_content", "image_url"),
    ("no_session_in_url", 404, "session_not_found", "/s/<session>/v1"),
    ("unknown_route", 404, "not_found", "Not Found"),
])
def test_bad_request_gets_a_clear_4xx_then_the_next_request_succeeds(
        tokenizer: Any, make_proxy: Any, case: str, status: int, code: str, needle: str) -> None:
    engine = ScriptedEngine(tokenizer, ["fine"])
    h = make_proxy(engine)
    sid = h.proxy.open_session()
    url = h.proxy.base_url(sid) + "/chat/completions"
    root = f"http://{h.proxy.host}:{h.proxy.port}"
    if case == "malformed_json":
        r = h.run(post(h, url, content=b'{"messages": [}'))
    elif case == "unknown_session":
        r = h.run(post(h, h.proxy.base_url("nope") + "/chat/completions", json=GOOD))
    elif case == "missing_messages":
        r = h.run(post(h, url, json={"model": "m"}))
    elif case == "unsupported_param":
        r = h.run(post(h, url, json={**GOOD, "logit_bias": {"1": 5}}))
    elif case == "n_greater_than_1":
        r = h.run(post(h, url, json={**GOOD, "n": 2}))
    elif case == "bad_role":
        r = h.run(post(h, url, json={"messages": [{"role": "robot", "content": "x"}]}))
    elif case == "bad_temperature":
        r = h.run(post(h, url, json={**GOOD, "temperature": "hot"}))
    elif case == "image_content":
        r = h.run(post(h, url, json={"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:,"}}]}]}))
    elif case == "no_session_in_url":
        r = h.run(post(h, root + "/v1/chat/completions", json=GOOD))
    else:
        r = h.run(post(h, root + "/s/x/v2/whatever", json=GOOD))
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and needle in err["message"]
    assert set(err) == {"message", "type", "param", "code"}
    assert h.proxy.calls(sid) == []  # nothing was recorded for a refused request

    ok = h.run(post(h, url, json=GOOD))
    assert ok.status_code == 200
    assert ok.json()["choices"][0]["message"]["content"] == "fine"
    assert len(h.proxy.calls(sid)) == 1


def test_engine_failure_is_a_500_in_dialect_and_recorded(tokenizer: Any, make_proxy: Any) -> None:
    engine = ScriptedEngine(tokenizer, [])  # runs out of replies at once
    h = make_proxy(engine)
    sid = h.proxy.open_session()
    r = h.run(post(h, h.proxy.base_url(sid) + "/chat/completions", json=GOOD))
    assert r.status_code == 500 and r.json()["error"]["code"] == "engine_error"
    assert "ran out of replies" in h.proxy.session_errors(sid)[0]


def test_context_length_exceeded(tokenizer: Any, make_proxy: Any) -> None:
    engine = ScriptedEngine(tokenizer, ["x"])
    h = make_proxy(engine)
    h.proxy.max_model_len = 16
    sid = h.proxy.open_session()
    r = h.run(post(h, h.proxy.base_url(sid) + "/chat/completions",
                   json={"messages": [{"role": "user", "content": "word " * 50}]}))
    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"


def test_models_and_journal_round_trip(tokenizer: Any, make_proxy: Any) -> None:
    engine = ScriptedEngine(tokenizer, ["a", "b"])
    h = make_proxy(engine)
    sid = h.proxy.open_session()

    async def models() -> httpx.Response:
        async with httpx.AsyncClient() as c:
            return await c.get(h.proxy.base_url(sid) + "/models")

    assert h.run(models()).json()["data"][0]["id"] == "scripted"
    h.run(post(h, h.proxy.base_url(sid) + "/chat/completions", json=GOOD))
    on_disk = h.proxy.journal.read(sid)
    assert on_disk == h.proxy.calls(sid)
