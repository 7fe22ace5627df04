"""Claude Code and Codex CLI in a container against the proxy: the real ``claude`` and ``codex`` (npm
locks, Node 22 from npm, installed offline into the task image), streaming Anthropic Messages and
OpenAI Responses to agentgym's proxy, whose scripted engine answers in the model's own tool-call
format. Each episode solves the task, and its session reconstructs with every sampled token
trained (delivered_fraction 1.0)."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from agentgym import registries
from agentgym.engines.scripted import ScriptedEngine
from agentgym.proxy.server import Proxy
from agentgym.rollout.episode import EpisodeSpec, run_episode
from agentgym.runtime.docker import DockerBackend
from agentgym.runtime.images import ImageCache
from agentgym.types import BreakReason, StopReason

WRITE = "printf 'Hello, agentgym!\\n' > /app/hello.txt"
CALLS = {
    "anthropic/claude-code-v2": json.dumps({"name": "Bash", "arguments": {"command": WRITE, "description": "Write it"}}),
    "openai/codex-v1": json.dumps({"name": "exec_command", "arguments": {"cmd": WRITE}}),
}


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("harness_id", sorted(CALLS))
def test_npm_harness_in_docker_solves_the_task_and_reconstructs_fully(tmp_path: Path, harness_id: str) -> None:
    from agentgym.models.tiny import train_tokenizer

    tok = train_tokenizer()
    call = f"I will write the file.\n<tool_call>\n{CALLS[harness_id]}\n</tool_call>"

    def reply(ids: Any, n: int) -> str:
        return "Done." if "tool_response" in tok.decode(list(ids)[-300:]) else call

    engine = ScriptedEngine(tok, reply, model_name="policy")
    env = registries.envs.make("terminal/hello-file-v0")
    harness = registries.harnesses.make(harness_id)
    task = env.tasks()[0]

    async def main() -> list[Any]:
        backend = DockerBackend(run_id="e2e-npm")
        proxy = Proxy(engine, tmp_path / "run", max_model_len=200_000)
        await proxy.start()
        try:
            return await run_episode(EpisodeSpec(task=task, sample_index=0, run_id="e2e"), env=env,
                                     harness=harness, proxy=proxy, backend=backend, images=ImageCache(backend),
                                     max_steps=8, timeout_s=900)
        finally:
            await proxy.stop()

    trajectories = asyncio.run(main())
    traj = trajectories[0]
    assert traj.stop_reason == StopReason.COMPLETED, traj.error
    assert traj.reward == 1.0
    assert traj.delivered_fraction == 1.0 and traj.trained_tokens == traj.sampled_tokens > 0
    assert len(traj.steps) >= 2 and len(traj.segments) == 1
    assert traj.segments[0].break_reason == BreakReason.START
    assert len(engine.prompts) >= 2
    for prev, cur in itertools.pairwise(engine.prompts[:2]):
        assert cur[: len(prev)] == prev  # the second prompt extends the first, token for token
