"""What a chat template does, found out once per renderer by rendering probes.

- :func:`key_policy`: which optional message fields it renders (reasoning, name, tool-call
  ids); only those count when the proxy compares an echoed message with what it served.
- :func:`pick_window`: the smallest window of history that stands in exactly for the whole
  history when rendering new messages (see :mod:`agentgym.tokens.render`), found by comparing, on
  :func:`synthetic` conversations (tool calls, parallel tool results, reasoning, user turns after
  assistant turns; with and without a system prompt and tools), each window's continuation with
  what rendering the whole history gives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from agentgym.errors import ProxyError
from agentgym.tokens.messages import KeyPolicy

if TYPE_CHECKING:
    from agentgym.tokens.render import ChatRenderer

__all__ = ["PROBE_TOOL", "key_policy", "pick_window", "synthetic", "variants"]


def _renders(r: ChatRenderer, a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]]) -> bool:
    try:
        return r.render_text(a, [PROBE_TOOL], True) != r.render_text(b, [PROBE_TOOL], True)
    except ProxyError:
        return True


def key_policy(r: ChatRenderer) -> KeyPolicy:
    """Which optional fields the template renders (those count in canonical keys)."""
    user = {"role": "user", "content": "go"}

    def asst(**kw: Any) -> dict[str, Any]:
        return {"role": "assistant", "content": "ok", **kw}

    def call(cid: str) -> dict[str, Any]:
        return {"role": "assistant", "content": None, "tool_calls": [
            {"id": cid, "type": "function", "function": {"name": "bash", "arguments": {"command": "ls"}}}]}

    tail = [{"role": "tool", "tool_call_id": "x", "content": "out"}]
    reasoning = any(_renders(r, [user, asst(reasoning_content="QZ1"), *rest],
                                  [user, asst(reasoning_content="QZ2"), *rest])
                    for rest in ([], [{"role": "user", "content": "more"}]))
    name = _renders(r, [{**user, "name": "QZ1"}], [{**user, "name": "QZ2"}])
    ids = (_renders(r, [user, call("QZ1"), {**tail[0], "tool_call_id": "QZ1"}],
                         [user, call("QZ2"), {**tail[0], "tool_call_id": "QZ2"}]))
    return KeyPolicy(reasoning=reasoning, name=name, tool_ids=ids)


def pick_window(r: ChatRenderer) -> str:
    """The smallest exact window mode for the template: ``minimal``, ``system`` or ``full``."""
    for mode in ("minimal", "system"):
        r.window = mode
        if all(_window_agrees(r, conv, tools) for conv, tools in variants()):
            return mode
    return "full"


def _window_agrees(r: ChatRenderer, conv: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> bool:
    try:
        r.render_text(conv, tools, add_generation_prompt=True)
    except ProxyError:
        return True  # the template refuses this shape: no request can have it either
    for a, msg in enumerate(conv):
        if msg["role"] != "assistant":
            continue
        k = a + 1
        prefix = r.render_text(conv[:k], tools, add_generation_prompt=False)
        for n in range(k + 1, len(conv) + 1):
            if conv[n - 1]["role"] == "assistant":
                continue
            whole = r.render_text(conv[:n], tools, add_generation_prompt=True)
            expect = whole[len(prefix):] if whole.startswith(prefix) else None
            got = None
            w = r.window_of(conv[: k - 1], conv[k - 1], tools)
            if w is None:
                continue
            window, wtools = w
            base = r.window_text(window, wtools)
            full = r.render_text([*window, *conv[k:n]], wtools, add_generation_prompt=True)
            if full.startswith(base[0]):
                got = full[len(base[0]):]
            if got != expect:
                return False
    return True


PROBE_TOOL = {"type": "function", "function": {
    "name": "bash", "description": "Run a shell command.",
    "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}}


def synthetic() -> list[list[dict[str, Any]]]:
    def call(i: int, cmd: str, content: str | None = None, reasoning: str | None = None) -> dict[str, Any]:
        m: dict[str, Any] = {"role": "assistant", "content": content, "tool_calls": [
            {"id": f"c{i}", "type": "function", "function": {"name": "bash", "arguments": {"command": cmd}}}]}
        if reasoning:
            m["reasoning_content"] = reasoning
        return m

    def result(i: int, out: str) -> dict[str, Any]:
        return {"role": "tool", "tool_call_id": f"c{i}", "content": out}

    two = call(4, "ls src")
    two["tool_calls"].append({"id": "c5", "type": "function", "function": {"name": "bash",
                                                                         "arguments": {"command": "pwd"}}})
    conv = [
        {"role": "system", "content": "You are a careful agent."},
        {"role": "user", "content": "Fix the failing test."},
        call(1, "ls", "Let me look.", reasoning="Start by listing."),
        result(1, "README.md\nsrc\n"),
        call(2, "cat README.md"),
        result(2, "# Project\n"),
        two,
        result(4, "main.py"),
        result(5, "/app"),
        {"role": "assistant", "content": "I need more detail."},
        {"role": "user", "content": "Run the tests."},
        call(6, "pytest", reasoning="Run them."),
        result(6, "1 failed"),
        {"role": "assistant", "content": "Done.", "reasoning_content": "All fixed."},
        {"role": "user", "content": "Thanks, one more thing."},
    ]
    return [conv]


def variants() -> list[tuple[list[dict[str, Any]], list[dict[str, Any]] | None]]:
    conv = synthetic()[0]
    return [(conv, [PROBE_TOOL]), (conv[1:], [PROBE_TOOL]), (conv, None)]
