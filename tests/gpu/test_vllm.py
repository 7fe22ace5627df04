"""The vLLM adapter against a real ``vllm serve`` on the tiny checkpoint (needs CUDA and vLLM).

The server is launched the way agentgym documents it (``--logprobs-mode processed_logprobs
--generation-config vllm``), so its logprobs must equal a plain float32 forward pass of the same
checkpoint, the same seed must give the same tokens, and end-of-turn must be included. A second
server, started with ``VLLM_SERVER_DEV_MODE=1``, takes new weights through
``VLLMEngine.update_weights`` and must then sample from them.

    AGENTGYM_VLLM_DTYPE=bfloat16 pytest -m gpu tests/gpu/test_vllm.py   # dtype (default float32)
    AGENTGYM_VLLM_RELOAD_PROTOCOL=v0.12 ...   # weight-sync requests (default: from vllm.__version__)
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.gpu, pytest.mark.slow]

DTYPE = os.environ.get("AGENTGYM_VLLM_DTYPE", "float32")
ATOL = 2e-3 if DTYPE == "float32" else 0.15


def _cuda_and_vllm() -> str | None:
    try:
        import torch
    except ImportError:
        return "torch not installed"
    if not torch.cuda.is_available():
        return "no CUDA device"
    try:
        import vllm  # noqa: F401
    except ImportError:
        return "vllm not installed (pip install 'agentgym[vllm]')"
    return None


@pytest.fixture(autouse=True, scope="module")
def _needs_cuda_and_vllm() -> None:
    """GPU tests are deselected by default (``-m "not gpu"`` in pyproject); asked for explicitly
    with ``-m gpu`` on a machine that cannot run them, they fail instead of passing as skips."""
    why_not = _cuda_and_vllm()
    if why_not:
        pytest.fail(f"this GPU test cannot run here: {why_not}", pytrace=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from agentgym.models import build_tiny_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:  # a short warm start, so the model ends turns with <|im_end|> and logits are not uniform
        return build_tiny_model(tmp_path_factory.mktemp("tiny-vllm"), seed=0, sft_steps=60)
    finally:
        torch.set_num_threads(threads)


@contextmanager
def _launch(tiny_dir: Path, log_dir: Path, env_extra: dict[str, str] | None = None) -> Iterator[str]:
    """``vllm serve`` on the tiny checkpoint, launched the way agentgym documents it."""
    import httpx

    port = _free_port()
    log = log_dir / "vllm.log"
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(tiny_dir),
           "--host", "127.0.0.1", "--port", str(port), "--dtype", DTYPE, "--max-model-len", "2048",
           "--gpu-memory-utilization", "0.2", "--enforce-eager", "--seed", "0",
           "--logprobs-mode", "processed_logprobs", "--generation-config", "vllm"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", **(env_extra or {})}
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 600
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vllm exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                pytest.fail(f"vllm did not become healthy in 600 s:\n{log.read_text()[-4000:]}")
            time.sleep(2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def server(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with _launch(tiny_dir, tmp_path_factory.mktemp("vllm-log")) as url:
        yield url


@pytest.fixture(scope="module")
def dev_server(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server of its own for weight sync (its weights change): dev routes on."""
    with _launch(tiny_dir, tmp_path_factory.mktemp("vllm-dev-log"), {"VLLM_SERVER_DEV_MODE": "1"}) as url:
        yield url


def _prompt(tok: Any, text: str) -> list[int]:
    from agentgym.models.warmstart import BASH_TOOL

    rendered = tok.apply_chat_template([{"role": "user", "content": text}], tools=[BASH_TOOL],
                                       add_generation_prompt=True, tokenize=False)
    return list(tok(rendered, add_special_tokens=False)["input_ids"])


def _run(server: str, tiny_dir: Path, fn: Any) -> Any:
    from agentgym.engines.vllm import VLLMEngine

    async def main() -> Any:
        engine = VLLMEngine(server, model=str(tiny_dir), tokenizer_path=tiny_dir)
        try:
            return await fn(engine)
        finally:
            await engine.aclose()

    return asyncio.run(main())


def test_logprobs_match_a_float32_forward_pass(server: str, tiny_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from agentgym.types import SamplingParams

    async def fn(engine: Any) -> Any:
        ids = _prompt(engine.tokenizer, "List the files in /app.")
        return ids, [await engine.generate(ids, SamplingParams(temperature=t, max_tokens=48, seed=5))
                     for t in (1.0, 0.7)]

    ids, gens = _run(server, tiny_dir, fn)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32).eval()
    for temperature, gen in zip((1.0, 0.7), gens, strict=True):
        full = torch.tensor([ids + list(gen.completion_ids)])
        with torch.no_grad():
            logits = model(full).logits[0, len(ids) - 1:-1] / temperature
        expected = torch.log_softmax(logits, -1).gather(-1, torch.tensor(gen.completion_ids)[:, None])[:, 0]
        assert torch.allclose(torch.tensor(gen.logprobs), expected, atol=ATOL), (temperature, gen, expected)


def test_seed_reproducible_eos_included_and_concurrent(server: str, tiny_dir: Path) -> None:
    from agentgym.types import SamplingParams

    async def fn(engine: Any) -> Any:
        ids = _prompt(engine.tokenizer, "Create a file named hello.txt that contains hello.")
        sps = [SamplingParams(temperature=0.8, max_tokens=96, seed=i) for i in range(8)]
        first = await asyncio.gather(*(engine.generate(ids, sp) for sp in sps))
        again = await asyncio.gather(*(engine.generate(ids, sp) for sp in sps))
        return engine.tokenizer, first, again

    tok, first, again = _run(server, tiny_dir, fn)
    assert [g.completion_ids for g in first] == [g.completion_ids for g in again]
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    stopped = [g for g in first if g.finish_reason == "stop"]
    assert stopped, "the warm-started model never ended its turn"
    for g in stopped:
        assert g.completion_ids[-1] == im_end and im_end not in g.completion_ids[:-1]


def test_stop_string_keeps_sampled_tokens(server: str, tiny_dir: Path) -> None:
    from agentgym.types import SamplingParams

    async def fn(engine: Any) -> Any:
        ids = _prompt(engine.tokenizer, "Print the contents of notes.txt.")
        free = await engine.generate(ids, SamplingParams(temperature=0.0, max_tokens=64))
        stop = engine.tokenizer.decode(free.completion_ids[4:6])
        cut = await engine.generate(ids, SamplingParams(temperature=0.0, max_tokens=64, stop=(stop,)))
        return engine.tokenizer, free, cut, stop

    tok, free, cut, stop = _run(server, tiny_dir, fn)
    assert cut.finish_reason == "stop"
    assert free.completion_ids[: len(cut.completion_ids)] == cut.completion_ids
    assert stop in tok.decode(cut.completion_ids)


def _reload_protocol() -> str:
    import vllm
    from packaging.version import Version

    chosen = os.environ.get("AGENTGYM_VLLM_RELOAD_PROTOCOL")
    if chosen:
        return chosen
    return "v0.16" if Version(vllm.__version__).release >= (0, 16) else "v0.12"


def _logprobs_under(model: Any, ids: list[int], gen: Any) -> Any:
    """log_softmax(logits / 1.0) of each token ``gen`` sampled, under ``model`` (float32, CPU)."""
    import torch

    full = torch.tensor([ids + list(gen.completion_ids)])
    with torch.no_grad():
        logits = model(full).logits[0, len(ids) - 1:-1]
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(gen.completion_ids)[:, None])[:, 0]


def test_update_weights_changes_what_the_server_samples(dev_server: str, tiny_dir: Path, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from agentgym.engines.vllm import VLLMEngine
    from agentgym.types import SamplingParams

    base = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32).eval()
    perturbed = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # parameters(), not state_dict(): tied embeddings get one perturbation
        for p in perturbed.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=g))
    weights = tmp_path / "weights"

    async def main() -> Any:
        engine = VLLMEngine(dev_server, model=str(tiny_dir), tokenizer_path=tiny_dir, weights_dir=weights,
                            reload_protocol=_reload_protocol(), keep_weights=1,  # type: ignore[arg-type]
                            update_timeout_s=300, control_timeout_s=60)
        try:
            ids = _prompt(engine.tokenizer, "List the files in /app.")
            sp = SamplingParams(temperature=1.0, max_tokens=32, seed=3)
            before = await engine.generate(ids, sp)
            await engine.update_weights(perturbed.state_dict(), version=1)
            after = await engine.generate(ids, sp)  # same prompt: a stale prefix cache would show here
            await engine.update_weights(base.state_dict(), version=2)
            restored = await engine.generate(ids, sp)
            return ids, before, after, restored, engine.policy_version
        finally:
            await engine.aclose()

    ids, before, after, restored, version = asyncio.run(main())
    assert (before.policy_version, after.policy_version, restored.policy_version, version) == (0, 1, 2, 2)
    assert sorted(p.name for p in weights.iterdir()) == ["v2"]  # keep_weights=1
    lp = {name: torch.tensor(gen.logprobs) for name, gen in (("before", before), ("after", after), ("restored", restored))}
    assert torch.allclose(lp["before"], _logprobs_under(base, ids, before), atol=ATOL)
    assert torch.allclose(lp["after"], _logprobs_under(perturbed, ids, after), atol=ATOL), "not the pushed weights"
    moved = (lp["after"] - _logprobs_under(base, ids, after)).abs().max().item()
    assert moved > max(0.25, 2 * ATOL), f"the logprobs barely changed ({moved}): were the weights reloaded?"
    assert torch.allclose(lp["restored"], _logprobs_under(base, ids, restored), atol=ATOL)
    assert restored.completion_ids == before.completion_ids  # same weights, same seed
