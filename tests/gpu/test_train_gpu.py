"""Two training iterations on CUDA with the embedded engine and a ~0.5B-parameter Qwen2 model
built from its config (nothing is downloaded). Deselected by default; run on a GPU machine with
``python3 -m pytest -m gpu tests/gpu/test_train_gpu.py -s`` (it prints its timings)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.gpu, pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(autouse=True, scope="module")
def _needs_cuda() -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.fail("this GPU test cannot run here: no CUDA device", pytrace=False)


def build_half_billion(path: Path) -> int:
    """A Qwen2 model of about 0.5B parameters with the tiny model's tokenizer and chat template."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from agentgym.models.tiny import train_tokenizer

    tokenizer = train_tokenizer()
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                         num_attention_heads=16, num_key_value_heads=4, max_position_embeddings=8192,
                         tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=None)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return sum(p.numel() for p in model.parameters())


def test_two_iterations_on_cuda(tmp_path: Path) -> None:
    from agentgym.trainers.config import TrainConfig
    from agentgym.trainers.train import train

    n_params = build_half_billion(tmp_path / "model")
    assert 4e8 < n_params < 6e8, n_params
    cfg = TrainConfig(model=str(tmp_path / "model"), device="cuda", env="terminal/workspace-easy-v0",
                      runtime="auto", out=str(tmp_path / "run"), iterations=2, tasks_per_iteration=2, group_size=4,
                      max_steps=3, max_tokens=64, lr=1e-6, micro_batch_size=2, progress=False,
                      skip_groups_without_signal=False, estimator="drgrpo")
    t0 = time.time()
    result = train(cfg)
    seconds = time.time() - t0
    m = result.metrics
    assert [x["iteration"] for x in m] == [0, 1]
    print(f"\n0.5B on CUDA: {n_params / 1e6:.0f}M parameters, 2 iterations in {seconds:.0f}s "
          f"(rollout {sum(x['seconds_rollout'] for x in m):.0f}s, update {sum(x['seconds_update'] for x in m):.0f}s)")
