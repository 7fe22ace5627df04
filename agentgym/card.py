"""The dataset card (``README.md``) and manifest (``agentgym.json``) of an exported dataset.

The card is a Hugging Face dataset card: YAML front matter that ``datasets`` reads (the data
files of the ``train`` split, tags) plus an ``agentgym`` block (schema version, format, model,
tokenizer, filter, counts), then prose: what was run, how to load it, what the columns are.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agentgym.export import SCHEMA_VERSION
from agentgym.filters import TrajectoryFilter
from agentgym.types import Trajectory

if TYPE_CHECKING:
    from agentgym.formats import ExportReport

__all__ = ["dataset_card", "manifest"]

_COLUMNS = {
    "hf": "one row per trajectory in agentgym's schema (`docs/dataset-schema.md`): segments with "
          "`input_ids`, `action_mask`, `obs_mask`, `logprobs`; steps with observation and action text.",
    "trl-sft": "one row per segment: `messages` (+ `tools`, a JSON string) — the conversation the harness "
               "had, from the call journal — and, with tokens, `input_ids` as recorded with `completion_mask` "
               "= `assistant_masks` = the action mask and `logprobs`.",
    "trl-grpo": "one row per (task, prompt): `prompt` (the messages before the agent's first reply), `tools`, "
                "`task_id`, `env`, `harness`, `rewards`, `reward_mean`, `samples`.",
    "verl": "one row per segment: `data_source`, `prompt`, `ability`, `reward_model`, `extra_info` (verl's RL "
            "dataset) and `messages`, `tools` (its multi-turn SFT dataset); with tokens `input_ids`, "
            "`attention_mask`, `loss_mask` (the action mask).",
}

_LOAD = {
    "hf": "from agentgym import export\ntrajectories = export.read(\"{path}/{data_file}\")\n"
          "# or: datasets.load_dataset(\"{path}\", split=\"train\")",
    "trl-sft": "from datasets import load_dataset\nfrom trl import SFTConfig, SFTTrainer\n"
               "dataset = load_dataset(\"{path}\", split=\"train\")\n"
               "trainer = SFTTrainer(model=\"{model}\", train_dataset=dataset, args=SFTConfig(...))",
    "trl-grpo": "from datasets import load_dataset\nfrom trl import GRPOConfig, GRPOTrainer\n"
                "dataset = load_dataset(\"{path}\", split=\"train\")  # `prompt` + columns for reward functions",
    "verl": "# data.train_files={path}/{data_file} (RLHFDataset: prompt_key=prompt;\n"
            "# MultiTurnSFTDataset: messages_key=messages, tools_key=tools)",
}


def _facts(report: ExportReport, trajectories: Sequence[Trajectory], flt: TrajectoryFilter | None,
           src: str | os.PathLike[str], tokens: bool) -> dict[str, Any]:
    rewards = [t.reward for t in trajectories]
    return {
        "schema_version": SCHEMA_VERSION, "format": report.format, "tokens": tokens, "data_file": report.data_file,
        "model": report.model, "tokenizer": report.tokenizer, "source": str(src),
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "filter": (flt or TrajectoryFilter()).describe(), "dropped": report.dropped,
        "trajectories": report.trajectories, "rows": report.rows, "skipped_segments": report.skipped_segments,
        "envs": sorted({t.env for t in trajectories if t.env}),
        "harnesses": sorted({t.harness for t in trajectories if t.harness}),
        "stop_reasons": dict(Counter(t.stop_reason.value for t in trajectories).most_common()),
        "mean_reward": sum(rewards) / len(rewards) if rewards else None,
        "policy_versions": sorted({v for t in trajectories for s in t.segments
                                   for v, a in zip(s.policy_version, s.action_mask, strict=False) if a}),
    }


def manifest(report: ExportReport, trajectories: Sequence[Trajectory], flt: TrajectoryFilter | None,
             src: str | os.PathLike[str], tokens: bool) -> dict[str, Any]:
    """The export's facts as JSON (``agentgym.json``)."""
    return _facts(report, trajectories, flt, src, tokens)


def _front_matter(front: dict[str, Any]) -> str:
    """YAML front matter, each value in flow style (JSON is YAML): exact, and no emitter needed."""
    return "".join(f"{k}: {json.dumps(v, ensure_ascii=False)}\n" for k, v in front.items())


def dataset_card(report: ExportReport, trajectories: Sequence[Trajectory], flt: TrajectoryFilter | None,
                 src: str | os.PathLike[str], tokens: bool) -> str:
    """The ``README.md`` of an exported dataset."""
    facts = _facts(report, trajectories, flt, src, tokens)
    front = {
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": report.data_file}]}],
        "tags": ["agentgym", "agentic-rl", "trajectories", report.format],
        "agentgym": {k: facts[k] for k in ("schema_version", "format", "tokens", "model", "tokenizer", "filter",
                                           "trajectories", "rows")},
    }
    title = f"agentgym {report.format} dataset"
    stops = ", ".join(f"{k} {v}" for k, v in facts["stop_reasons"].items()) or "none"
    dropped = ", ".join(f"{k} {v}" for k, v in report.dropped.items()) or "none"
    filt = json.dumps(facts["filter"]) if facts["filter"] else "none (every trajectory)"
    mean = "n/a" if facts["mean_reward"] is None else f"{facts['mean_reward']:.3f}"
    load = _LOAD[report.format].format(path=report.path, model=report.model or "MODEL", data_file=report.data_file)
    return (
        f"---\n{_front_matter(front)}---\n\n# {title}\n\n"
        f"Trajectories of agents run by [agentgym](https://pypi.org/project/agentgym/) (dataset schema "
        f"version {SCHEMA_VERSION}), exported as `{report.format}`{' with token ids' if tokens else ''}.\n\n"
        f"| | |\n|---|---|\n"
        f"| model | `{report.model or 'unknown'}` |\n| tokenizer | `{report.tokenizer or 'unknown'}` |\n"
        f"| environments | {', '.join(f'`{e}`' for e in facts['envs']) or 'n/a'} |\n"
        f"| harnesses | {', '.join(f'`{h}`' for h in facts['harnesses']) or 'n/a'} |\n"
        f"| trajectories | {report.trajectories} ({report.rows} rows) |\n"
        f"| mean reward | {mean} |\n| stop reasons | {stops} |\n"
        f"| policy versions | {', '.join(map(str, facts['policy_versions'])) or 'n/a'} |\n"
        f"| filter | `{filt}` |\n| left out | {dropped} |\n"
        f"| source | `{src}` |\n\n"
        f"## Columns\n\n{_COLUMNS[report.format]}\n\n"
        "Token faithfulness: token ids are exactly what the policy engine saw and sampled, recorded by "
        "agentgym's proxy; a mask of 1 marks tokens the policy sampled (train on those), and a segment "
        "starts wherever the harness rewrote its history (`break_reason`).\n\n"
        f"## Load\n\n```python\n{load}\n```\n")
