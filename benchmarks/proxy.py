"""What the proxy costs per LLM call, against baselines measured in the same run.

A zero-latency scripted engine isolates the proxy's own work (HTTP, validation, chat-template
rendering, splicing, tool-call parsing, journaling). Each simulated harness runs a multi-turn
episode (tool call -> tool output -> ...), echoing history back like mini-swe-agent does.

Baselines:
- ``direct``: the same engine called in-process (no HTTP, no rendering): the floor.
- ``full re-render``: rendering + tokenising the whole conversation from scratch each turn, which
  is what a proxy without splicing does (and which is not token-faithful).

    python3 benchmarks/proxy.py [--sessions 32] [--turns 20] [--obs-chars 600]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentgym.engines.scripted import ScriptedEngine
from agentgym.models.tiny import train_tokenizer
from agentgym.proxy.server import Proxy
from agentgym.tokens.render import ChatRenderer
from agentgym.types import SamplingParams

TOOL = {"type": "function", "function": {"name": "bash", "parameters": {
    "type": "object", "properties": {"command": {"type": "string"}}}}}
REPLY = '<tool_call>\n{"name": "bash", "arguments": {"command": "ls -la /app && cat notes.txt"}}\n</tool_call>'


def observation(turn: int, chars: int) -> str:
    line = f"-rw-r--r-- 1 root root {turn * 37 % 9000:5d} Nov 22 05:{turn % 60:02d} file_{turn}.txt\n"
    return (line * (chars // len(line) + 1))[:chars]


async def harness(client: httpx.AsyncClient, url: str, turns: int, chars: int, lat: list[float]) -> None:
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are a shell agent."},
                                      {"role": "user", "content": "Inspect /app and summarise notes.txt."}]
    for t in range(turns):
        t0 = time.perf_counter()
        r = await client.post(url, json={"model": "m", "messages": messages, "tools": [TOOL]})
        lat.append(time.perf_counter() - t0)
        r.raise_for_status()
        msg = r.json()["choices"][0]["message"]
        msg["provider_specific_fields"] = {}
        messages += [msg, {"role": "tool", "tool_call_id": msg["tool_calls"][0]["id"], "content": observation(t, chars)}]


async def bench_proxy(tokenizer: Any, sessions: int, turns: int, chars: int) -> tuple[list[float], float, int]:
    engine = ScriptedEngine(tokenizer, lambda ids, n: REPLY)
    with tempfile.TemporaryDirectory() as tmp:
        proxy = Proxy(engine, tmp, max_model_len=1 << 20)
        await proxy.start()
        lat: list[float] = []
        limits = httpx.Limits(max_connections=sessions, max_keepalive_connections=sessions)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            sids = [proxy.open_session() for _ in range(sessions)]
            t0 = time.perf_counter()
            await asyncio.gather(*(harness(client, proxy.base_url(s) + "/chat/completions", turns, chars, lat)
                                   for s in sids))
            wall = time.perf_counter() - t0
        prompt_tokens = len(proxy.calls(sids[0])[-1].prompt_ids)
        await proxy.stop()
    return lat, wall, prompt_tokens


async def bench_direct(tokenizer: Any, n: int) -> list[float]:
    engine = ScriptedEngine(tokenizer, lambda ids, k: REPLY)
    ids = tokenizer.encode("hello " * 200)
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        await engine.generate(ids, SamplingParams())
        lat.append(time.perf_counter() - t0)
    return lat


def bench_full_rerender(tokenizer: Any, turns: int, chars: int) -> tuple[float, float]:
    """Seconds per turn to render+tokenise the whole history, vs the continuation alone."""
    r = ChatRenderer(tokenizer)
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are a shell agent."},
                                      {"role": "user", "content": "Inspect /app."}]
    full, cont = [], []
    for t in range(turns):
        t0 = time.perf_counter()
        r.render_prompt(messages, [TOOL])
        full.append(time.perf_counter() - t0)
        reply = {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "bash", "arguments": '{"command": "ls"}'}}]}
        parent_text = r.render_text([*messages, reply], [TOOL], add_generation_prompt=False)
        reply_start = len(r.render_text(messages, [TOOL], add_generation_prompt=True))
        messages += [reply, {"role": "tool", "tool_call_id": "c", "content": observation(t, chars)}]
        t0 = time.perf_counter()
        r.render_continuation(parent_text, reply_start, True, messages, len(messages) - 1, [TOOL])
        cont.append(time.perf_counter() - t0)
    return statistics.mean(full[-5:]), statistics.mean(cont[-5:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=32)
    ap.add_argument("--turns", type=int, default=20)
    ap.add_argument("--obs-chars", type=int, default=600)
    a = ap.parse_args()
    tok = train_tokenizer()
    direct = asyncio.run(bench_direct(tok, 500))
    lat, wall, prompt_tokens = asyncio.run(bench_proxy(tok, a.sessions, a.turns, a.obs_chars))
    full_s, cont_s = bench_full_rerender(tok, a.turns, a.obs_chars)
    p50 = statistics.median(lat) * 1e3
    p99 = sorted(lat)[int(0.99 * (len(lat) - 1))] * 1e3
    d50 = statistics.median(direct) * 1e3
    print(f"proxy benchmark: {a.sessions} concurrent sessions x {a.turns} turns, {a.obs_chars}-char tool outputs,"
          f" last prompt {prompt_tokens} tokens (zero-latency engine, 1 event loop)")
    print(f"{'measure':44s} {'value':>12s}")
    print(f"{'direct engine call p50 (baseline)':44s} {d50:10.3f} ms")
    print(f"{'through the proxy over HTTP p50':44s} {p50:10.3f} ms")
    print(f"{'through the proxy over HTTP p99':44s} {p99:10.3f} ms")
    print(f"{'proxy throughput':44s} {len(lat) / wall:8.0f} req/s")
    print(f"{'render+tokenise full history, last turns':44s} {full_s * 1e3:10.3f} ms")
    print(f"{'render+tokenise continuation only':44s} {cont_s * 1e3:10.3f} ms")
    print(f"{'ratio full / continuation':44s} {full_s / cont_s:10.1f} x")


if __name__ == "__main__":
    main()
