"""Anchor states for black-box harnesses.

GiGPO and HGPO group steps by *anchor state*: the current observation, without history. A
black-box harness has no ``env.observation`` to read, so agentgym uses what the environment said
since the agent's previous LLM call — the tool results and command output appended to the
conversation (``Step.observation``, filled by the reconstructor) — normalised so that two visits
of the same state give the same key:

* volatile substrings are replaced by placeholders (:data:`VOLATILE_PATTERNS`, applied in order):
  ISO date-times and clock times, UUIDs, ``0x`` addresses, long hex ids (container ids, git SHAs),
  temporary paths (``/tmp/...``, ``/var/folders/...``, ``tmpab12_x`` names), elapsed durations
  (``0.53s``, ``12 ms``) and process ids (``pid 4242``);
* whitespace runs collapse to one space and the ends are stripped.

Plain numbers stay: ``exit code 1`` and ``3 passed`` are state. Environments that know better pass
their own ``AnchorFn`` (any ``str -> str``) to :func:`with_anchors`.

>>> normalize_observation("Ran 3 tests in 0.012s\\n\\nOK   (pid 4242)  at 2025-01-02T10:11:12Z")
'Ran 3 tests in <dur> OK (pid <pid>) at <time>'
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, overload

from agentgym.types import Trajectory, TrajectoryGroup

__all__ = [
    "VOLATILE_PATTERNS",
    "AnchorFn",
    "anchor_from_messages",
    "new_environment_content",
    "normalize_observation",
    "with_anchors",
]

AnchorFn = Callable[[str], str]
"""Turns a step's observation text into its anchor key."""

VOLATILE_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # 2025-01-02T10:11:12.345+01:00, 2025-01-02 10:11, Thu Jan  2 10:11:12 UTC 2025 (date command)
    (re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2}|\s?UTC)?"), "<time>"),
    (re.compile(r"\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +\d{1,2} "
                r"\d{2}:\d{2}:\d{2}(?: [A-Z]{2,5})? \d{4}\b"), "<time>"),
    (re.compile(r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b"), "<time>"),
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"), "<uuid>"),
    (re.compile(r"\b0x[0-9a-fA-F]{4,}\b"), "<addr>"),
    # 12+ hex chars with at least one letter and one digit: ids and hashes, not plain numbers
    (re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{12,64}\b"), "<hex>"),
    (re.compile(r"(?:/private)?/(?:tmp|var/tmp|var/folders|dev/shm)/[^\s'\"`:;,)\]}]*"), "<tmp>"),
    (re.compile(r"\btmp[a-z0-9_]{5,}\b"), "<tmp>"),
    (re.compile(r"\b\d+(?:\.\d+)?\s?(?:ms|us|µs|ns|s|sec|secs|seconds)\b"), "<dur>"),
    (re.compile(r"\b(pid)[ =:#]?\s?\d+\b", re.IGNORECASE), r"\1 <pid>"),
)
"""``(pattern, replacement)`` pairs applied in order by :func:`normalize_observation`."""

_WHITESPACE = re.compile(r"\s+")


def normalize_observation(text: str,
                          patterns: Iterable[tuple[re.Pattern[str], str]] = VOLATILE_PATTERNS) -> str:
    """The default anchor function: strip volatile substrings, collapse whitespace."""
    for pattern, replacement in patterns:
        text = pattern.sub(replacement, text)
    return _WHITESPACE.sub(" ", text).strip()


def _text_of(content: Any) -> str:
    """Text of an OpenAI / Anthropic message content (string, or a list of parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Mapping):
        if content.get("type") == "tool_result" or "content" in content:
            return _text_of(content.get("content"))
        return str(content.get("text", ""))
    if isinstance(content, Sequence):
        return "\n".join(t for t in (_text_of(p) for p in content) if t)
    return str(content)


def new_environment_content(messages: Sequence[Mapping[str, Any]]) -> str:
    """What the environment said since the last assistant message: the text of every later
    ``tool`` / ``function`` / ``user`` message (Anthropic ``tool_result`` blocks included), joined
    by newlines. With no assistant message yet, the first call's non-system messages."""
    last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1)
    parts = [_text_of(m.get("content")) for m in messages[last + 1:]
             if m.get("role") in ("tool", "function", "user", "ipython")]
    return "\n".join(p for p in parts if p)


def anchor_from_messages(messages: Sequence[Mapping[str, Any]], anchor_fn: AnchorFn = normalize_observation) -> str:
    """Anchor key of the call that receives ``messages``."""
    return anchor_fn(new_environment_content(messages))


@overload
def with_anchors(item: Trajectory, anchor_fn: AnchorFn = ...) -> Trajectory: ...
@overload
def with_anchors(item: TrajectoryGroup, anchor_fn: AnchorFn = ...) -> TrajectoryGroup: ...
def with_anchors(item: Trajectory | TrajectoryGroup,
                 anchor_fn: AnchorFn = normalize_observation) -> Trajectory | TrajectoryGroup:
    """A copy of a trajectory (or of every trajectory of a group) with ``Step.anchor`` recomputed
    as ``anchor_fn(step.observation)``."""
    if isinstance(item, TrajectoryGroup):
        return dataclasses.replace(item, trajectories=tuple(with_anchors(t, anchor_fn) for t in item.trajectories))
    steps = tuple(dataclasses.replace(s, anchor=anchor_fn(s.observation)) for s in item.steps)
    return dataclasses.replace(item, steps=steps)
