"""Trajectories as the datasets trainers load: Hugging Face, TRL (SFT, GRPO) and verl.

Each format is a directory a loader opens as is (``datasets.load_dataset(DIR)``, TRL's
trainers, verl's parquet loaders), with a dataset card (``README.md``: what was run, with which
model and tokenizer, the filter, the counts; :mod:`agentgym.card`) and ``agentgym.json`` (the
same facts for programs):

``hf``
    ``data/train-00000-of-00001.parquet``: one row per trajectory in agentgym's versioned schema
    (``docs/dataset-schema.md``), readable back with :func:`agentgym.export.read`.
``trl-sft``
    One row per segment. By default ``messages`` (+ ``tools``): **the conversation the harness
    actually had**, from the call journal: the segment's last call's request messages and the
    reply it got. With ``tokens=True``: ``input_ids`` exactly as recorded, and the segment's
    action mask as ``completion_mask`` and ``assistant_masks`` (TRL trains on the sampled tokens
    only), plus ``logprobs`` of those tokens. Either loads in TRL's ``SFTTrainer`` unchanged.
``trl-grpo``
    One row per (task, prompt): ``prompt`` (the conversation before the agent's first reply),
    ``tools``, and ``task_id``/``env``/``reward_mean``... which TRL passes to reward functions.
``verl``
    One row per segment with verl's RL columns (``data_source``, ``prompt``, ``ability``,
    ``reward_model``, ``extra_info``) and its multi-turn SFT columns (``messages``, ``tools``);
    with ``tokens=True`` also ``input_ids``, ``attention_mask`` and ``loss_mask`` (the action
    mask), the fields verl's SFT batches hold.

Message formats need the run's call journal (``<run>/calls/``): export from a run directory,
or from a dataset file that lies in one. Token formats need nothing but the trajectories.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentgym import export
from agentgym.errors import ConfigError, StorageError, storage_error
from agentgym.filters import TrajectoryFilter, apply_filter
from agentgym.proxy.calllog import read_calls
from agentgym.types import Call, Segment, Trajectory

__all__ = ["FORMATS", "ExportReport", "conversation", "data_file", "export_dataset", "load_calls", "read_source"]

FORMATS = ("jsonl", "parquet", "hf", "trl-sft", "trl-grpo", "verl")
MANIFEST = "agentgym.json"


def data_file(dst: str | os.PathLike[str]) -> Path:
    """The parquet file of an exported dataset directory (``data/train-00000-of-00001-<id>.parquet``:
    each export has its own ``<id>``, so a loader's cache never serves an earlier export that
    had the same directory name)."""
    found = sorted(Path(dst).glob("data/train-*.parquet"))
    if not found:
        raise ConfigError(f"{dst} holds no exported dataset (data/train-*.parquet)")
    return found[-1]


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_dataset` wrote."""

    path: Path
    format: str
    trajectories: int
    """Trajectories kept by the filter."""
    rows: int
    dropped: dict[str, int] = field(default_factory=dict)
    """Trajectories the filter left out, by kind of reason."""
    skipped_segments: int = 0
    """Segments without the calls their messages need (a message format only)."""
    model: str | None = None
    tokenizer: str | None = None
    data_file: str | None = None
    """The data file, relative to :attr:`path` (directory formats)."""


# -- sources -----------------------------------------------------------------------------------
def read_source(src: str | os.PathLike[str]) -> tuple[list[Trajectory], Path | None]:
    """The trajectories of a run directory (its journal, else its parquet) or a dataset file,
    and the run directory holding the call journal, when there is one."""
    p = Path(src)
    if p.is_dir():
        journal, parquet = p / "episodes.jsonl", p / "trajectories.parquet"
        if (p / MANIFEST).exists() and json.loads((p / MANIFEST).read_text()).get("format") == "hf":
            return export.read_parquet(data_file(p)), None
        if journal.exists():
            from agentgym.rollout.runner import latest_attempts

            return latest_attempts(export.read_jsonl(journal)), p
        if parquet.exists():
            return export.read_parquet(parquet), p
        raise ConfigError(f"{p} has neither episodes.jsonl nor trajectories.parquet; pass a run directory "
                          "(agentgym rollout --out DIR) or a .jsonl/.parquet dataset")
    if not p.exists():
        raise ConfigError(f"{p} does not exist; pass a run directory or a .jsonl/.parquet dataset")
    return export.read(p), p.parent if (p.parent / "calls").is_dir() else None


def load_calls(run_dir: Path, session_ids: Sequence[str]) -> dict[str, Call]:
    """The calls of these sessions, by call id (a torn last line is skipped)."""
    calls: dict[str, Call] = {}
    for sid in dict.fromkeys(session_ids):
        for c in read_calls(run_dir / "calls" / f"{sid}.jsonl"):
            calls[c.call_id] = c
    return calls


def run_facts(run_dir: Path | None) -> dict[str, Any]:
    if run_dir is None or not (run_dir / "run.json").exists():
        return {}
    try:
        facts = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        return facts if isinstance(facts, dict) else {}
    except (OSError, ValueError):
        return {}


# -- messages ----------------------------------------------------------------------------------
def canonical_message(m: Mapping[str, Any]) -> dict[str, Any]:
    """One message with a fixed shape (Arrow needs one): ``role``, ``content`` (text parts
    joined), ``tool_calls`` (OpenAI-shaped, ``arguments`` a JSON string as sent), and
    ``tool_call_id``/``name`` (``None`` when absent). Fields a harness adds beyond these
    (``provider_specific_fields``...) are left out."""
    content = m.get("content")
    if isinstance(content, list):
        text = "".join(p if isinstance(p, str) else str(p.get("text", "")) for p in content)
    else:
        text = "" if content is None else str(content)
    calls = []
    for tc in m.get("tool_calls") or []:
        fn = tc.get("function") if isinstance(tc.get("function"), Mapping) else tc
        args = fn.get("arguments", "")
        calls.append({"id": str(tc.get("id") or ""), "type": "function",
                      "function": {"name": str(fn.get("name", "")),
                                   "arguments": args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)}})
    return {"role": str(m.get("role", "")), "content": text, "tool_calls": calls,
            "tool_call_id": m.get("tool_call_id"), "name": m.get("name")}


def conversation(segment: Segment, calls: Mapping[str, Call]) -> tuple[list[dict[str, Any]], str | None] | None:
    """The conversation of a segment as the harness had it: its last call's request messages
    plus the reply that call got, and the request's tools (a JSON string). ``None`` when the
    call is not in ``calls``."""
    if not segment.call_ids or segment.call_ids[-1] not in calls:
        return None
    last = calls[segment.call_ids[-1]]
    messages = [canonical_message(m) for m in last.request.get("messages") or []]
    messages.append(canonical_message({"role": "assistant", **dict(last.response)}))
    tools = last.request.get("tools")
    return messages, (json.dumps(tools, ensure_ascii=False) if tools else None)


def first_prompt(segment: Segment, calls: Mapping[str, Call]) -> tuple[list[dict[str, Any]], str | None] | None:
    """The messages of a segment's first call (what the agent saw before its first reply)."""
    if not segment.call_ids or segment.call_ids[0] not in calls:
        return None
    first = calls[segment.call_ids[0]]
    tools = first.request.get("tools")
    return ([canonical_message(m) for m in first.request.get("messages") or []],
            json.dumps(tools, ensure_ascii=False) if tools else None)


# -- rows --------------------------------------------------------------------------------------
def _meta(t: Trajectory, k: int | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {"trajectory_id": t.id, "task_id": t.task_id, "env": t.env, "harness": t.harness,
                           "agent_id": t.agent_id, "sample_index": t.sample_index, "reward": float(t.reward),
                           "stop_reason": t.stop_reason.value}
    if k is not None:
        seg = t.segments[k]
        acted = [v for v, a in zip(seg.policy_version, seg.action_mask, strict=False) if a]
        row.update(segment_index=k, break_reason=seg.break_reason.value,
                   policy_version=max(acted) if acted else (max(seg.policy_version) if len(seg) else 0))
    return row


def _token_columns(seg: Segment, style: str) -> dict[str, Any]:
    mask = [int(a) for a in seg.action_mask]
    if style == "verl":
        return {"input_ids": list(seg.input_ids), "attention_mask": [1] * len(seg), "loss_mask": mask}
    return {"input_ids": list(seg.input_ids), "completion_mask": mask, "assistant_masks": mask,
            "logprobs": [float(x) if a else 0.0 for x, a in zip(seg.logprobs, mask, strict=True)]}


def segment_rows(trajectories: Sequence[Trajectory], calls: Mapping[str, Call] | None, *, style: str,
                 tokens: bool) -> tuple[list[dict[str, Any]], int]:
    """Rows for ``trl-sft`` or ``verl`` (``style``), and how many segments had no conversation."""
    rows: list[dict[str, Any]] = []
    missing = 0
    for t in trajectories:
        for k, seg in enumerate(t.segments):
            if not seg.num_action_tokens:
                continue  # nothing the policy sampled: nothing to learn
            row = _meta(t, k)
            if tokens:
                row.update(_token_columns(seg, style))
            if calls is not None:
                conv = conversation(seg, calls)
                if conv is None:
                    if not tokens:
                        missing += 1
                        continue
                    row.update(messages=None, tools=None)
                else:
                    row.update(messages=conv[0], tools=conv[1])
            if style == "verl":
                prompt = first_prompt(seg, calls) if calls is not None else None
                row.update(data_source=t.env or "agentgym", ability="agent",
                           prompt=prompt[0] if prompt else None,
                           reward_model={"style": "agentgym", "ground_truth": t.task_id},
                           extra_info={"index": len(rows), "task_id": t.task_id, "trajectory_id": t.id,
                                       "segment_index": k, "reward": float(t.reward)})
            rows.append(row)
    return rows, missing


def grpo_rows(trajectories: Sequence[Trajectory], calls: Mapping[str, Call]) -> tuple[list[dict[str, Any]], int]:
    """One row per distinct (task, first prompt): what GRPO samples completions for."""
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    missing = 0
    for t in trajectories:
        if not t.segments:
            continue
        prompt = first_prompt(t.segments[0], calls)
        if prompt is None:
            missing += 1
            continue
        key = (t.task_id, json.dumps(prompt[0], sort_keys=True))
        row = by_key.setdefault(key, {"prompt": prompt[0], "tools": prompt[1], "task_id": t.task_id,
                                      "env": t.env, "harness": t.harness, "rewards": []})
        row["rewards"].append(float(t.reward))
    rows = []
    for row in by_key.values():
        rewards = row["rewards"]
        rows.append({**row, "samples": len(rewards), "reward_mean": sum(rewards) / len(rewards)})
    return rows, missing


# -- writing -----------------------------------------------------------------------------------
def _write_table(rows: list[dict[str, Any]], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(rows) if rows else pa.table({})
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)


def export_dataset(src: str | os.PathLike[str], dst: str | os.PathLike[str], fmt: str = "hf", *,
                   flt: TrajectoryFilter | None = None, tokens: bool = False, model: str | None = None,
                   tokenizer: str | None = None) -> ExportReport:
    """Export the trajectories of ``src`` (a run directory or a dataset file) that ``flt``
    keeps, as ``fmt`` (one of :data:`FORMATS`), into ``dst`` (a directory; a file for
    ``jsonl``/``parquet``). ``model``/``tokenizer`` default to the run's (``run.json``).

    Raises :class:`ConfigError` for a format that needs the call journal when there is none,
    and :class:`~agentgym.errors.StorageError` when ``dst`` cannot be written."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    trajectories, run_dir = read_source(src)
    kept, dropped = apply_filter(trajectories, flt or TrajectoryFilter())
    facts = run_facts(run_dir)
    model = model or facts.get("model")
    tokenizer = tokenizer or facts.get("model_path") or model
    dst = Path(dst)
    try:
        if fmt in ("jsonl", "parquet"):
            export.write(kept, dst if dst.suffix else dst.with_suffix(f".{fmt}"))
            return ExportReport(path=dst, format=fmt, trajectories=len(kept), rows=len(kept), dropped=dict(dropped),
                                model=model, tokenizer=tokenizer)
        needs_calls = fmt == "trl-grpo" or (fmt in ("trl-sft", "verl") and not tokens)
        calls = None
        if run_dir is not None and (run_dir / "calls").is_dir():
            calls = load_calls(run_dir, [t.session_id for t in kept])
        elif needs_calls:
            raise ConfigError(f"--format {fmt} builds chat messages from the run's call journal (calls/), which "
                              f"{src} does not have: export from the run directory, or use --tokens")
        missing = 0
        if fmt == "hf":
            rows_n = len(kept)
        elif fmt == "trl-grpo":
            assert calls is not None
            rows, missing = grpo_rows(kept, calls)
            rows_n = len(rows)
        else:
            rows, missing = segment_rows(kept, calls, style="verl" if fmt == "verl" else "trl", tokens=tokens)
            rows_n = len(rows)
        (dst / "data").mkdir(parents=True, exist_ok=True)
        for old in (dst / "data").glob("train-*.parquet"):
            old.unlink()  # a re-export replaces the data
        target = dst / "data" / f"train-00000-of-00001-{uuid.uuid4().hex[:12]}.parquet"
        if fmt == "hf":
            export.write_parquet(kept, target)
        else:
            _write_table(rows, target)
        report = ExportReport(path=dst, format=fmt, trajectories=len(kept), rows=rows_n, dropped=dict(dropped),
                              skipped_segments=missing, model=model, tokenizer=tokenizer,
                              data_file=str(target.relative_to(dst)))
        from agentgym.card import dataset_card, manifest

        (dst / MANIFEST).write_text(json.dumps(manifest(report, kept, flt, src, tokens), indent=2) + "\n",
                                    encoding="utf-8")
        (dst / "README.md").write_text(dataset_card(report, kept, flt, src, tokens), encoding="utf-8")
    except OSError as e:
        if isinstance(e, StorageError):
            raise
        raise storage_error(e, dst) from None
    return report
