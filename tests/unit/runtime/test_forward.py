"""The forwarder script: 127.0.0.1:<port> -> the proxy's Unix socket (run here on the host)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from agentgym.engines.scripted import ScriptedEngine
from agentgym.runtime.base import FORWARDER_SCRIPT
from tests.unit.proxy.conftest import ProxyHarness


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def forwarder(tmp_path: Any) -> Iterator[tuple[ProxyHarness, int]]:
    from agentgym.models.tiny import train_tokenizer

    h = ProxyHarness(ScriptedEngine(train_tokenizer(), ["one", "two", "three"]), tmp_path)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-I", "-S", str(FORWARDER_SCRIPT), "--listen", f"127.0.0.1:{port}",
                             "--connect", str(h.proxy.unix_socket), "--ready"], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        assert proc.stdout.read() == b""  # stdout is closed after the line
        yield h, port
    finally:
        proc.kill()
        proc.wait()
        h.close()


def test_requests_and_streams_pass_through_unchanged(forwarder: tuple[ProxyHarness, int]) -> None:
    h, port = forwarder
    sid = h.proxy.open_session()
    base = h.proxy.base_url(sid, host="127.0.0.1").replace(f":{h.proxy.port}/", f":{port}/")
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}

    async def main() -> tuple[Any, str, Any]:
        async with httpx.AsyncClient(timeout=30) as c:  # one keep-alive connection for all three
            models = (await c.get(base + "/models")).json()
            async with c.stream("POST", base + "/chat/completions", json={**body, "stream": True}) as r:
                chunks = [line async for line in r.aiter_lines() if line.startswith("data: {")]
            streamed = "".join(json.loads(x[6:])["choices"][0]["delta"].get("content") or "" for x in chunks)
            plain = (await c.post(base + "/chat/completions", json=body)).json()
            return models, streamed, plain

    models, streamed, plain = h.run(main())
    assert models["data"][0]["id"] == h.proxy.engine.model_name
    assert streamed == "one" and plain["choices"][0]["message"]["content"] == "two"
    assert len(h.proxy.calls(sid)) == 2


def test_probe_says_whether_the_proxy_answers_through_the_port(forwarder: tuple[ProxyHarness, int]) -> None:
    h, port = forwarder
    probe = [sys.executable, str(FORWARDER_SCRIPT), "--probe", f"127.0.0.1:{port}", "--timeout", "5"]

    async def run_probe() -> int:  # while the proxy's loop runs
        proc = await asyncio.create_subprocess_exec(*probe)
        return await proc.wait()

    assert h.run(run_probe()) == 0
    start = time.monotonic()
    closed = [*probe[:3], f"127.0.0.1:{free_port()}", "--timeout", "0.5"]
    assert subprocess.run(closed, check=False, timeout=30).returncode == 1
    assert time.monotonic() - start < 10


def test_bad_arguments_print_the_usage() -> None:
    r = subprocess.run([sys.executable, str(FORWARDER_SCRIPT), "--listen"], capture_output=True, text=True,
                       check=False, timeout=30)
    assert r.returncode == 2 and "usage: forward.py" in r.stderr
