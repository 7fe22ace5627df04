"""Runtime figures: container start/stop, exec, file transfer, snapshot, image builds, and the
oracle + verifier of every terminal/basic-v0 task (Docker and local).

    python3 benchmarks/runtime.py            # about a minute
    python3 benchmarks/runtime.py --cold     # also builds every task image with no cache
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from agentgym import registries
from agentgym.envs.harbor import HarborEnv
from agentgym.runtime import RuntimeSpec
from agentgym.runtime.docker import DockerBackend
from agentgym.runtime.images import LABEL_CONTEXT_HASH, context_hash
from agentgym.runtime.local import LocalBackend

BASE = "agentgym/base:bookworm"


def fmt(xs: list[float]) -> str:
    xs = sorted(xs)
    return f"p50 {statistics.median(xs) * 1000:7.1f} ms   p90 {xs[int(0.9 * (len(xs) - 1))] * 1000:7.1f} ms   (n={len(xs)})"


async def timed(fn: Callable[[], Awaitable[Any]], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - t)
    return out


async def bench_docker(n: int, cold: bool) -> None:
    backend = DockerBackend(run_id="bench")
    try:
        for network in ("host", "none"):
            starts, stops = [], []
            for _ in range(n):
                t = time.perf_counter()
                rt = await backend.start(RuntimeSpec(image=BASE, network=network))
                starts.append(time.perf_counter() - t)
                t = time.perf_counter()
                await rt.stop()
                stops.append(time.perf_counter() - t)
            print(f"docker start --network {network:4}  {fmt(starts)}")
            print(f"docker stop  --network {network:4}  {fmt(stops)}")
        rt = await backend.start(RuntimeSpec(image=BASE))
        try:
            print(f"docker exec 'true'            {fmt(await timed(lambda: rt.exec('true'), n))}")
            print(f"docker exec 'true' timeout=10 {fmt(await timed(lambda: rt.exec('true', timeout=10), n))}")
            print(f"docker exec 'false' (+OOM check) {fmt(await timed(lambda: rt.exec('false'), n))}")
            print(f"docker write_file 1 KiB       {fmt(await timed(lambda: rt.write_file('/tmp/f', b'x' * 1024), n))}")
            print(f"docker read_file 1 KiB        {fmt(await timed(lambda: rt.read_file('/tmp/f'), n))}")
            t = time.perf_counter()
            tag = await rt.snapshot("agentgym-bench/snapshot:1")
            print(f"docker snapshot (commit)      {(time.perf_counter() - t) * 1000:7.1f} ms")
            backend.client.images.remove(tag, force=True)
        finally:
            await rt.stop()

        env: HarborEnv = registries.envs.make("terminal/basic-v0")
        for task in env.tasks():
            t = time.perf_counter()
            await backend.ensure_image(task.image or '', task.dockerfile_dir)
            first = time.perf_counter() - t
            warm = await timed(functools.partial(backend.ensure_image, task.image or '', task.dockerfile_dir), 5)
            line = f"image {task.id:18} ensure (first call) {first:6.2f} s   warm (hash hit) {fmt(warm)}"
            if cold:
                line += f"   no-cache build {build_nocache(backend, task.dockerfile_dir or ''):6.1f} s"
            print(line)
        for task in env.tasks():
            t0 = time.perf_counter()
            rt = await env.start(task, backend)
            t1 = time.perf_counter()
            await env.oracle(task, rt)
            t2 = time.perf_counter()
            ev = await env.evaluate(task, rt)
            t3 = time.perf_counter()
            await rt.stop()
            print(f"docker {task.id:18} start {t1 - t0:5.2f} s  oracle {t2 - t1:5.2f} s  evaluate {t3 - t2:5.2f} s"
                  f"  reward {ev.reward:g}")
    finally:
        backend.close()


def build_nocache(backend: DockerBackend, ctx: str) -> float:
    tag = "agentgym-bench/nocache:latest"
    t = time.perf_counter()
    for chunk in backend.client.api.build(path=ctx, tag=tag, network_mode="host", nocache=True, rm=True,
                                          forcerm=True, decode=True, labels={LABEL_CONTEXT_HASH: context_hash(ctx)}):
        if "error" in chunk:
            raise RuntimeError(chunk["error"])
    elapsed = time.perf_counter() - t
    backend.client.images.remove(tag, force=True)
    return elapsed


async def bench_local(n: int) -> None:
    for isolation in ("bubblewrap", "none"):
        rt = await LocalBackend(isolation=isolation).start(RuntimeSpec(network="none"))
        try:
            print(f"local exec 'true' ({isolation:10}) {fmt(await timed(functools.partial(rt.exec, 'true'), n))}")
        finally:
            await rt.stop()
    backend = LocalBackend()
    env: HarborEnv = registries.envs.make("terminal/basic-v0")
    for task in env.tasks():
        if env.unsupported(task, backend):
            continue
        t0 = time.perf_counter()
        rt = await env.start(task, backend)
        t1 = time.perf_counter()
        await env.oracle(task, rt)
        t2 = time.perf_counter()
        ev = await env.evaluate(task, rt)
        t3 = time.perf_counter()
        await rt.stop()
        print(f"local  {task.id:18} start {t1 - t0:5.2f} s  oracle {t2 - t1:5.2f} s  evaluate {t3 - t2:5.2f} s"
              f"  reward {ev.reward:g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=20, help="repetitions per figure")
    parser.add_argument("--cold", action="store_true", help="also time a no-cache build of every task image")
    args = parser.parse_args()
    asyncio.run(bench_docker(args.n, args.cold))
    asyncio.run(bench_local(args.n))


if __name__ == "__main__":
    main()
