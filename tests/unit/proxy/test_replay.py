"""Replay: a session opened with another session's recorded calls answers its first requests with
them (exact ids, logprobs, policy version, reply) while the requests match, and records a typed
divergence at the first one that does not, then samples."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agentgym.engines.scripted import ScriptedEngine
from agentgym.proxy.calllog import read_calls
from agentgym.reconstruct import reconstruct
from agentgym.types import Call, Divergence, StopReason

from .conftest import BASH_TOOL, post, tool_reply
from .test_splice import SYSTEM, TASK, tool_result


def episode(h: Any, sid: str, outputs: list[str], stream: bool = False, agent: str | None = None) -> list[dict[str, Any]]:
    """A harness loop: ask, echo the reply, append a tool result, ask again; returns the replies."""
    messages: list[dict[str, Any]] = [SYSTEM, TASK]
    replies = []
    for out in outputs:
        url = h.proxy.base_url(sid, agent=agent) + "/chat/completions"
        r = h.run(post(url, json={"model": "m", "messages": messages, "tools": [BASH_TOOL], "stream": stream}))
        assert r.status_code == 200, r.text
        msg = r.json()["choices"][0]["message"] if not stream else _from_sse(r.text)
        replies.append(msg)
        messages = [*messages, msg, tool_result(msg, out)]
    return replies


def _from_sse(body: str) -> dict[str, Any]:
    content, calls = "", {}
    for line in body.splitlines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        delta = json.loads(line[6:])["choices"][0]["delta"] if json.loads(line[6:])["choices"] else {}
        content += delta.get("content") or ""
        for tc in delta.get("tool_calls") or []:
            c = calls.setdefault(tc["index"], {"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
            c["id"] = tc.get("id") or c["id"]
            c["function"]["name"] += tc.get("function", {}).get("name") or ""
            c["function"]["arguments"] += tc.get("function", {}).get("arguments") or ""
    msg: dict[str, Any] = {"role": "assistant", "content": content or None}
    if calls:
        msg["tool_calls"] = [calls[i] for i in sorted(calls)]
    return msg


def record(h: Any, n: int = 3) -> tuple[str, list[Call]]:
    sid = h.proxy.open_session("parent")
    episode(h, sid, [f"out {i}" for i in range(n)])
    return sid, h.proxy.close_session(sid)


def test_matching_requests_are_answered_from_the_recording_then_the_engine_samples(
        tokenizer: Any, make_proxy: Any) -> None:
    engine = ScriptedEngine(tokenizer, lambda ids, n: tool_reply(f"cmd {n}"))
    h = make_proxy(engine)
    _, parent = record(h)
    assert engine.calls == 3
    engine.policy_version = 7  # the policy moved on: replayed calls keep the version they were sampled with
    sid = h.proxy.open_session("child", replay=parent[:2])
    replies = episode(h, sid, ["out 0", "out 1", "out 2"])
    assert engine.calls == 4  # only the third request reached the engine
    assert [r["tool_calls"] for r in replies[:2]] == [c.response["tool_calls"] for c in parent[:2]]  # same ids too
    calls = read_calls(h.proxy.journal.path(sid))
    assert [c.replayed_from for c in calls] == [parent[0].call_id, parent[1].call_id, None]
    assert [c.divergence for c in calls] == [None, None, None]
    for mine, theirs in zip(calls[:2], parent[:2], strict=True):
        assert mine.prompt_ids == theirs.prompt_ids
        assert (mine.completion_ids, mine.completion_logprobs, mine.policy_version) == (
            theirs.completion_ids, theirs.completion_logprobs, 0)
    assert calls[2].prompt_ids == parent[2].prompt_ids and calls[2].policy_version == 7
    traj = reconstruct(calls, task_id="t", trajectory_id="child", stop_reason=StopReason.COMPLETED)[0]
    (seg,) = traj.segments
    # replayed completions are context: the third completion is the only action
    assert traj.trained_tokens == traj.sampled_tokens == len(calls[2].completion_ids)
    a0, a1 = traj.steps[0].action_span
    assert seg.action_mask[a0:a1] == (0,) * (a1 - a0) and seg.logprobs[a0:a1] == parent[0].completion_logprobs
    assert seg.policy_version[a0:a1] == (0,) * (a1 - a0)


def test_a_streamed_request_is_replayed_too(tokenizer: Any, make_proxy: Any) -> None:
    engine = ScriptedEngine(tokenizer, lambda ids, n: tool_reply(f"cmd {n}"))
    h = make_proxy(engine)
    _, parent = record(h, 2)
    sid = h.proxy.open_session("child", replay=parent)
    replies = episode(h, sid, ["out 0", "out 1"], stream=True)
    assert engine.calls == 2
    assert [r["tool_calls"] for r in replies] == [c.response["tool_calls"] for c in parent]
    assert [c.replayed_from for c in h.proxy.calls(sid)] == [c.call_id for c in parent]


@pytest.mark.parametrize("case", ["tool output", "agent"])
def test_the_first_request_that_differs_is_sampled_and_carries_the_divergence(
        tokenizer: Any, make_proxy: Any, case: str) -> None:
    engine = ScriptedEngine(tokenizer, lambda ids, n: tool_reply(f"cmd {n}"))
    h = make_proxy(engine)
    _, parent = record(h)
    sid = h.proxy.open_session("child", replay=parent)
    if case == "tool output":
        episode(h, sid, ["out 0", "something else", "out 2"])  # the second output reaches the third request
        expect, at = Divergence.PROMPT_DIFFERS, 2
    else:
        episode(h, sid, ["out 0", "out 1", "out 2"], agent="helper")
        expect, at = Divergence.AGENT_DIFFERS, 0
    calls = read_calls(h.proxy.journal.path(sid))
    assert [c.divergence for c in calls] == [expect if i == at else None for i in range(3)]
    # everything from the divergence on was sampled, even a later request that matches again
    assert [c.replayed_from is not None for c in calls] == [i < at for i in range(3)]
    assert engine.calls == 3 + 3 - at
    traj = reconstruct(calls, task_id="t", trajectory_id="child")[0]
    assert traj.sampled_tokens == sum(len(c.completion_ids) for c in calls[at:])
    assert all(Call.from_json(c.to_json()) == c for c in calls)  # the typed fields survive a whole-call record


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("dialect", ["anthropic", "chat", "responses"])
def test_every_dialect_replays_to_the_official_clients_without_divergence(tokenizer: Any, make_proxy: Any,
                                                                          dialect: str, stream: bool) -> None:
    """Codex's Responses and Claude Code's Messages too: the recorded reply, formatted by the
    dialect again (tool-call ids included), is echoed back so that the next request matches."""
    from .conftest import root_url
    from .test_dialects import SESSIONS, replies

    h = make_proxy(ScriptedEngine(tokenizer, replies()))

    def base(sid: str) -> str:
        return h.proxy.base_url(sid) if dialect != "anthropic" else f"{root_url(h)}/s/{sid}"

    first = h.proxy.open_session("parent")
    outs = h.run(SESSIONS[dialect](base(first), stream))
    parent = h.proxy.close_session(first)
    child = h.proxy.open_session("child", replay=parent)
    assert h.run(SESSIONS[dialect](base(child), stream)) == outs
    calls = h.proxy.calls(child)
    assert h.engine.calls == 3  # all three answered from the recording
    assert [c.replayed_from for c in calls] == [c.call_id for c in parent]
    assert [c.prompt_ids for c in calls] == [c.prompt_ids for c in parent]
    assert all(c.divergence is None and c.delivered for c in calls)
