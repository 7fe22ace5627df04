"""The proxy also listens on a Unix socket (what sandboxes without a network reach it through)."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentgym.engines.scripted import ScriptedEngine
from agentgym.errors import ProxyError
from agentgym.proxy.server import Proxy

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def test_the_unix_socket_serves_the_same_sessions_as_tcp(tokenizer: Any, make_proxy: Any) -> None:
    h = make_proxy(ScriptedEngine(tokenizer, ["over the socket"]))
    sid = h.proxy.open_session()
    endpoint = h.proxy.endpoint()
    assert endpoint.port == h.proxy.port and endpoint.sandbox_socket == "/run/agentgym/proxy.sock"

    async def over_socket() -> httpx.Response:
        transport = httpx.AsyncHTTPTransport(uds=endpoint.socket)
        async with httpx.AsyncClient(transport=transport, timeout=30) as c:
            # The Host header is whatever the forwarder passes on: the base URL's.
            return await c.post(h.proxy.base_url(sid) + "/chat/completions", json=CHAT)

    r = h.run(over_socket())
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "over the socket"
    assert [c.session_id for c in h.proxy.calls(sid)] == [sid]


def test_the_socket_has_a_directory_of_its_own_and_goes_with_the_proxy(tokenizer: Any, tmp_path: Path) -> None:
    async def main() -> None:
        proxy = Proxy(ScriptedEngine(tokenizer, ["x"]), tmp_path / "run")
        await proxy.start()
        sock = proxy.unix_socket
        assert sock == (tmp_path / "run" / "sock" / "proxy.sock").absolute()
        assert stat.S_ISSOCK(sock.stat().st_mode) and stat.S_IMODE(sock.stat().st_mode) == 0o666
        assert [p.name for p in sock.parent.iterdir()] == ["proxy.sock"]  # no journal next to it
        await proxy.stop()
        assert not sock.exists() and proxy.unix_socket is None
        await proxy.start()  # a second run in the same directory
        await proxy.stop()

    asyncio.run(main())


def test_a_journal_path_too_long_for_a_socket_gets_a_temporary_one(tokenizer: Any, tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)

    async def main() -> None:
        proxy = Proxy(ScriptedEngine(tokenizer, ["x"]), deep)
        await proxy.start()
        sock = proxy.unix_socket
        assert sock is not None and len(str(sock)) <= 107 and not str(sock).startswith(str(deep))
        await proxy.stop()
        assert not sock.parent.exists()

    asyncio.run(main())


def test_without_a_unix_socket_there_is_no_endpoint(tokenizer: Any, tmp_path: Path) -> None:
    async def main() -> None:
        proxy = Proxy(ScriptedEngine(tokenizer, ["x"]), tmp_path, unix_socket=False)
        await proxy.start()
        try:
            assert proxy.unix_socket is None
            with pytest.raises(ProxyError, match="no Unix socket"):
                proxy.endpoint()
        finally:
            await proxy.stop()

    asyncio.run(main())
