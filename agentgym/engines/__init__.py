"""Engines: tokens in, tokens out, logprobs. See :mod:`agentgym.engines.base` for the contract.

Built-ins register here through the same call users use (lazy ``module:Class`` entry points, so
importing this package loads neither torch nor httpx). :func:`load_engine` is the one factory
the CLI, the quickstart and the training loop use; it turns a ``--model`` string into an engine
through the registry::

    >>> from agentgym.engines import engine_spec
    >>> engine_spec("vllm:http://127.0.0.1:8000:/models/qwen")
    ('agentgym/vllm-v0', {'base_url': 'http://127.0.0.1:8000', 'model': '/models/qwen', 'tokenizer_path': '/models/qwen'})
    >>> engine_spec("/ckpt/step-100")
    ('agentgym/embedded-v0', {'model': '/ckpt/step-100'})
"""

from __future__ import annotations

from typing import Any

from agentgym.engines.base import Engine, Generation, TokenChunk
from agentgym.errors import ConfigError
from agentgym.registries import engines as _engines

__all__ = ["Engine", "Generation", "TokenChunk", "engine_spec", "load_engine"]

_engines.register(
    "agentgym/embedded-v0", "agentgym.engines.embedded:EmbeddedEngine",
    description="transformers model in this process (CPU or one GPU), batched",
)
_engines.register(
    "agentgym/vllm-v0", "agentgym.engines.vllm:VLLMEngine",
    description="a running vLLM OpenAI-compatible server, token ids in and out",
)


def engine_spec(model: str) -> tuple[str, dict[str, Any]]:
    """``(engine id, constructor kwargs)`` for a model string:

    - ``tiny`` — the built-in local model (built and cached on first use), embedded;
    - ``vllm:<base_url>:<tokenizer path>`` — a running vLLM server;
    - a registered engine id (``agentgym/embedded-v0``...) — that engine with no arguments;
    - anything else — a checkpoint directory or hub id for the embedded engine.
    """
    if model == "tiny":
        from agentgym.models.tiny import tiny_model_path

        return "agentgym/embedded-v0", {"model": str(tiny_model_path())}
    if model.startswith("vllm:"):
        rest = model[len("vllm:"):]
        url, _, tok = rest.rpartition(":") if rest.count(":") > 1 else (rest, "", "")
        if not tok:
            raise ConfigError("use --model vllm:<base_url>:<tokenizer path>, e.g. vllm:http://127.0.0.1:8000:/models/qwen")
        return "agentgym/vllm-v0", {"base_url": url, "model": tok, "tokenizer_path": tok}
    if model in _engines:
        return model, {}
    return "agentgym/embedded-v0", {"model": model}


def load_engine(model: str, **kwargs: Any) -> Engine:
    """The engine for a model string (see :func:`engine_spec`); ``kwargs`` go to its constructor."""
    engine_id, defaults = engine_spec(model)
    engine: Engine = _engines.make(engine_id, **{**defaults, **kwargs})
    return engine
