"""Scheduling one episode: a phase past its limit is typed by its phase, verifiers share their
slots, and a cancelled episode ends ``cancelled`` with the calls it made (local runtime, a
scripted engine, a tiny harness that calls the model once and then waits)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from agentgym.engines.scripted import ScriptedEngine
from agentgym.env import Env, Evaluation
from agentgym.harness import Harness, HarnessContext, Launch
from agentgym.proxy.server import Proxy
from agentgym.rollout.episode import EpisodeSpec, run_episode
from agentgym.rollout.schedule import GroupTracker, Overprovision, PhaseTimeouts
from agentgym.runtime.base import Runtime
from agentgym.runtime.images import ImageCache
from agentgym.runtime.local import LocalBackend
from agentgym.types import StopReason, Task

AGENT = """
import json, sys, time, urllib.request
url = sys.argv[1] + "/chat/completions"
body = json.dumps({"messages": [{"role": "user", "content": "hello"}]}).encode()
urllib.request.urlopen(urllib.request.Request(url, body, {"Content-Type": "application/json"})).read()
time.sleep(float(sys.argv[2]))
"""
IN_RUNTIME = "/opt/agentgym-test/agent.py"


class Slow(Env):
    """Setup and evaluation take as long as asked; counts verifications running at once."""

    id = "test/slow-v0"

    def __init__(self, setup_s: float = 0.0, evaluate_s: float = 0.0) -> None:
        self.setup_s = setup_s
        self.evaluate_s = evaluate_s
        self.verifying = 0
        self.most_verifying = 0

    def tasks(self) -> list[Task]:
        return [Task(id="t", instruction="do it", env=self.id, workdir="/app")]

    async def setup(self, task: Task, runtime: Runtime) -> None:
        await asyncio.sleep(self.setup_s)

    async def evaluate(self, task: Task, runtime: Runtime) -> Evaluation:
        self.verifying += 1
        self.most_verifying = max(self.most_verifying, self.verifying)
        try:
            await asyncio.sleep(self.evaluate_s)
        finally:
            self.verifying -= 1
        return Evaluation(reward=1.0)


class OneCall(Harness):
    id = "test/one-call-v0"

    def __init__(self, script: Path, wait_s: float) -> None:
        self.script = script
        self.wait_s = wait_s

    async def install(self, runtime: Runtime) -> None:
        await runtime.write_file(IN_RUNTIME, self.script.read_bytes())

    def launch(self, ctx: HarnessContext, runtime: Runtime | None) -> Launch:
        path = runtime.process_path(IN_RUNTIME) if runtime is not None else IN_RUNTIME
        return Launch(cmd=f"{sys.executable} {path} {ctx.base_url} {self.wait_s}")


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from agentgym.models.tiny import train_tokenizer

    return train_tokenizer()


def episodes(tmp_path: Path, tokenizer: Any, env: Slow, *, n: int = 1, wait_s: float = 0.0,
             cancel_after_s: float | None = None, **kwargs: Any) -> tuple[list[Any], LocalBackend]:
    script = tmp_path / "agent.py"
    script.write_text(AGENT)
    harness = OneCall(script, wait_s)
    backend = LocalBackend(isolation="none")

    async def main() -> list[Any]:
        proxy = Proxy(ScriptedEngine(tokenizer, ["Hi there."]), tmp_path / "run")
        await proxy.start()
        cancel = asyncio.Event() if cancel_after_s is not None else None
        try:
            runs = [run_episode(EpisodeSpec(task=env.tasks()[0], sample_index=i, run_id="r"), env=env,
                                harness=harness, proxy=proxy, backend=backend, images=ImageCache(backend),
                                network="host", cancel=cancel, **kwargs) for i in range(n)]
            if cancel is not None:
                asyncio.get_running_loop().call_later(cancel_after_s or 0.0, cancel.set)
            return [t[0] for t in await asyncio.gather(*runs)]
        finally:
            await proxy.stop()

    try:
        return asyncio.run(main()), backend
    finally:
        backend.close()


def test_a_setup_past_its_limit_is_a_runtime_error_and_leaves_no_sandbox(tmp_path: Path, tokenizer: Any) -> None:
    [t], backend = episodes(tmp_path, tokenizer, Slow(setup_s=30), timeouts=PhaseTimeouts(setup_s=0.5))
    assert t.stop_reason == StopReason.RUNTIME_ERROR
    assert t.error is not None and t.error.type == "PhaseTimeout" and "setup" in t.error.message
    assert len(backend._live) == 0


def test_a_verifier_past_its_limit_is_unscorable(tmp_path: Path, tokenizer: Any) -> None:
    [t], _ = episodes(tmp_path, tokenizer, Slow(evaluate_s=30), timeouts=PhaseTimeouts(verify_s=0.5))
    assert t.stop_reason == StopReason.EVAL_ERROR and t.reward == 0.0
    assert t.error is not None and t.error.type == "PhaseTimeout" and t.error.boundary == "env"
    assert len(t.steps) == 1  # the agent's work is kept


def test_verifications_share_their_slots(tmp_path: Path, tokenizer: Any) -> None:
    env = Slow(evaluate_s=0.3)
    trajs, _ = episodes(tmp_path, tokenizer, env, n=3, verify_slots=asyncio.Semaphore(1))
    assert [t.reward for t in trajs] == [1.0, 1.0, 1.0]
    assert env.most_verifying == 1


def test_without_limits_verifications_overlap(tmp_path: Path, tokenizer: Any) -> None:
    env = Slow(evaluate_s=0.5)
    episodes(tmp_path, tokenizer, env, n=3)
    assert env.most_verifying > 1  # so the test above shows the limit, not a serial loop


def test_a_cancelled_episode_ends_cancelled_with_its_calls(tmp_path: Path, tokenizer: Any) -> None:
    [t], backend = episodes(tmp_path, tokenizer, Slow(), wait_s=60, cancel_after_s=3.0)
    assert t.stop_reason == StopReason.CANCELLED and t.error is None and t.reward == 0.0
    assert t.metadata["cancelled_in"] == "agent"
    assert len(t.steps) == 1 and t.sampled_tokens > 0  # the call it made is data
    assert t.ended_at - t.started_at < 30
    assert len(backend._live) == 0


def test_overprovision_counts_and_a_group_completes_on_trainable_ends() -> None:
    assert [Overprovision(x).episodes(4) for x in (0.0, 0.25, 0.3, 1.0)] == [4, 5, 6, 8]
    group = GroupTracker(samples=2, ended_before=1)
    assert not group.ended(StopReason.CANCELLED) and not group.ended(StopReason.ENGINE_ERROR)
    assert not group.complete
    assert group.ended(StopReason.STEP_LIMIT) and group.cancel.is_set()
    assert GroupTracker(samples=2, ended_before=2).cancel.is_set()
