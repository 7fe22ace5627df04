"""The proxy's pipeline for one call, whatever the API dialect:

    parse (dialect) -> plan the prompt ids (splice) -> generate (or stream) -> record
    -> format (dialect) -> mark delivered

A dialect (:mod:`.openai`, :mod:`.responses`, :mod:`.anthropic`) turns its wire format into a
:class:`Request` and a :class:`Served` call back into its wire format; everything between is
here and knows no dialect. A session opened with recorded calls to replay (a branch, :mod:`.replay`) takes the recorded
completion instead of generating while its requests match them.

The work per call is proportional to what is new in it: the
conversation is compared with the lineage's latest request as sent (one C-level comparison),
and only the items after it are converted, validated, hashed, rendered and tokenised; text
longer than :attr:`Limits.offload_chars` is tokenised on a worker thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import math
import time
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from agentgym.engines.base import Engine, Generation, TokenChunk
from agentgym.errors import AgentGymError, EngineError, ProxyError
from agentgym.observation import TargetsFn
from agentgym.proxy.calllog import CallLog, CallRecord, materialize
from agentgym.proxy.limits import MAX_JOURNAL_DEPTH, Limits
from agentgym.proxy.replay import Replay
from agentgym.proxy.splice import Draft, Lineage, Node, SplicePlan, ids
from agentgym.tokens.messages import Message
from agentgym.tokens.render import ChatRenderer
from agentgym.tokens.stream import IncrementalDetokenizer, ReplyStream
from agentgym.tokens.toolcalls import parse_hermes
from agentgym.types import Call, SamplingParams, Timings

if TYPE_CHECKING:
    from agentgym.proxy.dialect import Dialect

__all__ = ["Pending", "PinnedSampling", "Pipeline", "Request", "Served", "Session"]


@dataclass(frozen=True)
class PinnedSampling:
    """Sampling a training run imposes on every call, whatever the harness asks for: the
    trainer's logprobs then describe the distribution the tokens were really drawn from. The
    harness's own values stay in ``Call.request``; what was used is ``Call.sampling``."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int | None = None
    """A cap on the completion length (``None``: the request's own)."""


@dataclass
class Request:
    """A validated request in the canonical (dialect-free) form."""

    sampling: SamplingParams
    raw: dict[str, Any]
    """The body as received (journaled on the call)."""
    conv_key: str = "messages"
    """Key of the conversation (a list) in ``raw``."""
    preamble: list[Message] = field(default_factory=list)
    """Canonical messages that are not items of the conversation (a system prompt field)."""
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = "auto"
    stream: bool = False
    model: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    """Dialect-only settings (``include_usage``, ``logprobs``...)."""

    @property
    def conversation(self) -> list[Any]:
        conv = self.raw.get(self.conv_key)
        return conv if isinstance(conv, list) else []


@dataclass
class Session:
    id: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    targets: TargetsFn | None = None
    lineages: dict[bytes, Lineage] = field(default_factory=dict)
    records: list[CallRecord] = field(default_factory=list)
    next_index: int = 0
    errors: list[str] = field(default_factory=list)
    """Engine failures seen while serving this session (the rollout records them)."""
    context_overflow: bool = False
    """Whether the last request was refused for its length (and nothing was served since)."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    replay: Replay | None = None
    """Recorded calls that answer this session's first requests (a branch: :mod:`.replay`)."""

    @property
    def calls(self) -> list[Call]:
        return materialize(self.records)

    def lineage_name(self, agent: str | None) -> str:
        taken = {lin.name for lin in self.lineages.values()}
        base = agent or ("main" if "main" not in taken else "agent")
        if base not in taken and (agent or base == "main"):
            return base
        n = 1
        while f"{base}-{n}" in taken:
            n += 1
        return f"{base}-{n}"


@dataclass
class Served:
    """A generated reply, for the dialect to format."""

    call_id: str
    model: str
    message: Message
    """The assistant message for the client (content, tool_calls, reasoning_content)."""
    finish: str
    """``stop``, ``length`` or ``tool_calls``."""
    prompt_tokens: int
    completion_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    stop_sequence: str | None = None
    valid: bool = True
    tokens: tuple[str, ...] = ()
    """Token strings of the completion (only when the request asked for logprobs)."""

    @property
    def completion_tokens(self) -> int:
        return len(self.completion_ids)


@dataclass
class Pending:
    """A call between its plan and its reply."""

    session: Session
    lineage: Lineage
    node: Node
    record: CallRecord
    plan: SplicePlan
    req: Request
    canon: list[Message]
    sampling: SamplingParams
    t_start: float
    served: Served | None = None
    replay: Call | None = None
    """The recorded call this one is answered with (a branch's replayed call), else ``None``."""


def finish_reason(engine_reason: str, has_tool_calls: bool) -> str:
    if engine_reason == "length":
        return "length"
    return "tool_calls" if has_tool_calls else "stop"


def call_seed(seed: int, session_id: str, lineage: str, nth: int) -> int:
    """The sampling seed of the ``nth`` call of ``lineage`` in a session of a run seeded ``seed``
    (in [0, 2**63): what every engine takes)."""
    digest = hashlib.blake2b(f"{seed}\0{session_id}\0{lineage}\0{nth}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


class Pipeline:
    """Plans, generates and records calls for every session of one proxy."""

    def __init__(self, engine: Engine, renderer: ChatRenderer, journal: CallLog, max_model_len: int,
                 pinned: PinnedSampling | None = None, limits: Limits | None = None,
                 seed: int | None = None) -> None:
        self.engine = engine
        self.seed = seed
        """Calls that carry no seed get one derived from (seed, session, lineage, call number of
        the lineage): a seeded run samples the same tokens however its episodes interleave."""
        self.renderer = renderer
        self.journal = journal
        self.max_model_len = max_model_len
        self.pinned = pinned
        self.limits = limits or Limits()
        self.executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="agentgym-tokenise")

    # -- plan --------------------------------------------------------------------------------
    async def prepare(self, session: Session, req: Request, agent: str | None, dialect: Dialect) -> Pending:
        """Plan the prompt ids and open the call. Raises :class:`ProxyError` (the dialect's
        context-length error for a prompt over the limit)."""
        t_start = time.time()
        raw = req.conversation
        async with session.lock:
            lineage = self._lineage(session, req, agent, raw, dialect)
            match = lineage.match_tip(raw)
            tip = match[0] if match is not None else None
            if tip is not None and tip.canon is not None and match is not None:
                canon = [*tip.canon, *dialect.convert(raw[match[1]:], match[1])]
            else:
                tip = None
                canon = [*req.preamble, *dialect.convert(raw, 0)]
            if not canon:
                raise ProxyError("the conversation is empty: send at least one message", param=dialect.conv_key)
            try:
                planned = lineage.plan(canon, raw, tip)
                plan = await self._tokenise(planned, dialect) if isinstance(planned, Draft) else planned
                if len(plan.prompt_ids) + 1 > self.max_model_len:
                    raise dialect.context_error(len(plan.prompt_ids), self.max_model_len)
            except ProxyError as e:
                if e.code == "context_length_exceeded":
                    session.context_overflow = True  # the episode's stop reason if the harness gives up now
                raise
            sampling = self._sampling(req.sampling, len(plan.prompt_ids))
            if self.seed is not None and sampling.seed is None:
                nth = sum(1 for r in session.records if r.agent_id == lineage.name)
                sampling = dataclasses.replace(sampling, seed=call_seed(self.seed, session.id, lineage.name, nth))
            index = session.next_index
            session.next_index += 1
            call_id = f"{session.id}-{index:04d}"
            record, node = self._open(session, lineage, plan, req, raw, call_id, index, sampling, dialect, t_start)
            replayed = None
            if session.replay is not None and session.replay.active:
                replayed = session.replay.take(plan.prompt_ids, lineage.name, index)
                record.replayed_from = replayed.call_id if replayed is not None else None
                record.divergence = session.replay.divergence if replayed is None else None
            session.records.append(record)
        return Pending(session=session, lineage=lineage, node=node, record=record, plan=plan, req=req,
                       canon=canon, sampling=sampling, t_start=t_start, replay=replayed)

    def _lineage(self, session: Session, req: Request, agent: str | None, raw: list[Any],
                 dialect: Dialect) -> Lineage:
        n = 0
        while n < len(raw) and isinstance(raw[n], dict) and raw[n].get("role") in ("system", "developer"):
            n += 1
        try:
            ident = orjson.dumps([agent, req.preamble, raw[:n], req.tools, req.tool_choice],
                                 option=orjson.OPT_SORT_KEYS)
        except (orjson.JSONEncodeError, TypeError) as e:
            raise ProxyError(f"the request could not be canonicalised: {e}") from None
        key = hashlib.blake2b(ident, digest_size=16).digest()
        lineage = session.lineages.get(key)
        if lineage is None:
            system = [*req.preamble, *dialect.convert(raw[:n], 0)]
            lineage = Lineage(name=session.lineage_name(agent), key=key, tools=req.tools, renderer=self.renderer,
                              targets=session.targets, n_system=len(system))
            session.lineages[key] = lineage
        return lineage

    async def _tokenise(self, draft: Draft, dialect: Dialect) -> SplicePlan:
        room = self.max_model_len - draft.base_len
        if len(draft.text) > room * self.renderer.max_token_chars:
            # Longer than any tokenisation of it could fit: refuse before tokenising.
            floor = draft.base_len + len(draft.text) // self.renderer.max_token_chars
            raise dialect.context_error(floor, self.max_model_len)
        if len(draft.text) > self.limits.offload_chars:
            enc = await asyncio.get_running_loop().run_in_executor(self.executor, self.renderer.encode, draft.text)
        else:
            enc = self.renderer.encode(draft.text)
        plan: SplicePlan = draft.finish(enc)
        return plan

    def _sampling(self, sampling: SamplingParams, prompt_len: int) -> SamplingParams:
        if self.pinned is not None:
            cap = self.pinned.max_tokens
            sampling = dataclasses.replace(
                sampling, temperature=self.pinned.temperature, top_p=self.pinned.top_p,
                max_tokens=sampling.max_tokens if cap is None else min(cap, sampling.max_tokens))
        room = self.max_model_len - prompt_len
        if sampling.max_tokens > room:
            sampling = dataclasses.replace(sampling, max_tokens=room)
        return sampling

    def _open(self, session: Session, lineage: Lineage, plan: SplicePlan, req: Request, raw: list[Any],
              call_id: str, index: int, sampling: SamplingParams, dialect: Dialect,
              t_start: float) -> tuple[CallRecord, Node]:
        base = plan.base
        request, conv_base, conv_keep = req.raw, None, 0
        tip = base if plan.fast else None
        if base is not None and not base.journaled:
            tip = None  # its record never reached the disk: store this one whole
        if tip is not None and tip.raw_conv is not None:
            conv_base, conv_keep = tip.call_id, len(tip.raw_conv)
            request = {**req.raw, req.conv_key: raw[conv_keep:]}
        try:  # encoded now: a body the journal cannot hold is the client's 400, before any work
            request_json = orjson.Fragment(orjson.dumps(request))
        except orjson.JSONEncodeError as e:
            raise ProxyError(f"the request cannot be recorded: {e} (nested more than {MAX_JOURNAL_DEPTH} "
                             "levels?)", code="invalid_request_error") from None
        keep = plan.keep if base is not None and base.journaled else 0
        tail = plan.prompt_ids[keep:]
        record = CallRecord(
            call_id=call_id, session_id=session.id, index=index, agent_id=lineage.name,
            parent_call_id=plan.parent_call_id, break_reason=plan.break_reason, new_from=plan.new_from,
            prompt_base=base.call_id if base is not None and keep else None, prompt_keep=keep, prompt_tail=tail,
            request=request, conv_key=req.conv_key, conv_base=conv_base, conv_keep=conv_keep,
            obs_spans=plan.obs_spans,
            obs_body_spans=plan.obs_body_spans if plan.obs_body_spans != plan.obs_spans else None,
            sampling={"temperature": sampling.temperature, "top_p": sampling.top_p, "max_tokens": sampling.max_tokens,
                      "stop": list(sampling.stop), "seed": sampling.seed}, dialect=dialect.name,
            request_json=request_json)
        node = Node(call_id=call_id, base=base, keep=plan.keep, tail=plan.prompt_ids[plan.keep:], new_from=plan.new_from,
                    parent_call_id=plan.parent_call_id, obs_spans=plan.obs_spans,
                    obs_body_spans=plan.obs_body_spans, req_digest=plan.req_digest, n_conv=plan.n_conv,
                    n_raw=len(raw), prev=plan.prev, _full=plan.prompt_ids)
        return record, node

    async def count_tokens(self, req: Request, dialect: Dialect) -> int:
        """Prompt tokens the request would have (rendered whole; nothing is recorded)."""
        canon = [*req.preamble, *dialect.convert(req.conversation, 0)]
        text, split, head = self.renderer.prompt_text(canon, req.tools)
        tail = text[split:]
        if len(tail) > self.limits.offload_chars:
            enc = await asyncio.get_running_loop().run_in_executor(self.executor, self.renderer.encode, tail)
        else:
            enc = self.renderer.encode(tail)
        return len(head) + len(enc.ids)

    # -- generate ----------------------------------------------------------------------------
    async def generate(self, p: Pending) -> Served:
        """Sample the whole completion (or take a replayed call's), then parse it."""
        if p.replay is not None:
            return self._finish(p, Replay.generation(p.replay), time.time())
        try:
            gen = await self.engine.generate(p.plan.prompt_ids, p.sampling)
        except Exception as e:
            raise self._engine_failed(p.session, e) from e
        return self._finish(p, gen, time.time())

    async def stream(self, p: Pending) -> AsyncIterator[tuple[str, str]]:
        """Yield ``("reasoning" | "content", text)`` deltas as the engine samples; afterwards
        ``p.served`` holds the parsed reply. Tool calls come with the reply, once parsed."""
        r = self.renderer
        detok = IncrementalDetokenizer(r._decoder, skip=(r.eos_id,))
        parser = ReplyStream(tools_offered=bool(p.req.tools), stops=p.sampling.stop)
        ids: list[int] = []
        logprobs: list[float] = []
        finish, version, queue_s, first = "length", self.engine.policy_version, 0.0, 0.0
        chunks = (self.engine.stream(p.plan.prompt_ids, p.sampling) if p.replay is None
                  else _replayed_chunks(Replay.generation(p.replay)))
        try:
            async for chunk in chunks:
                if chunk.ids and not first:
                    first = time.time()
                ids.extend(chunk.ids)
                logprobs.extend(chunk.logprobs)
                if chunk.finish_reason is not None:
                    finish, version, queue_s = chunk.finish_reason, chunk.policy_version, chunk.queue_s
                for delta in parser.feed(detok.push(chunk.ids)):
                    yield delta
        except GeneratorExit:
            raise
        except Exception as e:
            raise self._engine_failed(p.session, e) from e
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()
            if p.served is None:  # cut short (client gone): keep what was sampled
                p.record.completion_ids, p.record.completion_logprobs = tuple(ids), tuple(logprobs)
        gen = Generation(completion_ids=tuple(ids), logprobs=tuple(logprobs), finish_reason=finish,
                         policy_version=version, queue_s=queue_s)
        served = self._finish(p, gen, first or time.time())
        for delta in parser.finish(parse_of(served)):
            yield delta

    def _engine_failed(self, session: Session, e: BaseException) -> ProxyError:
        if isinstance(e, ProxyError):
            return e
        session.errors.append(f"{type(e).__name__}: {e}")
        what = str(e) if isinstance(e, AgentGymError) else f"{type(e).__name__}: {e}"
        return ProxyError(f"the engine failed: {what}", status=500, code="engine_error")

    def _finish(self, p: Pending, gen: Generation, first_token: float) -> Served:
        if len(gen.logprobs) != len(gen.completion_ids) or not all(map(math.isfinite, gen.logprobs)):
            raise self._engine_failed(p.session, EngineError(
                f"the engine returned {len(gen.completion_ids)} tokens with non-finite or missing logprobs"))
        text = self.renderer.decode(gen.completion_ids)
        stop_seq = None
        if gen.finish_reason == "stop":
            for s in p.sampling.stop:
                if s and s in text:
                    text, stop_seq = text[: text.index(s)], s
                    break
        if p.replay is not None:  # the recorded reply, as the parent's harness got it (tool-call ids too)
            message: Message = dict(p.replay.response)
            finish, valid = p.replay.finish_reason, p.replay.valid_action
        else:
            parsed = parse_hermes(text, f"{p.session.id[:8]}{p.record.index}", tools_offered=bool(p.req.tools))
            message = {"role": "assistant", "content": parsed.content}
            if parsed.tool_calls:
                message["tool_calls"] = parsed.tool_calls
            if parsed.reasoning is not None:
                message["reasoning_content"] = parsed.reasoning
            finish, valid = finish_reason(gen.finish_reason, bool(parsed.tool_calls)), parsed.valid
        served = Served(call_id=p.record.call_id, model=p.req.model or self.engine.model_name, message=message,
                        finish=finish,
                        prompt_tokens=len(p.plan.prompt_ids), completion_ids=gen.completion_ids,
                        logprobs=gen.logprobs, stop_sequence=stop_seq, valid=valid,
                        tokens=(tuple(self.renderer.tokenizer.convert_ids_to_tokens(list(gen.completion_ids)))
                                if p.req.options.get("logprobs") else ()))
        rec = p.record
        rec.completion_ids, rec.completion_logprobs = gen.completion_ids, gen.logprobs
        rec.response, rec.finish_reason, rec.policy_version = message, served.finish, gen.policy_version
        rec.valid_action, rec.done = valid, True
        rec.timings = Timings(start=p.t_start, first_token=first_token, end=time.time(), queue_s=gen.queue_s)
        p.node.completion = ids(gen.completion_ids)
        p.lineage.add(p.node, p.plan, message, p.req.conversation, p.canon)
        p.session.context_overflow = False
        p.served = served
        return served

    # -- journal -----------------------------------------------------------------------------
    async def journal_intent(self, p: Pending) -> None:
        """Write the call before anything of a streamed reply is sent."""
        await self._write(p, p.record.intent_json())

    async def journal_outcome(self, p: Pending, intent_written: bool) -> None:
        """Write the completion before the reply's last byte is sent; raises on failure."""
        await self._write(p, p.record.outcome_json() if intent_written else p.record.intent_json())
        p.node.journaled = True

    async def _write(self, p: Pending, obj: dict[str, Any]) -> None:
        try:
            await self.journal.write(p.session.id, obj)
        except ProxyError:
            raise
        except Exception as e:
            p.session.errors.append(f"journal write failed: {type(e).__name__}: {e}")
            raise ProxyError(f"the call could not be journaled ({type(e).__name__}: {e}); it was not delivered",
                             status=500, code="journal_error") from e

    def delivered(self, p: Pending) -> None:
        """The client has the whole reply: mark it (the marker is written in the background)."""
        p.record.delivered = True
        p.lineage.mark_delivered(p.node)
        self.journal.post(p.session.id, {"v": 2, "t": "delivered", "call_id": p.record.call_id})

    def abandon(self, p: Pending) -> None:
        """The client went away before the reply was complete: record what was sampled, undelivered."""
        rec = p.record
        if rec.done:
            return
        rec.finish_reason, rec.done = "cancelled", True
        rec.timings = Timings(start=p.t_start, end=time.time())
        self.journal.post(p.session.id, rec.outcome_json())  # its intent was written first

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


async def _replayed_chunks(gen: Generation) -> AsyncIterator[TokenChunk]:
    """A recorded completion as an engine's stream: its ids in one chunk, then the finish."""
    yield TokenChunk(ids=gen.completion_ids, logprobs=gen.logprobs, policy_version=gen.policy_version)
    yield TokenChunk(ids=(), logprobs=(), finish_reason=gen.finish_reason, policy_version=gen.policy_version)


def parse_of(served: Served) -> Any:
    from agentgym.tokens.toolcalls import ParsedCompletion

    m = served.message
    return ParsedCompletion(content=m.get("content"), tool_calls=m.get("tool_calls") or [],
                            reasoning=m.get("reasoning_content"))
