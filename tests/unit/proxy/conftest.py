from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentgym.engines.scripted import ScriptedEngine
from agentgym.proxy.server import Proxy

BASH_TOOL = {"type": "function", "function": {
    "name": "bash", "description": "Run a shell command",
    "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}}


@pytest.fixture(scope="session")
def tokenizer() -> Any:
    from agentgym.models.tiny import train_tokenizer

    return train_tokenizer()


def tool_reply(command: str, content: str = "") -> str:
    return f'{content}\n<tool_call>\n{{"name": "bash", "arguments": {{"command": "{command}"}}}}\n</tool_call>'.lstrip()


class ProxyHarness:
    """Runs a proxy on a private event loop thread-free: each test drives it with ``run``."""

    def __init__(self, engine: ScriptedEngine, root: Path) -> None:
        self.engine = engine
        self.proxy = Proxy(engine, root)
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self.proxy.start())

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        self.loop.run_until_complete(self.proxy.stop())
        self.loop.close()


@pytest.fixture
def make_proxy(tmp_path: Path) -> Iterator[Any]:
    made: list[ProxyHarness] = []

    def make(engine: ScriptedEngine) -> ProxyHarness:
        h = ProxyHarness(engine, tmp_path / f"journal{len(made)}")
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


async def post(url: str, json: Any = None, content: bytes | None = None, headers: dict[str, str] | None = None,
               timeout: float = 30) -> Any:
    import httpx

    async with httpx.AsyncClient(timeout=timeout) as c:
        return await c.post(url, json=json, content=content, headers=headers)


def root_url(h: ProxyHarness) -> str:
    return f"http://{h.proxy.host}:{h.proxy.port}"


@pytest.fixture
def make_custom_proxy(tmp_path: Path) -> Iterator[Any]:
    """``make(engine, **proxy_kwargs)``: a proxy with non-default settings."""
    made: list[ProxyHarness] = []

    def make(engine: Any, **kwargs: Any) -> ProxyHarness:
        h = ProxyHarness.__new__(ProxyHarness)
        h.engine = engine
        h.proxy = Proxy(engine, tmp_path / f"custom{len(made)}", **kwargs)
        h.loop = asyncio.new_event_loop()
        h.loop.run_until_complete(h.proxy.start())
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()
