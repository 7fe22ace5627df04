"""The official OpenAI and Anthropic Python clients drive the proxy in all three dialects, streamed
and not, over multi-turn sessions that echo replies back as those clients shape them; each
dialect's context-length error is the one its clients recognise."""

from __future__ import annotations

import itertools
from typing import Any

import anthropic
import httpx
import openai
import pytest

from agentgym.engines.scripted import ScriptedEngine
from agentgym.reconstruct import reconstruct
from agentgym.types import BreakReason

from .conftest import BASH_TOOL, root_url, tool_reply

SYSTEM = "You are a shell agent."
PARAMS = BASH_TOOL["function"]["parameters"]
RESPONSES_TOOL = {"type": "function", "name": "bash", "description": "Run a shell command", "parameters": PARAMS}
ANTHROPIC_TOOL = {"name": "bash", "description": "Run a shell command", "input_schema": PARAMS}

REASONING = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{% if m.reasoning_content %}<think>\n"
             "{{ m.reasoning_content }}\n</think>\n\n{% endif %}{{ m.content or '' }}"
             "{% for tc in m.tool_calls or [] %}\n<tool_call>\n{\"name\": \"{{ tc.function.name }}\", \"arguments\": "
             "{{ tc.function.arguments if tc.function.arguments is string else tc.function.arguments|tojson }}}"
             "\n</tool_call>{% endfor %}<|im_end|>\n{% endfor %}"
             "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
"""A template that renders reasoning, so its echo must come back for the prefix to hold."""


def replies(think: bool = False) -> list[str]:
    pre = "<think>\nI should look first.\n</think>\n\n" if think else ""
    return [pre + tool_reply("ls", "Let me look."), pre + tool_reply("cat a.txt"), pre + "All done."]


def assert_exact_chain(calls: list[Any]) -> None:
    assert [c.break_reason for c in calls] == [BreakReason.START, None, None]
    for prev, cur in itertools.pairwise(calls):
        assert cur.parent_call_id == prev.call_id
        assert cur.prompt_ids[: len(prev.prompt_ids) + len(prev.completion_ids)] == prev.prompt_ids + prev.completion_ids


async def chat_session(base_url: str, stream: bool) -> list[str]:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0)
    messages: list[Any] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Read a.txt."}]
    outs = []
    for _ in range(3):
        if stream:
            content, calls, reasoning = "", {}, ""
            async for ch in await client.chat.completions.create(model="m", messages=messages, tools=[BASH_TOOL],
                                                                 stream=True):
                d = ch.choices[0].delta
                content += d.content or ""
                reasoning += getattr(d, "reasoning_content", None) or (d.model_extra or {}).get("reasoning_content") or ""
                for tc in d.tool_calls or []:
                    slot = calls.setdefault(tc.index, {"id": tc.id, "type": "function",
                                                       "function": {"name": "", "arguments": ""}})
                    slot["function"]["name"] += tc.function.name or ""
                    slot["function"]["arguments"] += tc.function.arguments or ""
            msg: dict[str, Any] = {"role": "assistant", "content": content or None}
            if calls:
                msg["tool_calls"] = list(calls.values())
            if reasoning:
                msg["reasoning_content"] = reasoning
        else:
            r = await client.chat.completions.create(model="m", messages=messages, tools=[BASH_TOOL])
            msg = r.choices[0].message.model_dump(exclude_none=True)  # as openai-based harnesses echo it
        outs.append(msg.get("content") or "")
        messages.append(msg)
        for tc in msg.get("tool_calls") or []:
            messages.append({"role": "tool", "tool_call_id": tc["id"], "content": "contents of a.txt"})
    return outs


async def responses_session(base_url: str, stream: bool) -> list[str]:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0)
    items: list[Any] = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Read a.txt."}]}]
    outs = []
    for _ in range(3):
        if stream:
            async with client.responses.stream(model="m", instructions=SYSTEM, input=items, tools=[RESPONSES_TOOL],
                                               store=False) as s:
                async for _ev in s:
                    pass
                resp = await s.get_final_response()
        else:
            resp = await client.responses.create(model="m", instructions=SYSTEM, input=items, tools=[RESPONSES_TOOL],
                                                 store=False)
        outs.append(resp.output_text)
        for item in resp.output:  # as Codex echoes its history: the output items, then the tool results
            items.append(item.model_dump(exclude_none=True))
            if item.type == "function_call":
                items.append({"type": "function_call_output", "call_id": item.call_id, "output": "contents of a.txt"})
    return outs


async def anthropic_session(base_url: str, stream: bool) -> list[str]:
    client = anthropic.AsyncAnthropic(base_url=base_url, api_key="x", max_retries=0)
    messages: list[Any] = [{"role": "user", "content": "Read a.txt."}]
    outs = []
    for _ in range(3):
        kw = {"model": "m", "max_tokens": 200, "system": [{"type": "text", "text": SYSTEM}], "messages": messages,
              "tools": [ANTHROPIC_TOOL]}
        if stream:
            async with client.messages.stream(**kw) as s:
                async for _ev in s:
                    pass
                msg = await s.get_final_message()
        else:
            msg = await client.messages.create(**kw)
        blocks = [b.model_dump(exclude_none=True) for b in msg.content]
        for b in blocks:
            b.pop("parsed_output", None)
        outs.append("".join(b.get("text", "") for b in blocks))
        messages.append({"role": "assistant", "content": blocks})  # as Claude Code echoes its history
        results = [{"type": "tool_result", "tool_use_id": b["id"], "content": "contents of a.txt"}
                   for b in blocks if b["type"] == "tool_use"]
        if results:
            messages.append({"role": "user", "content": results})
    return outs


SESSIONS = {"chat": chat_session, "responses": responses_session, "anthropic": anthropic_session}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("dialect", sorted(SESSIONS))
def test_official_clients_drive_multi_turn_sessions_that_splice_exactly(tokenizer: Any, make_proxy: Any,
                                                                        dialect: str, stream: bool) -> None:
    h = make_proxy(ScriptedEngine(tokenizer, replies()))
    sid = h.proxy.open_session()
    base = h.proxy.base_url(sid) if dialect != "anthropic" else f"{root_url(h)}/s/{sid}"
    outs = h.run(SESSIONS[dialect](base, stream))
    assert outs == ["Let me look.", "", "All done."]
    calls = h.proxy.calls(sid)
    assert_exact_chain(calls)
    assert all(c.dialect == {"chat": "openai"}.get(dialect, dialect) and c.delivered for c in calls)
    assert [tuple(p) for p in h.engine.prompts] == [c.prompt_ids for c in calls]
    traj = reconstruct(calls, task_id="t", trajectory_id=sid)[0]
    assert [s.observation for s in traj.steps] == ["Read a.txt.", "contents of a.txt", "contents of a.txt"]
    assert traj.delivered_fraction == 1.0


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("dialect", sorted(SESSIONS))
def test_reasoning_is_kept_and_echoed_in_each_dialects_form(tokenizer: Any, make_proxy: Any, dialect: str,
                                                            stream: bool) -> None:
    import copy

    tok = copy.deepcopy(tokenizer)
    tok.chat_template = REASONING
    h = make_proxy(ScriptedEngine(tok, replies(think=True)))
    assert h.proxy.renderer.policy.reasoning  # this template renders it: the echo must carry it
    sid = h.proxy.open_session()
    base = h.proxy.base_url(sid) if dialect != "anthropic" else f"{root_url(h)}/s/{sid}"
    h.run(SESSIONS[dialect](base, stream))
    calls = h.proxy.calls(sid)
    assert calls[0].response["reasoning_content"] == "I should look first."
    assert_exact_chain(calls)


def test_reasoning_the_template_never_renders_does_not_break_the_chain(tokenizer: Any, make_proxy: Any) -> None:
    h = make_proxy(ScriptedEngine(tokenizer, replies(think=True)))
    assert not h.proxy.renderer.policy.reasoning
    sid = h.proxy.open_session()
    client_calls = []

    async def session() -> None:
        async with httpx.AsyncClient() as c:
            messages: list[Any] = [{"role": "user", "content": "Read a.txt."}]
            for i in range(2):
                r = await c.post(h.proxy.base_url(sid) + "/chat/completions",
                                 json={"messages": messages, "tools": [BASH_TOOL]})
                msg = r.json()["choices"][0]["message"]
                client_calls.append(msg)
                msg["reasoning_content"] = "rewritten by the harness" if i == 0 else None  # edited, or dropped
                messages += [msg, {"role": "tool", "tool_call_id": msg["tool_calls"][0]["id"], "content": "x"}]
            await c.post(h.proxy.base_url(sid) + "/chat/completions", json={"messages": messages, "tools": [BASH_TOOL]})

    h.run(session())
    assert_exact_chain(h.proxy.calls(sid))  # was assistant_edited


def test_reordered_tool_call_arguments_still_extend_their_parent(tokenizer: Any, make_proxy: Any) -> None:
    reply = '<tool_call>\n{"name": "bash", "arguments": {"command": "ls", "timeout": 5}}\n</tool_call>'
    h = make_proxy(ScriptedEngine(tokenizer, [reply, "done"]))
    sid = h.proxy.open_session()

    async def session() -> None:
        async with httpx.AsyncClient() as c:
            messages: list[Any] = [{"role": "user", "content": "go"}]
            r = await c.post(h.proxy.base_url(sid) + "/chat/completions",
                             json={"messages": messages, "tools": [BASH_TOOL]})
            msg = r.json()["choices"][0]["message"]
            msg["tool_calls"][0]["function"]["arguments"] = '{"timeout": 5, "command": "ls"}'  # re-serialised
            messages += [msg, {"role": "tool", "tool_call_id": msg["tool_calls"][0]["id"], "content": "x"}]
            await c.post(h.proxy.base_url(sid) + "/chat/completions", json={"messages": messages, "tools": [BASH_TOOL]})

    h.run(session())
    calls = h.proxy.calls(sid)
    assert calls[1].break_reason is None and calls[1].parent_call_id == calls[0].call_id  # was template_not_prefix


def test_count_tokens_counts_what_a_call_would_be_sent(tokenizer: Any, make_proxy: Any) -> None:
    h = make_proxy(ScriptedEngine(tokenizer, ["ok"]))
    sid = h.proxy.open_session()

    async def both() -> tuple[int, int]:
        client = anthropic.AsyncAnthropic(base_url=f"{root_url(h)}/s/{sid}", api_key="x", max_retries=0)
        kw: dict[str, Any] = {"model": "m", "system": SYSTEM, "messages": [{"role": "user", "content": "hi"}],
                              "tools": [ANTHROPIC_TOOL]}
        counted = (await client.messages.count_tokens(**kw)).input_tokens
        served = await client.messages.create(max_tokens=5, **kw)
        return counted, served.usage.input_tokens

    counted, served = h.run(both())
    assert counted == served == len(h.proxy.calls(sid)[0].prompt_ids)


def test_each_dialect_reports_context_overflow_the_way_its_clients_recognise(tokenizer: Any, make_proxy: Any) -> None:
    h = make_proxy(ScriptedEngine(tokenizer, lambda ids, n: "x"))
    h.proxy.max_model_len = 64
    long = "word " * 200
    sid = h.proxy.open_session()

    async def main() -> None:
        oc = openai.AsyncOpenAI(base_url=h.proxy.base_url(sid), api_key="x", max_retries=0)
        with pytest.raises(openai.BadRequestError) as chat_err:
            await oc.chat.completions.create(model="m", messages=[{"role": "user", "content": long}])
        assert chat_err.value.code == "context_length_exceeded"
        with pytest.raises(openai.BadRequestError) as resp_err:
            await oc.responses.create(model="m", input=long)
        assert resp_err.value.code == "context_length_exceeded"
        # Streamed Responses: a response.failed event in a 200 stream (what Codex compacts on).
        async with httpx.AsyncClient() as c:
            r = await c.post(h.proxy.base_url(sid) + "/responses", json={"input": long, "stream": True})
        assert r.status_code == 200 and "response.failed" in r.text and "context_length_exceeded" in r.text
        ac = anthropic.AsyncAnthropic(base_url=f"{root_url(h)}/s/{sid}", api_key="x", max_retries=0)
        with pytest.raises(anthropic.BadRequestError) as anth_err:
            await ac.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": long}])
        assert anth_err.value.status_code == 400
        assert anth_err.value.body["error"]["message"].startswith("prompt is too long: ")  # type: ignore[index]
        assert anth_err.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]

    h.run(main())
    assert h.proxy.context_overflow(sid) and h.proxy.calls(sid) == []
