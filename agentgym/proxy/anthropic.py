"""The Anthropic Messages dialect (``POST /v1/messages`` and ``/v1/messages/count_tokens``, what
Claude Code speaks), streamed and not.

Content blocks map to canonical messages: ``system`` (a string or text blocks, joined by a
blank line) is the system message; in a user turn each ``tool_result`` block becomes a tool
result and runs of ``text`` blocks a user message, in order; an assistant turn's ``thinking``
blocks become its ``reasoning_content``, its ``text`` blocks its content and its ``tool_use``
blocks its tool calls. ``cache_control`` is a caching hint with no effect on the tokens and is
ignored. A reply is content blocks in the same order: ``thinking`` (signed ``agentgym``: there
is nothing to verify), ``text`` (never empty), then ``tool_use``; ``stop_reason`` is
``end_turn``, ``max_tokens``, ``stop_sequence`` or ``tool_use``.

Context overflow is the 400 ``invalid_request_error`` "prompt is too long: N tokens > M maximum"
that Claude Code compacts on. ``thinking`` (its budget) and ``output_config`` (effort) are
accepted and recorded but change nothing (the policy thinks as it samples); ``top_k`` is
refused. ``role: system`` turns inside ``messages`` (Claude Code sends its environment notes
so) become system messages, and tools with ``defer_loading: true`` are left out of the prompt
(they reach the model only through a tool search).
"""

from __future__ import annotations

from typing import Any

from agentgym.errors import ProxyError
from agentgym.proxy import dialect as d
from agentgym.proxy.dialect import Dialect, StreamWriter, bad, sse
from agentgym.proxy.pipeline import Request, Served
from agentgym.tokens.messages import Message
from agentgym.types import SamplingParams

__all__ = ["SUPPORTED_PARAMS", "Messages"]

SUPPORTED_PARAMS = frozenset({
    "model", "messages", "system", "max_tokens", "metadata", "stop_sequences", "stream", "temperature", "top_p",
    "tools", "tool_choice", "thinking", "service_tier", "context_management", "output_config",
})
SIGNATURE = "agentgym"
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 529: "overloaded_error"}
_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


class Messages(Dialect):
    name = "anthropic"
    conv_key = "messages"

    def parse(self, body: Any, default_max_tokens: int, counting: bool = False) -> Request:
        if not isinstance(body, dict):
            raise bad("the request body must be a JSON object")
        unknown = sorted(set(body) - SUPPORTED_PARAMS)
        if unknown:
            raise bad(f"{unknown[0][:64]}: Extra inputs are not permitted (agentgym's proxy supports: "
                      f"{', '.join(sorted(SUPPORTED_PARAMS))})", unknown[0][:64], code="unsupported_parameter")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise bad("messages: a non-empty array of messages is required", "messages")
        max_tokens = d.integer(body, "max_tokens", 1, 2**31 - 1)
        if max_tokens is None and not counting:
            raise bad("max_tokens: Field required", "max_tokens")
        preamble: list[Message] = []
        system = body.get("system")
        if system is not None:
            text = _blocks_text(system, "system")
            if text:
                preamble.append({"role": "system", "content": text})
        tools = _tools(body.get("tools"))
        choice = body.get("tool_choice")
        if choice is not None:
            kind = choice.get("type") if isinstance(choice, dict) else None
            if kind not in ("auto", "none"):
                raise bad("tool_choice: only {'type': 'auto'} and {'type': 'none'} are supported (the policy "
                          "decides when to call tools)", "tool_choice", code="unsupported_value")
            if kind == "none":
                tools = None
        thinking = body.get("thinking")
        if thinking is not None and not (isinstance(thinking, dict) and isinstance(thinking.get("type"), str)):
            raise bad("thinking: must be an object with a 'type'", "thinking")
        for key in ("metadata", "context_management", "output_config"):
            if body.get(key) is not None and not isinstance(body[key], dict):
                raise bad(f"{key}: must be an object", key)
        d.string(body, "service_tier")
        sampling = SamplingParams(
            temperature=d.number(body, "temperature", 0.0, 1.0, 1.0),
            top_p=d.number(body, "top_p", 1e-6, 1.0, 1.0),
            max_tokens=max_tokens or default_max_tokens, stop=d.stops(body, "stop_sequences"))
        return Request(sampling=sampling, raw=body, conv_key="messages", preamble=preamble, tools=tools,
                       tool_choice="auto", stream=d.boolean(body, "stream"), model=d.string(body, "model"))

    def convert(self, items: list[Any], offset: int) -> list[Message]:
        out: list[Message] = []
        for i, m in enumerate(items, offset):
            where = f"messages.{i}"
            if not isinstance(m, dict) or m.get("role") not in ("user", "assistant", "system"):
                raise bad(f"{where}: must be an object with role 'user', 'assistant' or 'system'", where)
            content = m.get("content")
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
            if not isinstance(blocks, list):
                raise bad(f"{where}.content: must be a string or an array of content blocks", where)
            if m["role"] == "system":  # a system turn inside the conversation (Claude Code sends one)
                out.append({"role": "system", "content": _blocks_text(m.get("content"), where)})
            elif m["role"] == "assistant":
                out.append(_assistant(blocks, where))
            else:
                out.extend(_user(blocks, where))
        return out

    def reply(self, served: Served, req: Request) -> dict[str, Any]:
        return {"id": f"msg_{served.call_id}", "type": "message", "role": "assistant", "model": served.model,
                "content": _blocks(served), "stop_reason": _stop_reason(served),
                "stop_sequence": served.stop_sequence, "usage": _usage(served.prompt_tokens, served.completion_tokens)}

    def stream(self, served_id: str, req: Request, prompt_tokens: int) -> StreamWriter:
        return _MessagesStream(served_id, req.model, prompt_tokens)

    def error_body(self, err: ProxyError) -> dict[str, Any]:
        return {"type": "error", "error": {"type": _ERROR_TYPES.get(err.status, "api_error"), "message": err.message}}

    def context_error(self, tokens: int, limit: int) -> ProxyError:
        return ProxyError(f"prompt is too long: {tokens} tokens > {limit} maximum", code="context_length_exceeded",
                          param="messages")


def _blocks_text(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(b, dict) and b.get("type") == "text"
                                       and isinstance(b.get("text"), str) for b in value):
        return "\n\n".join(b["text"] for b in value)
    raise bad(f"{where}: must be a string or an array of text blocks", where, code="unsupported_content")


def _user(blocks: list[Any], where: str) -> list[Message]:
    out: list[Message] = []
    text: list[str] = []
    for j, b in enumerate(blocks):
        kind = b.get("type") if isinstance(b, dict) else None
        if kind == "text" and isinstance(b.get("text"), str):
            text.append(b["text"])
        elif kind == "tool_result" and isinstance(b.get("tool_use_id"), str):
            if text:
                out.append({"role": "user", "content": "\n\n".join(text)})
                text = []
            body = b.get("content")
            result: Message = {"role": "tool", "tool_call_id": b["tool_use_id"],
                               "content": _blocks_text(body, f"{where}.content.{j}.content") if body else ""}
            if b.get("is_error"):
                result["is_error"] = True
            out.append(result)
        else:
            raise bad(f"{where}.content.{j}: unsupported content block {str(kind)[:40]!r} in a user turn (this "
                      "model takes text and tool results)", where, code="unsupported_content")
    if text or not out:
        out.append({"role": "user", "content": "\n\n".join(text)})
    return out


def _assistant(blocks: list[Any], where: str) -> Message:
    msg: Message = {"role": "assistant", "content": None}
    text: list[str] = []
    thinking: list[str] = []
    for j, b in enumerate(blocks):
        kind = b.get("type") if isinstance(b, dict) else None
        if kind == "text" and isinstance(b.get("text"), str):
            text.append(b["text"])
        elif kind == "thinking" and isinstance(b.get("thinking"), str):
            thinking.append(b["thinking"])
        elif kind == "redacted_thinking":
            continue  # opaque to us, and never produced by this proxy
        elif kind == "tool_use" and isinstance(b.get("id"), str) and isinstance(b.get("name"), str) \
                and isinstance(b.get("input"), dict):
            msg.setdefault("tool_calls", []).append(
                {"id": b["id"], "type": "function", "function": {"name": b["name"], "arguments": b["input"]}})
        else:
            raise bad(f"{where}.content.{j}: unsupported content block {str(kind)[:40]!r} in an assistant turn",
                      where, code="unsupported_content")
    if text:
        msg["content"] = "".join(text)
    if thinking:
        msg["reasoning_content"] = "".join(thinking)
    return msg


def _tools(tools: Any) -> list[dict[str, Any]] | None:
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise bad("tools: must be an array", "tools")
    out = []
    for i, t in enumerate(tools):
        if not isinstance(t, dict) or t.get("type") not in (None, "custom") or "input_schema" not in t:
            kind = t.get("type") if isinstance(t, dict) else type(t).__name__
            raise bad(f"tools.{i}: only client tools with an input_schema are supported, got {str(kind)[:40]!r}",
                      f"tools.{i}", code="unsupported_value")
        if t.get("defer_loading") is True:
            continue  # not in the model's context until a tool search loads it: not rendered
        out.append(d.function_tool(t.get("name"), t.get("description"), t.get("input_schema"), f"tools.{i}"))
    return out or None


def _stop_reason(served: Served) -> str:
    return "stop_sequence" if served.stop_sequence else _STOP[served.finish]


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"input_tokens": prompt, "output_tokens": completion, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0}


def _tool_use(tc: dict[str, Any]) -> dict[str, Any]:
    import json

    return {"type": "tool_use", "id": tc["id"], "name": tc["function"]["name"],
            "input": json.loads(tc["function"]["arguments"])}


def _blocks(served: Served) -> list[dict[str, Any]]:
    m = served.message
    out: list[dict[str, Any]] = []
    if m.get("reasoning_content") is not None:
        out.append({"type": "thinking", "thinking": m["reasoning_content"], "signature": SIGNATURE})
    if m.get("content"):
        out.append({"type": "text", "text": m["content"]})
    out.extend(_tool_use(tc) for tc in m.get("tool_calls") or [])
    return out


class _MessagesStream(StreamWriter):
    def __init__(self, call_id: str, model: str, prompt_tokens: int) -> None:
        self.id = f"msg_{call_id}"
        self.model = model
        self.prompt_tokens = prompt_tokens
        self.index = -1
        self.open: str | None = None

    def start(self) -> bytes:
        message: dict[str, Any] = {"id": self.id, "type": "message", "role": "assistant", "model": self.model,
                                   "content": [],
                                   "stop_reason": None, "stop_sequence": None, "usage": _usage(self.prompt_tokens, 0)}
        return (sse({"type": "message_start", "message": message}, event="message_start")
                + sse({"type": "ping"}, event="ping"))

    def _close(self) -> bytes:
        if self.open is None:
            return b""
        out = b""
        if self.open == "reasoning":
            out += sse({"type": "content_block_delta", "index": self.index,
                        "delta": {"type": "signature_delta", "signature": SIGNATURE}}, event="content_block_delta")
        self.open = None
        return out + sse({"type": "content_block_stop", "index": self.index}, event="content_block_stop")

    def delta(self, kind: str, text: str) -> bytes:
        out = b""
        if self.open != kind:
            out += self._close()
            self.index += 1
            self.open = kind
            block = {"type": "thinking", "thinking": "", "signature": ""} if kind == "reasoning" else \
                {"type": "text", "text": ""}
            out += sse({"type": "content_block_start", "index": self.index, "content_block": block},
                       event="content_block_start")
        delta = {"type": "thinking_delta", "thinking": text} if kind == "reasoning" else \
            {"type": "text_delta", "text": text}
        return out + sse({"type": "content_block_delta", "index": self.index, "delta": delta},
                         event="content_block_delta")

    def finish(self, served: Served) -> bytes:
        import json

        out = self._close()
        for tc in served.message.get("tool_calls") or []:
            self.index += 1
            block = {"type": "tool_use", "id": tc["id"], "name": tc["function"]["name"], "input": {}}
            out += sse({"type": "content_block_start", "index": self.index, "content_block": block},
                       event="content_block_start")
            args = json.dumps(json.loads(tc["function"]["arguments"]), ensure_ascii=False)
            out += sse({"type": "content_block_delta", "index": self.index,
                        "delta": {"type": "input_json_delta", "partial_json": args}}, event="content_block_delta")
            out += sse({"type": "content_block_stop", "index": self.index}, event="content_block_stop")
        out += sse({"type": "message_delta", "delta": {"stop_reason": _stop_reason(served),
                                                        "stop_sequence": served.stop_sequence},
                    "usage": {"output_tokens": served.completion_tokens}}, event="message_delta")
        return out + sse({"type": "message_stop"}, event="message_stop")

    def error(self, err: ProxyError) -> bytes:
        etype = _ERROR_TYPES.get(err.status, "api_error") if err.status < 500 else "api_error"
        return sse({"type": "error", "error": {"type": etype, "message": err.message}}, event="error")
