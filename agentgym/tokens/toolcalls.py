"""Parse a completion into reasoning, content and tool calls (Hermes / Qwen ``<tool_call>``
format, ``<think>`` reasoning), from the text of the sampled ids.

A parser only *reads* the completion: the sampled token ids stay what they were, and are what
is trained. What the harness is shown follows one rule: **nothing sampled is hidden from it**
except markup that its API turns into structure (the ``<think>`` and ``<tool_call>`` tags,
the end-of-turn token) and a stop string with whatever its last token carried after it (cut, as
the API promises). So text the model wrote *after* a closing ``</tool_call>`` is not dropped: it
joins the content (after the text before the first tool call, on a new line). When a
``<tool_call>`` does not parse, the whole text goes back as plain content (the harness sees
exactly what the model wrote) and the call is marked as an invalid action.

>>> p = parse_hermes('Let me look.\\n<tool_call>\\n{"name": "ls", "arguments": {}}\\n</tool_call>', "c1", True)
>>> p.content, p.tool_calls[0]["function"]
('Let me look.', {'name': 'ls', 'arguments': '{}'})
>>> p = parse_hermes("<think>\\nEasy.\\n</think>\\n\\nHi!", "c2", False)
>>> p.reasoning, p.content, p.tool_calls
('Easy.', 'Hi!', [])
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["THINK_CLOSE", "THINK_OPEN", "TOOL_CLOSE", "TOOL_OPEN", "ParsedCompletion", "parse_hermes"]

TOOL_OPEN, TOOL_CLOSE = "<tool_call>", "</tool_call>"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
_TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)


@dataclass(frozen=True)
class ParsedCompletion:
    """What the harness is shown of a completion."""

    content: str | None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    valid: bool = True
    error: str = ""
    reasoning: str | None = None


def split_reasoning(text: str) -> tuple[str | None, str]:
    """``(reasoning, rest)`` of a completion that opens with ``<think>`` (all of it is reasoning
    when the tag never closes: the model ran out of tokens while thinking)."""
    stripped = text.lstrip()
    if stripped.startswith(THINK_OPEN):
        inner, _, rest = stripped[len(THINK_OPEN):].partition(THINK_CLOSE)
        return inner.strip(), rest.lstrip()
    return None, text


def parse_hermes(text: str, call_id: str, tools_offered: bool) -> ParsedCompletion:
    """Split ``text`` into reasoning, content and OpenAI-style ``tool_calls``.

    Args:
        text: the decoded completion, end-of-turn token removed.
        call_id: used to make stable tool-call ids (``call_<call_id>_<i>``).
        tools_offered: whether the request sent ``tools``; without tools, text stays text.
    """
    reasoning, text = split_reasoning(text)
    if not tools_offered or TOOL_OPEN not in text:
        return ParsedCompletion(content=text, reasoning=reasoning)
    calls: list[dict[str, Any]] = []
    outside: list[str] = []
    last = 0
    for i, m in enumerate(_TOOL_CALL.finditer(text)):
        outside.append(text[last:m.start()])
        last = m.end()
        try:
            obj = json.loads(m.group(1))
        except (json.JSONDecodeError, RecursionError) as e:
            msg = e.msg if isinstance(e, json.JSONDecodeError) else "nested too deeply"
            return ParsedCompletion(content=text, valid=False, error=f"tool call {i} is not JSON: {msg}",
                                    reasoning=reasoning)
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            return ParsedCompletion(content=text, valid=False, error=f"tool call {i} has no string 'name'",
                                    reasoning=reasoning)
        args = obj.get("arguments", {})
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except (json.JSONDecodeError, RecursionError):
                return ParsedCompletion(content=text, valid=False, error=f"tool call {i} arguments are not JSON",
                                        reasoning=reasoning)
        if not isinstance(args, dict):
            return ParsedCompletion(content=text, valid=False, error=f"tool call {i} arguments are not an object",
                                    reasoning=reasoning)
        calls.append({
            "id": f"call_{call_id}_{i}",
            "type": "function",
            "function": {"name": obj["name"], "arguments": json.dumps(args, ensure_ascii=False)},
        })
    if not calls or TOOL_OPEN in text[last:]:  # an opening tag without a closing one
        return ParsedCompletion(content=text, valid=False, error="unterminated <tool_call>", reasoning=reasoning)
    outside.append(text[last:])
    return ParsedCompletion(content=join_outside(outside) or None, tool_calls=calls, reasoning=reasoning)


def join_outside(pieces: list[str]) -> str:
    """Text around tool calls: what came before them (trailing whitespace dropped), then each
    non-blank piece after a call on its own line."""
    head = pieces[0].rstrip()
    rest = [p.strip() for p in pieces[1:] if p.strip()]
    return "\n".join([head, *rest]) if head else "\n".join(rest)
