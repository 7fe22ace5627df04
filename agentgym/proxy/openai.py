"""The OpenAI Chat Completions dialect (``POST /v1/chat/completions``), streamed and not.

Reasoning the model wrote in ``<think>`` comes back as the message's ``reasoning_content``
(and ``delta.reasoning_content`` when streamed), which is also what the proxy reads when a
harness echoes it. Streamed tool calls arrive whole, after the content, once parsed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from agentgym.errors import ProxyError
from agentgym.proxy import dialect as d
from agentgym.proxy.dialect import Dialect, StreamWriter, bad, sse
from agentgym.proxy.pipeline import Request, Served
from agentgym.tokens.messages import ROLES, Message, content_text
from agentgym.types import SamplingParams

__all__ = ["SUPPORTED_PARAMS", "ChatCompletions"]

SUPPORTED_PARAMS = frozenset({
    "model", "messages", "tools", "tool_choice", "temperature", "top_p", "max_tokens",
    "max_completion_tokens", "stop", "seed", "n", "stream", "stream_options", "user",
    "parallel_tool_calls", "logprobs", "top_logprobs", "frequency_penalty", "presence_penalty",
    "metadata", "store", "response_format",
})
"""Fields the proxy accepts. Some accept only their neutral value (``n: 1``,
``frequency_penalty: 0``...); anything else is a 400 naming the field."""

_MSG_STRINGS = ("tool_call_id", "name", "reasoning_content", "refusal")


class ChatCompletions(Dialect):
    name = "openai"
    conv_key = "messages"

    def parse(self, body: Any, default_max_tokens: int) -> Request:
        if not isinstance(body, dict):
            raise bad("the request body must be a JSON object")
        unknown = sorted(set(body) - SUPPORTED_PARAMS)
        if unknown:
            raise bad(f"unsupported parameter(s): {', '.join(unknown)[:300]}. agentgym's proxy supports: "
                      f"{', '.join(sorted(SUPPORTED_PARAMS))}", unknown[0][:64], code="unsupported_parameter")
        messages = body.get("messages")
        if messages is None:
            raise bad("missing required field 'messages'", "messages")
        if not isinstance(messages, list) or not messages:
            raise bad("'messages' must be a non-empty array of message objects", "messages")
        if body.get("n", 1) != 1:
            raise bad("only n=1 is supported: send n separate requests (each is recorded as its own call)",
                      "n", code="unsupported_value")
        for key in ("frequency_penalty", "presence_penalty"):
            if body.get(key) not in (None, 0, 0.0) or isinstance(body.get(key), bool):
                raise bad(f"'{key}' is not supported by agentgym's engines; omit it or send 0", key,
                          code="unsupported_value")
        if body.get("top_logprobs") not in (None, 0) or isinstance(body.get("top_logprobs"), bool):
            raise bad("'top_logprobs' is not supported; 'logprobs: true' returns the sampled tokens' logprobs",
                      "top_logprobs", code="unsupported_value")
        rf = body.get("response_format")
        if rf is not None and (not isinstance(rf, dict) or rf.get("type") != "text"):
            raise bad("only response_format {'type': 'text'} is supported", "response_format",
                      code="unsupported_value")
        tools = body.get("tools")
        if tools is not None:
            if not isinstance(tools, list) or not all(
                    isinstance(t, dict) and t.get("type") == "function" and isinstance(t.get("function"), dict)
                    and isinstance(t["function"].get("name"), str) for t in tools):
                raise bad("'tools' must be an array of {'type': 'function', 'function': {'name': ...}}", "tools")
            tools = tools or None
        tool_choice = body.get("tool_choice", "auto")
        if tool_choice not in ("auto", "none", None):
            raise bad("only tool_choice 'auto' and 'none' are supported (the policy decides when to call tools)",
                      "tool_choice", code="unsupported_value")
        if tool_choice == "none":
            tools = None
        max_tokens = d.integer(body, "max_completion_tokens", 1, 2**31 - 1)
        if max_tokens is None:
            max_tokens = d.integer(body, "max_tokens", 1, 2**31 - 1)
        opts = body.get("stream_options")
        if opts is not None and not isinstance(opts, dict):
            raise bad("'stream_options' must be an object", "stream_options")
        opts = opts or {}
        for key in ("parallel_tool_calls", "store", "logprobs"):
            d.boolean(body, key)
        d.string(body, "user")
        if body.get("metadata") is not None and not isinstance(body.get("metadata"), dict):
            raise bad("'metadata' must be an object", "metadata")
        sampling = SamplingParams(
            temperature=d.number(body, "temperature", 0.0, 2.0, 1.0),
            top_p=d.number(body, "top_p", 1e-6, 1.0, 1.0),
            max_tokens=max_tokens or default_max_tokens, stop=d.stops(body, "stop"), seed=d.seed(body))
        return Request(sampling=sampling, raw=body, conv_key="messages", tools=tools,
                       tool_choice=tool_choice or "auto", stream=d.boolean(body, "stream"),
                       model=d.string(body, "model"),
                       options={"include_usage": d.boolean(opts, "include_usage"),
                                "logprobs": d.boolean(body, "logprobs")})

    def convert(self, items: list[Any], offset: int) -> list[Message]:
        for i, m in enumerate(items, offset):
            check_message(m, i)
        return items

    def reply(self, served: Served, req: Request) -> dict[str, Any]:
        logprobs = None
        if req.options.get("logprobs"):
            logprobs = {"content": [{"token": t, "logprob": p, "top_logprobs": []}
                                    for t, p in zip(served.tokens, served.logprobs, strict=True)]}
        return {
            "id": f"chatcmpl-{served.call_id}", "object": "chat.completion", "created": int(time.time()),
            "model": served.model,
            "choices": [{"index": 0, "message": served.message, "finish_reason": served.finish,
                         "logprobs": logprobs}],
            "usage": usage(served),
        }

    def stream(self, served_id: str, req: Request, prompt_tokens: int) -> StreamWriter:
        return _ChatStream(served_id, req.model, bool(req.options.get("include_usage")))

    def error_body(self, err: ProxyError) -> dict[str, Any]:
        return error_body(err)

    def context_error(self, tokens: int, limit: int) -> ProxyError:
        # OpenAI's wording: clients (litellm, hence mini-swe-agent) stop instead of retrying on it.
        return ProxyError(f"This model's maximum context length is {limit} tokens. However, your messages "
                          f"resulted in {tokens} tokens. Please reduce the length of the messages.",
                          code="context_length_exceeded", param="messages")


def check_message(m: Any, i: int) -> None:
    """A chat message the templates can take; a 400 naming the message otherwise."""
    where = f"messages[{i}]"
    if not isinstance(m, dict):
        raise bad(f"{where} must be an object", where)
    if m.get("role") not in ROLES:
        raise bad(f"{where}.role must be one of {', '.join(ROLES)}, got {str(m.get('role'))[:40]!r}", f"{where}.role")
    content_text(m.get("content"))  # raises on unsupported parts
    for key in _MSG_STRINGS:
        if m.get(key) is not None and not isinstance(m[key], str):
            raise bad(f"{where}.{key} must be a string", f"{where}.{key}")
    calls = m.get("tool_calls")
    if calls is not None and not isinstance(calls, list):
        raise bad(f"{where}.tool_calls must be an array", f"{where}.tool_calls")
    for j, tc in enumerate(calls or ()):
        fn = tc.get("function") if isinstance(tc, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise bad(f"{where}.tool_calls[{j}] must have a function with a string name", f"{where}.tool_calls")
        if fn.get("arguments") is not None and not isinstance(fn["arguments"], (str, dict)):
            raise bad(f"{where}.tool_calls[{j}].function.arguments must be a JSON string", f"{where}.tool_calls")


def usage(served: Served) -> dict[str, int]:
    return {"prompt_tokens": served.prompt_tokens, "completion_tokens": served.completion_tokens,
            "total_tokens": served.prompt_tokens + served.completion_tokens}


def error_body(err: ProxyError) -> dict[str, Any]:
    etype = "invalid_request_error" if err.status < 500 else "server_error"
    if err.status == 404:
        etype = "not_found_error"
    elif err.status == 429:
        etype = "rate_limit_error"
    return {"error": {"message": err.message, "type": etype, "param": err.param, "code": err.code}}


class _ChatStream(StreamWriter):
    def __init__(self, call_id: str, model: str, include_usage: bool) -> None:
        self.id = f"chatcmpl-{call_id}"
        self.model = model
        self.created = int(time.time())
        self.include_usage = include_usage

    def _chunk(self, delta: Mapping[str, Any], finish: str | None = None) -> bytes:
        return sse({"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    def start(self) -> bytes:
        return self._chunk({"role": "assistant", "content": ""})

    def delta(self, kind: str, text: str) -> bytes:
        return self._chunk({"reasoning_content" if kind == "reasoning" else "content": text})

    def finish(self, served: Served) -> bytes:
        self.model = served.model
        out = []
        for i, tc in enumerate(served.message.get("tool_calls") or []):
            out.append(self._chunk({"tool_calls": [{"index": i, "id": tc["id"], "type": "function", "function": {
                "name": tc["function"]["name"], "arguments": ""}}]}))
            out.append(self._chunk({"tool_calls": [{"index": i, "function": {
                "arguments": tc["function"]["arguments"]}}]}))
        out.append(self._chunk({}, served.finish))
        if self.include_usage:
            out.append(sse({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                            "model": self.model, "choices": [], "usage": usage(served)}))
        out.append(b"data: [DONE]\n\n")
        return b"".join(out)

    def error(self, err: ProxyError) -> bytes:
        return sse(error_body(err)) + b"data: [DONE]\n\n"
