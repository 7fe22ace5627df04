"""Build a tiny, local Hugging Face checkpoint: byte-level BPE tokenizer, chat template, Qwen2 LM.

This machine (and CI) cannot download from the Hugging Face hub, so tests and demos build their
own model. The result is an ordinary checkpoint directory that every loader accepts::

    >>> from agentgym.models import build_tiny_model, load_model_and_tokenizer
    >>> path = build_tiny_model("/tmp/tiny")                      # doctest: +SKIP
    >>> model, tokenizer = load_model_and_tokenizer(path)         # doctest: +SKIP

Everything is deterministic given ``seed``: the tokenizer is trained on a fixed corpus, the
weights are initialised from ``torch.manual_seed(seed)`` and the optional warm start
(``sft_steps``) runs single-threaded on CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentgym.errors import ConfigError
from agentgym.models.chat_template import CHAT_TEMPLATE
from agentgym.models.corpus import corpus

ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (ENDOFTEXT, IM_START, IM_END)
"""Control tokens, ids 0, 1, 2. ``<|im_end|>`` is both eos and the end-of-turn token."""
MARKUP_TOKENS = ("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>")
"""Added (non-special) tokens, as in Qwen2.5: one id each, visible when decoding."""

DEFAULT_CLI_SFT_STEPS = 300
QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)


def train_tokenizer(vocab_size: int = 2048, texts: Sequence[str] | None = None,
                    model_max_length: int = 4096) -> Any:
    """Train a byte-level BPE tokenizer and wrap it as a ``PreTrainedTokenizerFast``.

    Byte-level means every string round-trips up to Unicode NFC normalisation
    (``decode(encode(s)) == unicodedata.normalize("NFC", s)``), as with Qwen2's tokenizer, whose
    normaliser and pre-tokeniser it copies. ``texts`` defaults to the built-in corpus plus
    rendered synthetic transcripts (the same for every seed, so all tiny models share one
    tokenizer). The chat template is attached, ``<|im_end|>`` is eos and ``<|endoftext|>`` pad.
    """
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 300:
        raise ConfigError(f"vocab_size={vocab_size} is too small: byte-level BPE needs at least 256 + specials")
    tok = Tokenizer(models.BPE())
    # Qwen2's exact pipeline: transformers 5 rebuilds a ``model_type: qwen2`` tokenizer with it
    # whatever tokenizer.json says, so anything else would tokenize differently once reloaded.
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(MARKUP_TOKENS),
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    if texts is None:
        from agentgym.models.warmstart import training_texts

        texts = corpus() + training_texts(seed=0, n=200)
    tok.train_from_iterator(list(texts), trainer=trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in MARKUP_TOKENS])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=IM_END,
        pad_token=ENDOFTEXT,
        chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,
        model_max_length=model_max_length,
        padding_side="left",
    )


def tiny_model_path(sft_steps: int | None = None) -> Path:
    """The cached tiny model (``<cache>/models/tiny-v<corpus version>-sft<steps>``), built on
    first use (about 80 s on one CPU core for the default 300 warm-start steps)."""
    from agentgym.models.warmstart import CORPUS_VERSION
    from agentgym.paths import cache_dir

    steps = DEFAULT_CLI_SFT_STEPS if sft_steps is None else sft_steps
    path = cache_dir() / "models" / f"tiny-v{CORPUS_VERSION}-sft{steps}"
    if not (path / "config.json").exists():
        build_tiny_model(path, sft_steps=steps)
    return path


def build_tiny_model(
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    vocab_size: int = 2048,
    hidden_size: int = 128,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 4,
    num_key_value_heads: int = 2,
    intermediate_size: int = 384,
    max_position_embeddings: int = 8192,
    sft_steps: int = 0,
    log: bool = False,
) -> Path:
    """Build a tiny Qwen2 checkpoint with a trained tokenizer and chat template in ``out_dir``.

    Args:
        out_dir: directory to write (created; existing files are overwritten).
        seed: seeds weight initialisation and the warm-start data and order.
        vocab_size: target vocabulary size (the BPE may stop earlier on the small corpus;
            the model's embedding matrix matches the tokenizer exactly).
        sft_steps: warm-start steps on synthetic agent transcripts (see
            :mod:`agentgym.models.warmstart`); 0 leaves the weights random.
        log: print progress of the warm start.

    Returns:
        ``Path(out_dir)``, loadable with ``AutoModelForCausalLM``/``AutoTokenizer`` or
        :func:`load_model_and_tokenizer`.
    """
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    from agentgym.models.warmstart import warm_start

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(vocab_size, model_max_length=max_position_embeddings)
    im_end = tokenizer.convert_tokens_to_ids(IM_END)
    pad = tokenizer.convert_tokens_to_ids(ENDOFTEXT)
    config_kwargs: dict[str, Any] = dict(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=pad,
        eos_token_id=im_end,
        pad_token_id=pad,
    )
    config = Qwen2Config(**config_kwargs)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is ~10x faster than contended threads
    try:
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
        model.eval()
        if sft_steps > 0:
            warm_start(model, tokenizer, steps=sft_steps, seed=seed, log=log)
    finally:
        torch.set_num_threads(threads)
    model.generation_config = GenerationConfig(
        bos_token_id=pad, eos_token_id=im_end, pad_token_id=pad, do_sample=True, temperature=0.8,
    )
    quiet_transformers()  # no "Writing model shards" bar in a quiet run
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    _make_portable(out)
    meta = {"builder": "agentgym.models.tiny.build_tiny_model", "seed": seed, "sft_steps": sft_steps,
            "num_parameters": sum(p.numel() for p in model.parameters())}
    (out / "agentgym_tiny.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


def _make_portable(out: Path) -> None:
    """Let older loaders (transformers 4.x, as pinned by vLLM) read the checkpoint too.

    transformers 5 names the tokenizer class ``TokenizersBackend``, keeps the chat template
    only in ``chat_template.jinja`` and the RoPE base only in ``rope_parameters``; 4.x knows
    ``PreTrainedTokenizerFast``, the inline ``chat_template`` and ``rope_theta``.
    """
    tok_cfg_path = out / "tokenizer_config.json"
    tok_cfg = json.loads(tok_cfg_path.read_text())
    tok_cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    tok_cfg["chat_template"] = CHAT_TEMPLATE
    tok_cfg_path.write_text(json.dumps(tok_cfg, indent=2, ensure_ascii=False) + "\n")
    cfg_path = out / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.setdefault("rope_theta", (cfg.get("rope_parameters") or {}).get("rope_theta", 10000.0))
    cfg.setdefault("torch_dtype", cfg.get("dtype", "float32"))
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def quiet_transformers() -> None:
    """No progress bars or info chatter from transformers while agentgym loads and saves models
    (set ``AGENTGYM_VERBOSE=1`` to keep them)."""
    if os.environ.get("AGENTGYM_VERBOSE") == "1":
        return
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def load_model_and_tokenizer(
    name_or_path: str | os.PathLike[str],
    *,
    device: str = "cpu",
    dtype: Any = None,
    local_files_only: bool = False,
) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer from a local checkpoint directory or a hub id.

    Args:
        name_or_path: a checkpoint directory (``save_pretrained`` layout) or a hub id such as
            ``Qwen/Qwen2.5-0.5B-Instruct`` (resolved from the local Hugging Face cache, then
            the hub).
        device: torch device to move the model to.
        dtype: torch dtype (or ``"auto"``); ``None`` keeps the checkpoint's float32 on CPU and
            uses bfloat16 on CUDA.
        local_files_only: never contact the hub.

    Raises:
        ConfigError: the directory does not exist, or the hub id cannot be resolved (this
            machine may have no access to the hub: build a local model instead).
    """
    quiet_transformers()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    auto_model: Any = AutoModelForCausalLM
    name = os.fspath(name_or_path)
    local = Path(name).expanduser()
    if local.is_dir():
        source = str(local)
    elif isinstance(name_or_path, Path) or name.startswith((".", "/", "~")):
        raise ConfigError(f"model directory {name!r} does not exist; build one with "
                          "`agentgym model build-tiny --out DIR` or pass a Hugging Face checkpoint directory")
    else:
        source = name
    if dtype is None:
        dtype = torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_files_only)
        model = auto_model.from_pretrained(source, dtype=dtype, local_files_only=local_files_only)
    except OSError as e:
        raise ConfigError(
            f"could not load model {name!r}: it is not a local directory and could not be fetched from the "
            f"Hugging Face hub or found in its cache ({type(e).__name__}: {str(e).splitlines()[0][:200]}). "
            "Without hub access, pass a local checkpoint directory, e.g. one made by "
            "`agentgym model build-tiny --out DIR`."
        ) from e
    model.to(device)
    model.eval()
    if getattr(tokenizer, "chat_template", None) is None:
        raise ConfigError(f"tokenizer of {name!r} has no chat template; the proxy needs one to render messages")
    return model, tokenizer


def main_build_tiny(argv: Sequence[str] | None = None) -> int:
    """``agentgym model build-tiny --out DIR [--seed N] [--sft-steps N]``; prints the path."""
    parser = argparse.ArgumentParser(prog="agentgym model build-tiny",
                                     description="Build a tiny local chat model (tokenizer + Qwen2 LM).")
    parser.add_argument("--out", required=True, help="checkpoint directory to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sft-steps", type=int, default=DEFAULT_CLI_SFT_STEPS,
                        help="warm-start steps on synthetic tool-call transcripts (0: random weights)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    path = build_tiny_model(args.out, seed=args.seed, sft_steps=args.sft_steps, log=not args.quiet)
    if not args.quiet:
        print(f"built {path} in {time.perf_counter() - t0:.1f} s")
    else:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main_build_tiny())
