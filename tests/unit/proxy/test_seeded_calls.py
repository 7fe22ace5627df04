"""A seeded proxy (``Proxy(seed=...)``, what ``RolloutConfig.seed`` sets) gives each call without
a seed of its own one derived from (seed, session, agent, call number): reproducible however
sessions interleave; a request's own seed is honoured and recorded."""

from __future__ import annotations

from typing import Any

from agentgym.engines.scripted import ScriptedEngine
from agentgym.proxy.pipeline import call_seed
from tests.unit.proxy.conftest import post

TASK = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hi."}]


def seeds(h: Any, sid: str) -> list[Any]:
    return [c.sampling["seed"] for c in h.proxy.calls(sid)]


def chat(h: Any, sid: str, messages: list[dict[str, Any]], **extra: Any) -> None:
    r = h.run(post(h.proxy.base_url(sid) + "/chat/completions", json={"messages": messages, **extra}))
    assert r.status_code == 200, r.text


def test_seeds_depend_on_seed_session_agent_and_call_number_only(tokenizer: Any, make_custom_proxy: Any) -> None:
    first = make_custom_proxy(ScriptedEngine(tokenizer, lambda ids, n: f"reply {n}"), seed=7)
    second = make_custom_proxy(ScriptedEngine(tokenizer, lambda ids, n: f"reply {n}"), seed=7)
    for h, order in ((first, ("a", "b")), (second, ("b", "a"))):  # the sessions interleave differently
        for sid in order:
            h.proxy.open_session(sid)
        for sid in order:
            chat(h, sid, TASK)
        for sid in reversed(order):
            chat(h, sid, [*TASK, {"role": "assistant", "content": "hi"}, {"role": "user", "content": "Again."}])
    for sid in ("a", "b"):
        assert seeds(first, sid) == seeds(second, sid) == [call_seed(7, sid, "main", 0), call_seed(7, sid, "main", 1)]
    assert seeds(first, "a") != seeds(first, "b")
    assert call_seed(7, "a", "main", 0) != call_seed(8, "a", "main", 0)
    assert all(0 <= s < 2**63 for s in seeds(first, "a"))


def test_a_request_seed_wins_and_no_seed_means_none(tokenizer: Any, make_custom_proxy: Any) -> None:
    seeded = make_custom_proxy(ScriptedEngine(tokenizer, ["x", "y"]), seed=7)
    seeded.proxy.open_session("s")
    chat(seeded, "s", TASK, seed=123)
    assert seeds(seeded, "s") == [123]
    plain = make_custom_proxy(ScriptedEngine(tokenizer, ["x"]))
    plain.proxy.open_session("s")
    chat(plain, "s", TASK)
    assert seeds(plain, "s") == [None]
