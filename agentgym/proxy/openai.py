"""The OpenAI Chat Completions dialect: validate requests into the pipeline's :class:`Request`,
format served calls and errors.

The proxy honours every field it accepts and refuses the rest with a 400 that names the
field: a sampling parameter silently dropped would make the recorded policy differ from the
one the harness thinks it is talking to.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from typing import Any

from agentgym.errors import ProxyError
from agentgym.proxy.pipeline import Request
from agentgym.tokens.messages import ROLES, Message, content_text
from agentgym.types import SamplingParams

SUPPORTED_PARAMS = frozenset({
    "model", "messages", "tools", "tool_choice", "temperature", "top_p", "max_tokens",
    "max_completion_tokens", "stop", "seed", "n", "stream", "stream_options", "user",
    "parallel_tool_calls", "logprobs", "top_logprobs", "frequency_penalty", "presence_penalty",
    "metadata", "store", "response_format",
})
"""Fields the proxy accepts. Some accept only their neutral value (``n: 1``,
``frequency_penalty: 0``...); anything else is a 400 naming the field."""


def _bad(message: str, param: str | None = None, code: str = "invalid_request_error", status: int = 400) -> ProxyError:
    return ProxyError(message, status=status, code=code, param=param)


def _number(body: Mapping[str, Any], key: str, lo: float, hi: float, default: float) -> float:
    v = body.get(key)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _bad(f"'{key}' must be a number, got {json.dumps(v)}", key)
    if not lo <= v <= hi:
        raise _bad(f"'{key}' must be between {lo} and {hi}, got {v}", key)
    return float(v)


def parse_chat_request(body: Any, default_max_tokens: int, max_tokens_cap: int) -> Request:
    """Validate a decoded JSON body; raises :class:`ProxyError` (a 400) naming the bad field."""
    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object")
    unknown = sorted(set(body) - SUPPORTED_PARAMS)
    if unknown:
        raise _bad(f"unsupported parameter(s): {', '.join(unknown)}. agentgym's proxy supports: "
                   f"{', '.join(sorted(SUPPORTED_PARAMS))}", unknown[0], code="unsupported_parameter")
    messages = body.get("messages")
    if messages is None:
        raise _bad("missing required field 'messages'", "messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("'messages' must be a non-empty array of message objects", "messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise _bad(f"messages[{i}] must be an object", f"messages[{i}]")
        if m.get("role") not in ROLES:
            raise _bad(f"messages[{i}].role must be one of {', '.join(ROLES)}, got {m.get('role')!r}",
                       f"messages[{i}].role")
        content_text(m.get("content"))  # raises on unsupported parts
        for j, tc in enumerate(m.get("tool_calls") or []):
            if not isinstance(tc, dict) or not isinstance(tc.get("function"), dict) or "name" not in tc["function"]:
                raise _bad(f"messages[{i}].tool_calls[{j}] must have a function with a name",
                           f"messages[{i}].tool_calls")
    if body.get("n", 1) != 1:
        raise _bad("only n=1 is supported: send n separate requests (each is recorded as its own call)",
                   "n", code="unsupported_value")
    for key in ("frequency_penalty", "presence_penalty"):
        if body.get(key) not in (None, 0, 0.0):
            raise _bad(f"'{key}' is not supported by agentgym's engines; omit it or send 0", key,
                       code="unsupported_value")
    if body.get("top_logprobs") not in (None, 0):
        raise _bad("'top_logprobs' is not supported; 'logprobs: true' returns the sampled tokens' logprobs",
                   "top_logprobs", code="unsupported_value")
    rf = body.get("response_format")
    if rf is not None and (not isinstance(rf, dict) or rf.get("type") != "text"):
        raise _bad("only response_format {'type': 'text'} is supported", "response_format", code="unsupported_value")
    tools = body.get("tools")
    if tools is not None and (not isinstance(tools, list) or not all(
            isinstance(t, dict) and t.get("type") == "function" and isinstance(t.get("function"), dict)
            and isinstance(t["function"].get("name"), str) for t in tools)):
        raise _bad("'tools' must be an array of {'type': 'function', 'function': {'name': ...}}", "tools")
    tool_choice = body.get("tool_choice", "auto")
    if tool_choice not in ("auto", "none", None):
        raise _bad("only tool_choice 'auto' and 'none' are supported (the policy decides when to call tools)",
                   "tool_choice", code="unsupported_value")
    if tool_choice == "none":
        tools = None
    stop = body.get("stop")
    if stop is None:
        stops: tuple[str, ...] = ()
    elif isinstance(stop, str):
        stops = (stop,)
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop) and len(stop) <= 16:
        stops = tuple(stop)
    else:
        raise _bad("'stop' must be a string or an array of up to 16 strings", "stop")
    max_tokens_raw = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens_raw is None:
        max_tokens = default_max_tokens
    elif isinstance(max_tokens_raw, bool) or not isinstance(max_tokens_raw, int) or max_tokens_raw < 1:
        raise _bad("'max_tokens' must be a positive integer", "max_tokens")
    else:
        max_tokens = min(max_tokens_raw, max_tokens_cap)
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise _bad("'seed' must be an integer", "seed")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad("'stream' must be a boolean", "stream")
    opts = body.get("stream_options") or {}
    sampling = SamplingParams(
        temperature=_number(body, "temperature", 0.0, 2.0, 1.0),
        top_p=_number(body, "top_p", 1e-6, 1.0, 1.0),
        max_tokens=max_tokens, stop=stops, seed=seed)
    return Request(messages=messages, sampling=sampling, tools=tools, tool_choice=tool_choice or "auto",
                       stream=stream, include_usage=bool(opts.get("include_usage")),
                       model=str(body.get("model", "")), logprobs=bool(body.get("logprobs")), raw=body)


def error_body(err: ProxyError) -> dict[str, Any]:
    etype = "invalid_request_error" if err.status < 500 else "server_error"
    if err.status == 404:
        etype = "not_found_error"
    return {"error": {"message": err.message, "type": etype, "param": err.param, "code": err.code}}


def completion_body(call_id: str, model: str, message: Message, reason: str, prompt_tokens: int,
                    completion_tokens: int, logprobs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{call_id}", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": reason,
                     "logprobs": {"content": logprobs} if logprobs is not None else None}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def stream_chunks(call_id: str, model: str, message: Message, reason: str, pieces: list[str],
                  usage: dict[str, int] | None) -> Iterator[dict[str, Any]]:
    """SSE chunk objects for a finished completion: role, content pieces, tool calls, finish."""
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": f"chatcmpl-{call_id}", "object": "chat.completion.chunk", "created": created,
                "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    yield chunk({"role": "assistant", "content": ""})
    if message.get("content"):
        for p in pieces:
            if p:
                yield chunk({"content": p})
    for i, tc in enumerate(message.get("tool_calls") or []):
        yield chunk({"tool_calls": [{"index": i, "id": tc["id"], "type": "function",
                                     "function": {"name": tc["function"]["name"], "arguments": ""}}]})
        yield chunk({"tool_calls": [{"index": i, "function": {"arguments": tc["function"]["arguments"]}}]})
    yield chunk({}, reason)
    if usage is not None:
        yield {"id": f"chatcmpl-{call_id}", "object": "chat.completion.chunk", "created": created,
               "model": model, "choices": [], "usage": usage}
