"""Engines: tokens in, tokens out, logprobs. See :mod:`agentgym.engines.base` for the contract.

Built-ins register here through the same call users use (lazy ``module:Class`` entry points, so
importing this package loads neither torch nor httpx)::

    >>> from agentgym import registries
    >>> engine = registries.engines.make("agentgym/embedded-v0", model="/tmp/tiny")  # doctest: +SKIP
"""

from __future__ import annotations

from agentgym.engines.base import Engine, Generation
from agentgym.registries import engines as _engines

_engines.register(
    "agentgym/embedded-v0", "agentgym.engines.embedded:EmbeddedEngine",
    description="transformers model in this process (CPU or one GPU), batched",
)
_engines.register(
    "agentgym/vllm-v0", "agentgym.engines.vllm:VLLMEngine",
    description="a running vLLM OpenAI-compatible server, token ids in and out",
)

__all__ = ["Engine", "Generation"]
