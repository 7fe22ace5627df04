"""Trajectories to and from Parquet and JSON Lines, with a versioned schema.

One record per trajectory; segments and steps are nested lists, token arrays are lists of
ints, logprobs float64 so a write/read round-trip is exact. The schema is documented in
``docs/dataset-schema.md``; ``schema_version`` is stored on every record and in the Parquet
file metadata, and readers refuse versions they do not know.

>>> import tempfile
>>> from agentgym.types import Segment, StopReason, Trajectory
>>> seg = Segment(input_ids=(1, 2, 3), action_mask=(0, 1, 1), obs_mask=(0, 0, 0), logprobs=(0.0, -0.5, -0.25),
...               turn_index=(-1, 0, 0), policy_version=(0, 0, 0))
>>> traj = Trajectory(id="t0", task_id="hello", session_id="s0", segments=(seg,), steps=(), reward=1.0,
...                   stop_reason=StopReason.COMPLETED)
>>> out = tempfile.mkdtemp()
>>> write_jsonl([traj], f"{out}/t.jsonl"), write_parquet([traj], f"{out}/t.parquet")  # doctest: +ELLIPSIS
(PosixPath('.../t.jsonl'), PosixPath('.../t.parquet'))
>>> read(f"{out}/t.jsonl") == read(f"{out}/t.parquet") == [traj]
True
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from agentgym.errors import ConfigError
from agentgym.jsonl import append_lines, read_records
from agentgym.types import BreakReason, ErrorInfo, Segment, Step, StopReason, Trajectory

SCHEMA_VERSION = 2
"""Version 2 added ``parent_trajectory_id`` (a sub-agent's main trajectory) and the segments'
``obs_body_mask`` (whole observation bodies, ECHO's ``|O|``; empty when equal to
``obs_mask``). Version 1 data reads as version 2 with those empty."""
READABLE_VERSIONS = (1, 2)

_SEGMENT_INT_FIELDS = ("input_ids", "action_mask", "obs_mask", "turn_index", "policy_version")


def trajectory_to_record(t: Trajectory) -> dict[str, Any]:
    """A JSON-ready dict (lists, not tuples; enums as strings)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "id": t.id, "task_id": t.task_id, "session_id": t.session_id,
        "harness": t.harness, "env": t.env, "agent_id": t.agent_id, "sample_index": t.sample_index,
        "reward": float(t.reward), "stop_reason": t.stop_reason.value,
        "error": None if t.error is None else {"type": t.error.type, "boundary": t.error.boundary,
                                               "message": t.error.message},
        "sampled_tokens": t.sampled_tokens, "trained_tokens": t.trained_tokens,
        "delivered_fraction": t.delivered_fraction,
        "started_at": t.started_at, "ended_at": t.ended_at,
        "metadata_json": json.dumps(dict(t.metadata), sort_keys=True, default=str),
        "parent_trajectory_id": t.parent_trajectory_id,
        "segments": [{
            **{f: list(getattr(s, f)) for f in _SEGMENT_INT_FIELDS},
            "obs_body_mask": list(s.obs_body_mask),
            "logprobs": [float(x) for x in s.logprobs],
            "break_reason": s.break_reason.value, "call_ids": list(s.call_ids), "agent_id": s.agent_id,
        } for s in t.segments],
        "steps": [{
            "index": s.index, "call_id": s.call_id, "segment_index": s.segment_index,
            "action_start": s.action_span[0], "action_end": s.action_span[1],
            "obs_start": s.obs_span[0], "obs_end": s.obs_span[1],
            "observation": s.observation, "action": s.action, "anchor": s.anchor,
            "reward": float(s.reward), "valid": s.valid, "agent_id": s.agent_id,
        } for s in t.steps],
    }


def trajectory_from_record(r: Mapping[str, Any]) -> Trajectory:
    version = r.get("schema_version")
    if version not in READABLE_VERSIONS:
        raise ConfigError(f"dataset schema version {version!r} is not supported by this agentgym "
                          f"(it reads versions {READABLE_VERSIONS}); upgrade agentgym or re-export the data")
    err = r.get("error")
    return Trajectory(
        id=r["id"], task_id=r["task_id"], session_id=r["session_id"],
        segments=tuple(Segment(
            **{f: tuple(int(x) for x in s[f]) for f in _SEGMENT_INT_FIELDS},
            logprobs=tuple(float(x) for x in s["logprobs"]), break_reason=BreakReason(s["break_reason"]),
            call_ids=tuple(s["call_ids"]), agent_id=s["agent_id"],
            obs_body_mask=tuple(int(x) for x in s.get("obs_body_mask") or ())) for s in r["segments"]),
        steps=tuple(Step(
            index=s["index"], call_id=s["call_id"], segment_index=s["segment_index"],
            action_span=(s["action_start"], s["action_end"]), obs_span=(s["obs_start"], s["obs_end"]),
            observation=s["observation"], action=s["action"], anchor=s["anchor"], reward=float(s["reward"]),
            valid=bool(s["valid"]), agent_id=s["agent_id"]) for s in r["steps"]),
        reward=float(r["reward"]), stop_reason=StopReason(r["stop_reason"]), harness=r["harness"], env=r["env"],
        agent_id=r["agent_id"], sample_index=int(r["sample_index"]),
        error=None if err is None else ErrorInfo(**err), sampled_tokens=int(r["sampled_tokens"]),
        started_at=float(r["started_at"]), ended_at=float(r["ended_at"]),
        metadata=json.loads(r.get("metadata_json") or "{}"), parent_trajectory_id=r.get("parent_trajectory_id"))


# -- JSON Lines --------------------------------------------------------------------------------
def write_jsonl(trajectories: Iterable[Trajectory], path: str | os.PathLike[str], append: bool = False) -> Path:
    """Write (or append, surviving a torn last line) one record per trajectory."""
    p = Path(path)
    if not append and p.exists():
        p.unlink()
    append_lines(p, (json.dumps(trajectory_to_record(t), ensure_ascii=False, separators=(",", ":"))
                     for t in trajectories))
    return p


def read_jsonl(path: str | os.PathLike[str]) -> list[Trajectory]:
    """Read a JSONL dataset or a run's journal (a torn last line from a crash is skipped)."""
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: no such dataset")
    return read_records(path, trajectory_from_record)


# -- Parquet -----------------------------------------------------------------------------------
def parquet_schema() -> Any:
    import pyarrow as pa

    segment = pa.struct([
        *[(f, pa.list_(pa.int64())) for f in _SEGMENT_INT_FIELDS],
        ("obs_body_mask", pa.list_(pa.int64())),
        ("logprobs", pa.list_(pa.float64())), ("break_reason", pa.string()),
        ("call_ids", pa.list_(pa.string())), ("agent_id", pa.string()),
    ])
    step = pa.struct([
        ("index", pa.int64()), ("call_id", pa.string()), ("segment_index", pa.int64()),
        ("action_start", pa.int64()), ("action_end", pa.int64()), ("obs_start", pa.int64()),
        ("obs_end", pa.int64()), ("observation", pa.string()), ("action", pa.string()),
        ("anchor", pa.string()), ("reward", pa.float64()), ("valid", pa.bool_()), ("agent_id", pa.string()),
    ])
    error = pa.struct([("type", pa.string()), ("boundary", pa.string()), ("message", pa.string())])
    return pa.schema([
        ("schema_version", pa.int64()), ("id", pa.string()), ("task_id", pa.string()),
        ("session_id", pa.string()), ("harness", pa.string()), ("env", pa.string()),
        ("agent_id", pa.string()), ("sample_index", pa.int64()), ("reward", pa.float64()),
        ("stop_reason", pa.string()), ("error", error), ("sampled_tokens", pa.int64()),
        ("trained_tokens", pa.int64()), ("delivered_fraction", pa.float64()),
        ("started_at", pa.float64()), ("ended_at", pa.float64()), ("metadata_json", pa.string()),
        ("parent_trajectory_id", pa.string()),
        ("segments", pa.list_(segment)), ("steps", pa.list_(step)),
    ], metadata={b"agentgym.schema_version": str(SCHEMA_VERSION).encode()})


def write_parquet(trajectories: Sequence[Trajectory], path: str | os.PathLike[str]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist([trajectory_to_record(t) for t in trajectories], schema=parquet_schema())
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:  # whole or not at all: a full disk never leaves a torn file where the old one was
        pq.write_table(table, tmp)
        tmp.replace(p)
    finally:
        if tmp.exists():
            tmp.unlink()
    return p


def read_parquet(path: str | os.PathLike[str]) -> list[Trajectory]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    meta = table.schema.metadata or {}
    version = meta.get(b"agentgym.schema_version", b"?").decode()
    if version not in {str(v) for v in READABLE_VERSIONS}:
        raise ConfigError(f"{path}: dataset schema version {version} is not supported "
                          f"(this agentgym reads versions {READABLE_VERSIONS})")
    return [trajectory_from_record(r) for r in table.to_pylist()]


def read(path: str | os.PathLike[str]) -> list[Trajectory]:
    """Read a ``.parquet`` or ``.jsonl`` dataset by its suffix."""
    suffix = Path(path).suffix
    if suffix == ".parquet":
        return read_parquet(path)
    if suffix in (".jsonl", ".json"):
        return read_jsonl(path)
    raise ConfigError(f"{path}: unknown dataset format {suffix!r}; use .parquet or .jsonl")


def write(trajectories: Sequence[Trajectory], path: str | os.PathLike[str]) -> Path:
    """Write by suffix (``.parquet`` or ``.jsonl``)."""
    suffix = Path(path).suffix
    if suffix == ".parquet":
        return write_parquet(trajectories, path)
    if suffix in (".jsonl", ".json"):
        return write_jsonl(trajectories, path)
    raise ConfigError(f"{path}: unknown dataset format {suffix!r}; use .parquet or .jsonl")
