"""Lineages and the prefix index: which earlier call does an incoming request extend?

A session holds one :class:`Lineage` per (agent id, system prompt, tool set): the main agent,
each sub-agent, a summariser, a title generator... each is its own trajectory. Inside a
lineage every served call is a :class:`Node`, indexed by the chain digest of its request
messages, of its request plus reply, and of every prefix of those (a trie flattened into
dicts). An incoming request names as **parent** the call whose messages plus reply are the
longest prefix of its own; that call's exact ``prompt_ids + completion_ids`` start the new
prompt, and only the messages after the reply are rendered. Every prefix of every served
sequence is indexed too, so a request that matches no reply can still say *where* it diverged,
which types the segment break.

The work per call is proportional to what is new. The **fast path** compares the request's
conversation, as parsed, with what the lineage's latest calls (its *tips*) were sent — one C-level
list comparison — and hashes, converts, validates and renders only the messages after the
tip's reply. Anything else (a retry of an older call, a harness that re-serialises its history
differently) takes the **slow path**: canonical digests of the whole conversation.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentgym.observation import TargetsFn
from agentgym.tokens.messages import Message, chain_digest, message_key, prefix_digests
from agentgym.tokens.render import ChatRenderer, Continuation, RenderedPrompt
from agentgym.types import BreakReason

__all__ = ["Draft", "Ids", "Lineage", "Node", "SplicePlan", "ids"]

Ids = array
"""Token ids in memory: ``array('i')``. A prompt is rebuilt as the parent's ids plus the new ones
every turn; an array copies them with one memcpy, where a tuple of a few hundred thousand ints
costs a loop and then garbage-collector passes over every element."""


def ids(values: Sequence[int] = ()) -> array:
    """Token ids as an :data:`Ids` array."""
    return values if isinstance(values, array) else array("i", values)

MAX_TIPS = 8
"""Recent calls of a lineage whose raw conversation is kept for the fast path."""


@dataclass(eq=False)
class Node:
    """What a lineage keeps of a served call (in memory only)."""

    call_id: str
    base: Node | None
    """The call whose prompt + completion this prompt starts with (``None``: from scratch)."""
    keep: int
    """Leading ids of ``base``'s prompt + completion this prompt starts with."""
    tail: array
    """This prompt's ids after those."""
    new_from: int
    parent_call_id: str | None
    obs_spans: tuple[tuple[int, int], ...]
    obs_body_spans: tuple[tuple[int, int], ...]
    req_digest: bytes
    n_conv: int
    """Canonical messages in the request."""
    n_raw: int
    """Items of the request's conversation as sent."""
    prev: Message | None
    """The request's last message (the window of the next call starts with it)."""
    completion: array = field(default_factory=ids)
    reply: Message | None = None
    reply_key: bytes = b""
    seq_digest: bytes = b""
    delivered: bool = False
    continued: bool = False
    journaled: bool = False
    """Whether the whole record (prompt and completion) is on disk: only then may later records
    be stored as deltas from it."""
    raw_conv: list[Any] | None = None
    """The conversation as sent (tips only: the fast path compares it)."""
    canon: list[Message] | None = None
    """The request's canonical messages (tips only)."""
    window_base: Any = None
    _full: array | None = None

    def prompt_ids(self) -> array:
        """The exact prompt ids, built from the chain of bases (cached on recent calls only, so
        a long session does not hold every prompt in memory)."""
        if self._full is not None:
            return self._full
        chain: list[Node] = []
        n: Node | None = self
        while n is not None and n._full is None:
            chain.append(n)
            n = n.base
        above = n._full if n is not None else None
        full = ids()
        for level in reversed(chain):
            b = level.base
            base = (above if above is not None else ids()) + b.completion if b is not None else ids()
            full = base[: level.keep] + level.tail
            above = full
        self._full = full
        return full

    def forget_ids(self) -> None:
        self._full = None


@dataclass(frozen=True)
class SplicePlan:
    """How to build the prompt ids of an incoming request."""

    prompt_ids: array
    obs_spans: tuple[tuple[int, int], ...]
    new_from: int
    parent: Node | None
    """The call this one extends (``None``: rendered from scratch, or a retry)."""
    parent_call_id: str | None
    break_reason: BreakReason | None
    retry_of: Node | None = None
    """The earlier call with the same prompt, for a retry."""
    base: Node | None = None
    """The call whose prompt + completion this prompt starts with."""
    keep: int = 0
    obs_body_spans: tuple[tuple[int, int], ...] = ()
    req_digest: bytes = b""
    new_digests: tuple[bytes, ...] = ()
    """Digests of the request's prefixes not indexed yet (for typing later breaks)."""
    n_conv: int = 0
    prev: Message | None = None
    full_text: str = ""
    fast: bool = False
    """Whether the conversation's prefix was the parent's, as sent (its journal record is a delta)."""


@dataclass
class Draft:
    """A plan waiting for its text to be tokenised (possibly on a worker thread)."""

    text: str
    base_len: int
    """How many ids come before ``text`` (the parent's, or a cached system prompt's)."""
    finish: Any
    """``finish(encoding) -> SplicePlan``."""


@dataclass
class Lineage:
    """One agent's calls in a session: one system prompt, one tool set, one agent id."""

    name: str
    key: bytes
    tools: Sequence[Mapping[str, Any]] | None
    renderer: ChatRenderer
    targets: TargetsFn | None = None
    by_reply: dict[bytes, Node] = field(default_factory=dict)
    by_request: dict[bytes, Node] = field(default_factory=dict)
    by_prefix: dict[bytes, Node] = field(default_factory=dict)
    tips: list[Node] = field(default_factory=list)
    n_system: int = 0

    # -- planning ----------------------------------------------------------------------------
    def match_tip(self, raw: list[Any]) -> tuple[Node, int] | None:
        """``(tip, m)`` when the first ``m`` items of ``raw`` are exactly what ``tip`` was sent."""
        for tip in reversed(self.tips):
            theirs = tip.raw_conv
            if theirs is None:
                continue
            m = len(theirs)
            if len(raw) >= m and raw[:m] == theirs:
                return tip, m
        return None

    def plan(self, messages: list[Message], raw: list[Any], tip: Node | None) -> SplicePlan | Draft:
        """Plan the prompt of ``messages`` (canonical, the whole request). ``tip``: a node the fast
        path matched (``messages[:tip.n_conv]`` are its request, as sent)."""
        policy = self.renderer.policy
        n = len(messages)
        if tip is not None and tip.completion and tip.reply is not None:
            if n == tip.n_conv:
                return self._retry(tip, fast=True)
            if n > tip.n_conv and message_key(messages[tip.n_conv], policy) == tip.reply_key:
                k = tip.n_conv + 1
                chain = [tip.seq_digest]
                for m in messages[k:]:
                    chain.append(chain_digest(chain[-1], message_key(m, policy)))
                reason = None
                if any(m.get("role") == "assistant" for m in messages[k:]):
                    reason = _divergence(messages, k)  # assistant turns we never served there
                return self._extend(tip, messages, k, tuple(chain[1:]), reason, fast=True)
        digests = prefix_digests(messages, self.key, policy)
        same = self.by_request.get(digests[n])
        if same is not None and same.completion:
            return self._retry(same, fast=False)
        k = next((i for i in range(n, 0, -1) if digests[i] in self.by_reply), 0)
        j = next((i for i in range(n, 0, -1) if digests[i] in self.by_prefix), 0)
        if k:
            parent = self.by_reply[digests[k]]
            reason = None
            if any(m.get("role") == "assistant" for m in messages[k:]):
                reason = _divergence(messages, max(j, k))
            return self._extend(parent, messages, k, tuple(digests[k + 1:]), reason, fast=False)
        reason = _divergence(messages, j) if j > self.n_system else BreakReason.START
        context = self.by_prefix[digests[j]] if j else None
        return self._fresh(messages, tuple(digests[1:]), reason, context)

    def _retry(self, same: Node, fast: bool) -> SplicePlan:
        """The same prompt as an earlier call: its exact ids again, nothing rendered."""
        ids = same.prompt_ids()
        return SplicePlan(prompt_ids=ids, obs_spans=same.obs_spans, obs_body_spans=same.obs_body_spans,
                          new_from=same.new_from, parent=None, parent_call_id=same.parent_call_id,
                          break_reason=BreakReason.RETRY, retry_of=same, base=same, keep=len(ids),
                          req_digest=same.req_digest,
                          n_conv=same.n_conv, prev=same.prev, fast=fast)

    def _extend(self, parent: Node, messages: list[Message], k: int, new_digests: tuple[bytes, ...],
                reason: BreakReason | None, fast: bool) -> SplicePlan | Draft:
        r = self.renderer
        req_digest = new_digests[-1] if new_digests else parent.seq_digest
        assert parent.reply is not None
        window = r.window_of(messages[: k - 1], parent.reply, self.tools)
        cont: Continuation | None = None
        if window is not None:
            msgs, tools = window
            if parent.window_base is None or r.window == "full":
                parent.window_base = r.window_text(msgs, tools)
            ends_eos = bool(parent.completion) and parent.completion[-1] == r.eos_id
            cont = r.continuation(msgs, tools, parent.window_base, ends_eos, messages[k:])
        if cont is None:
            context = parent
            digests = tuple(prefix_digests(messages, self.key, r.policy)[1:])
            return self._fresh(messages, digests, BreakReason.TEMPLATE_NOT_PREFIX if window is not None else reason,
                               context)
        above = parent.prompt_ids()
        shift = len(above) + len(parent.completion)
        new = messages[k:]

        def finish(enc: Any) -> SplicePlan:
            rp = r.finish_continuation(cont, enc, new, self.targets)
            prompt = above + parent.completion  # the one copy of the history this turn makes
            prompt.extend(rp.ids)
            return SplicePlan(
                prompt_ids=prompt, obs_spans=tuple((s + shift, e + shift) for s, e in rp.obs_spans),
                obs_body_spans=tuple((s + shift, e + shift) for s, e in rp.obs_body_spans),
                new_from=shift, parent=parent, parent_call_id=parent.call_id, break_reason=reason,
                base=parent, keep=shift,
                req_digest=req_digest, new_digests=new_digests, n_conv=len(messages), prev=messages[-1],
                full_text=rp.full_text, fast=fast)

        return Draft(text=cont.text, base_len=shift, finish=finish)

    def _fresh(self, messages: list[Message], digests: tuple[bytes, ...], reason: BreakReason | None,
               context: Node | None) -> SplicePlan | Draft:
        r = self.renderer
        req_digest = digests[-1]
        key = ("prompt", req_digest, id(self.targets))
        hit: tuple[RenderedPrompt, array] | None = r.cached(key)

        def plan_of(rp: RenderedPrompt, prompt: array) -> SplicePlan:
            return SplicePlan(prompt_ids=prompt, obs_spans=rp.obs_spans, obs_body_spans=rp.obs_body_spans,
                              new_from=0, parent=None, parent_call_id=context.call_id if context else None,
                              break_reason=reason, req_digest=req_digest, new_digests=digests, n_conv=len(messages),
                              prev=messages[-1], full_text=rp.full_text)

        if hit is not None:
            return plan_of(*hit)
        text, split, head = r.prompt_text(messages, self.tools)
        if split and not r.safe_split(text, split):
            split, head = 0, ()

        def finish(enc: Any) -> SplicePlan:
            rp = r.finish_prompt(text, split, head, enc, messages, self.targets)
            prompt = ids(rp.ids)
            r.remember(key, (rp, prompt))
            return plan_of(rp, prompt)

        return Draft(text=text[split:], base_len=len(head), finish=finish)

    # -- recording ---------------------------------------------------------------------------
    def add(self, node: Node, plan: SplicePlan, reply: Message, raw: list[Any], canon: list[Message]) -> None:
        """Index a served call (its reply known, delivered or not yet)."""
        policy = self.renderer.policy
        node.reply = reply
        node.reply_key = message_key(reply, policy)
        node.seq_digest = chain_digest(plan.req_digest, node.reply_key)
        node.raw_conv = raw
        node.canon = canon
        self.by_request.setdefault(plan.req_digest, node)
        for d in plan.new_digests:
            self.by_prefix.setdefault(d, node)
        self.by_prefix.setdefault(plan.req_digest, node)
        self.by_prefix.setdefault(node.seq_digest, node)
        existing = self.by_reply.get(node.seq_digest)
        if existing is None or (node.delivered and not existing.delivered):
            self.by_reply[node.seq_digest] = node
        parent = plan.parent
        if parent is not None:
            parent.continued = True
            if parent in self.tips:
                self.tips.remove(parent)
                parent.raw_conv = parent.canon = None
                parent.forget_ids()
        self.tips.append(node)
        while len(self.tips) > MAX_TIPS:
            old = self.tips.pop(0)
            old.raw_conv = old.canon = None
            old.forget_ids()

    def mark_delivered(self, node: Node) -> None:
        node.delivered = True
        existing = self.by_reply.get(node.seq_digest)
        if existing is None or not existing.delivered:
            self.by_reply[node.seq_digest] = node


def _divergence(messages: Sequence[Message], j: int) -> BreakReason:
    """Type of the edit at the first message that matches nothing served before."""
    if j < len(messages) and messages[j].get("role") == "assistant":
        return BreakReason.ASSISTANT_EDITED
    return BreakReason.HISTORY_EDITED
