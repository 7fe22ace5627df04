"""Exported datasets load in the libraries they are for, as they are: Hugging Face `datasets`,
TRL's SFTTrainer (trained for two steps on the tiny model, with no conversion code here) and
GRPO's prompt format, verl's column conventions; the messages are the conversation the harness
had, and token rows are exactly the recorded tokens with the action mask as completion mask."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentgym import export
from agentgym.errors import ConfigError
from agentgym.filters import TrajectoryFilter
from agentgym.formats import data_file, export_dataset

SOLVE = ('<tool_call>\n{"name": "bash", "arguments": {"command": "printf \'Hello, agentgym!\\\\n\' > '
         '/app/hello.txt"}}\n</tool_call>')
LOOK = '<tool_call>\n{"name": "bash", "arguments": {"command": "ls"}}\n</tool_call>'


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    """Three episodes of hello-file: two solve it (reward 1), one runs out of steps (reward 0)."""
    from agentgym.engines.scripted import ScriptedEngine
    from agentgym.models.tiny import train_tokenizer
    from agentgym.rollout.runner import RolloutConfig, run_rollouts

    tok = train_tokenizer()

    def reply(ids: Any, n: int) -> str:  # look, solve, say so
        return [LOOK, SOLVE, "Done: the file is written."][min(tok.decode(ids).count("<tool_response>"), 2)]

    out = tmp_path_factory.mktemp("run")
    engine = ScriptedEngine(tok, reply, model_name=str(tiny_model))
    cfg = RolloutConfig(env="terminal/hello-file-v0", harness="agentgym/react-v0", samples=2, out_dir=str(out),
                        runtime="local", progress=False, max_steps=6)
    asyncio.run(run_rollouts(cfg, engine))
    short = RolloutConfig(env="terminal/hello-file-v0", harness="agentgym/react-v0", samples=3, out_dir=str(out),
                          runtime="local", progress=False, max_steps=1)
    asyncio.run(run_rollouts(short, engine))  # the third sample: one step, unsolved
    return out


def load(path: Path) -> Any:
    from datasets import load_dataset

    return load_dataset(str(path), split="train")


def test_hf_export_loads_in_datasets_and_reads_back_exactly(run_dir: Path, tmp_path: Path) -> None:
    report = export_dataset(run_dir, tmp_path / "hf", "hf")
    ds = load(tmp_path / "hf")
    original = export.read(run_dir / "trajectories.parquet")
    assert ds.num_rows == report.trajectories == 3
    assert ds[0]["schema_version"] == export.SCHEMA_VERSION and "segments" in ds.column_names
    assert export.read(data_file(tmp_path / "hf")) == original
    card = (tmp_path / "hf" / "README.md").read_text()
    assert card.startswith("---\nconfigs: ") and "agentgym: {\"schema_version\": 2" in card
    manifest = json.loads((tmp_path / "hf" / "agentgym.json").read_text())
    assert manifest["model"] == manifest["tokenizer"] and Path(manifest["model"]).is_dir()
    assert manifest["stop_reasons"] == {"completed": 2, "step_limit": 1}


def test_sft_messages_are_the_conversation_the_harness_had(run_dir: Path, tmp_path: Path) -> None:
    from agentgym.models.tiny import train_tokenizer

    export_dataset(run_dir, tmp_path / "sft", "trl-sft", flt=TrajectoryFilter(min_reward=1.0))
    ds = load(tmp_path / "sft")
    trajectories = {t.id: t for t in export.read(run_dir / "trajectories.parquet")}
    tok = train_tokenizer()
    assert ds.num_rows == 2
    for row in ds:
        messages = row["messages"]
        assert [m["role"] for m in messages][:2] == ["system", "user"] and messages[-1]["role"] == "assistant"
        assert messages[-1]["content"].startswith("Done")
        assert any(m["role"] == "tool" and m["tool_call_id"] for m in messages)
        # Rendered with the model's chat template, they are the recorded tokens (plus the template's
        # newline after the last turn): what SFT trains on is what the policy saw and sampled.
        rendered = tok.apply_chat_template(messages, tools=json.loads(row["tools"]), tokenize=True,
                                           return_dict=True)["input_ids"]
        recorded = trajectories[row["trajectory_id"]].segments[row["segment_index"]].input_ids
        assert tuple(rendered[: len(recorded)]) == recorded and tok.decode(rendered[len(recorded):]) == "\n"
    card = (tmp_path / "sft" / "README.md").read_text()
    assert '"filter": {"min_reward": 1.0}' in card and "| left out | reward 1 |" in card


def test_sft_tokens_are_exactly_the_recorded_ones_with_the_action_mask(run_dir: Path, tmp_path: Path) -> None:
    export_dataset(run_dir, tmp_path / "tok", "trl-sft", tokens=True)
    ds = load(tmp_path / "tok")
    trajectories = {t.id: t for t in export.read(run_dir / "trajectories.parquet")}
    assert ds.num_rows == 3
    for row in ds:
        seg = trajectories[row["trajectory_id"]].segments[row["segment_index"]]
        assert tuple(row["input_ids"]) == seg.input_ids
        assert tuple(row["completion_mask"]) == tuple(row["assistant_masks"]) == seg.action_mask
        assert [lp for lp, a in zip(row["logprobs"], seg.action_mask, strict=True) if a] == \
            [lp for lp, a in zip(seg.logprobs, seg.action_mask, strict=True) if a]


def test_trl_sft_trains_two_steps_on_each_export_as_it_is(run_dir: Path, tmp_path: Path, tiny_model: Path) -> None:
    """No conversion code: the exported directory goes to `load_dataset`, then to SFTTrainer."""
    script = r'''
import sys, torch
torch.set_num_threads(1)
from datasets import load_dataset
from trl import SFTConfig, SFTTrainer
data, model, out = sys.argv[1:4]
dataset = load_dataset(data, split="train")
args = SFTConfig(output_dir=out, max_steps=2, per_device_train_batch_size=2, learning_rate=1e-4, logging_steps=1,
                 save_strategy="no", report_to=[], use_cpu=True, dataloader_num_workers=0, max_length=2048)
trainer = SFTTrainer(model=model, train_dataset=dataset, args=args)
labels, ids = trainer.train_dataset[0]["labels"], trainer.train_dataset[0]["input_ids"]
trainer.train()
print("STEPS", trainer.state.global_step, "TRAINED", sum(l != -100 for l in labels), "OF", len(ids))
'''
    for name, tokens in (("messages", False), ("tokens", True)):
        export_dataset(run_dir, tmp_path / name, "trl-sft", tokens=tokens)
        done = subprocess.run([sys.executable, "-c", script, str(tmp_path / name), str(tiny_model),
                               str(tmp_path / f"out-{name}")], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        line = next(x for x in done.stdout.splitlines() if x.startswith("STEPS"))
        steps, trained, total = int(line.split()[1]), int(line.split()[3]), int(line.split()[5])
        assert steps == 2
        if tokens:  # TRL's labels are the sampled tokens only: the action mask, as recorded
            first = load(tmp_path / name)[0]
            assert trained == sum(first["completion_mask"]) and total == len(first["input_ids"])


def test_grpo_and_verl_rows(run_dir: Path, tmp_path: Path) -> None:
    export_dataset(run_dir, tmp_path / "grpo", "trl-grpo")
    grpo = load(tmp_path / "grpo")
    assert grpo.num_rows == 1  # one task, one prompt
    row = grpo[0]
    assert [m["role"] for m in row["prompt"]] == ["system", "user"] and "hello.txt" in row["prompt"][1]["content"]
    assert sorted(row["rewards"]) == [0.0, 1.0, 1.0] and row["samples"] == 3
    assert json.loads(row["tools"])[0]["function"]["name"] == "bash"

    export_dataset(run_dir, tmp_path / "verl", "verl", tokens=True)
    import pyarrow.parquet as pq

    verl = pq.read_table(data_file(tmp_path / "verl")).to_pylist()
    assert len(verl) == 3
    for r in verl:  # verl's RLHFDataset and MultiTurnSFTDataset columns
        assert r["data_source"] == "terminal/hello-file-v0" and r["ability"] == "agent"
        assert r["prompt"][0]["role"] == "system" and r["messages"][-1]["role"] == "assistant"
        assert r["reward_model"]["ground_truth"] == "hello-file" and r["extra_info"]["task_id"] == "hello-file"
        assert len(r["input_ids"]) == len(r["loss_mask"]) == len(r["attention_mask"]) and sum(r["loss_mask"]) > 0


def test_message_formats_need_the_call_journal(run_dir: Path, tmp_path: Path) -> None:
    alone = export.write(export.read(run_dir / "trajectories.parquet"), tmp_path / "alone" / "t.parquet")
    with pytest.raises(ConfigError, match="call journal"):
        export_dataset(alone, tmp_path / "x", "trl-sft")
    report = export_dataset(alone, tmp_path / "x", "trl-sft", tokens=True)  # tokens need nothing else
    assert report.rows == 3


def test_export_cli_filters_and_says_what_it_left_out(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    done = subprocess.run([sys.executable, "-m", "agentgym.cli", "export", str(run_dir), str(out), "--format",
                           "trl-sft", "--tokens", "--stop-reason", "completed", "--model", "my/model-1b"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("wrote 2 trajectories (2 rows, trl-sft)") and "left out: stop_reason 1" in done.stdout
    assert done.stderr == ""  # quiet: no progress bars, no warnings
    manifest = json.loads((out / "agentgym.json").read_text())
    assert manifest["model"] == "my/model-1b" and manifest["filter"] == {"stop_reasons": ["completed"]}
    bad = subprocess.run([sys.executable, "-m", "agentgym.cli", "export", str(run_dir), str(out), "--format", "csv"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "unknown export format" in bad.stderr
