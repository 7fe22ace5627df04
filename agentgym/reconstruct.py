"""Calls -> token-faithful trajectories.

The proxy already spliced each call's prompt from its parent's exact ids, so a lineage of calls
``c1 -> c2 -> c3`` is one token sequence: ``c3.prompt_ids + c3.completion_ids``, in which every
completion of the chain sits at a known offset. This module walks the calls of a session in
arrival order and builds segments, *checking* the prefix property instead of trusting it:

- a call extends the segment whose last call is its parent, when the proxy spliced it
  (``break_reason is None``), nobody continued that parent yet, and its ``prompt_ids`` really
  start with the segment's ids (anything else raises :class:`ReconstructionError`: a proxy bug);
- otherwise it opens a new segment typed by its break reason (``BRANCH`` when the parent was
  already continued, ``UNDELIVERED_PARENT`` when the parent never reached the harness). The new
  segment's inherited prefix is context only (``action_mask = 0``), so every sampled token is
  trained at most once;
- calls whose reply never reached the harness are counted as sampled but not trained;
- of calls with the same prompt (a harness retrying), one is trained: the one a later call
  continues, else the last delivered; the others are sampled but not trained;
- a branch's replayed calls (``Call.replayed_from``: the proxy served a recorded completion
  instead of sampling, :mod:`agentgym.proxy.replay`) are steps whose completion is context only
  (``action_mask = 0``, the recorded logprobs and policy version kept): they were sampled, and are
  trained, in the episode they were recorded in, so a tree's shared prefix is trained once. They
  are not counted as sampled here.

Steps are the delivered calls, in order, with their action span, observation text and anchor.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentgym.errors import ReconstructionError
from agentgym.observation import new_observation, normalize_observation
from agentgym.tokens.messages import content_text
from agentgym.types import BreakReason, Call, ErrorInfo, Segment, Step, StopReason, Trajectory


@dataclass
class _Building:
    ids: list[int] = field(default_factory=list)
    action: list[int] = field(default_factory=list)
    obs: list[int] = field(default_factory=list)
    body: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    turn: list[int] = field(default_factory=list)
    version: list[int] = field(default_factory=list)
    call_ids: list[str] = field(default_factory=list)
    break_reason: BreakReason = BreakReason.START
    agent_id: str = "main"

    def freeze(self) -> Segment:
        return Segment(input_ids=tuple(self.ids), action_mask=tuple(self.action), obs_mask=tuple(self.obs),
                       obs_body_mask=tuple(self.body) if self.body != self.obs else (),
                       logprobs=tuple(self.logprobs), turn_index=tuple(self.turn),
                       policy_version=tuple(self.version), break_reason=self.break_reason,
                       call_ids=tuple(self.call_ids), agent_id=self.agent_id)


@dataclass(frozen=True)
class Reconstruction:
    """Segments and steps of one agent's calls."""

    segments: tuple[Segment, ...]
    steps: tuple[Step, ...]
    sampled_tokens: int


def action_text(call: Call) -> str:
    resp = call.response
    parts = [content_text(resp.get("content"))] if resp.get("content") else []
    for tc in resp.get("tool_calls") or []:
        fn = tc.get("function", {})
        parts.append(f"{fn.get('name')}({fn.get('arguments')})")
    return "\n".join(parts)


def reconstruct_calls(calls: Sequence[Call], anchor_fn: Callable[[str], str] | None = None) -> Reconstruction:
    """Build segments and steps from one agent's calls (any order; sorted by arrival)."""
    anchor = anchor_fn or normalize_observation
    calls = sorted(calls, key=lambda c: c.index)
    by_id = {c.call_id: c for c in calls}
    superseded = _superseded(calls)
    segments: list[_Building] = []
    tip_of: dict[str, int] = {}  # call id -> segment whose last call it is
    continued: set[str] = set()
    steps: list[Step] = []
    sampled = 0
    for call in calls:
        if call.replayed_from is None:
            sampled += len(call.completion_ids)
        if not call.delivered or call.call_id in superseded:
            continue
        parent = call.parent_call_id
        seg_index = tip_of.get(parent) if parent is not None else None
        extends = call.break_reason is None or call.break_reason == BreakReason.RETRY
        if extends and parent is not None and seg_index is not None and parent not in continued:
            seg = segments[seg_index]
            if tuple(call.prompt_ids[: len(seg.ids)]) != tuple(seg.ids):
                raise ReconstructionError(
                    f"call {call.call_id} claims to extend {parent} but its prompt ids differ from that "
                    f"segment at token {_first_diff(call.prompt_ids, seg.ids)}: the proxy broke the prefix "
                    "invariant (please report this with the session journal)")
            del tip_of[parent]
            start = len(seg.ids)
        else:
            reason = call.break_reason
            if reason is None or reason == BreakReason.RETRY:
                parent_call = by_id.get(parent) if parent else None
                reason = (BreakReason.UNDELIVERED_PARENT if parent_call is not None and not parent_call.delivered
                          else BreakReason.BRANCH if parent is not None else BreakReason.START)
            seg = _Building(break_reason=reason, agent_id=call.agent_id)
            segments.append(seg)
            seg_index = len(segments) - 1
            start = 0
            context = call.new_from  # inherited prefix: context only, trained where it was first sampled
            seg.ids.extend(call.prompt_ids[:context])
            seg.action.extend([0] * context)
            seg.obs.extend([0] * context)
            seg.body.extend([0] * context)
            seg.logprobs.extend([0.0] * context)
            seg.turn.extend([-1] * context)
            seg.version.extend([call.policy_version] * context)
            start = context
        if parent is not None:
            continued.add(parent)
        step_index = len(steps)
        new = call.prompt_ids[start:]
        obs_flags = _flags(call.obs_spans, start, len(new))
        body_flags = obs_flags if call.obs_body_spans is None else _flags(call.obs_body_spans, start, len(new))
        first_turn = -1 if not steps and start == 0 and call.new_from == 0 else step_index
        seg.ids.extend(new)
        seg.action.extend([0] * len(new))
        seg.obs.extend(obs_flags)
        seg.body.extend(body_flags)
        seg.logprobs.extend([0.0] * len(new))
        seg.turn.extend([first_turn] * len(new))
        seg.version.extend([call.policy_version] * len(new))
        a0 = len(seg.ids)
        seg.ids.extend(call.completion_ids)
        seg.action.extend([0 if call.replayed_from is not None else 1] * len(call.completion_ids))
        seg.obs.extend([0] * len(call.completion_ids))
        seg.body.extend([0] * len(call.completion_ids))
        seg.logprobs.extend(call.completion_logprobs)
        seg.turn.extend([step_index] * len(call.completion_ids))
        seg.version.extend([call.policy_version] * len(call.completion_ids))
        seg.call_ids.append(call.call_id)
        tip_of[call.call_id] = seg_index
        obs = new_observation(_conversation(call.request))
        steps.append(Step(index=step_index, call_id=call.call_id, segment_index=seg_index,
                          action_span=(a0, len(seg.ids)), obs_span=(start, a0), observation=obs,
                          action=action_text(call), anchor=anchor(obs), valid=call.valid_action,
                          agent_id=call.agent_id))
    return Reconstruction(segments=tuple(s.freeze() for s in segments), steps=tuple(steps), sampled_tokens=sampled)


def _conversation(request: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The request's messages, role-shaped: chat and Anthropic ``messages``, or OpenAI Responses
    ``input`` items (tool outputs are tool results, function calls assistant turns)."""
    if isinstance(request.get("messages"), list):
        return list(request["messages"])
    items = request.get("input")
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    out: list[Mapping[str, Any]] = []
    for it in items if isinstance(items, list) else []:
        if not isinstance(it, Mapping):
            continue
        kind = it.get("type", "message")
        if kind == "function_call_output":
            out.append({"role": "tool", "content": it.get("output")})
        elif kind in ("function_call", "reasoning"):
            out.append({"role": "assistant", "content": None})
        else:
            out.append({"role": it.get("role"), "content": it.get("content")})
    return out


def _superseded(calls: Sequence[Call]) -> set[str]:
    """Delivered calls not trained because another call had the same prompt: of each such group
    the one a later call continues is trained (all of them, if the harness forked), else the last."""
    groups: dict[tuple[int, ...], list[Call]] = {}
    for c in calls:
        if c.delivered:
            groups.setdefault(tuple(c.prompt_ids), []).append(c)
    continued = {c.parent_call_id for c in calls if c.parent_call_id is not None}
    out: set[str] = set()
    for group in groups.values():
        if len(group) > 1:
            keep = [c for c in group if c.call_id in continued] or [group[-1]]
            out.update(c.call_id for c in group if c not in keep)
    return out


def _flags(spans: Sequence[tuple[int, int]], start: int, n: int) -> list[int]:
    """1 on the tokens of ``spans`` (ranges of a call's prompt ids) from ``start`` on, ``n`` long."""
    flags = [0] * n
    for s, e in spans:
        for t in range(max(s, start), min(e, start + n)):
            flags[t - start] = 1
    return flags


def _first_diff(a: Sequence[int], b: Sequence[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def reconstruct(calls: Sequence[Call], *, task_id: str, trajectory_id: str, reward: float = 0.0,
                stop_reason: StopReason = StopReason.COMPLETED, harness: str = "", env: str = "",
                sample_index: int = 0, error: ErrorInfo | None = None, started_at: float = 0.0,
                ended_at: float = 0.0, anchor_fn: Callable[[str], str] | None = None,
                metadata: Mapping[str, Any] | None = None, session_id: str = "") -> list[Trajectory]:
    """One trajectory per agent of a session (``main`` first), each with the episode's reward,
    stop reason and error. Sub-agent trajectories get id ``<trajectory_id>/<agent>``.
    ``session_id`` is the session's when it made no call (the calls' own otherwise)."""
    by_agent: dict[str, list[Call]] = {}
    for c in sorted(calls, key=lambda c: c.index):
        by_agent.setdefault(c.agent_id, []).append(c)
    if not by_agent:
        by_agent["main"] = []
    order = sorted(by_agent, key=lambda a: (a != "main", min((c.index for c in by_agent[a]), default=0)))
    session_id = calls[0].session_id if calls else session_id
    out = []
    for agent in order:
        rec = reconstruct_calls(by_agent[agent], anchor_fn)
        out.append(Trajectory(
            id=trajectory_id if agent == "main" else f"{trajectory_id}/{agent}", task_id=task_id,
            session_id=session_id, segments=rec.segments, steps=rec.steps, reward=reward,
            stop_reason=stop_reason, harness=harness, env=env, agent_id=agent, sample_index=sample_index,
            error=error, sampled_tokens=rec.sampled_tokens, started_at=started_at, ended_at=ended_at,
            metadata=dict(metadata or {}), parent_trajectory_id=None if agent == "main" else trajectory_id))
    return out
