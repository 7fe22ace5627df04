"""Export round-trips exactly, in both formats, including failures and odd text."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from agentgym import export
from agentgym.errors import ConfigError
from agentgym.types import BreakReason, ErrorInfo, Segment, Step, StopReason, Trajectory


def make_trajectory(rng: random.Random, i: int) -> Trajectory:
    segments = []
    for k in range(rng.randint(1, 3)):
        n = rng.randint(1, 40)
        action = [rng.randint(0, 1) for _ in range(n)]
        segments.append(Segment(
            input_ids=tuple(rng.randint(0, 150000) for _ in range(n)), action_mask=tuple(action),
            obs_mask=tuple(0 if a else rng.randint(0, 1) for a in action),
            logprobs=tuple(-rng.random() * 7 if a else 0.0 for a in action),
            turn_index=tuple(rng.randint(-1, 5) for _ in range(n)), policy_version=tuple([3] * n),
            break_reason=[BreakReason.START, BreakReason.HISTORY_EDITED, BreakReason.BRANCH][k],
            call_ids=(f"c{k}",), agent_id="main",
            obs_body_mask=tuple(rng.randint(0, 1) for _ in range(n)) if k == 1 else ()))
    steps = tuple(Step(index=j, call_id=f"c{j}", segment_index=0, action_span=(j, j + 1), obs_span=(0, j),
                       observation="out ünïcødé \x00 ✓\n", action='bash({"command": "ls"})', anchor="out",
                       reward=0.25 * j, valid=j % 2 == 0) for j in range(rng.randint(0, 4)))
    return Trajectory(
        id=f"traj-{i}", task_id="terminal/hello", session_id=f"s{i}", segments=tuple(segments), steps=steps,
        reward=rng.choice([0.0, 1.0, 0.5]), stop_reason=rng.choice(list(StopReason)), harness="agentgym/react-v0",
        env="terminal/basic-v0", sample_index=i, sampled_tokens=sum(sum(s.action_mask) for s in segments) + i,
        error=ErrorInfo(type="HarnessError", boundary="harness", message="exit 137") if i % 2 else None,
        started_at=1.5, ended_at=2.25, metadata={"seed": i, "tags": ["a"]},
        parent_trajectory_id=f"traj-{i - 1}" if i % 3 == 2 else None)


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_write_read_round_trips_exactly(tmp_path: Path, suffix: str) -> None:
    rng = random.Random(0)
    trajs = [make_trajectory(rng, i) for i in range(12)]
    path = export.write(trajs, tmp_path / f"data{suffix}")
    back = export.read(path)
    assert back == trajs
    assert [t.delivered_fraction for t in back] == [t.delivered_fraction for t in trajs]


def test_unknown_schema_version_is_refused(tmp_path: Path) -> None:
    rec = export.trajectory_to_record(make_trajectory(random.Random(1), 0))
    rec["schema_version"] = 99
    p = tmp_path / "future.jsonl"
    p.write_text(json.dumps(rec) + "\n")
    with pytest.raises(ConfigError, match="schema version 99"):
        export.read(p)


def test_version_1_records_read_with_the_new_fields_empty(tmp_path: Path) -> None:
    traj = make_trajectory(random.Random(2), 2)
    rec = export.trajectory_to_record(traj)
    assert rec["schema_version"] == 2 and rec["parent_trajectory_id"] == "traj-1"
    rec["schema_version"] = 1
    del rec["parent_trajectory_id"]
    for seg in rec["segments"]:
        del seg["obs_body_mask"]
    p = tmp_path / "v1.jsonl"
    p.write_text(json.dumps(rec) + "\n")
    (back,) = export.read(p)
    assert back.parent_trajectory_id is None and all(s.obs_body_mask == () for s in back.segments)
    assert back.segments[0].input_ids == traj.segments[0].input_ids


def test_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown dataset format"):
        export.write([], tmp_path / "x.csv")
