"""The tiny checkpoint: tokenizer round trip, determinism, loading with the stock Auto classes."""

from __future__ import annotations

import hashlib
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from agentgym.errors import ConfigError


@pytest.mark.parametrize("text", ["hello world", "ls -la /app && cat 'x y'\n", "ünïcødé ✓ 日本語 🙂", "\t\r\n  ",
                                  '{"name": "bash", "arguments": {"command": "echo hi"}}', "<|im_start|>user\nhi<|im_end|>"])
def test_tokenizer_round_trip(tiny_tokenizer: Any, text: str) -> None:
    ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tiny_tokenizer.decode(ids) == text


def test_round_trip_is_up_to_nfc_like_qwen2(tiny_tokenizer: Any) -> None:
    text = "cafe\u0301"  # decomposed é
    ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tiny_tokenizer.decode(ids) == unicodedata.normalize("NFC", text) == "café"


def test_reloaded_tokenizer_matches_the_trained_one(tiny_tokenizer: Any) -> None:
    from agentgym.models import train_tokenizer
    from agentgym.models.warmstart import training_texts

    trained = train_tokenizer(texts=None)
    for text in [*training_texts(seed=3, n=20), "ünïcødé ✓ 日本語 🙂", "  a   b\n\n\nc", "x's don't 123456"]:
        assert tiny_tokenizer(text)["input_ids"] == trained(text)["input_ids"]


def test_special_tokens(tiny_tokenizer: Any) -> None:
    tok = tiny_tokenizer
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    for t in ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "<tool_call>", "</tool_call>"):
        assert len(tok(t, add_special_tokens=False)["input_ids"]) == 1, t
    # Control tokens are dropped by skip_special_tokens; tool-call markup is not.
    ids = tok("<|im_start|><tool_call>x<|im_end|>", add_special_tokens=False)["input_ids"]
    assert tok.decode(ids, skip_special_tokens=True) == "<tool_call>x"


def test_checkpoint_loads_with_auto_classes(tiny_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    assert model.config.model_type == "qwen2"
    assert model.config.vocab_size == len(tok)
    assert model.config.max_position_embeddings >= 4096
    assert model.generation_config.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")
    assert 1e5 < model.num_parameters() < 2e7
    prompt = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False)
    ids = torch.tensor([tok(prompt, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], len(tok))


def _digest(path: Path) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(path.iterdir()) if f.suffix in (".json", ".safetensors", ".jinja")}


def test_build_is_deterministic(tiny_dir: Path, tmp_path: Path) -> None:
    from agentgym.models import build_tiny_model

    assert _digest(build_tiny_model(tmp_path / "again", seed=0)) == _digest(tiny_dir)


def test_load_model_and_tokenizer(tiny_dir: Path) -> None:
    from agentgym.models import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(str(tiny_dir))
    assert tok.chat_template and not model.training


def test_load_errors_are_clear(tmp_path: Path) -> None:
    from agentgym.models import load_model_and_tokenizer

    with pytest.raises(ConfigError, match="does not exist"):
        load_model_and_tokenizer(tmp_path / "missing")
    with pytest.raises(ConfigError, match="local checkpoint directory"):
        load_model_and_tokenizer("no-such-org/no-such-model", local_files_only=True)


def test_cli_builds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agentgym.models import main_build_tiny

    assert main_build_tiny(["--out", str(tmp_path / "m"), "--sft-steps", "0", "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").exists()
