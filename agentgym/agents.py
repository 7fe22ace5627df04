"""Agent ids and roles: who made a call in a multi-agent session.

Every call the proxy serves belongs to an *agent*: ``"main"`` for the session's base URL, or the
``<agent>`` of the sub-agent route ``/s/<sid>/a/<agent>/v1`` (or the ``X-AgentGym-Agent``
header). Each agent of a session becomes its own trajectory. Several agents play one *role*:
worker ``sub-1`` and worker ``sub-2`` are both ``sub``. Roles are what M-GRPO groups by and what a
per-agent policy is chosen by.

The role is the part of the id before a ``:`` if there is one, else the id without its trailing
instance numbers (``-1``, ``_2``, ``.3``); ids the proxy accepts in a URL path (letters, digits,
``.``, ``_``, ``-``) use the second form:

>>> [agent_role(a) for a in ("main", "sub-1", "sub-12", "sub:0", "critic", "code-reviewer-2", "agent-1-1")]
['main', 'sub', 'sub', 'sub', 'critic', 'code-reviewer', 'agent']
"""

from __future__ import annotations

import re

__all__ = ["MAIN_AGENT", "agent_role", "is_main"]

MAIN_AGENT = "main"
"""The agent id (and role) of calls made to the session's own base URL."""

_INSTANCE_SUFFIX = re.compile(r"(?:[-_.]\d+)+$")


def agent_role(agent_id: str) -> str:
    """The role of an agent id (see the module docstring)."""
    if ":" in agent_id:
        return agent_id.split(":", 1)[0]
    return _INSTANCE_SUFFIX.sub("", agent_id) or agent_id


def is_main(agent_id: str) -> bool:
    """Whether an agent id has the main agent's role."""
    return agent_role(agent_id) == MAIN_AGENT
