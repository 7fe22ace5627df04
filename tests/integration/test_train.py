"""The training loop end to end: the tiny model, the ReAct harness in Docker containers, the
proxy, real updates and weight pushes, checkpoints, resume after ``kill -9``, metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from agentgym.export import read_jsonl
from agentgym.trainers.config import TrainConfig
from agentgym.trainers.metrics import read_metrics
from tests.integration import train_helpers

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)]
ROOT = Path(__file__).resolve().parents[2]


def config(tmp_path: Path, **kw: Any) -> TrainConfig:
    base: dict[str, Any] = dict(
        model="tiny", env=train_helpers.ENV_ID, runtime="docker", out=str(tmp_path / "run"), iterations=2,
        tasks_per_iteration=2, group_size=2, concurrency=4, max_steps=2, max_tokens=48, lr=1e-2,
        progress=False, estimator="grpo")
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(autouse=True)
def _alternating_env() -> Any:
    train_helpers.register()
    yield
    from agentgym import registries

    registries.envs.unregister(train_helpers.ENV_ID)


def test_updates_push_weights_and_the_next_rollouts_carry_the_new_version(tmp_path: Path, tiny_model: Path) -> None:
    from agentgym.trainers.train import train

    result = train(config(tmp_path))
    m0, m1 = result.metrics
    assert (m0["iteration"], m1["iteration"]) == (0, 1)
    assert m0["groups_with_signal"] == m0["groups"] == 2 and m0["update"]["optimizer_steps"] == 1
    assert (m0["policy_version"], m0["policy_version_after"]) == (0, 1)
    assert (m1["policy_version"], m1["policy_version_after"]) == (1, 2) and result.policy_version == 2
    # with one epoch and nothing stale, the first optimizer step's ratio is 1 (same weights sampled them)
    assert abs(m0["first_step_ratio"]["min"] - 1) < 1e-5 and abs(m0["first_step_ratio"]["max"] - 1) < 1e-5
    # every sampled token of iteration 1 carries the version pushed after iteration 0
    for it, version in ((0, 0), (1, 1)):
        trajs = read_jsonl(tmp_path / "run" / "rollouts" / f"iter-{it:05d}" / "episodes.jsonl")
        versions = {v for t in trajs for s in t.segments
                    for v, a in zip(s.policy_version, s.action_mask, strict=True) if a}
        assert versions == {version}, (it, versions)
    assert m0["stale_tokens_dropped"] == 0 and m0["delivered_fraction"] == 1.0


def test_metrics_go_to_jsonl_tensorboard_and_stdout(tmp_path: Path, tiny_model: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from agentgym.trainers.train import train

    train(config(tmp_path, iterations=2))
    lines = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [m["iteration"] for m in lines] == [0, 1]
    for key in ("mean_reward", "success_rate", "groups_with_signal", "advantage", "tokens_sampled",
                "tokens_trained", "delivered_fraction", "break_reasons", "stale_tokens_dropped", "seconds_rollout",
                "seconds_update", "episodes_per_second", "success_by_task"):
        assert key in lines[0], key
    for key in ("loss", "pg_clipfrac", "ppo_kl", "entropy", "grad_norm"):
        assert key in lines[0]["update"], key
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("mean_reward")] == [0, 1]
    assert "update/entropy" in events.Tags()["scalars"]
    out = capsys.readouterr().out
    assert "it 1/2 | reward" in out and "it 2/2 | reward" in out


def test_a_stale_token_is_refused_and_counted(tmp_path: Path, tiny_model: Path) -> None:
    """Trajectories sampled two versions ago, with max_staleness 1: none of their tokens train."""
    import asyncio

    import torch
    from transformers import AutoModelForCausalLM

    from agentgym.engines import load_engine
    from agentgym.trainers.train import _update, select_groups
    from agentgym.types import Segment, Step, StopReason, Trajectory

    def traj(i: int, reward: float, version: int) -> Trajectory:
        seg = Segment(input_ids=(5, 6, 7, 8, 9), action_mask=(0, 0, 1, 1, 1), obs_mask=(0,) * 5,
                      logprobs=(0.0, 0.0, -1.0, -1.0, -1.0), turn_index=(-1, -1, 0, 0, 0), policy_version=(version,) * 5)
        return Trajectory(id=f"t{i}", task_id="task", session_id=f"s{i}", segments=(seg,),
                          steps=(Step(index=0, call_id=f"c{i}", segment_index=0, action_span=(2, 5)),),
                          reward=reward, stop_reason=StopReason.COMPLETED, sampled_tokens=3)

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    engine = load_engine(str(tiny_model))
    cfg = config(tmp_path, max_staleness=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for trajs, expect_dropped, expect_update in (
            ([traj(0, 1.0, 1), traj(1, 0.0, 1)], 6, False),      # both two versions old: nothing left
            ([traj(0, 1.0, 3), traj(1, 0.0, 1)], 3, True)):      # one current, one stale
        groups, _ = select_groups(trajs, cfg)
        metrics: dict[str, Any] = {}
        update = asyncio.run(_update(groups, cfg, engine=engine, model=model,
                                     optimizer=torch.optim.SGD(model.parameters(), lr=0.1), version=3, pad_id=0,
                                     loss_config=None, echo=None, step_base=0, metrics=metrics))
        assert metrics["stale_tokens_dropped"] == expect_dropped
        assert (update is not None) == expect_update
        if update is not None:
            assert update["action_tokens"] == 3
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    asyncio.run(engine.aclose())


RUNNER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    from tests.integration import train_helpers
    train_helpers.register()
    from agentgym.trainers.config import TrainConfig
    from agentgym.trainers.train import train
    train(TrainConfig(**{kwargs!r}))
""")


def test_kill_9_mid_iteration_then_resume_repeats_no_update(tmp_path: Path, tiny_model: Path) -> None:
    kwargs = dict(model="tiny", env=train_helpers.ENV_ID, runtime="docker", out=str(tmp_path / "run"), iterations=3,
                  tasks_per_iteration=2, group_size=2, concurrency=4, max_steps=2, max_tokens=48, progress=False,
                  tensorboard=True)
    script = tmp_path / "run_train.py"
    script.write_text(RUNNER.format(root=str(ROOT), kwargs=kwargs))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    ckpt0 = tmp_path / "run" / "checkpoints" / "iter-00000" / "state.json"
    rollouts1 = tmp_path / "run" / "rollouts" / "iter-00001" / "calls"
    deadline = time.time() + 600
    while time.time() < deadline and not (ckpt0.is_file() and rollouts1.is_dir() and any(rollouts1.iterdir())):
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # mid-iteration 1: its rollouts have started, its update has not
    proc.wait()
    assert [m["iteration"] for m in read_metrics(tmp_path / "run" / "metrics.jsonl")] == [0]

    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "resuming" in done.stdout and "after iteration 0 (policy version 1)" in done.stdout
    metrics = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [m["iteration"] for m in metrics] == [0, 1, 2]  # each once: none repeated, none skipped
    assert [(m["policy_version"], m["policy_version_after"]) for m in metrics] == [(0, 1), (1, 2), (2, 3)]
    state = json.loads((tmp_path / "run" / "checkpoints" / "iter-00002" / "state.json").read_text())
    assert (state["iteration"], state["policy_version"]) == (2, 3)
    # the interrupted iteration's finished episodes were resumed from its journal, not re-run
    assert metrics[1]["episodes"] == 4
