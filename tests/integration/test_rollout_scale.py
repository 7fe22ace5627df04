"""A rollout at scale: the warm pool in Docker (every sandbox handed over warm, none left after
the run or after a stop), and over-provisioning (the long tail cancelled once a group has its
samples, kept as data, not run again on resume, each group reported as it completes)."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import Any

import pytest

from agentgym.engines.scripted import ScriptedEngine
from agentgym.rollout.runner import RolloutConfig, run_rollouts
from agentgym.types import StopReason, TrajectoryGroup

SOLVE = ("<tool_call>\n{\"name\": \"bash\", \"arguments\": {\"command\": "
         "\"printf 'Hello, agentgym!\\\\n' > PATH\"}}\n</tool_call>")
LOOP = '<tool_call>\n{"name": "bash", "arguments": {"command": "sleep 0.2; echo tick"}}\n</tool_call>'


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from agentgym.models.tiny import train_tokenizer

    return train_tokenizer()


def solver(tokenizer: Any, solving: int | None = None) -> Any:
    """Solves hello-file; with ``solving``, only the first ``solving`` episodes do (the others
    loop until cut short: a long tail)."""
    first_calls = 0

    def reply(prompt_ids: Any, n: int) -> str:
        nonlocal first_calls
        text = tokenizer.decode(prompt_ids)
        if "<tool_response>" in text:
            return "Done: the file is written." if "Hello, agentgym" in text else LOOP
        first_calls += 1
        if solving is not None and first_calls > solving:
            return LOOP
        path = re.search(r"`(\S*/app/hello\.txt)`", text)
        assert path is not None, text
        return SOLVE.replace("PATH", path.group(1))
    return reply


def containers_of_this_process() -> list[str]:
    import docker

    client = docker.from_env()
    try:
        found = client.api.containers(all=True, filters={"label": f"agentgym.pid={os.getpid()}"})
        return [c["Names"][0] for c in found]
    finally:
        client.close()


@pytest.mark.docker
def test_a_warm_pool_hands_every_sandbox_over_warm_and_leaves_none(tokenizer: Any, tmp_path: Path) -> None:
    cfg = RolloutConfig(env="terminal/hello-file-v0", harness="agentgym/react-v0", samples=4, concurrency=2,
                        out_dir=str(tmp_path / "run"), runtime="docker", progress=False, max_steps=4, warm_pool=2)
    result = asyncio.run(run_rollouts(cfg, ScriptedEngine(tokenizer, solver(tokenizer))))
    assert [(t.reward, t.stop_reason) for t in result.main] == [(1.0, StopReason.COMPLETED)] * 4
    assert result.summary is not None
    pool = result.summary.pool
    assert pool["warm_hits"] + pool["waited"] == 4 and pool["cold"] == 0, pool
    assert pool["warmed"] == 4 and pool["discarded"] == 0  # bounded by demand: nothing started for nothing
    assert containers_of_this_process() == []


@pytest.mark.docker
def test_a_run_stopped_with_sandboxes_warming_leaves_no_container(tokenizer: Any, tmp_path: Path) -> None:
    engine = ScriptedEngine(tokenizer, lambda ids, n: LOOP)
    cfg = RolloutConfig(env="terminal/hello-file-v0", harness="agentgym/react-v0", samples=6, concurrency=2,
                        out_dir=str(tmp_path / "run"), runtime="docker", progress=False, max_steps=200,
                        timeout_s=300, warm_pool=3)

    async def main() -> Any:
        stop = asyncio.Event()

        async def stop_when_busy() -> None:
            while len(engine.prompts) < 4:  # both episodes in flight have called the model
                await asyncio.sleep(0.1)
            stop.set()

        stopping = asyncio.ensure_future(stop_when_busy())
        try:
            return await run_rollouts(cfg, engine, stop=stop)
        finally:
            stopping.cancel()

    result = asyncio.run(main())
    assert result.stopped_by == "cancel" and len(result.interrupted) == 2
    assert containers_of_this_process() == []


def test_overprovisioning_cancels_the_long_tail_and_keeps_it(tokenizer: Any, tmp_path: Path) -> None:
    groups: list[TrajectoryGroup] = []

    async def on_group(group: TrajectoryGroup) -> None:
        groups.append(group)

    engine = ScriptedEngine(tokenizer, solver(tokenizer, solving=2))
    cfg = RolloutConfig(env="terminal/hello-file-v0", harness="agentgym/react-v0", samples=2, concurrency=4,
                        out_dir=str(tmp_path / "run"), runtime="local", progress=False, max_steps=500,
                        timeout_s=300, overprovision=1.0)
    result = asyncio.run(run_rollouts(cfg, engine, on_group=on_group))
    stops = sorted(t.stop_reason.value for t in result.main)
    assert stops == ["cancelled", "cancelled", "completed", "completed"]
    for t in result.main:
        if t.stop_reason == StopReason.CANCELLED:
            assert t.steps and t.reward == 0.0 and t.error is None  # what it did before the cut is data
            assert t.ended_at - t.started_at < 120
    assert result.summary is not None and result.summary.cancelled == 2
    assert [(g.task_id, len(g.trajectories)) for g in groups] == [("hello-file", 4)]

    calls = len(engine.prompts)
    again = asyncio.run(run_rollouts(cfg, engine))  # the group is complete: nothing runs again
    assert len(engine.prompts) == calls and again.skipped == 4 and len(again.main) == 4


def test_the_trainer_leaves_cancelled_episodes_out_by_default() -> None:
    from agentgym.trainers.config import TrainConfig

    assert "cancelled" in TrainConfig().drop_stop_reasons
