"""AgentRoutedEngine behind the real proxy: each agent role is served by its own engine, chosen
from the route (or header) the call came in on; weight pushes and versions per role."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agentgym.engines.routed import SERVING_AGENT, AgentRoutedEngine, serving_agent
from agentgym.engines.scripted import ScriptedEngine
from agentgym.errors import ConfigError
from agentgym.models.tiny import train_tokenizer
from agentgym.proxy.server import Proxy
from agentgym.types import SamplingParams


class Versioned(ScriptedEngine):
    async def update_weights(self, state_dict: dict[str, Any], version: int) -> None:
        self.policy_version = version


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return train_tokenizer()


def routed(tokenizer: Any) -> AgentRoutedEngine:
    return AgentRoutedEngine({"main": Versioned(tokenizer, lambda p, n: f"planner says {n}"),
                              "sub": Versioned(tokenizer, lambda p, n: f"worker says {n}")})


def test_each_route_is_served_by_its_roles_engine(tmp_path: Path, tokenizer: Any) -> None:
    engine = routed(tokenizer)

    async def main() -> tuple[list[str], list[tuple[str, str]]]:
        async with Proxy(engine, tmp_path) as proxy:
            sid = proxy.open_session("s")
            replies = []
            async with aiohttp.ClientSession() as http:
                for url, headers in ((proxy.base_url(sid), {}), (proxy.base_url(sid, agent="sub-1"), {}),
                                     (proxy.base_url(sid, agent="sub-2"), {}), (proxy.base_url(sid), {}),
                                     (proxy.base_url(sid), {"X-AgentGym-Agent": "sub-3"}),
                                     (proxy.base_url(sid, agent="critic-1"), {})):
                    body = {"model": "m", "messages": [{"role": "user", "content": f"hi from {url[-12:]} {headers}"}]}
                    async with http.post(url + "/chat/completions", json=body, headers=headers) as resp:
                        assert resp.status == 200, await resp.text()
                        replies.append((await resp.json())["choices"][0]["message"]["content"])
            calls = [(c.agent_id, c.response["content"]) for c in proxy.calls(sid)]
            return replies, calls

    replies, calls = asyncio.run(main())
    # planner and workers each get their own engine's replies (counted per engine); a role without an
    # engine of its own (critic) is served by the default role's
    assert replies == ["planner says 0", "worker says 0", "worker says 1", "planner says 1", "worker says 2",
                       "planner says 2"]
    assert [a for a, _ in calls] == ["main", "sub-1", "sub-2", "main", "sub-3", "critic-1"]
    assert SERVING_AGENT.get() is None  # nothing leaks out of the proxy's handlers


def test_versions_and_weight_pushes_per_role(tokenizer: Any) -> None:
    engine = routed(tokenizer)
    assert engine.policy_version == 0 and engine.model_name == "scripted" and engine.tokenizer is tokenizer

    async def main() -> None:
        await engine.engine_for("sub").update_weights({}, 1)
        assert engine.policy_version == 0  # the oldest role's
        await engine.engine_for("main").update_weights({}, 1)
        assert engine.policy_version == 1
        with serving_agent("sub-4"):
            assert (await engine.generate([1, 2], SamplingParams())).policy_version == 1
        await engine.update_weights({}, 2)  # a shared push reaches every role
        assert [e.policy_version for e in engine.engines.values()] == [2, 2]

    asyncio.run(main())
    assert engine.role_of(None) == "main" and engine.role_of("sub-9") == "sub" and engine.role_of("judge") == "main"
    with pytest.raises(AttributeError):
        engine.policy_version = 3
    with pytest.raises(ConfigError, match="default role 'main' has no engine"):
        AgentRoutedEngine({"sub": engine.engines["sub"]})
