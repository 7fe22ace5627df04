"""The OpenAI Responses dialect (``POST /v1/responses``, what Codex CLI speaks), streamed and not.

Stateless: every request carries its whole conversation (``store: false``,
``previous_response_id`` unsupported). Input items map to canonical messages: ``message``
items by role (``developer`` becomes ``system``), ``function_call`` items join the assistant
message before them, ``function_call_output`` items become tool results, and a ``reasoning``
item becomes the next assistant message's ``reasoning_content``. A reply is output items in the
same order: ``reasoning`` (its text in ``content`` and in ``encrypted_content``, so it round-trips
whichever a client echoes), ``message``, then one ``function_call`` per tool call.

A context overflow of a streamed request is a ``response.failed`` event with code
``context_length_exceeded`` in a 200 stream: that is the form Codex recognises (it compacts
its history and goes on); unstreamed, it is a 400 with the same code.
"""

from __future__ import annotations

import time
from typing import Any

from agentgym.errors import ProxyError
from agentgym.proxy import dialect as d
from agentgym.proxy.dialect import Dialect, StreamWriter, bad, sse
from agentgym.proxy.openai import error_body
from agentgym.proxy.pipeline import Request, Served
from agentgym.tokens.messages import Message, content_text
from agentgym.types import SamplingParams

__all__ = ["SUPPORTED_PARAMS", "Responses"]

SUPPORTED_PARAMS = frozenset({
    "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "temperature", "top_p",
    "max_output_tokens", "stream", "store", "reasoning", "include", "metadata", "user", "prompt_cache_key",
    "text", "truncation", "service_tier", "previous_response_id", "stream_options", "seed", "client_metadata",
})
SERVER_TOOLS = frozenset({"web_search", "web_search_preview", "file_search", "code_interpreter", "image_generation",
                          "computer_use_preview", "mcp"})
"""Tools the API provider itself runs: there is nothing here to run them, so they are not offered
to the policy (the request, journaled whole, still shows they were asked for)."""
_ASSISTANT_SIDE = ("reasoning", "function_call")


class Responses(Dialect):
    name = "responses"
    conv_key = "input"

    def parse(self, body: Any, default_max_tokens: int) -> Request:
        if not isinstance(body, dict):
            raise bad("the request body must be a JSON object")
        unknown = sorted(set(body) - SUPPORTED_PARAMS)
        if unknown:
            raise bad(f"unsupported parameter(s): {', '.join(unknown)[:300]}. agentgym's proxy supports: "
                      f"{', '.join(sorted(SUPPORTED_PARAMS))}", unknown[0][:64], code="unsupported_parameter")
        if body.get("previous_response_id") is not None:
            raise bad("previous_response_id is not supported: send the whole conversation in 'input' "
                      "(store: false)", "previous_response_id", code="unsupported_value")
        items = body.get("input")
        if isinstance(items, str):
            body = {**body, "input": [{"type": "message", "role": "user", "content": items}]}
        elif not isinstance(items, list) or not items:
            raise bad("'input' must be a string or a non-empty array of items", "input")
        preamble: list[Message] = []
        instructions = d.string(body, "instructions")
        if instructions:
            preamble.append({"role": "system", "content": instructions})
        tools = _tools(body.get("tools"))
        choice = body.get("tool_choice", "auto")
        if choice not in ("auto", "none", None):
            raise bad("only tool_choice 'auto' and 'none' are supported", "tool_choice", code="unsupported_value")
        if choice == "none":
            tools = None
        text = body.get("text")
        fmt = text.get("format") if isinstance(text, dict) else None
        if text is not None and (not isinstance(text, dict) or (fmt is not None and (
                not isinstance(fmt, dict) or fmt.get("type") != "text"))):
            raise bad("only text output is supported ('text': {'format': {'type': 'text'}})", "text",
                      code="unsupported_value")
        for key in ("reasoning", "metadata", "stream_options", "client_metadata"):
            if body.get(key) is not None and not isinstance(body[key], dict):
                raise bad(f"'{key}' must be an object", key)
        include = body.get("include")
        if include is not None and (not isinstance(include, list) or not all(isinstance(i, str) for i in include)):
            raise bad("'include' must be an array of strings", "include")
        for key in ("parallel_tool_calls", "store"):
            d.boolean(body, key)
        for key in ("user", "prompt_cache_key", "truncation", "service_tier"):
            d.string(body, key)
        sampling = SamplingParams(
            temperature=d.number(body, "temperature", 0.0, 2.0, 1.0),
            top_p=d.number(body, "top_p", 1e-6, 1.0, 1.0),
            max_tokens=d.integer(body, "max_output_tokens", 1, 2**31 - 1) or default_max_tokens,
            seed=d.seed(body))
        namespaces = {t["function"]["name"]: t["namespace"] for t in tools or [] if "namespace" in t}
        for t in tools or []:
            t.pop("namespace", None)
        return Request(sampling=sampling, raw=body, conv_key="input", preamble=preamble, tools=tools,
                       tool_choice=choice or "auto", stream=d.boolean(body, "stream"),
                       model=d.string(body, "model"), options={"namespaces": namespaces})

    def convert(self, items: list[Any], offset: int) -> list[Message]:
        out: list[Message] = []
        current: Message | None = None  # the assistant message being assembled
        for i, item in enumerate(items, offset):
            where = f"input[{i}]"
            if not isinstance(item, dict):
                raise bad(f"{where} must be an object", where)
            kind = item.get("type", "message")
            role = item.get("role")
            if kind == "message" and role == "assistant":
                if current is None or current.get("content") or current.get("tool_calls"):
                    current = {"role": "assistant", "content": None}
                    out.append(current)
                current["content"] = (current.get("content") or "") + _text(item.get("content"), where)
            elif kind == "reasoning":
                current = {"role": "assistant", "content": None, "reasoning_content": _reasoning(item, where)}
                out.append(current)
            elif kind == "function_call":
                name, args, cid = item.get("name"), item.get("arguments", ""), item.get("call_id")
                if not isinstance(name, str) or not isinstance(args, str) or not isinstance(cid, str):
                    raise bad(f"{where} needs string 'name', 'arguments' and 'call_id'", where)
                if current is None:
                    current = {"role": "assistant", "content": None}
                    out.append(current)
                current.setdefault("tool_calls", []).append(
                    {"id": cid, "type": "function", "function": {"name": name, "arguments": args}})
            elif kind == "function_call_output":
                cid = item.get("call_id")
                if not isinstance(cid, str):
                    raise bad(f"{where}.call_id must be a string", where)
                out.append({"role": "tool", "tool_call_id": cid, "content": _text(item.get("output"), where)})
                current = None
            elif kind == "message" and role in ("user", "system", "developer"):
                out.append({"role": "system" if role == "developer" else role,
                            "content": _text(item.get("content"), where)})
                current = None
            else:
                raise bad(f"{where}: unsupported input item (type {str(kind)[:40]!r}, role {str(role)[:20]!r})",
                          where, code="unsupported_value")
        return out

    def reply(self, served: Served, req: Request) -> dict[str, Any]:
        return _response(served, req, "completed" if served.finish != "length" else "incomplete")

    def stream(self, served_id: str, req: Request, prompt_tokens: int) -> StreamWriter:
        return _ResponsesStream(served_id, req)

    def error_body(self, err: ProxyError) -> dict[str, Any]:
        return error_body(err)

    def error_in_stream(self, err: ProxyError) -> bool:
        return err.code == "context_length_exceeded"

    def context_error(self, tokens: int, limit: int) -> ProxyError:
        return ProxyError(f"Your input exceeds the context window of this model ({tokens} tokens > {limit}). "
                          "Please adjust your input and try again.", code="context_length_exceeded", param="input")


def _text(content: Any, where: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        return content_text([p for p in content if not (isinstance(p, dict) and p.get("type") == "refusal")])
    raise bad(f"{where}: content must be a string or an array of text parts", where)


def _reasoning(item: dict[str, Any], where: str) -> str:
    for key in ("content", "summary"):
        parts = item.get(key)
        if isinstance(parts, list) and parts:
            if not all(isinstance(p, dict) and isinstance(p.get("text"), str) for p in parts):
                raise bad(f"{where}.{key} must be an array of text parts", where)
            return "".join(p["text"] for p in parts)
    enc = item.get("encrypted_content")
    return enc if isinstance(enc, str) else ""


def _tools(tools: Any) -> list[dict[str, Any]] | None:
    """Function tools, with the functions of a ``namespace`` tool flattened (each remembers its
    namespace, which its calls carry back); provider-run tools are left out."""
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise bad("'tools' must be an array", "tools")
    out = []
    for i, t in enumerate(tools):
        kind = t.get("type") if isinstance(t, dict) else type(t).__name__
        if kind in SERVER_TOOLS:
            continue
        if kind == "namespace" and isinstance(t.get("tools"), list) and isinstance(t.get("name"), str):
            for j, f in enumerate(t["tools"]):
                if not isinstance(f, dict) or f.get("type") != "function":
                    raise bad(f"tools[{i}].tools[{j}]: only function tools are supported", f"tools[{i}]",
                              code="unsupported_value")
                tool = d.function_tool(f.get("name"), f.get("description"), f.get("parameters"), f"tools[{i}]")
                out.append({**tool, "namespace": t["name"]})
            continue
        if kind != "function":
            raise bad(f"tools[{i}]: only function and namespace tools are supported, got {str(kind)[:40]!r}",
                      f"tools[{i}]", code="unsupported_value")
        out.append(d.function_tool(t.get("name"), t.get("description"), t.get("parameters"), f"tools[{i}]"))
    return out or None


def _call_item(served: Served, req: Request, i: int, tc: dict[str, Any], status: str,
               arguments: str | None = None) -> dict[str, Any]:
    fn = tc["function"]
    item = {"type": "function_call", "id": f"fc_{served.call_id}_{i}", "call_id": tc["id"], "name": fn["name"],
            "arguments": fn["arguments"] if arguments is None else arguments, "status": status}
    ns = req.options.get("namespaces", {}).get(fn["name"])
    if ns is not None:
        item["namespace"] = ns
    return item


def _items(served: Served, req: Request) -> list[dict[str, Any]]:
    m, cid = served.message, served.call_id
    out: list[dict[str, Any]] = []
    if m.get("reasoning_content") is not None:
        r = m["reasoning_content"]
        out.append({"type": "reasoning", "id": f"rs_{cid}", "summary": [],
                    "content": [{"type": "reasoning_text", "text": r}], "encrypted_content": r})
    if m.get("content"):
        out.append({"type": "message", "id": f"msg_{cid}", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": m["content"], "annotations": [], "logprobs": []}]})
    for i, tc in enumerate(m.get("tool_calls") or []):
        out.append(_call_item(served, req, i, tc, "completed"))
    return out


def _response(served: Served | None, req: Request, status: str, call_id: str = "",
              error: dict[str, Any] | None = None) -> dict[str, Any]:
    body = req.raw
    out: dict[str, Any] = {
        "id": f"resp_{served.call_id if served else call_id}", "object": "response", "created_at": int(time.time()),
        "status": status, "error": error, "incomplete_details": None, "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"), "model": served.model if served else req.model,
        "output": _items(served, req) if served else [], "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": None, "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
        "store": False, "temperature": req.sampling.temperature, "text": {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools") or [],
        "top_p": req.sampling.top_p, "truncation": "disabled", "usage": None, "metadata": body.get("metadata") or {},
    }
    if served is not None:
        if status == "incomplete":
            out["incomplete_details"] = {"reason": "max_output_tokens"}
        out["usage"] = {"input_tokens": served.prompt_tokens, "input_tokens_details": {"cached_tokens": 0},
                        "output_tokens": served.completion_tokens,
                        "output_tokens_details": {"reasoning_tokens": 0},
                        "total_tokens": served.prompt_tokens + served.completion_tokens}
    return out


class _ResponsesStream(StreamWriter):
    def __init__(self, call_id: str, req: Request) -> None:
        self.call_id = call_id
        self.req = req
        self.seq = 0
        self.index = -1
        self.open: str | None = None  # "reasoning" | "content"
        self.text = ""

    def _ev(self, kind: str, **fields: Any) -> bytes:
        self.seq += 1
        return sse({"type": kind, "sequence_number": self.seq - 1, **fields}, event=kind)

    def start(self) -> bytes:
        resp = _response(None, self.req, "in_progress", call_id=self.call_id)
        return self._ev("response.created", response=resp) + self._ev("response.in_progress", response=resp)

    def _close(self) -> bytes:
        if self.open is None:
            return b""
        kind, text, i = self.open, self.text, self.index
        self.open, self.text = None, ""
        if kind == "reasoning":
            item_id = f"rs_{self.call_id}"
            item = {"type": "reasoning", "id": item_id, "summary": [],
                    "content": [{"type": "reasoning_text", "text": text}], "encrypted_content": text}
            return (self._ev("response.reasoning_text.done", item_id=item_id, output_index=i, content_index=0,
                             text=text) + self._ev("response.output_item.done", output_index=i, item=item))
        item_id = f"msg_{self.call_id}"
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        item = {"type": "message", "id": item_id, "status": "completed", "role": "assistant", "content": [part]}
        return (self._ev("response.output_text.done", item_id=item_id, output_index=i, content_index=0, text=text,
                         logprobs=[])
                + self._ev("response.content_part.done", item_id=item_id, output_index=i, content_index=0, part=part)
                + self._ev("response.output_item.done", output_index=i, item=item))

    def delta(self, kind: str, text: str) -> bytes:
        out = b""
        if self.open != kind:
            out += self._close()
            self.index += 1
            self.open = kind
            if kind == "reasoning":
                item = {"type": "reasoning", "id": f"rs_{self.call_id}", "summary": [], "content": []}
                out += self._ev("response.output_item.added", output_index=self.index, item=item)
            else:
                item_id = f"msg_{self.call_id}"
                item = {"type": "message", "id": item_id, "status": "in_progress", "role": "assistant", "content": []}
                out += self._ev("response.output_item.added", output_index=self.index, item=item)
                out += self._ev("response.content_part.added", item_id=item_id, output_index=self.index,
                                content_index=0, part={"type": "output_text", "text": "", "annotations": []})
        self.text += text
        if kind == "reasoning":
            return out + self._ev("response.reasoning_text.delta", item_id=f"rs_{self.call_id}",
                                  output_index=self.index, content_index=0, delta=text)
        return out + self._ev("response.output_text.delta", item_id=f"msg_{self.call_id}", output_index=self.index,
                              content_index=0, delta=text, logprobs=[])

    def finish(self, served: Served) -> bytes:
        out = self._close()
        for i, tc in enumerate(served.message.get("tool_calls") or []):
            self.index += 1
            item_id = f"fc_{self.call_id}_{i}"
            fn = tc["function"]
            item = _call_item(served, self.req, i, tc, "in_progress", arguments="")
            out += self._ev("response.output_item.added", output_index=self.index, item=item)
            out += self._ev("response.function_call_arguments.delta", item_id=item_id, output_index=self.index,
                            delta=fn["arguments"])
            out += self._ev("response.function_call_arguments.done", item_id=item_id, output_index=self.index,
                            arguments=fn["arguments"])
            out += self._ev("response.output_item.done", output_index=self.index,
                            item={**item, "arguments": fn["arguments"], "status": "completed"})
        status = "completed" if served.finish != "length" else "incomplete"
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return out + self._ev(kind, response=_response(served, self.req, status))

    def error(self, err: ProxyError) -> bytes:
        failed = _response(None, self.req, "failed", call_id=self.call_id,
                           error={"code": err.code, "message": err.message})
        return self._ev("response.failed", response=failed)
