"""What the environment said: the one rule for observations.

A black-box harness sends whole conversations; agentgym decides which messages carry
*environment output* (command output, tool results, anything the environment fed back) with one
predicate, :func:`is_observation`, and reads their text with one extractor,
:func:`observation_text`. Everything that needs the distinction uses these two:

- the proxy's ``obs_mask`` (tokens of observation messages, the ECHO targets),
- ``Step.observation`` (:func:`new_observation`: what the environment said since the agent's
  previous call),
- anchor states for GiGPO/HGPO (:func:`anchor`, the normalised ``Step.observation``).

An observation is a ``tool`` (or legacy ``function``/``ipython``) message, or a ``user`` message
once the agent has acted (command output fed back as text, as mini-swe-agent's format errors
are). The task prompt before the first assistant turn is not environment output; it is the
initial state, so the first step's observation is the prompt's non-system text.

>>> msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "list files"},
...         {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "bash"}}]},
...         {"role": "tool", "content": "a.txt  b.txt"}]
>>> [is_observation(msgs, i) for i in range(4)]
[False, False, False, True]
>>> new_observation(msgs), new_observation(msgs[:2])
('a.txt  b.txt', 'list files')
>>> normalize_observation("Ran 3 tests in 0.012s\\n\\nOK   (pid 4242)  at 2025-01-02T10:11:12Z")
'Ran 3 tests in <dur> OK (pid <pid>) at <time>'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "OBSERVATION_ROLES",
    "VOLATILE_PATTERNS",
    "AnchorFn",
    "TargetsFn",
    "anchor",
    "is_observation",
    "new_observation",
    "normalize_observation",
    "observation_text",
]

OBSERVATION_ROLES = ("tool", "function", "ipython")
"""Roles whose messages are always environment output."""

AnchorFn = Callable[[str], str]
"""Turns a step's observation text into its anchor-state key."""

TargetsFn = Callable[[Mapping[str, Any]], "Sequence[tuple[int, int]] | None"]
"""Character ranges of an observation message's content that are environment output (ECHO's
targets), or ``None`` for all of it. A harness that wraps command output in its own text
(``exit code: 0\noutput:\n...``) or injects warnings says which part the environment wrote
(:meth:`agentgym.harness.Harness.observation_targets`); the whole content is the observation
*body* (ECHO's ``|O|``)."""


def is_observation(messages: Sequence[Mapping[str, Any]], index: int) -> bool:
    """Whether ``messages[index]`` carries environment content: a tool result, or a user turn
    after the agent has acted (command output fed back as text)."""
    role = messages[index].get("role")
    if role in OBSERVATION_ROLES:
        return True
    if role == "user":
        return any(m.get("role") == "assistant" for m in messages[:index])
    return False


def observation_text(content: Any) -> str:
    """Text of a message's content: a string, ``None``, a list of text parts, or Anthropic
    ``tool_result`` / ``text`` blocks (nested contents joined by newlines). Non-text parts
    (images) contribute nothing."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Mapping):
        if content.get("type") == "tool_result" or "content" in content:
            return observation_text(content.get("content"))
        return str(content.get("text", ""))
    if isinstance(content, Sequence):
        return "\n".join(t for t in (observation_text(p) for p in content) if t)
    return str(content)


def new_observation(messages: Sequence[Mapping[str, Any]]) -> str:
    """What the environment said since the last assistant message (the text of every later
    observation, joined by newlines); before the agent's first turn, the prompt's non-system
    text (the initial state)."""
    last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1)
    if last < 0:
        parts = [observation_text(m.get("content")) for m in messages
                 if m.get("role") not in ("system", "developer")]
    else:
        parts = [observation_text(messages[i].get("content")) for i in range(last + 1, len(messages))
                 if is_observation(messages, i)]
    return "\n".join(p for p in parts if p)


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
"""``(pattern, replacement)`` pairs applied in order by :func:`normalize_observation`: volatile
substrings (times, UUIDs, addresses, long hex ids, temporary paths, durations, pids) that would
make two visits of one state look different. Plain numbers stay: ``exit code 1`` is state."""

_WHITESPACE = re.compile(r"\s+")


def normalize_observation(text: str,
                          patterns: Iterable[tuple[re.Pattern[str], str]] = VOLATILE_PATTERNS) -> str:
    """The default anchor function: strip volatile substrings, collapse whitespace."""
    for pattern, replacement in patterns:
        text = pattern.sub(replacement, text)
    return _WHITESPACE.sub(" ", text).strip()


def anchor(messages: Sequence[Mapping[str, Any]], anchor_fn: AnchorFn = normalize_observation) -> str:
    """Anchor-state key of the call that receives ``messages``: the normalised new observation."""
    return anchor_fn(new_observation(messages))
