"""One engine per agent role: serving a separate policy to each agent of a session.

The proxy serves every call from one engine object. A multi-agent run that trains one policy per
agent role (the planner and its workers, say) gives it an :class:`AgentRoutedEngine`, which hands
each call to its role's engine. It learns whose call it is from :data:`SERVING_AGENT`, the agent
id the proxy sets (with :func:`serving_agent`) around each generation; a call with no agent id
(the session's own base URL) or of a role without an engine of its own goes to the default
role's engine.

>>> import asyncio
>>> from agentgym.engines.scripted import ScriptedEngine
>>> from agentgym.models.tiny import train_tokenizer
>>> from agentgym.types import SamplingParams
>>> tok = train_tokenizer()
>>> engine = AgentRoutedEngine({"main": ScriptedEngine(tok, ["planner"] * 2), "sub": ScriptedEngine(tok, ["worker"])})
>>> async def call(agent):
...     with serving_agent(agent):
...         gen = await engine.generate([1, 2], SamplingParams())
...     return tok.decode(gen.completion_ids, skip_special_tokens=True)
>>> [asyncio.run(call(a)) for a in (None, "sub-1", "critic")]
['planner', 'worker', 'planner']
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import Any

from agentgym.agents import MAIN_AGENT, agent_role
from agentgym.engines.base import Engine, Generation
from agentgym.errors import ConfigError
from agentgym.types import SamplingParams

__all__ = ["SERVING_AGENT", "AgentRoutedEngine", "serving_agent"]

SERVING_AGENT: ContextVar[str | None] = ContextVar("agentgym_serving_agent", default=None)
"""The agent id of the call being served (``None``: the session's main agent)."""


@contextlib.contextmanager
def serving_agent(agent: str | None) -> Iterator[None]:
    """Set :data:`SERVING_AGENT` for the generation inside the block (the proxy does this)."""
    token = SERVING_AGENT.set(agent)
    try:
        yield
    finally:
        SERVING_AGENT.reset(token)


class AgentRoutedEngine(Engine):
    """Routes each call to the engine of its agent's role (:func:`agentgym.agents.agent_role`).

    Args:
        engines: role -> engine. All must share one tokenizer (the proxy renders with it).
        default: the role whose engine serves the main agent and any role not in ``engines``.
    """

    name = "routed"

    def __init__(self, engines: Mapping[str, Engine], default: str = MAIN_AGENT) -> None:
        if default not in engines:
            raise ConfigError(f"AgentRoutedEngine: the default role {default!r} has no engine "
                              f"(roles: {', '.join(engines) or 'none'})")
        self.engines = dict(engines)
        self.default = default

    def role_of(self, agent: str | None) -> str:
        """The role whose engine serves ``agent`` (``default`` for ``None`` and unknown roles)."""
        role = agent_role(agent) if agent else self.default
        return role if role in self.engines else self.default

    def engine_for(self, role: str) -> Engine:
        return self.engines[role if role in self.engines else self.default]

    @property
    def tokenizer(self) -> Any:
        return self.engines[self.default].tokenizer

    @property
    def model_name(self) -> str:
        return self.engines[self.default].model_name

    @property
    def policy_version(self) -> int:
        """The oldest policy version among the roles' engines."""
        return min(e.policy_version for e in self.engines.values())

    @policy_version.setter
    def policy_version(self, value: int) -> None:
        raise AttributeError("AgentRoutedEngine.policy_version is its engines' oldest: update the engines")

    async def generate(self, prompt_ids: Sequence[int], sampling: SamplingParams) -> Generation:
        return await self.engines[self.role_of(SERVING_AGENT.get())].generate(prompt_ids, sampling)

    async def update_weights(self, state_dict: dict[str, Any], version: int) -> None:
        """The same weights for every role (a shared policy); per role: ``engine_for(role).update_weights``."""
        for engine in self.engines.values():
            await engine.update_weights(state_dict, version)

    async def aclose(self) -> None:
        for engine in self.engines.values():
            await engine.aclose()
