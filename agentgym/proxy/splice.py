"""Per-session prefix index: which earlier call does an incoming request extend?

Every served call is indexed by the chain digest of ``request.messages + [reply]`` (a trie over
canonical messages, flattened into a dict of chain hashes). An incoming request looks up the
longest prefix of its messages that ends exactly after some call's reply: that call is the
parent, and its exact ``prompt_ids + completion_ids`` are reused. Every prefix of every served
sequence is indexed too, so a request that matches no reply can still say *where* it diverged,
which types the segment break.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentgym.observation import TargetsFn
from agentgym.tokens.messages import Message, prefix_digests
from agentgym.tokens.render import ChatRenderer, tools_digest_key
from agentgym.types import BreakReason, Call


@dataclass
class _Served:
    """What the index keeps of a served call (in memory only)."""

    call: Call
    sequence: list[Message]
    """Request messages followed by the reply."""
    tools: Sequence[Mapping[str, Any]] | None
    prompt_text: str = ""
    """Template text of the request (with generation prompt), from when it was served."""
    _text: str | None = None
    _reply_start: int = 0
    _isolated: str | None = None
    _isolated_done: bool = False

    def parent_text(self, renderer: ChatRenderer, full: str) -> tuple[str, int]:
        """Template text of messages + reply and where the reply starts, for a request whose
        whole rendering is ``full``.

        Fast path: the request text as served, followed by the reply as the template renders it
        in a short probe conversation, when ``full`` starts with exactly that (one full render
        per turn instead of two). Otherwise the exact rendering of messages + reply."""
        if self.prompt_text:
            if not self._isolated_done:
                self._isolated = renderer.isolated_reply_text(self.sequence[-1], self.tools)
                self._isolated_done = True
            if self._isolated is not None:
                fast = self.prompt_text + self._isolated
                if full.startswith(fast):
                    return fast, len(self.prompt_text)
        return self.rendered(renderer)

    def rendered(self, renderer: ChatRenderer) -> tuple[str, int]:
        """Template text of messages + reply (no generation prompt), and where the reply starts.
        Computed once, when a later call first needs it."""
        if self._text is None:
            before = self.prompt_text or renderer.render_text(self.sequence[:-1], self.tools, add_generation_prompt=True)
            self._text = renderer.render_text(self.sequence, self.tools, add_generation_prompt=False)
            self._reply_start = len(before) if self._text.startswith(before) else len(self._text)
        return self._text, self._reply_start


@dataclass(frozen=True)
class SplicePlan:
    """How to build the prompt ids of an incoming request."""

    prompt_ids: tuple[int, ...]
    obs_spans: tuple[tuple[int, int], ...]
    new_from: int
    parent_call_id: str | None
    break_reason: BreakReason | None
    agent_id: str
    prompt_text: str = ""
    obs_body_spans: tuple[tuple[int, int], ...] = ()


@dataclass
class SpliceIndex:
    renderer: ChatRenderer
    targets: TargetsFn | None = None
    """Narrows observation bodies to environment output (the session's harness says how)."""
    _by_reply: dict[bytes, str] = field(default_factory=dict)
    _by_prefix: dict[bytes, str] = field(default_factory=dict)
    _served: dict[str, _Served] = field(default_factory=dict)
    _roots: int = 0

    def plan(self, messages: Sequence[Message], tools: Sequence[Mapping[str, Any]] | None,
             tool_choice: Any = "auto", agent_id: str | None = None) -> SplicePlan:
        root = tools_digest_key(tools, tool_choice)
        digests = prefix_digests(messages, root)
        n = len(messages)
        k = next((i for i in range(n, 0, -1) if digests[i] in self._by_reply), 0)
        j = next((i for i in range(n, 0, -1) if digests[i] in self._by_prefix), 0)
        parent = self._served[self._by_reply[digests[k]]] if k else None

        reason: BreakReason | None = None
        if parent is not None and any(m.get("role") == "assistant" for m in messages[k:]):
            # Assistant turns after the parent that we never served there: history was edited.
            reason = self._divergence(messages, max(j, k))
        if parent is not None:
            full = self.renderer.render_text(messages, tools, add_generation_prompt=True)
            text, reply_start = parent.parent_text(self.renderer, full)
            pc = parent.call
            ends_eos = bool(pc.completion_ids) and pc.completion_ids[-1] == self.renderer.eos_id
            cont = self.renderer.render_continuation(text, reply_start, ends_eos, messages, k, tools, full=full,
                                                     targets=self.targets)
            if cont is not None:
                base = pc.prompt_ids + pc.completion_ids
                return SplicePlan(
                    prompt_ids=base + cont.ids,
                    obs_spans=tuple((s + len(base), e + len(base)) for s, e in cont.obs_spans),
                    obs_body_spans=tuple((s + len(base), e + len(base)) for s, e in cont.obs_body_spans),
                    new_from=len(base), parent_call_id=pc.call_id, break_reason=reason,
                    agent_id=agent_id or pc.agent_id, prompt_text=cont.full_text)
            reason = BreakReason.TEMPLATE_NOT_PREFIX

        lineage = parent.call if parent is not None else (
            self._served[self._by_prefix[digests[j]]].call if j else None)
        if reason is None:
            reason = self._divergence(messages, j) if j else BreakReason.START
        fresh = self.renderer.render_prompt(messages, tools, targets=self.targets)
        if agent_id is None:
            if lineage is not None:
                agent_id = lineage.agent_id
            else:
                agent_id = "main" if self._roots == 0 else f"agent-{self._roots}"
        return SplicePlan(prompt_ids=fresh.ids, obs_spans=fresh.obs_spans, obs_body_spans=fresh.obs_body_spans,
                          new_from=0,
                          parent_call_id=lineage.call_id if lineage else None, break_reason=reason,
                          agent_id=agent_id, prompt_text=fresh.full_text)

    @staticmethod
    def _divergence(messages: Sequence[Message], j: int) -> BreakReason:
        """Type of the edit at the first message that matches nothing served before."""
        if j < len(messages) and messages[j].get("role") == "assistant":
            return BreakReason.ASSISTANT_EDITED
        return BreakReason.HISTORY_EDITED

    def add(self, call: Call, messages: Sequence[Message], reply: Message,
            tools: Sequence[Mapping[str, Any]] | None, tool_choice: Any = "auto", prompt_text: str = "") -> None:
        """Index a served call. An undelivered reply never shadows a delivered one."""
        if call.break_reason == BreakReason.START:
            self._roots += 1
        sequence = [*messages, reply]
        digests = prefix_digests(sequence, tools_digest_key(tools, tool_choice))
        self._served[call.call_id] = _Served(call=call, sequence=sequence, tools=tools,
                                             prompt_text=prompt_text)
        key = digests[-1]
        existing = self._by_reply.get(key)
        if existing is None or call.delivered or not self._served[existing].call.delivered:
            self._by_reply[key] = call.call_id
        for d in digests[1:]:
            self._by_prefix.setdefault(d, call.call_id)
