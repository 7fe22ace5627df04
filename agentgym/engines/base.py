"""The engine boundary: tokens in, tokens out, logprobs.

An engine never sees messages or chat templates: the proxy renders and splices, the engine
samples. That keeps token faithfulness in one place (the proxy) for every backend.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from agentgym.types import SamplingParams


@dataclass(frozen=True)
class Generation:
    """What an engine sampled for one prompt."""

    completion_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    """Log-probability of each sampled token under the sampling distribution after
    temperature scaling and before top-p truncation (log-softmax(logits / T)); raw
    log-softmax when T == 0. This is what the trainer recomputes, so ratios start at 1."""
    finish_reason: str
    """``stop`` (end-of-turn token or stop string) or ``length``."""
    policy_version: int = 0
    queue_s: float = 0.0


@dataclass(frozen=True)
class TokenChunk:
    """Tokens an engine has just sampled, while it streams (:meth:`Engine.stream`)."""

    ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    """One per id, as in :attr:`Generation.logprobs`."""
    finish_reason: str | None = None
    """Set on the last chunk only (``stop`` or ``length``), which may carry no ids."""
    policy_version: int = 0
    queue_s: float = 0.0


class Engine(abc.ABC):
    """Serves a policy. Implementations: embedded (transformers), vLLM."""

    name: str = "engine"
    policy_version: int = 0

    @property
    @abc.abstractmethod
    def tokenizer(self) -> Any:
        """A Hugging Face tokenizer with a chat template (the proxy renders with it)."""

    @property
    def model_name(self) -> str:
        return self.name

    @abc.abstractmethod
    async def generate(self, prompt_ids: Sequence[int], sampling: SamplingParams) -> Generation:
        """Sample a completion for ``prompt_ids``. Safe to call concurrently: engines batch."""

    async def context_length(self) -> int | None:
        """The engine's prompt + completion limit, when it knows one (the proxy refuses longer
        requests in each dialect's own context-length error)."""
        limit = getattr(self, "max_model_len", None)
        return int(limit) if isinstance(limit, int) and limit > 0 else None

    async def stream(self, prompt_ids: Sequence[int], sampling: SamplingParams) -> AsyncIterator[TokenChunk]:
        """Sample like :meth:`generate`, yielding tokens as they are sampled; the last chunk has
        ``finish_reason`` set. The ids and logprobs, joined, are exactly what :meth:`generate`
        returns for the same prompt, sampling and seed. Closing the iterator early cancels the
        generation where the engine can. The default yields the whole generation once."""
        gen = await self.generate(prompt_ids, sampling)
        yield TokenChunk(ids=gen.completion_ids, logprobs=gen.logprobs, finish_reason=gen.finish_reason,
                         policy_version=gen.policy_version, queue_s=gen.queue_s)

    async def update_weights(self, state_dict: dict[str, Any], version: int) -> None:
        """Load new policy weights; later generations report ``version``.

        ``state_dict`` maps the checkpoint's parameter names to tensors (the trainer's
        ``model.state_dict()``). When this returns, every later generation samples from the new
        weights. On failure it raises :class:`~agentgym.errors.EngineError` and
        ``policy_version`` keeps its old value. Engines that wait on something outside the
        process bound every wait with a timeout of their own (see their ``update_timeout_s``).
        """
        raise NotImplementedError(f"{type(self).__name__} does not support weight updates")

    async def aclose(self) -> None:
        """Release resources (threads, GPU memory, server processes)."""
        return None
