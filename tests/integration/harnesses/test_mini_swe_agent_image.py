"""The real ``mini`` (mini-swe-agent 2.4.6) installed by the harness's image layer on
agentgym/base:bookworm, run in a container against a scripted OpenAI server until it submits."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from agentgym.harness import HarnessContext
from agentgym.harnesses.mini_swe_agent import SUBMIT_SENTINEL, TRAJ_NAME, MiniSweAgentHarness
from agentgym.types import StopReason, Task
from tests.integration.harnesses.fake_openai import FakeOpenAI, text, tool_call

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)]

BASE_IMAGE = "agentgym/base:bookworm"
OUT = "/tmp/agentgym-harness"


def _ctx(srv: FakeOpenAI, max_steps: int) -> HarnessContext:
    task = Task(id="mini-1", instruction="Create made.txt containing from-mini", env="test/fake-v0",
                image=BASE_IMAGE, workdir="/app")
    return HarnessContext(task=task, base_url=srv.base_url, model="policy", api_key="sk-test",
                          max_steps=max_steps, output_dir=OUT)


async def _run(harness: MiniSweAgentHarness, ctx: HarnessContext) -> tuple[Any, str, dict[str, Any], str]:
    from agentgym.runtime.base import RuntimeSpec
    from agentgym.runtime.docker import DockerBackend
    from agentgym.runtime.images import ImageCache

    backend = DockerBackend()
    try:
        image = await ImageCache(backend).image_for(ctx.task, harness)
        async with await backend.start(RuntimeSpec(image=image, workdir="/app", network="host")) as rt:
            result = await harness.run(ctx, rt, timeout=300)
            made = await rt.exec("cat /app/made.txt 2>/dev/null; true", timeout=30)
            traj = json.loads(await rt.read_file(f"{OUT}/{TRAJ_NAME}"))
            version = await rt.exec("/opt/mini/bin/python -c 'import minisweagent, mcp; print(minisweagent.__version__)'",
                                    timeout=60)
            return result, made.stdout, traj, version.stdout.strip().splitlines()[-1]
    finally:
        backend.close()


def test_mini_in_container_runs_commands_and_submits() -> None:
    harness = MiniSweAgentHarness(temperature=0.0, max_tokens=256)
    script = [
        tool_call("echo from-mini > /app/made.txt && cat /etc/debian_version", call_id="m1"),
        text("I believe I am done."),  # no tool call: a format error for mini
        tool_call(f"echo {SUBMIT_SENTINEL}", call_id="m2"),
    ]
    with FakeOpenAI(script) as srv:
        result, made, traj, version = asyncio.run(_run(harness, _ctx(srv, max_steps=10)))
    assert result.exit_code == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert harness.stop_reason(result) == StopReason.COMPLETED
    assert version == "2.4.6"
    assert made == "from-mini\n"  # the command ran inside the container
    assert traj["info"]["exit_status"] == "Submitted"
    assert len(srv.requests) == 3
    first, second, third = srv.bodies
    assert first["model"] == "policy"
    assert (first["temperature"], first["max_tokens"]) == (0.0, 256)
    assert [t["function"]["name"] for t in first["tools"]] == ["bash"]
    assert "stream" not in first
    assert "Create made.txt containing from-mini" in first["messages"][1]["content"]
    tool_msg = second["messages"][3]
    assert tool_msg["role"] == "tool" and tool_msg["tool_call_id"] == "m1"
    observation = json.loads(tool_msg["content"])
    assert observation["returncode"] == 0
    assert observation["output"].startswith("12.")  # bookworm's /etc/debian_version, read in the container
    # mini drops the reply without a tool call and appends a format-error user message instead
    assert third["messages"][:4] == second["messages"]
    assert third["messages"][4]["role"] == "user" and "Tool call error" in third["messages"][4]["content"]


def test_mini_in_container_step_limit_exits_3() -> None:
    harness = MiniSweAgentHarness()
    with FakeOpenAI(default=tool_call("true")) as srv:
        result, _, traj, _ = asyncio.run(_run(harness, _ctx(srv, max_steps=2)))
    assert result.exit_code == 3, result.stdout[-3000:] + result.stderr[-3000:]
    assert harness.stop_reason(result) == StopReason.STEP_LIMIT
    assert traj["info"]["exit_status"] == "LimitsExceeded"
    assert len(srv.requests) == 2
    assert "temperature" not in srv.bodies[0] and "max_tokens" not in srv.bodies[0]
