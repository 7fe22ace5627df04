"""Token faithfulness through the real HTTP proxy, with a scripted engine.

Each test plays a harness: it sends OpenAI requests over HTTP, echoes the replies back the way
harnesses do, and checks the exact ids the engine saw and what the reconstructor trains.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx
import pytest

from agentgym.engines.scripted import ScriptedEngine
from agentgym.reconstruct import reconstruct
from agentgym.types import BreakReason, StopReason

from .conftest import BASH_TOOL, tool_reply

SYSTEM = {"role": "system", "content": "You are a shell agent."}
TASK = {"role": "user", "content": "Create hello.txt containing hi."}


async def chat(h: Any, sid: str, messages: list[dict[str, Any]], **extra: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as c:
        return await c.post(h.proxy.base_url(sid) + "/chat/completions",
                            json={"model": "m", "messages": messages, "tools": [BASH_TOOL], **extra})


def assistant_echo(resp: httpx.Response) -> dict[str, Any]:
    """What a harness appends to its history: the message as received plus a junk key, as
    mini-swe-agent does with provider_specific_fields."""
    msg = dict(resp.json()["choices"][0]["message"])
    msg["provider_specific_fields"] = {"refusal": None}
    return msg


def tool_result(msg: dict[str, Any], output: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": msg["tool_calls"][0]["id"], "content": output}


def trajectory(h: Any, sid: str) -> Any:
    return reconstruct(h.proxy.calls(sid), task_id="t", trajectory_id=sid, reward=1.0,
                       stop_reason=StopReason.COMPLETED)[0]


def test_multi_turn_prompts_are_exact_token_prefixes(tokenizer: Any, make_proxy: Any) -> None:
    engine = ScriptedEngine(tokenizer, [tool_reply("ls"), tool_reply("echo hi > hello.txt"), "Done."])
    h = make_proxy(engine)
    sid = h.proxy.open_session()
    messages = [SYSTEM, TASK]
    for output in ("README.md\n", ""):
        r = h.run(chat(h, sid, messages))
        assert r.status_code == 200, r.text
        msg = assistant_echo(r)
        assert msg["tool_calls"][0]["function"]["name"] == "bash"
        messages = [*messages, msg, tool_result(msg, output)]
    r = h.run(chat(h, sid, messages))
    assert r.json()["choices"][0]["message"]["content"] == "Done."

    calls = h.proxy.calls(sid)
    assert [c.break_reason for c in calls] == [BreakReason.START, None, None]
    for prev, cur in itertools.pairwise(calls):
        assert cur.parent_call_id == prev.call_id
        assert cur.prompt_ids[: len(prev.prompt_ids) + len(prev.completion_ids)] == prev.prompt_ids + prev.completion_ids
        assert engine.prompts[cur.index] == cur.prompt_ids  # the engine saw exactly what was recorded
    # The continuation is the template's framing of the tool result, and nothing else.
    cont = tokenizer.decode(calls[1].prompt_ids[calls[1].new_from:])
    assert cont == "\n<|im_start|>user\n<tool_response>\nREADME.md\n\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
    # The prompt of the first call is exactly the template rendering.
    rendered = tokenizer.apply_chat_template([SYSTEM, TASK], tools=[BASH_TOOL], add_generation_prompt=True,
                                             tokenize=False)
    assert list(calls[0].prompt_ids) == tokenizer.encode(rendered, add_special_tokens=False)

    traj = trajectory(h, sid)
    assert len(traj.segments) == 1 and traj.delivered_fraction == 1.0
    seg = traj.segments[0]
    sampled = [i for i, a in zip(seg.input_ids, seg.action_mask, strict=True) if a]
    assert sampled == [t for c in calls for t in c.completion_ids]
    assert [lp for lp, a in zip(seg.logprobs, seg.action_mask, strict=True) if a] == \
        [lp for c in calls for lp in c.completion_logprobs]
    # Observation tokens are the tool output text (a token straddling its edge, such as a merged
    # "\n\n", counts as observation so no environment character is left out).
    obs_text = tokenizer.decode([i for i, o in zip(seg.input_ids, seg.obs_mask, strict=True) if o])
    assert obs_text.startswith("README.md\n") and obs_text.strip() == "README.md"
    assert [s.anchor for s in traj.steps] == ["Create hello.txt containing hi.", "README.md", ""]


def _split_token(tokenizer: Any) -> tuple[list[int], list[int]]:
    """Ids that decode to a string whose canonical encoding is different (fewer) ids."""
    for tok_id in range(len(tokenizer)):
        text = tokenizer.decode([tok_id])
        if len(text) >= 3 and text.isalpha():
            pieces = [tokenizer.encode(ch, add_special_tokens=False) for ch in text]
            if all(len(p) == 1 for p in pieces):
                return [p[0] for p in pieces], [tok_id]
    raise AssertionError("no multi-character token found")


def test_sampled_ids_that_reencode_differently_stay_as_sampled(tokenizer: Any, make_proxy: Any) -> None:
    split, merged = _split_token(tokenizer)
    assert tokenizer.encode(tokenizer.decode(split), add_special_tokens=False) == merged
    eos = tokenizer.convert_tokens_to_ids(tokenizer.eos_token)
    engine = ScriptedEngine(tokenizer, [[*split, eos], "ok"])
    h = make_proxy(engine)
    sid = h.proxy.open_session()
    r1 = h.run(chat(h, sid, [SYSTEM, TASK]))
    msg = assistant_echo(r1)
    assert msg["content"] == tokenizer.decode(split)
    h.run(chat(h, sid, [SYSTEM, TASK, msg, {"role": "user", "content": "continue"}]))
    second = engine.prompts[1]
    first = h.proxy.calls(sid)[0]
    assert second[len(first.prompt_ids): len(first.prompt_ids) + len(split) + 1] == (*split, eos)
    seg = trajectory(h, sid).segments[0]
    assert [i for i, a in zip(seg.input_ids, seg.action_mask, strict=True) if a][: len(split) + 1] == [*split, eos]


@pytest.mark.parametrize(("edit", "reason"), [
    ("tool_output", BreakReason.HISTORY_EDITED),
    ("drop_turns", BreakReason.HISTORY_EDITED),
    ("assistant", BreakReason.ASSISTANT_EDITED),
])
def test_rewritten_history_starts_a_typed_segment(tokenizer: Any, make_proxy: Any, edit: str,
                                                  reason: BreakReason) -> None:
    engine = ScriptedEngine(tokenizer, [tool_reply("ls"), tool_reply("cat a"), tool_reply("cat b")])
    h = make_proxy(engine)
    sid = h.proxy.open_session()
    m1 = assistant_echo(h.run(chat(h, sid, [SYSTEM, TASK])))
    hist = [SYSTEM, TASK, m1, tool_result(m1, "a\nb\n" * 20)]
    m2 = assistant_echo(h.run(chat(h, sid, hist)))
    hist2 = [*hist, m2, tool_result(m2, "contents of a")]
    if edit == "tool_output":  # a harness truncating an old, long tool output
        hist2[3] = tool_result(m1, "a\nb\n[... truncated]")
    elif edit == "drop_turns":  # compaction: the first exchange summarised away
        hist2 = [SYSTEM, TASK, {"role": "user", "content": "Summary: listed files."}, m2, tool_result(m2, "x")]
    else:  # reasoning stripped / content rewritten by the harness
        hist2[2] = {**m1, "content": "I will list files."}
    h.run(chat(h, sid, hist2))
    calls = h.proxy.calls(sid)
    assert calls[2].break_reason == reason
    traj = trajectory(h, sid)
    assert [s.break_reason for s in traj.segments] == [BreakReason.START, reason]
    # Each sampled token is trained exactly once across segments.
    assert traj.trained_tokens == sum(len(c.completion_ids) for c in calls) == traj.sampled_tokens
    # The new segment's own completion is trained, with the engine's ids and logprobs.
    seg = traj.segments[1]
    assert [i for i, a in zip(seg.input_ids, seg.action_mask, strict=True) if a] == list(calls[2].completion_ids)


def test_retry_of_the_same_request_trains_only_the_reply_the_harness_used(tokenizer: Any, make_proxy: Any) -> None:
    engine = ScriptedEngine(tokenizer, [tool_reply("ls"), tool_reply("pwd"), tool_reply("whoami")])
    h = make_proxy(engine)
    sid = h.proxy.open_session()
    m1 = assistant_echo(h.run(chat(h, sid, [SYSTEM, TASK])))
    hist = [SYSTEM, TASK, m1, tool_result(m1, "out")]
    h.run(chat(h, sid, hist))
    h.run(chat(h, sid, hist))  # the harness retried (e.g. its own timeout fired)
    calls = h.proxy.calls(sid)
    assert calls[1].parent_call_id == calls[2].parent_call_id == calls[0].call_id
    assert calls[2].prompt_ids == calls[1].prompt_ids  # same exact prompt both times, nothing re-rendered
    assert calls[2].break_reason == BreakReason.RETRY
    traj = trajectory(h, sid)
    # Of the two replies to one prompt, the later is the one the harness went on with: only it is trained.
    assert [s.break_reason for s in traj.segments] == [BreakReason.START]
    assert traj.segments[0].call_ids == (calls[0].call_id, calls[2].call_id)
    assert traj.trained_tokens == len(calls[0].completion_ids) + len(calls[2].completion_ids)
    assert traj.sampled_tokens == sum(len(c.completion_ids) for c in calls) and traj.delivered_fraction < 1


def test_retry_that_the_harness_did_not_use_is_not_trained(tokenizer: Any, make_proxy: Any) -> None:
    engine = ScriptedEngine(tokenizer, [tool_reply("ls"), tool_reply("pwd"), tool_reply("whoami"), "Done."])
    h = make_proxy(engine)
    sid = h.proxy.open_session()
    first = h.run(chat(h, sid, [SYSTEM, TASK]))
    h.run(chat(h, sid, [SYSTEM, TASK]))  # an identical retry of the first request
    m1 = assistant_echo(first)  # ... but the harness went on with the first reply
    h.run(chat(h, sid, [SYSTEM, TASK, m1, tool_result(m1, "out")]))
    calls = h.proxy.calls(sid)
    assert [c.break_reason for c in calls] == [BreakReason.START, BreakReason.RETRY, None]
    assert [c.agent_id for c in calls] == ["main"] * 3 and calls[1].prompt_ids == calls[0].prompt_ids
    traj = trajectory(h, sid)
    assert len(traj.segments) == 1 and traj.segments[0].call_ids == (calls[0].call_id, calls[2].call_id)
    assert traj.trained_tokens == traj.sampled_tokens - len(calls[1].completion_ids)


def test_streaming_reassembles_to_the_same_message(tokenizer: Any, make_proxy: Any) -> None:
    engine = ScriptedEngine(tokenizer, [tool_reply("ls -la", "Let me look."), tool_reply("ls -la", "Let me look.")])
    h = make_proxy(engine)
    sid = h.proxy.open_session()
    plain = h.run(chat(h, sid, [SYSTEM, TASK])).json()["choices"][0]["message"]

    async def stream() -> list[dict[str, Any]]:
        async with httpx.AsyncClient(timeout=30) as c, c.stream(
                "POST", h.proxy.base_url(sid) + "/chat/completions",
                json={"model": "m", "messages": [SYSTEM, TASK], "tools": [BASH_TOOL], "stream": True,
                      "stream_options": {"include_usage": True}}) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            return [json.loads(line[6:]) async for line in r.aiter_lines()
                    if line.startswith("data: ") and line != "data: [DONE]"]

    chunks = h.run(stream())
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert content == plain["content"] == "Let me look."
    calls: dict[int, dict[str, Any]] = {}
    for c in chunks:
        for d in (c["choices"][0]["delta"].get("tool_calls") or []) if c["choices"] else []:
            slot = calls.setdefault(d["index"], {"name": "", "arguments": ""})
            slot["name"] += d.get("function", {}).get("name", "")
            slot["arguments"] += d.get("function", {}).get("arguments", "")
    assert [calls[0]["name"], json.loads(calls[0]["arguments"])] == ["bash", {"command": "ls -la"}]
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"
    assert chunks[-1]["usage"]["completion_tokens"] == len(h.proxy.calls(sid)[1].completion_ids)


def test_malformed_tool_call_is_returned_as_text_and_marked_invalid(tokenizer: Any, make_proxy: Any) -> None:
    engine = ScriptedEngine(tokenizer, ['<tool_call>\n{"name": "bash", "arguments": {"command": </tool_call>'])
    h = make_proxy(engine)
    sid = h.proxy.open_session()
    msg = h.run(chat(h, sid, [SYSTEM, TASK])).json()["choices"][0]["message"]
    assert "tool_calls" not in msg and msg["content"].startswith("<tool_call>")
    call = h.proxy.calls(sid)[0]
    assert call.valid_action is False
    assert trajectory(h, sid).steps[0].valid is False


def test_undelivered_reply_is_sampled_but_not_trained(tokenizer: Any, make_proxy: Any) -> None:
    import asyncio

    engine = ScriptedEngine(tokenizer, [tool_reply("ls"), tool_reply("ls")], delay_s=0.5)
    h = make_proxy(engine)
    sid = h.proxy.open_session()

    async def give_up() -> None:
        async with httpx.AsyncClient(timeout=0.1) as c:
            with pytest.raises(httpx.TimeoutException):
                await c.post(h.proxy.base_url(sid) + "/chat/completions",
                             json={"model": "m", "messages": [SYSTEM, TASK], "tools": [BASH_TOOL]})
        await asyncio.sleep(0.8)  # let the proxy finish generating and fail to deliver

    h.run(give_up())
    h.run(chat(h, sid, [SYSTEM, TASK]))  # the harness's retry
    calls = h.proxy.calls(sid)
    assert [c.delivered for c in calls] == [False, True]
    traj = trajectory(h, sid)
    assert traj.sampled_tokens == sum(len(c.completion_ids) for c in calls)
    assert traj.trained_tokens == len(calls[1].completion_ids)
    assert 0 < traj.delivered_fraction < 1


def test_sub_agents_get_their_own_trajectories(tokenizer: Any, make_proxy: Any) -> None:
    """A planner and a sub-agent in one session (sub-agent base URL /s/<sid>/a/<agent>/v1):
    one trajectory per agent, each with its own exact token chain."""
    engine = ScriptedEngine(tokenizer, [tool_reply("delegate"), tool_reply("ls"), "sub done", "all done"])
    h = make_proxy(engine)
    sid = h.proxy.open_session()

    async def sub(messages: list[dict[str, Any]]) -> httpx.Response:
        async with httpx.AsyncClient(timeout=30) as c:
            return await c.post(h.proxy.base_url(sid, agent="worker") + "/chat/completions",
                                json={"model": "m", "messages": messages, "tools": [BASH_TOOL]})

    m1 = assistant_echo(h.run(chat(h, sid, [SYSTEM, TASK])))
    sub_hist = [{"role": "system", "content": "You are a worker."}, {"role": "user", "content": "list"}]
    s1 = assistant_echo(h.run(sub(sub_hist)))
    h.run(sub([*sub_hist, s1, tool_result(s1, "a b")]))
    h.run(chat(h, sid, [SYSTEM, TASK, m1, tool_result(m1, "worker said: sub done")]))
    calls = h.proxy.calls(sid)
    assert [c.agent_id for c in calls] == ["main", "worker", "worker", "main"]
    trajs = reconstruct(calls, task_id="t", trajectory_id=sid, reward=1.0)
    assert [t.agent_id for t in trajs] == ["main", "worker"]
    assert [t.id for t in trajs] == [sid, f"{sid}/worker"]
    for t, idx in zip(trajs, ([0, 3], [1, 2]), strict=True):
        assert len(t.segments) == 1 and t.segments[0].break_reason == BreakReason.START
        seg = t.segments[0]
        assert [i for i, a in zip(seg.input_ids, seg.action_mask, strict=True) if a] == \
            [tok for k in idx for tok in calls[k].completion_ids]


NUMBERED = ("{% for m in messages %}<|im_start|>{{ m.role }} #{{ loop.index }}\n{{ m.content }}<|im_end|>\n"
            "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant #{{ messages|length + 1 }}\n{% endif %}")
"""Renders a turn differently by its position: the short probe cannot stand in for the history."""

FORGETFUL = ("{% for m in messages %}<|im_start|>{{ m.role }}\n"
             "{% if m.role != 'assistant' or loop.last %}{{ m.content }}{% endif %}<|im_end|>\n"
             "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
"""Drops earlier assistant text once later turns exist (as reasoning-stripping templates do)."""


def _with_template(tokenizer: Any, template: str) -> Any:
    import copy

    tok = copy.deepcopy(tokenizer)
    tok.chat_template = template
    return tok


def test_position_dependent_template_still_splices_exactly(tokenizer: Any, make_proxy: Any) -> None:
    tok = _with_template(tokenizer, NUMBERED)
    engine = ScriptedEngine(tok, ["one", "two", "three"])
    h = make_proxy(engine)
    sid = h.proxy.open_session()
    hist: list[dict[str, Any]] = [{"role": "user", "content": "go"}]
    for turn in range(3):
        r = h.run(chat(h, sid, hist))
        hist = [*hist, assistant_echo(r), {"role": "user", "content": f"more {turn}"}]
    calls = h.proxy.calls(sid)
    assert [c.break_reason for c in calls] == [BreakReason.START, None, None]
    for prev, cur in itertools.pairwise(calls):
        assert cur.prompt_ids[: len(prev.prompt_ids) + len(prev.completion_ids)] == prev.prompt_ids + prev.completion_ids
    assert tok.decode(calls[2].prompt_ids[calls[2].new_from:]) == \
        "\n<|im_start|>user #5\nmore 1<|im_end|>\n<|im_start|>assistant #6\n"


def test_template_that_rewrites_earlier_turns_breaks_with_its_reason(tokenizer: Any, make_proxy: Any) -> None:
    tok = _with_template(tokenizer, FORGETFUL)
    engine = ScriptedEngine(tok, ["first answer", "second answer"])
    h = make_proxy(engine)
    sid = h.proxy.open_session()
    m1 = assistant_echo(h.run(chat(h, sid, [{"role": "user", "content": "go"}])))
    h.run(chat(h, sid, [{"role": "user", "content": "go"}, m1, {"role": "user", "content": "again"}]))
    calls = h.proxy.calls(sid)
    assert calls[1].break_reason == BreakReason.TEMPLATE_NOT_PREFIX
    assert calls[1].new_from == 0  # rendered from scratch, as the template renders it now
    assert "first answer" not in tok.decode(calls[1].prompt_ids)
    traj = trajectory(h, sid)
    assert [s.break_reason for s in traj.segments] == [BreakReason.START, BreakReason.TEMPLATE_NOT_PREFIX]
    assert traj.trained_tokens == traj.sampled_tokens
