"""Streaming a completion as text while the engine samples it, in time linear in its length.

:class:`IncrementalDetokenizer` turns ids into text deltas by decoding a small window of recent
ids at each step (the method vLLM uses): a step costs the same at token 10 and at token 10,000,
and a character split across tokens is held back until it is whole.

:class:`ReplyStream` sorts that text into reasoning and content deltas, and holds back whatever
may turn out to be markup: a ``<tool_call>`` (tool calls are emitted when the completion is
complete and parsed), ``</think>``, a stop string, or trailing whitespace the final parse drops.
So what was streamed is always a prefix of the final reply (:func:`parse_hermes`), and
:meth:`ReplyStream.finish` streams the rest.

>>> s = ReplyStream(tools_offered=True)
>>> s.feed("Let me ") + s.feed("look.\\n<tool") + s.feed("_call>{...}")
[('content', 'Let me'), ('content', ' look.')]
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from agentgym.tokens.toolcalls import THINK_CLOSE, THINK_OPEN, TOOL_OPEN, ParsedCompletion

__all__ = ["IncrementalDetokenizer", "ReplyStream"]

log = logging.getLogger(__name__)


class IncrementalDetokenizer:
    """Text deltas of a growing id sequence. ``skip`` ids (end-of-turn) produce no text."""

    def __init__(self, decoder: Any, skip: Iterable[int] = ()) -> None:
        self._decoder = decoder
        self._skip = frozenset(skip)
        self._ids: list[int] = []
        self._prefix = 0
        self._read = 0

    def push(self, ids: Iterable[int]) -> str:
        for t in ids:
            if t not in self._skip:
                self._ids.append(t)
        if len(self._ids) == self._read:
            return ""
        decode = self._decoder.decode
        before = decode(self._ids[self._prefix:self._read], skip_special_tokens=False)
        now = decode(self._ids[self._prefix:], skip_special_tokens=False)
        if len(now) > len(before) and not now.endswith("\ufffd"):
            self._prefix, self._read = self._read, len(self._ids)
            return str(now[len(before):])
        return ""


def _held_suffix(text: str, marker: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``marker``."""
    for n in range(min(len(marker) - 1, len(text)), 0, -1):
        if marker.startswith(text[-n:]):
            return n
    return 0


class ReplyStream:
    """Sorts streamed completion text into ``("reasoning" | "content", delta)`` pairs."""

    def __init__(self, tools_offered: bool, stops: Iterable[str] = ()) -> None:
        self.tools = tools_offered
        self.stops = tuple(s for s in stops if s)
        self._buf = ""
        self._state = "start"
        self._skip_ws = False
        self.sent: dict[str, str] = {"reasoning": "", "content": ""}

    def feed(self, text: str) -> list[tuple[str, str]]:
        if self._state in ("tool", "stopped") or not text:
            return []
        self._buf += text
        out: list[tuple[str, str]] = []
        while True:
            before = (self._state, len(self._buf))
            if self._state == "start":
                lead = self._buf.lstrip()
                if lead.startswith(THINK_OPEN):
                    self._buf = lead[len(THINK_OPEN):]
                    self._state, self._skip_ws = "think", True
                elif not lead or THINK_OPEN.startswith(lead):
                    break
                else:
                    self._state = "content"
            elif self._state == "think":
                self._emit("reasoning", THINK_CLOSE, out)
            elif self._state == "content":
                self._emit("content", TOOL_OPEN if self.tools else None, out)
            if self._state in ("tool", "stopped") or before == (self._state, len(self._buf)):
                break
        return out

    def _emit(self, kind: str, marker: str | None, out: list[tuple[str, str]]) -> None:
        buf = self._buf
        if self._skip_ws:
            buf = buf.lstrip()
            if not buf:
                self._buf = ""
                return
            self._skip_ws = False
        for stop in self.stops:
            at = buf.find(stop)
            if at >= 0:
                self._push(kind, buf[:at].rstrip() if kind == "reasoning" else buf[:at], out)
                self._buf, self._state = "", "stopped"
                return
        if marker is not None and marker in buf:
            head, _, rest = buf.partition(marker)
            self._push(kind, head.rstrip(), out)
            if kind == "reasoning":
                self._buf, self._state, self._skip_ws = rest, "content", True
            else:
                self._buf, self._state = "", "tool"
            return
        hold = _held_suffix(buf, marker) if marker else 0
        for stop in self.stops:
            hold = max(hold, _held_suffix(buf, stop))
        ready = buf[: len(buf) - hold]
        if kind == "reasoning" or self.tools:
            ready = ready.rstrip()  # the final parse drops it if markup follows
        self._push(kind, ready, out)
        self._buf = buf[len(ready):]

    def _push(self, kind: str, text: str, out: list[tuple[str, str]]) -> None:
        if text:
            self.sent[kind] += text
            out.append((kind, text))

    def finish(self, parsed: ParsedCompletion) -> list[tuple[str, str]]:
        """The deltas still owed once the final reply is known (streamed + these == final)."""
        out: list[tuple[str, str]] = []
        for kind, final in (("reasoning", parsed.reasoning or ""), ("content", parsed.content or "")):
            sent = self.sent[kind]
            if final.startswith(sent):
                self._push(kind, final[len(sent):], out)
            else:  # should not happen: the stream showed text the final reply does not have
                log.warning("streamed %s %r is not a prefix of the final %r", kind, sent[:80], final[:80])
        return out
