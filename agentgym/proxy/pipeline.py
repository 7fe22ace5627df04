"""The proxy's pipeline for one call, whatever the API dialect:

    parse (dialect) -> plan the prompt ids (splice) -> generate -> reply message -> format (dialect)
    -> record (index + journal, with whether the reply was delivered)

A dialect (:mod:`agentgym.proxy.openai`) turns its wire format into a :class:`Request` (messages
in the canonical OpenAI chat shape, tools, sampling) and a :class:`Served` call back into its
wire format; everything between is here and knows no dialect.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agentgym.engines.base import Engine, Generation
from agentgym.errors import AgentGymError, ProxyError
from agentgym.proxy.calllog import CallLog
from agentgym.proxy.splice import SpliceIndex, SplicePlan
from agentgym.tokens.messages import Message
from agentgym.tokens.render import ChatRenderer
from agentgym.tokens.toolcalls import parse_hermes
from agentgym.types import Call, SamplingParams, Timings

__all__ = ["PinnedSampling", "Pipeline", "Request", "Served", "Session"]


@dataclass(frozen=True)
class PinnedSampling:
    """Sampling a training run imposes on every call, whatever the harness asks for: the
    trainer's logprobs then describe the distribution the tokens were really drawn from. The
    harness's own values stay in ``Call.request``; what was used is ``Call.sampling``."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int | None = None
    """A cap on the completion length (``None``: the request's own)."""


@dataclass(frozen=True)
class Request:
    """A validated request in the canonical (dialect-free) form."""

    messages: list[Message]
    sampling: SamplingParams
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = "auto"
    stream: bool = False
    include_usage: bool = False
    model: str = ""
    logprobs: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict)
    """The body as received (journaled on the call)."""


@dataclass
class Session:
    id: str
    index: SpliceIndex
    metadata: Mapping[str, Any] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    next_index: int = 0
    errors: list[str] = field(default_factory=list)
    """Engine failures seen while serving this session (the rollout records them)."""


@dataclass(frozen=True)
class Served:
    """A generated reply, before it is formatted and delivered."""

    call_id: str
    index: int
    agent_id: str
    plan: SplicePlan
    gen: Generation
    message: Message
    """The assistant message for the client (content, tool_calls)."""
    finish: str
    """``stop``, ``length`` or ``tool_calls``."""
    valid: bool
    t_start: float
    t_gen: float
    sampling: SamplingParams = field(default_factory=SamplingParams)
    """What the engine was asked to sample with."""

    @property
    def prompt_tokens(self) -> int:
        return len(self.plan.prompt_ids)

    @property
    def completion_tokens(self) -> int:
        return len(self.gen.completion_ids)


def finish_reason(engine_reason: str, has_tool_calls: bool) -> str:
    if engine_reason == "length":
        return "length"
    return "tool_calls" if has_tool_calls else "stop"


class Pipeline:
    """Plans, generates and records calls for every session of one proxy."""

    def __init__(self, engine: Engine, renderer: ChatRenderer, journal: CallLog, max_model_len: int,
                 pinned: PinnedSampling | None = None) -> None:
        self.engine = engine
        self.renderer = renderer
        self.journal = journal
        self.max_model_len = max_model_len
        self.pinned = pinned

    async def generate(self, session: Session, req: Request, agent: str | None) -> Served:
        """Plan the prompt ids, sample, and parse the reply. Raises :class:`ProxyError` (a 400
        ``context_length_exceeded`` for a prompt over the limit, a 500 when the engine fails)."""
        t_start = time.time()
        plan = session.index.plan(req.messages, req.tools, req.tool_choice, agent)
        if len(plan.prompt_ids) + 1 > self.max_model_len:
            # OpenAI's wording: clients (litellm, hence mini-swe-agent) stop instead of retrying on it.
            raise ProxyError(f"This model's maximum context length is {self.max_model_len} tokens. However, "
                             f"your messages resulted in {len(plan.prompt_ids)} tokens.",
                             code="context_length_exceeded", param="messages")
        sampling = req.sampling
        if self.pinned is not None:
            cap = self.pinned.max_tokens
            sampling = dataclasses.replace(
                sampling, temperature=self.pinned.temperature, top_p=self.pinned.top_p,
                max_tokens=sampling.max_tokens if cap is None else min(cap, sampling.max_tokens))
        room = self.max_model_len - len(plan.prompt_ids)
        if sampling.max_tokens > room:
            sampling = dataclasses.replace(sampling, max_tokens=room)
        index = session.next_index
        session.next_index += 1
        call_id = f"{session.id}-{index:04d}"
        try:
            gen = await self.engine.generate(plan.prompt_ids, sampling)
        except AgentGymError as e:
            session.errors.append(f"{type(e).__name__}: {e}")
            raise ProxyError(f"the engine failed: {e}", status=500, code="engine_error") from e
        except Exception as e:  # an engine bug must not take the proxy down
            session.errors.append(f"{type(e).__name__}: {e}")
            raise ProxyError(f"the engine failed: {type(e).__name__}: {e}", status=500, code="engine_error") from e
        t_gen = time.time()
        text = self.renderer.decode(gen.completion_ids)
        if gen.finish_reason == "stop":
            for s in sampling.stop:
                if s and s in text:
                    text = text[: text.index(s)]
        parsed = parse_hermes(text, f"{session.id[:8]}{index}", tools_offered=bool(req.tools))
        message: Message = {"role": "assistant", "content": parsed.content}
        if parsed.tool_calls:
            message["tool_calls"] = parsed.tool_calls
        return Served(call_id=call_id, index=index, agent_id=plan.agent_id, plan=plan, gen=gen, message=message,
                      finish=finish_reason(gen.finish_reason, bool(parsed.tool_calls)), valid=parsed.valid,
                      t_start=t_start, t_gen=t_gen, sampling=sampling)

    def record(self, session: Session, req: Request, served: Served, delivered: bool, dialect: str) -> Call:
        """Index the served call for later splices and append it to the journal."""
        plan, gen = served.plan, served.gen
        call = Call(
            call_id=served.call_id, session_id=session.id, index=served.index, agent_id=served.agent_id,
            parent_call_id=plan.parent_call_id, break_reason=plan.break_reason, request=dict(req.raw),
            prompt_ids=plan.prompt_ids, completion_ids=gen.completion_ids,
            completion_logprobs=gen.logprobs, obs_spans=plan.obs_spans, new_from=plan.new_from,
            obs_body_spans=plan.obs_body_spans if plan.obs_body_spans != plan.obs_spans else None,
            sampling={**dataclasses.asdict(served.sampling), "stop": list(served.sampling.stop)},
            response=served.message, finish_reason=served.finish, policy_version=gen.policy_version,
            timings=Timings(start=served.t_start, first_token=served.t_gen, end=time.time(), queue_s=gen.queue_s),
            delivered=delivered, dialect=dialect, valid_action=served.valid)
        session.calls.append(call)
        session.index.add(call, req.messages, served.message, req.tools, req.tool_choice,
                          prompt_text=plan.prompt_text)
        self.journal.append(call)
        return call

    def content_pieces(self, ids: tuple[int, ...], content: str) -> list[str]:
        """Per-token text deltas of the content part, for streaming."""
        pieces: list[str] = []
        prev = ""
        for i in range(1, len(ids) + 1):
            cur = self.renderer.tokenizer.decode(ids[:i], skip_special_tokens=False)
            if len(cur) >= len(content):
                pieces.append(content[len(prev):])
                break
            if cur.startswith(prev) and not cur.endswith("\ufffd"):
                pieces.append(cur[len(prev):])
                prev = cur
        else:
            pieces.append(content[len(prev):])
        return [p for p in pieces if p] if "".join(pieces) == content else [content]
