"""A bad episode is data: OOM, timeout and a crashing harness become typed, recorded failures."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from agentgym import registries
from agentgym.engines.scripted import ScriptedEngine
from agentgym.harness import HarnessContext, Launch
from agentgym.harnesses.react import ReactHarness
from agentgym.proxy.server import Proxy
from agentgym.rollout.episode import EpisodeSpec, run_episode
from agentgym.runtime.base import Runtime
from agentgym.runtime.docker import DockerBackend
from agentgym.runtime.images import ImageCache
from agentgym.types import StopReason, TaskLimits

CALL = '<tool_call>\n{"name": "bash", "arguments": {"command": "echo hi"}}\n</tool_call>'


class ScriptHarness(ReactHarness):
    """The ReAct agent for one LLM call, then a shell snippet that misbehaves."""

    id = "test/misbehave-v0"

    def __init__(self, then: str) -> None:
        super().__init__()
        self.then = then

    def launch(self, ctx: HarnessContext, runtime: Runtime | None) -> Launch:
        base = super().launch(dataclasses.replace(ctx, max_steps=1), runtime)
        agent = base.cmd.replace("exec ", "", 1)  # keep the shell alive after the agent exits
        return Launch(cmd=f"{agent}; {self.then}", env=base.env)


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from agentgym.models.tiny import train_tokenizer

    return train_tokenizer()


def episode(tokenizer: Any, tmp_path: Path, then: str, limits: TaskLimits | None = None) -> Any:
    env = registries.envs.make("terminal/hello-file-v0")
    task = env.tasks()[0]
    if limits is not None:
        task = dataclasses.replace(task, limits=limits)

    async def main() -> Any:
        backend = DockerBackend(run_id="failures")
        proxy = Proxy(ScriptedEngine(tokenizer, lambda ids, n: CALL), tmp_path)
        await proxy.start()
        try:
            return (await run_episode(EpisodeSpec(task=task, sample_index=0, run_id="f"), env=env,
                                      harness=ScriptHarness(then), proxy=proxy, backend=backend,
                                      images=ImageCache(backend)))[0]
        finally:
            await proxy.stop()

    return asyncio.run(main())


@pytest.mark.docker
def test_container_oom_is_a_typed_failure(tokenizer: Any, tmp_path: Path) -> None:
    t = episode(tokenizer, tmp_path, "python3 -c 'x = bytearray(512 * 1024 * 1024)'",
                TaskLimits(timeout_s=120, max_steps=1, memory="96m"))
    assert t.stop_reason == StopReason.OOM
    assert t.error is not None and t.error.boundary == "harness" and "oom" in t.error.message
    assert t.num_steps == 1 and t.trained_tokens > 0  # what was served before the OOM is kept
    assert t.reward == 0.0


@pytest.mark.docker
def test_timeout_is_a_typed_failure(tokenizer: Any, tmp_path: Path) -> None:
    t = episode(tokenizer, tmp_path, "sleep 600", TaskLimits(timeout_s=4, max_steps=1))
    assert t.stop_reason == StopReason.TIMEOUT
    assert t.error is not None and t.error.type == "ExecTimeout"
    assert t.ended_at - t.started_at < 60
    assert t.num_steps == 1


@pytest.mark.docker
def test_crashing_harness_is_a_typed_failure(tokenizer: Any, tmp_path: Path) -> None:
    t = episode(tokenizer, tmp_path, "echo 'Traceback: boom' >&2; exit 17")
    assert t.stop_reason == StopReason.HARNESS_ERROR
    assert t.error is not None and "exit 17" in t.error.message and "boom" in t.error.message
    assert t.metadata["harness_exit_code"] == 17
