"""The harness x environment-family matrix: every built-in harness runs at least once, in Docker
(its image layer on a task image, built once and cached by content), against a scripted engine
answering the harness's own ``check_replies``, through the real proxy; its session must
reconstruct into a trajectory with tokens, and the episode must end on its own.

Select with markers: ``pytest -m matrix`` (all), ``-m "matrix and not slow"``; each cell is also
named by its ids (``-k aider``). Cold image builds (Docker layer per harness, once per task
image) dominate the first run; later runs reuse them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from agentgym.engines.scripted import ScriptedEngine
from agentgym.harness import load_harness
from agentgym.rollout.runner import RolloutConfig, run_rollouts
from agentgym.types import StopReason

CELLS = [  # (harness, env, task): each built-in at least once, each env family at least once
    ("agentgym/react-v0", "terminal/hello-file-v0", "hello-file"),
    ("agentgym/terminus-v0", "terminal/hello-file-v0", "hello-file"),
    ("mini-swe-agent/mini-v2", "terminal/hello-file-v0", "hello-file"),
    ("aider/aider-v0", "terminal/hello-file-v0", "hello-file"),
    ("agentgym/react-v0", "swe/basic-v0", None),
    ("aider/aider-v0", "swe/basic-v0", None),
]


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from agentgym.models.tiny import train_tokenizer

    return train_tokenizer()


@pytest.mark.matrix
@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(1500)
@pytest.mark.parametrize(("harness_id", "env_id", "task_id"), CELLS,
                         ids=[f"{h.split('/')[-1]}-x-{e.split('/')[0]}" for h, e, _ in CELLS])
def test_harness_runs_on_env_family_and_reconstructs(tokenizer: Any, tmp_path: Path, harness_id: str, env_id: str,
                                                     task_id: str | None) -> None:
    from agentgym import registries

    harness = load_harness(harness_id)
    replies = list(harness.check_replies())
    task = task_id or registries.envs.make(env_id).tasks()[0].id
    config = RolloutConfig(env=env_id, harness=harness_id, samples=1, task_ids=[task], out_dir=str(tmp_path),
                           runtime="docker", timeout_s=600, max_steps=5, progress=False)
    engine = ScriptedEngine(tokenizer, lambda ids, n: replies[min(n, len(replies) - 1)])
    result = asyncio.run(run_rollouts(config, engine))
    [t] = result.main
    assert t.stop_reason == StopReason.COMPLETED and t.error is None, (t.stop_reason, t.error)
    assert t.segments and t.sampled_tokens > 0 and t.trained_tokens > 0
    assert 0.0 < t.delivered_fraction <= 1.0
