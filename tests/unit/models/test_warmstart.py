"""The warm start teaches the tool-call format, deterministically."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import pytest

from agentgym.models.warmstart import classify_reply, encode_with_assistant_mask, synthetic_conversation


def test_classify_reply() -> None:
    call = '<tool_call>\n{"name": "bash", "arguments": {"command": "ls"}}\n</tool_call>'
    assert classify_reply(call + "<|im_end|>") == "tool_call"
    assert classify_reply("Let me look.\n" + call + "\n" + call + "<|im_end|>") == "tool_call"
    assert classify_reply("Done.<|im_end|>") == "answer"
    assert classify_reply(call) == "malformed"  # no end of turn
    assert classify_reply("<tool_call>\n<tool_call>\n{}\n</tool_call><|im_end|>") == "malformed"
    assert classify_reply('<tool_call>\n{"name": "bash", "arguments": {}}\n</tool_call><|im_end|>') == "malformed"


def test_assistant_mask_covers_exactly_the_sampled_text(tiny_tokenizer: Any) -> None:
    messages, tools = synthetic_conversation(random.Random(1))
    ids, mask = encode_with_assistant_mask(tiny_tokenizer, messages, tools)
    sampled = tiny_tokenizer.decode([i for i, m in zip(ids, mask, strict=True) if m])
    n_turns = sum(m["role"] == "assistant" for m in messages)
    assert sampled.count("<|im_end|>") == n_turns
    assert "<|im_start|>" not in sampled and "<tool_response>" not in sampled


def _digest(path: Path) -> str:
    return hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()


def test_warm_start_is_deterministic(tmp_path: Path) -> None:
    from agentgym.models import build_tiny_model

    a = build_tiny_model(tmp_path / "a", seed=3, sft_steps=3)
    b = build_tiny_model(tmp_path / "b", seed=3, sft_steps=3)
    assert _digest(a) == _digest(b)


@pytest.mark.slow
def test_warm_started_model_emits_well_formed_tool_calls(tmp_path: Path) -> None:
    import torch

    from agentgym.models import build_tiny_model, load_model_and_tokenizer
    from agentgym.models.tiny import DEFAULT_CLI_SFT_STEPS
    from agentgym.models.warmstart import tool_call_rate

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        path = build_tiny_model(tmp_path / "m", seed=0, sft_steps=DEFAULT_CLI_SFT_STEPS)
        model, tok = load_model_and_tokenizer(path)
        rates = tool_call_rate(model, tok, samples=30, temperature=0.8)
    finally:
        torch.set_num_threads(threads)
    assert rates["tool_call"] >= 0.6, rates
