"""The rollout service over real HTTP: a trainer's client submits batches, reads each group as it
completes, is held back when it does not read (backpressure), cancels, and gets clear refusals.
The service runs in this process on a free port (aiohttp), the client is httpx; the runtime is
local, the engine scripted."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agentgym.engines.scripted import ScriptedEngine
from agentgym.rollout.client import RolloutClient, RolloutServiceError
from agentgym.rollout.service import RolloutService
from agentgym.types import StopReason

SOLVE = ("<tool_call>\n{\"name\": \"bash\", \"arguments\": {\"command\": "
         "\"printf 'Hello, agentgym!\\\\n' > PATH\"}}\n</tool_call>")
LOOP = '<tool_call>\n{"name": "bash", "arguments": {"command": "sleep 0.2; echo tick"}}\n</tool_call>'
LOCAL_BASIC = ["hello-file", "leave-a-note", "log-report"]


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from agentgym.models.tiny import train_tokenizer

    return train_tokenizer()


def solver(tokenizer: Any) -> Any:
    def reply(prompt_ids: Any, n: int) -> str:
        text = tokenizer.decode(prompt_ids)
        if "<tool_response>" in text:
            return "Done."
        path = re.search(r"`(\S*/app/hello\.txt)`", text)
        return SOLVE.replace("PATH", path.group(1)) if path else "Nothing to do."
    return reply


@contextlib.asynccontextmanager
async def serving(engine: Any, root: Path, **kwargs: Any) -> AsyncIterator[tuple[RolloutService, RolloutClient]]:
    service = RolloutService(engine, root, runtime="local", **kwargs)
    await service.start()
    client = RolloutClient(service.url)
    try:
        yield service, client
    finally:
        await client.aclose()
        await service.stop()


def run(story: Any) -> Any:
    return asyncio.run(story())


def test_a_batch_streams_its_groups_and_ends_with_the_summary(tokenizer: Any, tmp_path: Path) -> None:
    async def story() -> None:
        async with serving(ScriptedEngine(tokenizer, solver(tokenizer)), tmp_path) as (_, client):
            assert (await client.health())["status"] == "ok"
            batch = await client.submit("terminal/basic-v0", "agentgym/react-v0", samples=2, policy_version=0,
                                        task_ids=["hello-file", "leave-a-note"], concurrency=2, max_steps=4)
            groups = [g async for g in client.groups(batch)]
            assert sorted(g.task_id for g in groups) == ["hello-file", "leave-a-note"]
            hello = next(g for g in groups if g.task_id == "hello-file")
            assert [t.reward for t in hello.trajectories] == [1.0, 1.0]
            assert all(t.segments and t.segments[0].input_ids for t in hello.trajectories)  # tokens, not text
            end = client.ended[batch]
            assert end["state"] == "done" and end["summary"]["episodes"] == 4
            status = await client.status(batch)
            assert (status["groups_finished"], status["groups_delivered"]) == (2, 2)
            assert (tmp_path / "batches" / batch / "episodes.jsonl").is_file()  # journaled like any run
    run(story)


def test_a_batch_nobody_reads_starts_no_more_episodes(tokenizer: Any, tmp_path: Path) -> None:
    async def story() -> None:
        async with serving(ScriptedEngine(tokenizer, lambda ids, n: "Nothing to do."), tmp_path,
                                       max_pending_groups=1) as (_, client):
            batch = await client.submit("terminal/basic-v0", "agentgym/react-v0", samples=1, policy_version=None,
                                        task_ids=LOCAL_BASIC, concurrency=1)
            for _ in range(600):
                status = await client.status(batch)
                if status["backpressure"]:
                    break
                await asyncio.sleep(0.05)
            assert status["backpressure"] and status["groups_finished"] == 1
            await asyncio.sleep(1.0)
            status = await client.status(batch)
            assert (status["episodes_started"], status["groups_finished"]) == (1, 1)  # held back
            groups = [g.task_id async for g in client.groups(batch)]  # reading lets it go on
            assert groups == LOCAL_BASIC
            assert (await client.status(batch))["episodes_started"] == 3
    run(story)


def test_cancel_stops_a_running_batch_and_ends_its_stream(tokenizer: Any, tmp_path: Path) -> None:
    async def story() -> None:
        engine = ScriptedEngine(tokenizer, lambda ids, n: LOOP)
        async with serving(engine, tmp_path) as (service, client):
            batch = await client.submit("terminal/hello-file-v0", "agentgym/react-v0", samples=2,
                                        policy_version=None, max_steps=500, timeout_s=300)
            queued = await client.submit("terminal/hello-file-v0", "agentgym/react-v0", samples=1,
                                         policy_version=None)
            while len(engine.prompts) < 2:
                await asyncio.sleep(0.05)
            assert (await client.cancel(queued))["state"] == "cancelled"
            await client.cancel(batch)
            groups = [g async for g in client.groups(batch)]
            assert client.ended[batch]["state"] == "cancelled"
            assert client.ended[batch]["summary"]["interrupted"] == 2 and groups == []
            assert [g async for g in client.groups(queued)] == [] and client.ended[queued]["state"] == "cancelled"
            assert len(service.backend._live) == 0  # type: ignore[attr-defined]  # no sandbox left
    run(story)


def test_refusals_say_what_is_wrong(tokenizer: Any, tmp_path: Path) -> None:
    async def story() -> None:
        async with serving(ScriptedEngine(tokenizer, ["Done."]), tmp_path, max_queued=0) as (_, client):
            with pytest.raises(RolloutServiceError, match=r"409.*push the weights") as wrong_version:
                await client.submit("terminal/hello-file-v0", "agentgym/react-v0", samples=1, policy_version=3)
            assert wrong_version.value.status == 409
            with pytest.raises(RolloutServiceError, match="400"):
                await client.submit("terminal/nope-v0", "agentgym/react-v0", samples=1, policy_version=None)
            with pytest.raises(RolloutServiceError, match=r"400.*unknown field.*colour"):
                await client.submit("terminal/hello-file-v0", "agentgym/react-v0", samples=1, policy_version=None,
                                    colour="red")
            with pytest.raises(RolloutServiceError, match="429"):
                await client.submit("terminal/hello-file-v0", "agentgym/react-v0", samples=1, policy_version=None)
            with pytest.raises(RolloutServiceError, match="404"):
                await client.status("nope")
    run(story)


def test_a_second_reader_is_refused(tokenizer: Any, tmp_path: Path) -> None:
    async def story() -> None:
        async with serving(ScriptedEngine(tokenizer, lambda ids, n: LOOP), tmp_path) as (_, client):
            batch = await client.submit("terminal/hello-file-v0", "agentgym/react-v0", samples=1,
                                        policy_version=None, max_steps=500, timeout_s=300)
            first = client.groups(batch)
            reading = asyncio.ensure_future(first.__anext__())
            await asyncio.sleep(0.5)
            with pytest.raises(RolloutServiceError) as second:
                async for _ in client.groups(batch):
                    pass
            assert second.value.status == 409
            await client.cancel(batch)
            with pytest.raises(StopAsyncIteration):
                await reading
    run(story)


def test_groups_keep_cancelled_episodes_of_an_overprovisioned_batch(tokenizer: Any, tmp_path: Path) -> None:
    first_calls = 0

    def reply(prompt_ids: Any, n: int) -> str:
        nonlocal first_calls
        text = tokenizer.decode(prompt_ids)
        if "<tool_response>" in text:
            return "Done." if "Hello, agentgym" in text else LOOP
        first_calls += 1
        return solver(tokenizer)(prompt_ids, n) if first_calls == 1 else LOOP

    async def story() -> None:
        async with serving(ScriptedEngine(tokenizer, reply), tmp_path) as (_, client):
            [group] = await client.run("terminal/hello-file-v0", "agentgym/react-v0", samples=1, policy_version=None,
                                       overprovision=1.0, concurrency=2, max_steps=500, timeout_s=300)
            assert sorted(t.stop_reason for t in group.trajectories) == [StopReason.CANCELLED, StopReason.COMPLETED]
    run(story)


CHILD = r'''
import sys
from agentgym import registries
from agentgym.engines.scripted import ScriptedEngine


def solving():
    from agentgym.models.tiny import train_tokenizer
    tok = train_tokenizer()
    solve = ('<tool_call>\n{"name": "bash", "arguments": {"command": "printf \'Hello, agentgym!\\\\n\' > '
             '/app/hello.txt"}}\n</tool_call>')
    return ScriptedEngine(tok, lambda ids, n: "Done." if "<tool_response>" in tok.decode(ids) else solve)


registries.engines.register("test/solving-v0", solving)
from agentgym.cli import main
sys.argv = ["agentgym", *sys.argv[1:]]
main()
'''


@pytest.mark.docker
def test_serve_rollouts_serves_a_trainer_in_another_process_and_stops_on_sigterm(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    child = tmp_path / "child.py"
    child.write_text(CHILD)
    proc = subprocess.Popen([sys.executable, str(child), "serve-rollouts", "--model", "test/solving-v0", "--port", "0",
                             "--runtime", "docker", "--out", str(tmp_path / "service")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = re.search(r"(http://\S+)/v1/batches", line)
        assert url is not None, line + (proc.stderr.read() if proc.stderr else "")

        async def trainer() -> list[Any]:
            async with RolloutClient(url.group(1)) as client:
                return await client.run("terminal/hello-file-v0", "agentgym/react-v0", samples=2, policy_version=0,
                                        max_steps=4, warm_pool=2)

        [group] = asyncio.run(trainer())
        assert [t.reward for t in group.trajectories] == [1.0, 1.0]
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "Traceback" not in stderr, stderr
    left = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=agentgym.pid={proc.pid}"],
                          capture_output=True, text=True, check=True).stdout.split()
    assert left == []
