"""Parse tool calls out of sampled text (Hermes / Qwen ``<tool_call>`` format).

A parser only *reads* the completion: the sampled token ids stay what they were. When the text
holds a ``<tool_call>`` tag that does not parse, the whole text goes back as plain content
(the harness sees exactly what the model wrote) and the call is marked as an invalid action.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

_TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)


@dataclass(frozen=True)
class ParsedCompletion:
    content: str | None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    valid: bool = True
    error: str = ""


def parse_hermes(text: str, call_id: str, tools_offered: bool) -> ParsedCompletion:
    """Split ``text`` into content and OpenAI-style ``tool_calls``.

    Args:
        text: the decoded completion, end-of-turn token removed.
        call_id: used to make stable tool-call ids (``call_<call_id>_<i>``).
        tools_offered: whether the request sent ``tools``; without tools, text stays text.
    """
    if not tools_offered or "<tool_call>" not in text:
        return ParsedCompletion(content=text)
    calls: list[dict[str, Any]] = []
    for i, m in enumerate(_TOOL_CALL.finditer(text)):
        try:
            obj = json.loads(m.group(1))
        except json.JSONDecodeError as e:
            return ParsedCompletion(content=text, valid=False, error=f"tool call {i} is not JSON: {e.msg}")
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            return ParsedCompletion(content=text, valid=False, error=f"tool call {i} has no string 'name'")
        args = obj.get("arguments", {})
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except json.JSONDecodeError:
                return ParsedCompletion(content=text, valid=False, error=f"tool call {i} arguments are not JSON")
        if not isinstance(args, dict):
            return ParsedCompletion(content=text, valid=False, error=f"tool call {i} arguments are not an object")
        calls.append({
            "id": f"call_{call_id}_{i}",
            "type": "function",
            "function": {"name": obj["name"], "arguments": json.dumps(args, ensure_ascii=False)},
        })
    if not calls:  # an opening tag without a closing one
        return ParsedCompletion(content=text, valid=False, error="unterminated <tool_call>")
    content = text[: text.index("<tool_call>")].strip()
    return ParsedCompletion(content=content or None, tool_calls=calls)
