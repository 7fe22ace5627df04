"""Replay: a session answers its first calls with another episode's recorded completions.

This is how a black-box harness is branched mid-episode (tree rollouts). To branch episode E at
call ``t``, the same harness runs on the same task in a fresh runtime, in a proxy session opened
with ``Proxy.open_session(..., replay=E's first t calls)``. While the harness's requests match,
the k-th request is not sampled: it is answered with the k-th recorded call's exact completion
ids, logprobs, policy version and reply (the same message, tool-call ids included), so the
harness acts as it did in E and the environment re-executes the same actions. From call ``t + 1``
on the engine samples as usual.

A request *matches* the recorded call when the proxy plans exactly the recorded prompt ids for it
(the same messages, tools and tool output, rendered the same way) and it comes from the same
agent. The first request that does not is a **divergence**: it is sampled, its call carries a
typed :class:`~agentgym.types.Divergence`, and replay stops for the session (every later call is
sampled). So a non-deterministic harness or environment costs a shorter shared prefix, never a
corrupt trajectory: a replayed call's prompt is, token for token, the recorded one.

Replayed calls are journaled like any call, with ``replayed_from`` naming the recorded call. The
reconstructor keeps their completions as context (``action_mask = 0``): those tokens were sampled
(and are trained) in the parent episode, so a tree's shared prefix is trained once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agentgym.engines.base import Generation
from agentgym.types import Call, Divergence

__all__ = ["Replay"]


@dataclass
class Replay:
    """The recorded calls a session answers its first requests with, in order, and how far it got.

    >>> from agentgym.types import Call
    >>> rec = Call(call_id="e-0", session_id="e", index=0, agent_id="main", parent_call_id=None,
    ...            break_reason=None, request={}, prompt_ids=(1, 2), completion_ids=(3,), completion_logprobs=(-0.5,))
    >>> r = Replay([rec])
    >>> r.take((1, 2), "main").call_id, r.active
    ('e-0', False)
    >>> r = Replay([rec])
    >>> r.take((1, 9), "main"), r.divergence, r.first_diff
    (None, <Divergence.PROMPT_DIFFERS: 'prompt_differs'>, 1)
    """

    calls: Sequence[Call]
    served: int = 0
    """Requests answered from the recording so far."""
    divergence: Divergence | None = None
    diverged_at: int | None = None
    """Index (in the session) of the request that diverged."""
    first_diff: int | None = None
    """For ``PROMPT_DIFFERS``: the first prompt token that differs from the recorded call's."""

    @property
    def active(self) -> bool:
        """Whether the next request will be compared with a recorded call."""
        return self.divergence is None and self.served < len(self.calls)

    @staticmethod
    def generation(rec: Call) -> Generation:
        """The recorded completion as an engine's answer (its ids, logprobs and policy version)."""
        return Generation(completion_ids=tuple(rec.completion_ids), logprobs=tuple(rec.completion_logprobs),
                          finish_reason="length" if rec.finish_reason == "length" else "stop",
                          policy_version=rec.policy_version)

    def take(self, prompt_ids: Sequence[int], agent: str, index: int = 0) -> Call | None:
        """The recorded call to answer this request with, or ``None`` to sample it (replay over,
        or this request diverges: then :attr:`divergence` is set)."""
        if not self.active:
            return None
        rec = self.calls[self.served]
        if rec.agent_id != agent:
            self.divergence, self.diverged_at = Divergence.AGENT_DIFFERS, index
            return None
        if len(prompt_ids) != len(rec.prompt_ids) or tuple(prompt_ids) != tuple(rec.prompt_ids):
            self.divergence, self.diverged_at = Divergence.PROMPT_DIFFERS, index
            self.first_diff = next((i for i, (a, b) in enumerate(zip(prompt_ids, rec.prompt_ids, strict=False))
                                    if a != b), min(len(prompt_ids), len(rec.prompt_ids)))
            return None
        self.served += 1
        return rec
