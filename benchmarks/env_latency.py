"""Environment latencies an episode pays, per runtime, beside the no-op baselines of the same run:

- cold start: ``Env.start`` of a task whose image is built (a new sandbox, the env's setup);
- warm handoff: the same ``Env.start`` through a :class:`~agentgym.runtime.pool.WarmPool` whose
  sandboxes are already up (a rollout's steady state);
- exec: ``runtime.exec("true")``;
- snapshot: ``runtime.snapshot`` (``docker commit`` / a copy of the local fake root);
- seal: ``runtime.seal`` for the verifier (Docker: commit, remove, start a sealed container with
  the task image's system paths; local: fresh reward directory in place), then stopping it;
- screenshot and GUI action (Docker): one screenshot, and one click with its screenshot, through
  the GUI suite's in-container action server, for a Tk app and for chromium
  (``benchmarks/gui_latency.py`` has the breakdown and the ``docker exec``-per-call comparison).

Baselines: ``noop`` is an awaited coroutine that does nothing (the measuring loop itself), and
``engine`` a Docker engine round trip (``/version``), the floor under every Docker operation.
Image builds are not in these figures (``agentgym prebuild`` does them ahead).

    python benchmarks/env_latency.py            # about a minute
    python benchmarks/env_latency.py -n 5 --env terminal/hello-file-v0 --runtime docker
    python benchmarks/env_latency.py --no-gui   # without the GUI figures
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from agentgym.env import Env
from agentgym.runtime import get_backend
from agentgym.runtime.base import RuntimeBackend, VerifierSpec
from agentgym.runtime.pool import WarmPool
from agentgym.sources import env_from
from agentgym.types import Task


def fmt(xs: list[float]) -> str:
    xs = sorted(xs)
    return f"p50 {statistics.median(xs) * 1000:8.1f} ms   p90 {xs[int(0.9 * (len(xs) - 1))] * 1000:8.1f} ms   (n={len(xs)})"


async def timed(fn: Callable[[], Awaitable[Any]], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - t)
    return out


async def noop() -> None:
    return None


async def bench(env: Env, task: Task, backend: RuntimeBackend, n: int) -> None:
    name = backend.name
    print(f"\n== {name} runtime, {env.id} / {task.id} ==")
    print(f"{name:6} baseline noop         {fmt(await timed(noop, n))}")
    if backend.uses_images:
        api = backend.client.api  # type: ignore[attr-defined]
        print(f"{name:6} baseline engine       {fmt(await timed(lambda: asyncio.to_thread(api.version), n))}")
        t = time.perf_counter()
        await backend.ensure_image(task.image or "", task.dockerfile_dir)
        print(f"{name:6} image ensure (built)  {(time.perf_counter() - t) * 1000:8.1f} ms   (content-hash hit; "
              "builds are not episode time)")
    starts, stops = [], []
    for _ in range(n):
        t = time.perf_counter()
        rt = await env.start(task, backend)
        starts.append(time.perf_counter() - t)
        t = time.perf_counter()
        await rt.stop()
        stops.append(time.perf_counter() - t)
    print(f"{name:6} cold start            {fmt(starts)}")
    # The same Env.start through a warm pool whose sandboxes are up (a rollout's steady state).
    pool = WarmPool(backend, size=n)
    pool.expect(env.runtime_spec(task, image=task.image if backend.uses_images else None), n)
    await pool.wait_warm()
    handoffs = []
    for _ in range(n):
        t = time.perf_counter()
        rt = await env.start(task, pool)
        handoffs.append(time.perf_counter() - t)
        await rt.stop()
    await pool.aclose()
    print(f"{name:6} warm handoff          {fmt(handoffs)}   (WarmPool; {pool.stats.warm_hits} warm, "
          f"{pool.stats.cold} cold)")
    print(f"{name:6} stop                  {fmt(stops)}")
    rt = await env.start(task, backend)
    try:
        print(f"{name:6} exec 'true'           {fmt(await timed(lambda: rt.exec('true', timeout=30), n))}")
        snaps: list[float] = []
        for i in range(max(1, n // 4)):
            t = time.perf_counter()
            tag = await rt.snapshot(f"agentgym-bench/latency:{i}")
            snaps.append(time.perf_counter() - t)
            if backend.uses_images:
                await asyncio.to_thread(backend.client.api.remove_image, tag, force=True)  # type: ignore[attr-defined]
        print(f"{name:6} snapshot              {fmt(snaps)}")
    finally:
        await rt.stop()
    seals: list[float] = []
    for _ in range(max(1, n // 4)):
        rt = await env.start(task, backend)
        t = time.perf_counter()
        try:
            sealed = await rt.seal(VerifierSpec(trusted_image=task.image if backend.uses_images else None))
        except NotImplementedError:
            print(f"{name:6} seal                  (this runtime cannot seal: its verifier runs in place)")
            await rt.stop()
            break
        await sealed.runtime.stop()
        seals.append(time.perf_counter() - t)
        await rt.stop()
    if seals:
        print(f"{name:6} seal (+ stop)         {fmt(seals)}")


async def main_async(target: str, runtimes: list[str], n: int, gui: bool = True) -> None:
    env = env_from(target)
    for runtime in runtimes:
        backend = get_backend(runtime)
        try:
            task = next((t for t in env.tasks() if env.unsupported(t, backend) is None), None)
            if task is None:
                print(f"\n== {runtime}: no task of {env.id} runs here ==")
            else:
                await bench(env, task, backend, n)
            if gui and backend.uses_images:
                from gui_latency import episode_rows  # beside this file

                print(f"\n== {runtime} runtime, gui/all-v0: the action server over one docker exec stream ==")
                await episode_rows(backend, n, prefix=f"{runtime:6} ")  # type: ignore[arg-type]
        finally:
            backend.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=12, help="repetitions per figure")
    parser.add_argument("--env", default="terminal/hello-file-v0", help="what env_from accepts")
    parser.add_argument("--runtime", action="append", help="docker, local (repeatable; default both)")
    parser.add_argument("--no-gui", action="store_true", help="leave out the screenshot and GUI action figures")
    args = parser.parse_args()
    asyncio.run(main_async(args.env, args.runtime or ["docker", "local"], args.n, gui=not args.no_gui))


if __name__ == "__main__":
    main()
