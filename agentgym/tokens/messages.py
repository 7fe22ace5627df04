"""Chat messages: normalisation for templates and canonical keys for prefix matching.

Harnesses echo history back in slightly different shapes (``content: None`` vs ``""``, text
parts vs strings, tool-call arguments re-serialised, extra keys such as mini-swe-agent's
``provider_specific_fields``). The canonical key keeps exactly what a chat template renders
(role, text, tool-call names and parsed arguments, tool-call id of tool results, name) and
nothing else, so two messages with the same key render to the same tokens.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from agentgym.errors import ProxyError

Message = dict[str, Any]
ROLES = ("system", "developer", "user", "assistant", "tool")


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
                parts.append(str(p.get("text", "")))
            else:
                kind = p.get("type") if isinstance(p, Mapping) else type(p).__name__
                raise ProxyError(f"unsupported content part type {kind!r}: this model takes text only",
                                 code="unsupported_content", param="messages")
        return "".join(parts)
    raise ProxyError(f"message content must be a string, null or a list of parts, got {type(content).__name__}",
                     param="messages")


def canonical_arguments(arguments: Any) -> Any:
    """Tool-call arguments as a JSON value (parsed when given as a JSON string)."""
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except json.JSONDecodeError:
            return arguments
    return arguments


def canonical_message(msg: Mapping[str, Any]) -> tuple[Any, ...]:
    """The parts of a message a chat template renders, in a hashable, order-stable form.

    Tool-call *ids* are left out: templates do not render them, and harnesses may renumber them.
    """
    calls = tuple(
        (str(tc.get("function", {}).get("name", "")),
         json.dumps(canonical_arguments(tc.get("function", {}).get("arguments")), sort_keys=True))
        for tc in (msg.get("tool_calls") or ())
    )
    reasoning = msg.get("reasoning_content") or ""
    return (msg.get("role"), content_text(msg.get("content")), calls, reasoning, msg.get("name") or "")


def message_digest(prev: bytes, msg: Mapping[str, Any]) -> bytes:
    """Chain hash: digest of all messages up to and including ``msg``."""
    h = hashlib.blake2b(prev, digest_size=16)
    h.update(json.dumps(canonical_message(msg), ensure_ascii=False).encode())
    return h.digest()


def prefix_digests(messages: Sequence[Mapping[str, Any]], root: bytes = b"") -> list[bytes]:
    """``out[k]`` is the digest of ``messages[:k]``; ``out[0]`` is ``root`` (which carries
    whatever else the template renders, such as the tool list)."""
    out = [hashlib.blake2b(root, digest_size=16).digest()]
    for m in messages:
        out.append(message_digest(out[-1], m))
    return out


def template_message(msg: Mapping[str, Any]) -> Message:
    """A copy fit for ``apply_chat_template``: text content, arguments as dicts, no unknown keys
    that some templates choke on."""
    out: Message = {"role": msg["role"], "content": content_text(msg.get("content"))}
    if msg.get("tool_calls"):
        out["tool_calls"] = [
            {"id": tc.get("id", ""), "type": "function",
             "function": {"name": tc.get("function", {}).get("name", ""),
                          "arguments": canonical_arguments(tc.get("function", {}).get("arguments"))}}
            for tc in msg["tool_calls"]
        ]
    for key in ("tool_call_id", "name", "reasoning_content"):
        if msg.get(key):
            out[key] = msg[key]
    return out
