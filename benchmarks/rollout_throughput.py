"""Rollout throughput: episodes per second and environment utilization at several concurrencies,
with and without the warm pool, against the same episodes run one by one, all in one run.

Everything is real but the policy: the proxy over HTTP, the ReAct harness in its sandbox, the
runtime (Docker by default), the sealed verifier, reconstruction and the journal. The engine is
:class:`~agentgym.engines.scripted.ScriptedEngine` solving ``terminal/hello-file-v0`` in two
calls (``--engine-delay`` adds seconds per call, to mimic a real model's latency), so what is
measured is the environment and the scheduling around it.

Each row runs ``--episodes`` episodes (samples of the one task) in a fresh output directory:

- ``c1 (one by one)``: concurrency 1, no pool: the baseline every ratio is against;
- ``cN``: N episodes in flight (N from ``--concurrency``), cold (each episode starts its sandbox)
  and ``+pool`` (a warm pool of N sandboxes started ahead, :class:`~agentgym.runtime.pool.WarmPool`,
  warming from the moment the run starts: the same clock as the cold rows).

The pool pays off once a run has more episodes than sandboxes in flight (a steady state where
each hand-off finds a sandbox warmed while the previous episode ran); a row whose episodes all
start at once (``--episodes`` <= N) waits for its warm-ups exactly as the cold row waits for its
starts. On a machine with few cores, the sandboxes' CPU (container starts, the harness, the
verifier) is the ceiling: concurrency then buys what the engine's latency leaves idle
(``--engine-delay``), and a warm-up costs the same CPU as a cold start.

Figures per row: episodes/s, the speed-up over one by one, environment utilization (the run's
own figure: time sandboxes were busy with episodes over the time the concurrency slots were
open, ``RunSummary.utilization``), the agent's share of the slots (harness + verifier time over
slot time: what is left once sandbox starts are out of the way), the sandbox phase's p50 per
episode (start or hand-off, and setup), and the mean reward (1.0: every episode solved).

    python benchmarks/rollout_throughput.py                      # 1, 8, 32, 64; a few minutes here
    python benchmarks/rollout_throughput.py --episodes 16 --concurrency 1,4 --runtime local
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from agentgym.engines.scripted import ScriptedEngine
from agentgym.models.tiny import train_tokenizer
from agentgym.rollout.runner import RolloutConfig, RolloutResult, run_rollouts
from agentgym.rollout.schedule import ResourceLimits
from agentgym.runtime import get_backend

SOLVE = ("<tool_call>\n{\"name\": \"bash\", \"arguments\": {\"command\": "
         "\"printf 'Hello, agentgym!\\\\n' > PATH\"}}\n</tool_call>")


def solver(tokenizer: Any) -> Any:
    def reply(prompt_ids: Any, n: int) -> str:
        text = tokenizer.decode(prompt_ids)
        if "<tool_response>" in text:
            return "Done: the file is written."
        path = re.search(r"`(\S*/app/hello\.txt)`", text)
        return SOLVE.replace("PATH", path.group(1) if path else "/app/hello.txt")
    return reply


async def one_row(args: argparse.Namespace, backend: Any, engine: Any, concurrency: int, pool: int) -> RolloutResult:
    with tempfile.TemporaryDirectory(prefix="agentgym-throughput-") as out:
        cfg = RolloutConfig(env=args.env, harness="agentgym/react-v0", samples=args.episodes, concurrency=concurrency,
                            out_dir=str(Path(out) / "run"), runtime=args.runtime, progress=False, max_steps=4,
                            warm_pool=pool, limits=ResourceLimits(starting=args.max_starting))
        return await run_rollouts(cfg, engine, backend=backend)


def figures(result: RolloutResult, concurrency: int) -> dict[str, Any]:
    s = result.summary
    assert s is not None
    eps = result.main
    slots = max(1, min(concurrency, len(eps)))
    working = sum(float(t.metadata["timings"].get("agent_s", 0)) + float(t.metadata["timings"].get("verify_s", 0))
                  for t in eps)
    sandbox = [float(t.metadata["timings"].get("sandbox_s", 0)) for t in eps]
    return {"episodes": s.episodes, "seconds": round(s.seconds, 2), "episodes_per_s": round(s.episodes_per_s, 3),
            "utilization": round(s.utilization, 3), "agent_share": round(working / (s.seconds * slots), 3),
            "sandbox_p50_s": round(statistics.median(sandbox), 3) if sandbox else 0.0,
            "mean_reward": round(s.mean_reward, 3), "failures": s.failures, "pool": s.pool}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    tokenizer = train_tokenizer()
    engine = ScriptedEngine(tokenizer, solver(tokenizer), delay_s=args.engine_delay)
    backend = get_backend(args.runtime)
    rows: list[tuple[str, int, int]] = [("c1 (one by one)", 1, 0)]
    for c in args.concurrency:
        rows += ([] if c == 1 else [(f"c{c}", c, 0)]) + [(f"c{c} +pool", c, c)]
    results: dict[str, Any] = {}
    try:
        # One warm-up run builds the images (image time is apart from episode time, but a first
        # build would still slow the machine during the first row).
        await one_row(argparse.Namespace(**{**vars(args), "episodes": 1}), backend, engine, 1, 0)
        print(f"rollout throughput: {args.episodes} episodes of {args.env} per row, {args.runtime} runtime, "
              f"scripted engine ({args.engine_delay:g}s per call), max starting {args.max_starting}, {os.cpu_count()} CPUs, "
              f"load {os.getloadavg()[0]:.2f}")
        print(f"{'row':16} {'ep/s':>7} {'x base':>7} {'env util':>9} {'agent':>7} {'sandbox p50':>12} "
              f"{'reward':>7} {'warm':>5} {'cold':>5}")
        base = None
        for name, concurrency, pool in rows:
            t0 = time.perf_counter()
            f = figures(await one_row(args, backend, engine, concurrency, pool), concurrency)
            f["wall_s"] = round(time.perf_counter() - t0, 2)
            base = base or f["episodes_per_s"]
            f["speedup"] = round(f["episodes_per_s"] / base, 2)
            results[name] = f
            warm = (f["pool"].get("warm_hits", 0) + f["pool"].get("waited", 0)) if f["pool"] else 0
            cold = f["pool"].get("cold", 0) if f["pool"] else f["episodes"]
            print(f"{name:16} {f['episodes_per_s']:7.3f} {f['speedup']:6.2f}x {f['utilization']:9.0%} "
                  f"{f['agent_share']:7.0%} {f['sandbox_p50_s']:11.3f}s {f['mean_reward']:7.2f} {warm:5d} {cold:5d}"
                  + (f"  failures {f['failures']}" if f["failures"] else ""), flush=True)
    finally:
        backend.close()
        await engine.aclose()
    for c in args.concurrency:
        cold, warm = results["c1 (one by one)" if c == 1 else f"c{c}"], results[f"c{c} +pool"]
        print(f"c{c}: the warm pool gives {warm['episodes_per_s'] / max(cold['episodes_per_s'], 1e-9):.2f}x the "
              f"episodes/s of cold starts; sandbox phase p50 {cold['sandbox_p50_s']:.3f}s -> "
              f"{warm['sandbox_p50_s']:.3f}s")
    return results


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--episodes", type=int, default=64, help="episodes per row (default 64)")
    p.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32, 64],
                   help="comma-separated concurrencies (default 1,8,32,64)")
    p.add_argument("--runtime", default="docker", help="docker (default), local or local-unsafe")
    p.add_argument("--env", default="terminal/hello-file-v0")
    p.add_argument("--engine-delay", type=float, default=0.0, help="seconds the engine waits per call")
    p.add_argument("--max-starting", type=int, default=None,
                   help="sandbox starts at once (ResourceLimits.starting; default: no limit)")
    p.add_argument("--json", help="also write the figures to this file")
    return p.parse_args(argv)


if __name__ == "__main__":
    ns = parse()
    out = asyncio.run(main(ns))
    if ns.json:
        Path(ns.json).write_text(json.dumps({"args": vars(ns), "rows": out}, indent=2) + "\n")
