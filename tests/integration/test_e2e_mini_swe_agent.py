"""The headline invariant, end to end with real parts only.

The real mini-swe-agent (PyPI, unmodified) runs in a Docker container and talks HTTP to the
proxy, which is backed by the tiny local model on the embedded engine. A recording wrapper on
the engine keeps, independently of the proxy's journal, every prompt it received and every
token it sampled. The reconstructed trajectory must hold exactly those tokens, in order, each
right after exactly the tokens the engine saw before it, with the engine's logprobs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from agentgym import registries
from agentgym.engines.base import Engine, Generation
from agentgym.proxy.server import Proxy
from agentgym.rollout.episode import EpisodeSpec, run_episode
from agentgym.runtime.docker import DockerBackend
from agentgym.runtime.images import ImageCache
from agentgym.types import SamplingParams, StopReason


class RecordingEngine(Engine):
    """Wraps an engine and records (prompt ids, generation) for every call it serves."""

    def __init__(self, inner: Engine) -> None:
        self.inner = inner
        self.records: list[tuple[tuple[int, ...], Generation]] = []

    @property
    def tokenizer(self) -> Any:
        return self.inner.tokenizer

    @property
    def model_name(self) -> str:
        return self.inner.model_name

    async def generate(self, prompt_ids: Sequence[int], sampling: SamplingParams) -> Generation:
        gen = await self.inner.generate(prompt_ids, sampling)
        self.records.append((tuple(prompt_ids), gen))
        return gen

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.docker
@pytest.mark.slow
def test_mini_swe_agent_in_docker_reconstructs_exactly_what_the_engine_sampled(
        tiny_model: Path, tmp_path: Path) -> None:
    from agentgym.engines.embedded import EmbeddedEngine

    engine = RecordingEngine(EmbeddedEngine(tiny_model))
    env = registries.envs.make("terminal/hello-file-v0")
    harness = registries.harnesses.make("mini-swe-agent/mini-v2", temperature=1.0, max_tokens=64)
    task = env.tasks()[0]

    async def main() -> list[Any]:
        backend = DockerBackend(run_id="e2e-mini")
        proxy = Proxy(engine, tmp_path / "run", default_max_tokens=64, max_model_len=4096)
        await proxy.start()
        try:
            return await run_episode(EpisodeSpec(task=task, sample_index=0, run_id="e2e"), env=env,
                                     harness=harness, proxy=proxy, backend=backend, images=ImageCache(backend),
                                     max_steps=6, timeout_s=600)
        finally:
            await proxy.stop()
            await engine.aclose()

    trajectories = asyncio.run(main())
    traj = trajectories[0]
    # mini ran to one of its own ends (submitted, step limit, or repeated format errors).
    assert traj.stop_reason in (StopReason.COMPLETED, StopReason.STEP_LIMIT, StopReason.HARNESS_ERROR), traj.error
    assert traj.metadata["harness_exit_code"] in (0, 3, 4), traj.error
    records = engine.records
    assert len(records) >= 2, "mini-swe-agent made fewer than two LLM calls"
    assert len(traj.steps) == len(records)  # every call was delivered and became a step

    sampled_in_order: list[int] = []
    for step, (prompt, gen) in zip(traj.steps, records, strict=True):
        seg = traj.segments[step.segment_index]
        a0, a1 = step.action_span
        # The action tokens are the engine's sampled ids, with the engine's logprobs ...
        assert seg.input_ids[a0:a1] == gen.completion_ids
        assert seg.logprobs[a0:a1] == gen.logprobs
        assert all(seg.action_mask[a0:a1])
        # ... sampled right after exactly the tokens that precede them in the segment.
        assert seg.input_ids[:a0] == prompt
        sampled_in_order.extend(gen.completion_ids)
    # Nothing else is trained: the action tokens of all segments, in step order, are the samples.
    trained: list[int] = []
    for step in traj.steps:
        seg = traj.segments[step.segment_index]
        trained.extend(t for t, a in zip(seg.input_ids[slice(*step.action_span)],
                                         seg.action_mask[slice(*step.action_span)], strict=True) if a)
    assert trained == sampled_in_order
    assert traj.trained_tokens == traj.sampled_tokens == len(sampled_in_order)
    assert traj.delivered_fraction == 1.0
