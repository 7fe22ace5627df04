"""Chat messages: normalisation for templates and canonical keys for prefix matching.

Every dialect turns its wire format into messages of one canonical shape, the OpenAI chat
shape (``role``, ``content``, ``tool_calls``, ``tool_call_id``, ``name``,
``reasoning_content``), which is what chat templates take.

Harnesses echo history back in slightly different shapes (``content: None`` vs ``""``, text
parts vs strings, tool-call arguments re-serialised with their keys in another order, extra
keys such as mini-swe-agent's ``provider_specific_fields``, reasoning the template never
shows). The canonical *key* of a message keeps exactly what the chat template renders, as
:class:`KeyPolicy` says (the renderer finds out which optional fields its template renders),
so two messages with the same key render to the same tokens.

>>> a = {"role": "assistant", "content": None, "tool_calls": [{"id": "1", "function": {
...     "name": "bash", "arguments": '{"command": "ls", "timeout": 5}'}}]}
>>> b = {"role": "assistant", "content": "", "provider_specific_fields": {}, "tool_calls": [{
...     "id": "other", "function": {"name": "bash", "arguments": {"timeout": 5, "command": "ls"}}}]}
>>> message_key(a) == message_key(b)
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from agentgym.errors import ProxyError

__all__ = ["ROLES", "KeyPolicy", "Message", "canonical_arguments", "chain_digest", "content_text",
           "json_depth", "message_key", "prefix_digests", "template_message"]

Message = dict[str, Any]
ROLES = ("system", "developer", "user", "assistant", "tool")
MAX_ARGUMENT_DEPTH = 64
"""Tool-call arguments nested deeper than this are refused (a template's ``tojson`` recurses)."""


@dataclass(frozen=True)
class KeyPolicy:
    """Which optional message fields count in canonical keys: those the template renders."""

    reasoning: bool = True
    name: bool = True
    tool_ids: bool = False


DEFAULT_POLICY = KeyPolicy()


def json_depth(value: Any, stop_at: int = 1 << 30) -> int:
    """Nesting depth of a decoded JSON value (a scalar is 0), iteratively: deep values do not
    recurse. Stops counting once ``stop_at`` is exceeded."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            children: Any = v.values()
        elif isinstance(v, list):
            children = v
        else:
            continue
        d += 1
        if d > deepest:
            deepest = d
            if deepest > stop_at:
                return deepest
        stack.extend((c, d) for c in children if isinstance(c, (dict, list)))
    return deepest


def content_text(content: Any) -> str:
    """Text of a message's content: a string, ``None`` or a list of ``{"type": "text"}`` parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for p in content:
            if isinstance(p, str):
                parts.append(p)
            elif isinstance(p, Mapping) and p.get("type") in ("text", "input_text", "output_text"):
                text = p.get("text", "")
                if not isinstance(text, str):
                    raise ProxyError("a text content part's 'text' must be a string", param="messages")
                parts.append(text)
            else:
                kind = p.get("type") if isinstance(p, Mapping) else type(p).__name__
                raise ProxyError(f"unsupported content part type {str(kind)[:40]!r}: this model takes text only",
                                 code="unsupported_content", param="messages")
        return "".join(parts)
    raise ProxyError(f"message content must be a string, null or a list of parts, got {type(content).__name__}",
                     param="messages")


def canonical_arguments(arguments: Any) -> Any:
    """Tool-call arguments as a JSON value (parsed when given as a JSON string; a string that is
    not JSON stays a string)."""
    if isinstance(arguments, str):
        try:
            arguments = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            return arguments
        except RecursionError:
            raise ProxyError("tool-call arguments are nested too deeply", param="messages") from None
    nested = isinstance(arguments, list) or (isinstance(arguments, dict) and any(
        isinstance(v, (dict, list)) for v in arguments.values()))
    if nested and json_depth(arguments, MAX_ARGUMENT_DEPTH) > MAX_ARGUMENT_DEPTH:
        raise ProxyError(f"tool-call arguments are nested more than {MAX_ARGUMENT_DEPTH} levels deep",
                         param="messages")
    return arguments


def _call_parts(tc: Any) -> tuple[str, str, Any]:
    if not isinstance(tc, Mapping):
        raise ProxyError("a tool call must be an object", param="messages")
    fn = tc.get("function", tc)
    if not isinstance(fn, Mapping):
        raise ProxyError("a tool call's 'function' must be an object", param="messages")
    return str(tc.get("id") or ""), str(fn.get("name") or ""), fn.get("arguments")


def message_key(msg: Mapping[str, Any], policy: KeyPolicy = DEFAULT_POLICY) -> bytes:
    """The parts of a message a chat template renders, as canonical bytes (object keys sorted)."""
    calls = []
    for tc in msg.get("tool_calls") or ():
        cid, name, args = _call_parts(tc)
        calls.append([name, canonical_arguments(args), cid if policy.tool_ids else ""])
    parts: list[Any] = [msg.get("role"), content_text(msg.get("content")), calls]
    parts.append((msg.get("reasoning_content") or "") if policy.reasoning else "")
    parts.append((msg.get("name") or "") if policy.name else "")
    parts.append((msg.get("tool_call_id") or "") if policy.tool_ids else "")
    try:
        return orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONEncodeError, TypeError) as e:
        raise ProxyError(f"a message could not be canonicalised: {e}", param="messages") from None


def chain_digest(prev: bytes, key: bytes) -> bytes:
    """Chain hash: the digest of all messages up to and including the one whose key is ``key``."""
    return hashlib.blake2b(prev + key, digest_size=16).digest()


def prefix_digests(messages: Sequence[Mapping[str, Any]], root: bytes = b"",
                   policy: KeyPolicy = DEFAULT_POLICY) -> list[bytes]:
    """``out[k]`` is the digest of ``messages[:k]``; ``out[0]`` is ``root`` (which carries
    whatever else the template renders, such as the tool list)."""
    out = [hashlib.blake2b(root, digest_size=16).digest()]
    for m in messages:
        out.append(chain_digest(out[-1], message_key(m, policy)))
    return out


def template_message(msg: Mapping[str, Any]) -> Message:
    """A copy fit for a chat template: text content, arguments as objects, no unknown keys that
    some templates choke on."""
    out: Message = {"role": msg["role"], "content": content_text(msg.get("content"))}
    if msg.get("tool_calls"):
        calls = []
        for tc in msg["tool_calls"]:
            cid, name, args = _call_parts(tc)
            calls.append({"id": cid, "type": "function",
                          "function": {"name": name, "arguments": canonical_arguments(args)}})
        out["tool_calls"] = calls
    for key in ("tool_call_id", "name", "reasoning_content"):
        if msg.get(key):
            out[key] = msg[key]
    return out
