"""The rollout service end to end with real runtimes and the real ReAct harness.

The engine is scripted (it answers by looking at the prompt), so rewards are deterministic;
everything else is real: the proxy over HTTP, the harness process, Docker containers, the
verifier, reconstruction and the journal.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from agentgym import registries
from agentgym.engines.scripted import ScriptedEngine
from agentgym.harness import HarnessContext, Launch
from agentgym.harnesses.react import ReactHarness
from agentgym.rollout.runner import RolloutConfig, run_rollouts
from agentgym.runtime.base import Runtime
from agentgym.types import BreakReason, StopReason

SOLVE_HELLO = ("<tool_call>\n{\"name\": \"bash\", \"arguments\": {\"command\": "
               "\"printf 'Hello, agentgym!\\\\n' > PATH\"}}\n</tool_call>")
LOOP = '<tool_call>\n{"name": "bash", "arguments": {"command": "sleep 0.2; echo tick"}}\n</tool_call>'


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from agentgym.models.tiny import train_tokenizer

    return train_tokenizer()


def solver(tokenizer: Any) -> Any:
    def reply(prompt_ids: Any, n: int) -> str:
        text = tokenizer.decode(prompt_ids)
        if "hello.txt" not in text:
            return LOOP
        if "<tool_response>" in text:
            return "Done: the file is written."
        # The path as the task states it (/app/hello.txt, or the host path on the local runtime).
        path = re.search(r"`(\S*/app/hello\.txt)`", text)
        assert path is not None, text
        return SOLVE_HELLO.replace("PATH", path.group(1))
    return reply


def run(cfg: RolloutConfig, engine: Any) -> Any:
    return asyncio.run(run_rollouts(cfg, engine))


@pytest.mark.parametrize("runtime", [pytest.param("docker", marks=pytest.mark.docker), "local"])
def test_rollout_solves_and_resumes(tokenizer: Any, tmp_path: Path, runtime: str) -> None:
    engine = ScriptedEngine(tokenizer, solver(tokenizer))
    cfg = RolloutConfig(env="terminal/hello-file-v0", harness="agentgym/react-v0", samples=2,
                        out_dir=str(tmp_path / "run"), runtime=runtime, progress=False, max_steps=4)
    result = run(cfg, engine)
    assert result.backend == runtime
    main = result.main
    assert len(main) == 2
    for t in main:
        assert (t.reward, t.stop_reason, t.error) == (1.0, StopReason.COMPLETED, None), t.error
        assert next(s.action for s in t.steps).startswith("bash(")
        assert len(t.steps) == 2 and len(t.segments) == 1
        assert t.segments[0].break_reason == BreakReason.START
        assert t.trained_tokens == t.sampled_tokens > 0
    assert result.journal.exists() and result.parquet.exists()
    n_calls = len(engine.prompts)
    assert n_calls == 4

    again = run(cfg, engine)  # resume: everything is in the journal, nothing re-runs
    assert again.skipped == 2 and len(engine.prompts) == n_calls
    assert [t.id for t in again.main] == [t.id for t in main]


def test_an_interrupted_run_resumes_only_what_is_missing(tokenizer: Any, tmp_path: Path) -> None:
    engine = ScriptedEngine(tokenizer, solver(tokenizer))
    base = dict(env="terminal/hello-file-v0", harness="agentgym/react-v0", out_dir=str(tmp_path / "run"),
                runtime="local", progress=False, max_steps=4)
    first = run(RolloutConfig(samples=1, **base), engine)  # type: ignore[arg-type]
    assert len(first.main) == 1 and len(engine.prompts) == 2
    # A crash mid-write leaves a torn last line: it is ignored, and that episode re-runs.
    with open(first.journal, "a") as f:
        f.write('{"schema_version": 1, "id": "torn')
    second = run(RolloutConfig(samples=3, **base), engine)  # type: ignore[arg-type]
    assert second.skipped == 1
    assert len(engine.prompts) == 2 + 2 * 2  # only samples 1 and 2 ran
    assert sorted(t.sample_index for t in second.main) == [0, 1, 2]
    assert all(t.reward == 1.0 for t in second.main)


class KillingReact(ReactHarness):
    """The ReAct harness, killed with SIGKILL 3 s into episodes of one task."""

    id = "test/killing-react-v0"

    def launch(self, ctx: HarnessContext, runtime: Runtime | None) -> Launch:
        launch = super().launch(ctx, runtime)
        if "hello.txt" in ctx.task.instruction:
            return launch
        return Launch(cmd=f"timeout --signal=KILL 3 bash -c {_quote(launch.cmd)}", env=launch.env)


def _quote(s: str) -> str:
    import shlex

    return shlex.quote(s)


@pytest.mark.docker
def test_killed_harness_is_recorded_and_the_other_episodes_finish(tokenizer: Any, tmp_path: Path) -> None:
    engine = ScriptedEngine(tokenizer, solver(tokenizer), delay_s=0.2)
    with registries.harnesses.override("test/killing-react-v0", KillingReact):
        cfg = RolloutConfig(env="terminal/basic-v0", harness="test/killing-react-v0", samples=1,
                            task_ids=["hello-file", "log-report"], out_dir=str(tmp_path / "run"),
                            runtime="docker", progress=False, max_steps=50)
        result = run(cfg, engine)
    by_task = {t.task_id: t for t in result.main}
    ok, killed = by_task["hello-file"], by_task["log-report"]
    assert ok.stop_reason == StopReason.COMPLETED and ok.reward == 1.0
    assert killed.stop_reason == StopReason.KILLED
    assert killed.error is not None and killed.error.boundary == "harness" and "exit 137" in killed.error.message
    assert killed.reward == 0.0
    assert killed.num_steps >= 2  # it was mid-episode: several calls were served and recorded
    assert killed.trained_tokens > 0 and killed.delivered_fraction > 0.5


class FlakyVerifierEnv:
    """Wraps hello-file: the verifier crashes on the first ``crashes`` evaluations."""

    crashes = 0

    def __new__(cls, crashes: int = 1) -> Any:
        from agentgym import registries
        from agentgym.errors import EnvError

        inner = registries.envs.make("terminal/hello-file-v0")
        original = inner.evaluate

        async def evaluate(task: Any, runtime: Any) -> Any:
            if FlakyVerifierEnv.crashes < crashes:
                FlakyVerifierEnv.crashes += 1
                raise EnvError("the verifier crashed (test)")
            return await original(task, runtime)

        inner.evaluate = evaluate
        return inner


def test_a_verifier_crash_is_unscored_and_retried_on_resume(tokenizer: Any, tmp_path: Path) -> None:
    from agentgym import registries

    engine = ScriptedEngine(tokenizer, solver(tokenizer))
    FlakyVerifierEnv.crashes = 0
    with registries.envs.override("test/flaky-hello-v0", FlakyVerifierEnv, crashes=1):
        cfg = RolloutConfig(env="test/flaky-hello-v0", harness="agentgym/react-v0", samples=1,
                            out_dir=str(tmp_path / "run"), runtime="local", progress=False, max_steps=4)
        first = run(cfg, engine)
        (t,) = first.main
        assert t.stop_reason == StopReason.EVAL_ERROR and t.stop_reason.outside_the_agent
        assert t.error is not None and "verifier crashed" in t.error.message
        assert t.metadata["harness_stop"] == "completed"  # the agent itself finished
        again = run(cfg, engine)
    assert (again.skipped, again.retried) == (0, 1)
    (t2,) = again.main  # the new attempt replaces the unscored one
    assert (t2.stop_reason, t2.reward) == (StopReason.COMPLETED, 1.0)
