"""GUI figures: what one action plus a screenshot costs, through the in-container action server
(one ``docker exec -i`` stream per episode, or a Unix socket mounted from the host) against the
naive way (a ``docker exec`` per xdotool call and per scrot screenshot, then reading the PNG),
in the same run; plus the desktop's start and a gymnasium step.

    python3 benchmarks/gui_latency.py            # about two minutes once the images are built
    python3 benchmarks/gui_latency.py -n 50

The naive way needs ``scrot``, which the GUI images leave out (with its image libraries it
weighs about 200 MB): the benchmark builds a layer with it on top of the to-do app's image.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from env_latency import fmt, timed  # the figures' format, shared with env_latency.py

from agentgym.envs.gui import ActionClient, GuiEnv
from agentgym.envs.gui.client import ACTIOND, center
from agentgym.runtime.docker import DockerBackend, DockerRuntime


def row(name: str, xs: list[float]) -> None:
    print(f"  {name:52} {fmt(xs)}")


async def episode_rows(backend: DockerBackend, n: int, prefix: str = "") -> None:
    """What a GUI episode pays per step, through the action server over its ``docker exec``
    stream: a screenshot alone, and an action with its screenshot, for a Tk app and for
    chromium (``benchmarks/env_latency.py`` prints these too)."""
    env = GuiEnv()
    for task_id in ("tk-todo", "web-cart"):
        task = env.task(task_id)
        await backend.ensure_image(task.image or "", task.dockerfile_dir)
        rt = await env.start(task, backend)
        try:
            async with await ActionClient.over_exec(rt) as gui:
                obs = await gui.observe()
                x, y = center(obs.tree[0] if obs.tree else {"bounds": [0, 0, 10, 10]})
                print(f"{prefix}{task_id:8} screenshot (observe)             {fmt(await timed(gui.observe, n))}")
                print(f"{prefix}{task_id:8} GUI action (click + screenshot)  "
                      f"{fmt(await timed(functools.partial(gui.click, x, y), n))}")
        finally:
            await rt.stop()


async def server_rows(gui: ActionClient, label: str, n: int) -> None:
    obs = await gui.observe()
    # A harmless target: the app's title label (clicking it changes nothing).
    x, y = center(obs.tree[0] if obs.tree else {"bounds": [0, 0, 10, 10]})
    breakdown: dict[str, list[float]] = {}

    async def click() -> None:
        reply = await gui.click(x, y)
        for key, value in reply.timing.items():
            breakdown.setdefault(key, []).append(value)

    row(f"{label}: screenshot only (observe)", await timed(gui.observe, n))
    row(f"{label}: click + screenshot + tree", await timed(click, n))
    row(f"{label}: key + screenshot + tree", await timed(lambda: gui.key("shift"), n))
    row(f"{label}: ping (no screenshot)", await timed(lambda: gui.request({"action": "ping"}), n))
    for key, values in breakdown.items():
        row(f"{label}:   of which in the server, {key}", values)


async def naive_rows(runtime: DockerRuntime, n: int) -> None:
    x, y = 60, 40

    async def sdk() -> None:
        await runtime.exec(f"xdotool mousemove {x} {y} click 1", timeout=30, login=False)
        await runtime.exec("scrot -o /tmp/naive.png", timeout=30, login=False)
        await runtime.read_file("/tmp/naive.png")

    def cli_blocking() -> None:
        docker = shutil.which("docker") or "docker"
        for argv in (["xdotool", "mousemove", str(x), str(y), "click", "1"], ["scrot", "-o", "/tmp/naive.png"],
                     ["cat", "/tmp/naive.png"]):
            subprocess.run([docker, "exec", runtime.container_id, *argv], check=True, capture_output=True)

    async def cli() -> None:
        await asyncio.to_thread(cli_blocking)

    row("naive, docker SDK: exec xdotool + exec scrot + read", await timed(sdk, n))
    row("naive, docker CLI: exec xdotool + exec scrot + exec cat", await timed(cli, n))
    row("naive: one exec of xdotool alone (SDK)",
        await timed(lambda: runtime.exec(f"xdotool mousemove {x} {y}", timeout=30, login=False), n))
    row("naive: one exec of scrot alone (SDK)",
        await timed(lambda: runtime.exec("scrot -o /tmp/naive.png", timeout=30, login=False), n))


async def scrot_image(backend: DockerBackend, base: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "Dockerfile").write_text(
            f"FROM {base}\nRUN apt-get update && apt-get install -y --no-install-recommends scrot "
            "&& rm -rf /var/lib/apt/lists/*\n")
        return await backend.ensure_image("agentgym/gui-bench-scrot:" + base.rsplit(":", 1)[-1], tmp)


async def main(n: int) -> None:
    backend = DockerBackend(run_id="gui-bench")
    env = GuiEnv()
    try:
        todo, cart = env.task("tk-todo"), env.task("web-cart")
        for task in (todo, cart):
            assert task.image is not None
            t = time.perf_counter()
            await backend.ensure_image(task.image, task.dockerfile_dir)
            print(f"image {task.image}: ready in {time.perf_counter() - t:.1f}s")
        assert todo.image is not None
        naive_image = await scrot_image(backend, todo.image)

        print("\nstarting the desktop (container start + Xvfb + openbox + app, until the app answers)")
        for task in (todo, cart):
            starts = []
            for _ in range(3):
                t = time.perf_counter()
                rt = await env.start(task, backend)
                starts.append(time.perf_counter() - t)
                await rt.stop()
            row(f"{task.id}: env.start", starts)

        print(f"\none action + screenshot, the to-do app (Tk, {n} each)")
        with tempfile.TemporaryDirectory(prefix="agentgym-gui-sock-") as sockdir:
            Path(sockdir).chmod(0o777)
            rt = await env.start(todo, backend, image=naive_image, writable_mounts={sockdir: "/run/agentgym-host"})
            assert isinstance(rt, DockerRuntime)
            try:
                async with await ActionClient.over_exec(rt) as gui:
                    await server_rows(gui, "server over a docker exec stream", n)
                await rt.exec(f"setsid -f python3 {ACTIOND} --unix /run/agentgym-host/actiond.sock "
                              ">/tmp/actiond.log 2>&1 </dev/null", timeout=10, login=False)
                sock = Path(sockdir) / "actiond.sock"
                for _ in range(100):
                    if sock.exists():
                        break
                    await asyncio.sleep(0.05)
                async with await ActionClient.over_unix(str(sock)) as gui:
                    await server_rows(gui, "server over a mounted Unix socket", n)
                await naive_rows(rt, n)
            finally:
                await rt.stop()

        print(f"\none action + screenshot, the web shop (chromium, {n} each)")
        rt = await env.start(cart, backend)
        try:
            async with await ActionClient.over_exec(rt) as gui:
                await server_rows(gui, "server over a docker exec stream", n)
        finally:
            await rt.stop()

        print("\ngymnasium step (agentgym.make('gui/tk-todo-v0'): request, PNG decode, tree text)")
        gym_env = env.gymnasium(backend=backend, task_id="tk-todo")
        try:
            gym_env.reset(seed=0)
            action = {"kind": "click", "x": 60, "y": 40}
            steps = []
            for _ in range(n):
                t = time.perf_counter()
                gym_env.step(action)
                steps.append(time.perf_counter() - t)
            row("GuiGymEnv.step(click)", steps)
        finally:
            gym_env.close()
    finally:
        backend.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", type=int, default=20, help="repetitions per figure")
    args = parser.parse_args()
    asyncio.run(main(args.n))
