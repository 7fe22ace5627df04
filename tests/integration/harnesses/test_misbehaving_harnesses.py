"""A harness that hangs, crashes, floods its output or never calls the model ends as a typed
failure within its time limit, and the run goes on: every episode is journaled and the rollout
returns. Each misbehaviour is a tiny TOML harness (no Python of ours), run by ``run_rollouts``
on the sandboxed local runtime against a scripted engine."""

from __future__ import annotations

import asyncio
import json
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from agentgym.engines.scripted import ScriptedEngine
from agentgym.rollout.runner import RolloutConfig, RolloutResult, run_rollouts
from agentgym.types import StopReason, Trajectory

pytestmark = pytest.mark.timeout(300)

ONE_CALL = (  # one chat completion with the standard library ({{ }}: literal braces in a spec)
    "python3 -c 'import json, os, urllib.request as u; "
    "r = u.Request(os.environ[\"BASE\"] + \"/chat/completions\", "
    "json.dumps({{\"model\": \"m\", \"messages\": [{{\"role\": \"user\", \"content\": \"hi\"}}]}}).encode(), "
    "{{\"Content-Type\": \"application/json\"}}); print(u.urlopen(r).read()[:80])'"
)


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from agentgym.models.tiny import train_tokenizer

    return train_tokenizer()


def rollout(tokenizer: Any, tmp_path: Path, command: str, timeout_s: float = 30.0, samples: int = 2) -> RolloutResult:
    spec = tmp_path / "misbehave.toml"
    spec.write_text(textwrap.dedent(f"""
        id = "test/misbehave-v0"
        [launch]
        command = {json.dumps(command)}
        env = {{ BASE = "{{base_url}}" }}
        """))
    config = RolloutConfig(env="terminal/hello-file-v0", harness=str(spec), samples=samples, concurrency=samples,
                           out_dir=str(tmp_path / "run"), runtime="local", timeout_s=timeout_s, progress=False)
    return asyncio.run(run_rollouts(config, ScriptedEngine(tokenizer, lambda ids, n: "Hello.")))


def episodes(result: RolloutResult, samples: int = 2) -> list[Trajectory]:
    main = sorted(result.main, key=lambda t: t.sample_index)
    assert [t.sample_index for t in main] == list(range(samples))  # every episode journaled
    assert len((result.out_dir / "episodes.jsonl").read_text().splitlines()) == samples
    return main


def test_a_hanging_harness_times_out(tokenizer: Any, tmp_path: Path) -> None:
    t0 = time.monotonic()
    # ignores SIGTERM and leaves a detached child holding its output open
    result = rollout(tokenizer, tmp_path, "trap '' TERM; setsid sleep 100000 & sleep 100000", timeout_s=3)
    for t in episodes(result):
        assert t.stop_reason == StopReason.TIMEOUT
        assert t.error is not None and t.error.type == "ExecTimeout" and t.error.boundary == "harness"
        assert t.ended_at - t.started_at < 30
    assert time.monotonic() - t0 < 90


def test_a_crashing_harness_is_a_harness_error_with_its_output(tokenizer: Any, tmp_path: Path) -> None:
    result = rollout(tokenizer, tmp_path, f"{ONE_CALL}; echo 'Traceback: boom' >&2; exit 17")
    for t in episodes(result):
        assert t.stop_reason == StopReason.HARNESS_ERROR
        assert t.error is not None and "exit 17" in t.error.message and "boom" in t.error.message
        assert t.metadata["harness_exit_code"] == 17
        assert t.sampled_tokens > 0 and t.segments  # the call served before the crash is kept


def test_a_flooding_harness_is_capped_and_still_completes(tokenizer: Any, tmp_path: Path) -> None:
    # 300 MB on stdout and stderr after one call: the runtime keeps 16 MB of each
    result = rollout(tokenizer, tmp_path, f"{ONE_CALL}; head -c 300000000 /dev/zero | tr '\\0' x; "
                                          "head -c 300000000 /dev/zero | tr '\\0' y >&2", timeout_s=120)
    for t in episodes(result):
        assert t.stop_reason == StopReason.COMPLETED, t.error
        assert t.segments and t.error is None


def test_a_harness_flooding_until_its_time_limit_times_out(tokenizer: Any, tmp_path: Path) -> None:
    result = rollout(tokenizer, tmp_path, "yes agentgym-flood", timeout_s=3)
    for t in episodes(result):
        assert t.stop_reason == StopReason.TIMEOUT
        assert t.error is not None and len(t.error.message) < 5000
        assert t.ended_at - t.started_at < 60


def test_a_harness_that_never_calls_the_model_is_a_typed_failure(tokenizer: Any, tmp_path: Path) -> None:
    result = rollout(tokenizer, tmp_path, "echo 'all done, I think'")
    for t in episodes(result):
        assert t.stop_reason == StopReason.HARNESS_ERROR
        assert t.error is not None and t.error.type == "NoModelCalls" and t.error.boundary == "harness"
        assert "without calling the model" in t.error.message and "all done" in t.error.message
        assert t.sampled_tokens == 0
