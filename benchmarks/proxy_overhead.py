"""What agentgym's proxy adds to a call, side by side with the ways of serving the same requests.

Each server runs in its own process; this process is the client (asyncio + aiohttp):

- ``direct``: a zero-latency engine served as an OpenAI-compatible endpoint (it reads the body
  and answers a canned tool call, parsing nothing): the floor.
- ``passthrough``: a minimal proxy, a few lines of aiohttp: parse the JSON body (orjson), forward
  it to ``direct``, return the answer.
- ``agentgym``: agentgym's proxy with a zero-latency in-process engine (the scripted engine,
  replying the same tool call as token ids): everything the proxy does per call (validation,
  lineages, splicing, rendering, tokenising, parsing the reply, the write-ahead journal).
- ``litellm``: LiteLLM's proxy (``litellm --config``, one worker) in front of ``direct``, when
  ``--litellm`` points at a ``litellm`` executable. Install it in a venv of its own; on this
  machine's package index ``litellm[proxy]`` does not resolve (it pins ``litellm-proxy-extras``
  versions the index lacks), so: ``pip install litellm==1.109.3 fastapi uvicorn uvloop gunicorn
  backoff rq orjson apscheduler fastapi-sso pyjwt python-multipart cryptography pynacl
  websockets mcp restrictedpython rich polars expression backports-zstd tomlkit inquirerpy
  litellm-enterprise soundfile hiredis azure-identity azure-storage-blob``.

Workloads: single chat requests of 6.7 KB (system prompt, four tools, a task), each the first
call of a new session, either all identical (a group of samples of one task) or each with its own
task text; and 20- and 100-turn sessions adding a 6 KB tool output per turn. Reported: latency
(p50, p99) at concurrency 1, calls/s at 1, 32 and 128 concurrent clients, the server's CPU time
per call, and agentgym's latency added over the pass-through at turns 1, 20 and 100.

    python benchmarks/proxy_overhead.py [--litellm /tmp/litellm-venv/bin/litellm] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPLY_ARGS = {"command": "ls -la /app && cat notes.txt"}
REPLY_TEXT = '<tool_call>\n{"name": "bash", "arguments": {"command": "ls -la /app && cat notes.txt"}}\n</tool_call>'
CANNED = orjson.dumps({
    "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "m",
    "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": None, "message": {
        "role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
            "name": "bash", "arguments": orjson.dumps(REPLY_ARGS).decode()}}]}}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})


def tool(name: str, desc: str, props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "description": desc, "parameters": {
        "type": "object", "properties": props, "required": list(props)}}}


TOOLS = [
    tool("bash", "Run a bash command in the task's sandbox and return its exit code and output.",
         {"command": {"type": "string", "description": "The command line to run."}}),
    tool("read_file", "Read a text file and return its content with line numbers.",
         {"path": {"type": "string", "description": "Absolute path of the file."}}),
    tool("write_file", "Write text to a file, replacing its content.",
         {"path": {"type": "string"}, "content": {"type": "string"}}),
    tool("submit", "Submit the final answer when the task is done.", {"answer": {"type": "string"}}),
]
SYSTEM = ("You are a careful software engineering agent working in a Linux sandbox. You solve the task by "
          "running commands, reading files and editing them. Think about what you saw before every action. "
          "Prefer small, verifiable steps; run the tests after each change; never guess file contents. ") * 5


def task_text(i: int | None) -> str:
    head = f"Task {i}: " if i is not None else "Task: "
    listing = "".join(f"-rw-r--r-- 1 root root {n * 37 % 9000:5d} Nov 22 05:{n % 60:02d} src/module_{n}.py\n"
                      for n in range(44))
    return (head + "The test suite in /app fails. Find the bug, fix it, and make every test pass.\n"
            "Here is the repository listing:\n" + listing)


def observation(turn: int, chars: int) -> str:
    line = f"-rw-r--r-- 1 root root {turn * 37 % 9000:5d} Nov 22 05:{turn % 60:02d} file_{turn}.txt\n"
    return (line * (chars // len(line) + 1))[:chars]


def first_messages(i: int | None) -> list[dict[str, Any]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": task_text(i)}]


# -- servers --------------------------------------------------------------------------------------
def serve_direct(port: int) -> None:
    from aiohttp import web

    async def chat(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=CANNED, content_type="application/json")

    app = web.Application(client_max_size=1 << 30)
    app.router.add_post("/v1/chat/completions", chat)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=lambda *_: print("READY", flush=True))


def serve_passthrough(port: int, upstream: str) -> None:
    import aiohttp
    from aiohttp import web

    async def chat(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        async with request.app["client"].post(upstream, data=orjson.dumps(body),
                                              headers={"Content-Type": "application/json"}) as r:
            return web.Response(body=await r.read(), status=r.status, content_type="application/json")

    async def client(app: web.Application) -> Any:
        app["client"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        yield
        await app["client"].close()

    app = web.Application(client_max_size=1 << 30)
    app.cleanup_ctx.append(client)
    app.router.add_post("/v1/chat/completions", chat)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=lambda *_: print("READY", flush=True))


def serve_agentgym(port: int, journal: str) -> None:
    from agentgym.engines.scripted import ScriptedEngine
    from agentgym.models.tiny import train_tokenizer
    from agentgym.proxy.server import Proxy

    tok = train_tokenizer()
    reply = [*tok.encode(REPLY_TEXT, add_special_tokens=False), tok.convert_tokens_to_ids(tok.eos_token)]

    async def main() -> None:
        proxy = Proxy(ScriptedEngine(tok, lambda ids, n: reply, keep_prompts=False), journal, port=port,
                      allow_new_sessions=True, max_model_len=1 << 22)
        await proxy.start()
        print("READY", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()

    profile = os.environ.get("AGENTGYM_BENCH_PROFILE")
    if not profile:
        return asyncio.run(main())
    import cProfile

    prof = cProfile.Profile()
    prof.enable()
    asyncio.run(main())
    prof.disable()
    prof.dump_stats(profile)


class Server:
    def __init__(self, name: str, args: list[str], port: int, env: dict[str, str] | None = None) -> None:
        import socket

        self.name, self.port = name, port
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})})
        threading.Thread(target=lambda: [None for _ in self.proc.stdout or ()], daemon=True).start()  # drain
        deadline = time.time() + 240
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {self.proc.returncode} before it was ready")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.time() > deadline:
                raise RuntimeError(f"{name} did not start")
            time.sleep(0.2)

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- client ---------------------------------------------------------------------------------------
class Target:
    def __init__(self, name: str, server: Server, session_urls: bool) -> None:
        self.name, self.server, self.session_urls = name, server, session_urls
        self.n = 0

    def url(self) -> str:
        """A URL for a new session (agentgym) or the one endpoint (the others)."""
        self.n += 1
        base = f"http://127.0.0.1:{self.server.port}"
        return f"{base}/s/b{os.getpid()}-{self.n}/v1/chat/completions" if self.session_urls else \
            f"{base}/v1/chat/completions"


async def call(http: Any, url: str, messages: list[dict[str, Any]]) -> tuple[float, dict[str, Any]]:
    body = orjson.dumps({"model": "m", "messages": messages, "tools": TOOLS})
    t0 = time.perf_counter()
    async with http.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
        data = await r.read()
        if r.status != 200:
            raise RuntimeError(f"{url}: {r.status} {data[:300]!r}")
    return time.perf_counter() - t0, orjson.loads(data)


async def single_latency(http: Any, target: Target, n: int, unique: bool) -> list[float]:
    out = []
    for i in range(n):
        lat, _ = await call(http, target.url(), first_messages(i if unique else None))
        out.append(lat)
    return out


async def throughput(http: Any, target: Target, clients: int, seconds: float, unique: bool,
                     ) -> tuple[float, float, int]:
    """(calls/s, server CPU ms per call, failed calls) with ``clients`` sending single requests back
    to back."""
    done = failed = 0
    stop = time.perf_counter() + seconds
    counter = iter(range(10**9))

    async def worker() -> None:
        nonlocal done, failed
        while time.perf_counter() < stop:
            try:
                await call(http, target.url(), first_messages(next(counter) if unique else None))
                done += 1
            except Exception:  # a server that falls over is reported, not fatal to the run
                failed += 1
                await asyncio.sleep(0.05)

    cpu0, t0 = target.server.cpu_s(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    wall, cpu = time.perf_counter() - t0, target.server.cpu_s() - cpu0
    return done / wall, 1000 * cpu / max(done, 1), failed


async def session(http: Any, target: Target, turns: int, obs_chars: int) -> tuple[list[float], dict[int, float]]:
    """Latency of each turn, and the server's CPU seconds at turns 0, 20, 80 and ``turns``."""
    url = target.url()
    messages = first_messages(None)
    lat = []
    cpu = {0: target.server.cpu_s()}
    for t in range(turns):
        dt, data = await call(http, url, messages)
        lat.append(dt)
        if t + 1 in (20, 80, turns):
            cpu[t + 1] = target.server.cpu_s()
        msg = data["choices"][0]["message"]
        messages = [*messages, msg, {"role": "tool", "tool_call_id": msg["tool_calls"][0]["id"],
                                     "content": observation(t, obs_chars)}]
    return lat, cpu


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))] * 1000


async def measure(targets: list[Target], a: argparse.Namespace) -> dict[str, Any]:
    import aiohttp

    res: dict[str, Any] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=aiohttp.ClientTimeout(total=600)) as http:
        for t in targets:
            r: dict[str, Any] = {}
            for unique in (False, True) if "single" in a.workloads else ():
                key = "unique" if unique else "same"
                try:
                    await single_latency(http, t, 20, unique)  # warm up
                    lat = await single_latency(http, t, a.n, unique)
                except Exception as e:
                    print(f"  {t.name}: {key} failed: {type(e).__name__}: {e}", flush=True)
                    continue
                r[key] = {"p50": pct(lat, 0.5), "p99": pct(lat, 0.99)}
                for c in a.concurrency:
                    rate, cpu, failed = await throughput(http, t, c, a.seconds, unique)
                    r[key][f"rps@{c}"], r[key][f"cpu_ms@{c}"], r[key][f"failed@{c}"] = rate, cpu, failed
                print(f"  {t.name:12s} {key:6s} {r[key]}", flush=True)
            for turns in (20, 100) if "sessions" in a.workloads else ():
                try:
                    runs = [await session(http, t, turns, a.obs_chars) for _ in range(a.reps)]
                except Exception as e:
                    print(f"  {t.name}: session{turns} failed: {type(e).__name__}: {e}", flush=True)
                    continue
                r[f"session{turns}"] = {
                    turn: {"p50": pct(xs, 0.5), "p99": pct(xs, 0.99)} for turn in (1, 20, 100) if turn <= turns
                    for xs in [[x for run, _ in runs for x in run[max(0, turn - 3):turn + 2]]]}
                windows = [(0, 20)] + ([(80, 100)] if turns == 100 else [])
                r[f"session{turns}"]["cpu_ms"] = {
                    f"{lo + 1}-{hi}": 1000 * sum(c[hi] - c[lo] for _, c in runs) / (len(runs) * (hi - lo))
                    for lo, hi in windows}
                print(f"  {t.name:12s} session{turns} {r[f'session{turns}']}", flush=True)
            res[t.name] = r
    return res


def tokenise_ms(chars: int) -> tuple[float, int]:
    """Median ms to tokenise one turn's new text with the tiny model's tokenizer (the floor of
    what any token-level proxy adds per turn), and its token count."""
    from agentgym.models.tiny import train_tokenizer

    backend = train_tokenizer().backend_tokenizer
    text = observation(7, chars)
    times = []
    for _ in range(30):
        t0 = time.perf_counter()
        n = len(backend.encode(text, add_special_tokens=False).ids)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2] * 1000, n


def report(res: dict[str, Any], a: argparse.Namespace) -> str:
    names = list(res)
    w = 14
    tok_ms, n_tok = tokenise_ms(a.obs_chars)
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"] * 3
    lines = [f"proxy overhead: 6.7 KB chat requests and sessions adding {a.obs_chars / 1000:.0f} KB per turn, "
             f"zero-latency engine, {os.cpu_count()} cores (client and servers share them); "
             f"load average at the end {' '.join(load)}",
             f"tokenising one turn's {a.obs_chars / 1000:.0f} KB of new text ({n_tok} tokens, tiny tokenizer): "
             f"{tok_ms:.2f} ms", ""]
    head = f"{'':34s}" + "".join(f"{n:>{w}s}" for n in names)
    for key, title in (("same", "single request, identical"), ("unique", "single request, own task text")):
        if not any(key in res[n] for n in names):
            continue
        lines += [f"{title}", head]

        def cell(n: str, k: str, fmt: str, key: str = key) -> str:
            v = res[n].get(key, {}).get(k)
            return f"{v:{w}{fmt}}" if v is not None else f"{'-':>{w}s}"

        for m in ("p50", "p99"):
            lines.append(f"{'  latency ' + m + ' (ms)':34s}" + "".join(cell(n, m, ".2f") for n in names))
        for c in a.concurrency:
            lines.append(f"{f'  calls/s, {c} concurrent':34s}" + "".join(cell(n, f"rps@{c}", ".0f") for n in names))
        for c in a.concurrency:
            lines.append(f"{f'  server CPU ms/call @{c}':34s}" + "".join(cell(n, f"cpu_ms@{c}", ".2f")
                                                                        for n in names))
        lines.append("")
    lines += ["sessions: latency (ms) at turn t (turns t-2..t+1 of every run)", head]
    for turns in (20, 100):
        for turn in (1, 20, 100):
            if turn > turns:
                continue
            for m in ("p50", "p99"):
                lines.append(f"{f'  {turns}-turn, turn {turn}, {m}':34s}" + "".join(
                    f"{res[n][f'session{turns}'][turn][m]:{w}.2f}" if f"session{turns}" in res[n]
                    else f"{'-':>{w}s}" for n in names))
    lines.append("  server CPU ms per call, turns 1-20 / 81-100 of the 100-turn sessions")
    for win in ("1-20", "81-100"):
        lines.append(f"{'    turns ' + win:34s}" + "".join(
            f"{res[n].get('session100', {}).get('cpu_ms', {}).get(win, float('nan')):{w}.2f}" for n in names))
    if "agentgym" in res and "passthrough" in res:
        lines += ["", "agentgym's latency added over the pass-through (ms)"]
        for turns in (20, 100):
            for turn in (1, 20, 100):
                if turn <= turns and f"session{turns}" in res["agentgym"] and f"session{turns}" in res["passthrough"]:
                    ag, pt = res["agentgym"][f"session{turns}"][turn], res["passthrough"][f"session{turns}"][turn]
                    lines.append(f"  {turns}-turn session, turn {turn:3d}: p50 {ag['p50'] - pt['p50']:+7.2f}   "
                                 f"p99 {ag['p99'] - pt['p99']:+7.2f}")
        for key in ("same", "unique") if "same" in res["agentgym"] and "same" in res["passthrough"] else ():
            ag, pt = res["agentgym"][key], res["passthrough"][key]
            lines.append(f"  single request ({key}): p50 {ag['p50'] - pt['p50']:+7.2f}   p99 {ag['p99'] - pt['p99']:+7.2f}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--serve", choices=["direct", "passthrough", "agentgym"], help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--upstream", default="", help=argparse.SUPPRESS)
    ap.add_argument("--journal", default="", help=argparse.SUPPRESS)
    ap.add_argument("--litellm", default="", help="path of a `litellm` executable (its own venv)")
    ap.add_argument("--only", default="", help="comma-separated targets to run")
    ap.add_argument("--workloads", default="single,sessions", help="single, sessions or both")
    ap.add_argument("--n", type=int, default=200, help="sequential single requests for latency")
    ap.add_argument("--seconds", type=float, default=4.0, help="duration of each throughput run")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 32, 128])
    ap.add_argument("--reps", type=int, default=3, help="sessions of each length per target")
    ap.add_argument("--obs-chars", type=int, default=6000)
    ap.add_argument("--json", default="", help="write the measurements here too")
    ap.add_argument("--quick", action="store_true", help="fewer samples (a smoke run)")
    a = ap.parse_args()
    if a.serve == "direct":
        return serve_direct(a.port)
    if a.serve == "passthrough":
        return serve_passthrough(a.port, a.upstream)
    if a.serve == "agentgym":
        return serve_agentgym(a.port, a.journal)
    if a.quick:
        a.n, a.seconds, a.reps = 40, 1.5, 1
    me = [sys.executable, __file__]
    servers: list[Server] = []
    try:
        ep = free_port()
        direct = Server("direct", [*me, "--serve", "direct", "--port", str(ep)], ep)
        servers.append(direct)
        upstream = f"http://127.0.0.1:{ep}/v1/chat/completions"
        targets = [Target("direct", direct, False)]
        pp = free_port()
        servers.append(Server("passthrough", [*me, "--serve", "passthrough", "--port", str(pp), "--upstream", upstream],
                              pp))
        targets.append(Target("passthrough", servers[-1], False))
        journal = tempfile.mkdtemp(prefix="agentgym-bench-")
        ap_ = free_port()
        servers.append(Server("agentgym", [*me, "--serve", "agentgym", "--port", str(ap_), "--journal", journal], ap_))
        targets.append(Target("agentgym", servers[-1], True))
        if a.litellm:
            lp = free_port()
            cfg = Path(journal) / "litellm.yaml"
            cfg.write_text("model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/m\n"
                           f"      api_base: http://127.0.0.1:{ep}/v1\n      api_key: x\n"
                           "litellm_settings:\n  drop_params: true\n")
            servers.append(Server("litellm", [a.litellm, "--config", str(cfg), "--port", str(lp), "--num_workers", "1"],
                                  lp, env={"LITELLM_LOG": "ERROR", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                                           "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true"}))
            targets.append(Target("litellm", servers[-1], False))
        if a.only:
            targets = [t for t in targets if t.name in a.only.split(",")]
        res = asyncio.run(measure(targets, a))
    finally:
        for s in servers:
            s.stop()
    print()
    print(report(res, a))
    if a.json:
        Path(a.json).write_text(orjson.dumps({"args": vars(a), "results": res}, option=orjson.OPT_INDENT_2
                                             | orjson.OPT_NON_STR_KEYS).decode())


if __name__ == "__main__":
    main()
