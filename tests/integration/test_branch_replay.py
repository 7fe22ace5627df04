"""Branching a black-box harness by proxy replay, end to end: the real ReAct harness in the local
runtime, the real proxy over HTTP, a scripted engine (so what is sampled is known), the
verifier, reconstruction and the journal.

A branch of episode E at call t runs the harness again in a fresh runtime; the proxy answers its
first t calls with E's recorded completions. The harness then repeats E's first t actions (the
environment re-executes them: the verifier sees their effect) and its first t turns are E's,
token for token; from call t + 1 the engine samples. A harness or environment that does not
repeat itself yields a recorded divergence, not a crash."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from agentgym import registries
from agentgym.engines.scripted import ScriptedEngine
from agentgym.harnesses.react import ReactHarness
from agentgym.proxy.calllog import read_calls
from agentgym.rollout.branch import branch_from
from agentgym.rollout.runner import RolloutConfig, RolloutResult, run_rollouts
from agentgym.trainers.advantages.tree import tree_advantages, tree_advantages_reference
from agentgym.trainers.batch import StepBatch
from agentgym.types import Divergence, StopReason, Trajectory, group_by_task


def bash(command: str) -> str:
    return "<tool_call>" + json.dumps({"name": "bash", "arguments": {"command": command}}) + "</tool_call>"


NOTE = bash("echo first >> notes.txt && cat notes.txt")
SOLVE = bash("echo 'Hello, agentgym!' > hello.txt && wc -c hello.txt")
CLOCK = bash("date +%s%N")  # its output differs in every run: a non-deterministic environment


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from agentgym.models.tiny import train_tokenizer

    return train_tokenizer()


def rollout(out: Path, engine: ScriptedEngine, harness: str = "agentgym/react-v0", runtime: str = "local",
            **kw: Any) -> RolloutResult:
    cfg = RolloutConfig(env="terminal/hello-file-v0", harness=harness, samples=1, out_dir=str(out),
                        runtime=runtime, progress=False, max_steps=5, concurrency=1, **kw)
    return asyncio.run(run_rollouts(cfg, engine))


def by_sample(result: RolloutResult) -> list[Trajectory]:
    return sorted(result.main, key=lambda t: t.sample_index)


def prefix_through(t: Trajectory, turns: int) -> tuple[int, ...]:
    """The token ids of ``t``'s first ``turns`` turns (prompt, observations and actions)."""
    step = sorted(t.steps, key=lambda s: s.index)[turns - 1]
    return t.segments[step.segment_index].input_ids[: step.action_span[1]]


@pytest.mark.parametrize("runtime", ["local", pytest.param("docker", marks=pytest.mark.docker)])
def test_a_branch_replays_t_actions_in_a_fresh_runtime_token_for_token(tokenizer: Any, tmp_path: Path,
                                                                        runtime: str) -> None:
    out = tmp_path / "run"
    root = by_sample(rollout(out, ScriptedEngine(tokenizer, [NOTE, SOLVE, "Done."]), runtime=runtime))[0]
    assert (root.reward, root.num_steps, root.stop_reason) == (1.0, 3, StopReason.COMPLETED)

    # Branch at t = 2: the engine is asked only for call 3 (it would fail the task if asked earlier).
    fresh = ScriptedEngine(tokenizer, ["All done, the file is there."])
    branch = branch_from(root, 2, out / "calls")
    result = rollout(out, fresh, runtime=runtime, branches=[branch])
    root_again, child = by_sample(result)
    assert root_again.id == root.id and result.skipped == 1  # the root was not run again
    assert (result.summary.branches, result.summary.divergence_rate) == (1, 0.0)
    assert child.sample_index == 1 and fresh.calls == 1
    # The replayed actions ran again in the child's own runtime: the verifier sees hello.txt.
    assert (child.reward, child.stop_reason, child.num_steps) == (1.0, StopReason.COMPLETED, 3)
    assert [s.action for s in child.steps[:2]] == [s.action for s in root.steps[:2]]
    assert [s.observation for s in child.steps[:3]] == [s.observation for s in root.steps[:3]]
    # Its first two turns are the root's, token for token, and so is the prompt of its third call.
    assert prefix_through(child, 2) == prefix_through(root, 2)
    child_calls = read_calls(out / "calls" / f"{child.session_id}.jsonl")
    root_calls = read_calls(out / "calls" / f"{root.session_id}.jsonl")
    assert child_calls[2].prompt_ids == root_calls[2].prompt_ids
    # Replayed calls are journaled as such, with the recorded logprobs and policy version.
    assert [c.replayed_from for c in child_calls] == [root_calls[0].call_id, root_calls[1].call_id, None]
    assert all(c.divergence is None for c in child_calls)
    for mine, theirs in zip(child_calls[:2], root_calls[:2], strict=True):
        assert (mine.completion_ids, mine.completion_logprobs, mine.response) == (
            theirs.completion_ids, theirs.completion_logprobs, theirs.response)
    assert child.metadata["branch"] == {"parent": root.id, "turn": 2, "shared_turns": 2, "replayed": 2,
                                        "divergence": None, "divergence_call": None}
    # Only the fresh call's tokens are the child's to train; the shared prefix is the root's.
    assert child.trained_tokens == child.sampled_tokens == len(child_calls[2].completion_ids)
    assert child.delivered_fraction == 1.0

    # Trained once: the tree of the two, collated, holds each sampled token once as an action.
    (group,) = group_by_task(result.main)
    assert group.parents == {child.id: (root.id, 2)}
    batch = StepBatch.from_groups([group])
    assert int(batch.action_mask.sum()) == root.trained_tokens + child.trained_tokens
    assert int(batch.action_mask.sum()) == sum(len(c.completion_ids) for c in root_calls) + 1 * len(
        child_calls[2].completion_ids)
    node, parent = batch.tree_node.tolist(), batch.tree_parent.tolist()
    assert node[:2] == node[3:5] and node[2] != node[5] and parent[5] == node[1]  # shared turns 0 and 1
    adv = tree_advantages(batch).rows
    assert adv.tolist() == pytest.approx(tree_advantages_reference(batch).rows.tolist())
    # the shared rows get one advantage whichever trajectory they are read from
    assert adv[:2].tolist() == adv[3:5].tolist()


class NoisyReact(ReactHarness):
    """The ReAct agent with a system prompt that differs on every launch: not deterministic."""

    id = "test/noisy-react-v0"

    def launch(self, ctx: Any, runtime: Any = None) -> Any:
        self.system_prompt = f"You are a careful shell agent (run {uuid.uuid4().hex})."
        return super().launch(ctx, runtime)


@pytest.mark.parametrize("case", ["environment", "harness"])
def test_a_non_deterministic_branch_records_a_divergence_and_samples_on(tokenizer: Any, tmp_path: Path,
                                                                        case: str) -> None:
    out = tmp_path / "run"
    harness = NoisyReact.id if case == "harness" else "agentgym/react-v0"
    with registries.harnesses.override(NoisyReact.id, NoisyReact):
        first = CLOCK if case == "environment" else NOTE
        root = by_sample(rollout(out, ScriptedEngine(tokenizer, [first, SOLVE, "Done."]), harness))[0]
        assert root.num_steps == 3
        fresh = ScriptedEngine(tokenizer, [SOLVE, "Done, sampled."] if case == "environment" else [first, SOLVE, "ok"])
        result = rollout(out, fresh, harness, branches=[branch_from(root, 2, out / "calls")])
    child = by_sample(result)[1]
    at = 1 if case == "environment" else 0  # the clock's output reaches call 1; the system prompt call 0
    calls = read_calls(out / "calls" / f"{child.session_id}.jsonl")
    assert [c.divergence for c in calls] == [None] * at + [Divergence.PROMPT_DIFFERS] + [None] * (len(calls) - at - 1)
    assert [c.replayed_from is not None for c in calls] == [True] * at + [False] * (len(calls) - at)
    assert fresh.calls == len(calls) - at
    assert child.metadata["branch"]["divergence"] == "prompt_differs"
    assert child.metadata["branch"]["divergence_call"] == at and child.metadata["branch"]["shared_turns"] == at
    assert (result.summary.branches, result.summary.divergence_rate) == (1, 1.0)  # the rollout's own figures
    assert result.summary.divergences == {"prompt_differs": 1}
    # Not a crash, not a corrupt trajectory: it completes, reconstructs, and trains what it sampled.
    assert child.stop_reason == StopReason.COMPLETED and child.error is None and child.reward == 1.0
    assert child.trained_tokens == child.sampled_tokens == sum(len(c.completion_ids) for c in calls[at:])
    (group,) = group_by_task(result.main)
    assert group.parents == ({child.id: (root.id, 1)} if at else {})
    batch = StepBatch.from_groups([group])
    assert int(batch.action_mask.sum()) == root.trained_tokens + child.trained_tokens


@pytest.mark.docker
@pytest.mark.slow
def test_a_branch_of_a_mini_swe_agent_episode_replays_in_a_fresh_container(tokenizer: Any, tmp_path: Path) -> None:
    """mini-swe-agent (PyPI, unmodified) is deterministic given its replies: it branches without
    divergence, its replayed actions re-run in a new container, and only call 3 is sampled."""
    out = tmp_path / "run"
    submit = bash("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT")
    solve = bash("echo 'Hello, agentgym!' > /app/hello.txt")
    root = by_sample(rollout(out, ScriptedEngine(tokenizer, [NOTE, solve, submit]), "mini-swe-agent/mini-v2",
                             runtime="docker"))[0]
    assert (root.reward, root.num_steps, root.stop_reason) == (1.0, 3, StopReason.COMPLETED), root.error
    fresh = ScriptedEngine(tokenizer, [submit])
    result = rollout(out, fresh, "mini-swe-agent/mini-v2", runtime="docker", branches=[branch_from(root, 2, out / "calls")])
    child = by_sample(result)[1]
    assert fresh.calls == 1 and (child.reward, child.num_steps) == (1.0, 3)
    assert child.metadata["branch"]["divergence"] is None and child.metadata["branch"]["shared_turns"] == 2
    assert [s.action for s in child.steps[:2]] == [s.action for s in root.steps[:2]]
    assert prefix_through(child, 2) == prefix_through(root, 2)
    mine = read_calls(out / "calls" / f"{child.session_id}.jsonl")
    theirs = read_calls(out / "calls" / f"{root.session_id}.jsonl")
    assert [c.prompt_ids for c in mine] == [c.prompt_ids for c in theirs]
    assert child.trained_tokens == len(mine[2].completion_ids)
