"""A scripted engine: replies from a list, for tests of everything above the engine boundary.

Like httpx's ``MockTransport``, it makes the proxy, reconstructor and rollout testable without
a model. It is a real :class:`~agentgym.engines.base.Engine`: it receives the exact prompt ids,
and returns exact completion ids (which may deliberately be ids that decode and re-encode to
something else) with deterministic logprobs.

>>> import asyncio
>>> from agentgym.models.tiny import train_tokenizer
>>> from agentgym.types import SamplingParams
>>> tokenizer = train_tokenizer()
>>> engine = ScriptedEngine(tokenizer, ["Hello!", [5, 6, 7]])
>>> first = asyncio.run(engine.generate([1, 2, 3], SamplingParams()))
>>> tokenizer.decode(first.completion_ids), first.finish_reason
('Hello!<|im_end|>', 'stop')
>>> asyncio.run(engine.generate([1, 2, 3], SamplingParams())).completion_ids, engine.prompts[0]
((5, 6, 7), (1, 2, 3))
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from agentgym.engines.base import Engine, Generation, TokenChunk
from agentgym.errors import EngineError
from agentgym.types import SamplingParams

Reply = str | Sequence[int]


class ScriptedEngine(Engine):
    """Serves ``replies`` in order (text is encoded and gets end-of-turn appended; an id list is
    returned verbatim). ``replies`` may also be a function ``(prompt_ids, n) -> Reply``.

    Every prompt it saw is kept in ``prompts`` (a list of id tuples), and every sampling in ``samplings``.
    ``stream`` yields one token at a time, ``token_delay_s`` apart. ``keep_prompts=False`` keeps
    nothing (a zero-latency engine for benchmarks)."""

    name = "scripted"

    def __init__(self, tokenizer: Any, replies: Sequence[Reply] | Callable[[Sequence[int], int], Reply],
                 logprob: float = -0.5, delay_s: float = 0.0, model_name: str = "scripted",
                 token_delay_s: float = 0.0, keep_prompts: bool = True) -> None:
        self._tokenizer = tokenizer
        self._replies = replies
        self.logprob = logprob
        self.delay_s = delay_s
        self.token_delay_s = token_delay_s
        self.keep_prompts = keep_prompts
        self.calls = 0
        self._model_name = model_name
        self.prompts: list[tuple[int, ...]] = []
        self.samplings: list[SamplingParams] = []

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    @property
    def model_name(self) -> str:
        return self._model_name

    async def generate(self, prompt_ids: Sequence[int], sampling: SamplingParams) -> Generation:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return self._next(prompt_ids, sampling)

    async def stream(self, prompt_ids: Sequence[int], sampling: SamplingParams) -> AsyncIterator[TokenChunk]:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        gen = self._next(prompt_ids, sampling)
        for i, (t, lp) in enumerate(zip(gen.completion_ids, gen.logprobs, strict=True)):
            if i:
                await asyncio.sleep(self.token_delay_s)
            yield TokenChunk(ids=(t,), logprobs=(lp,), policy_version=gen.policy_version)
        yield TokenChunk(ids=(), logprobs=(), finish_reason=gen.finish_reason, policy_version=gen.policy_version)

    async def update_weights(self, state_dict: dict[str, Any], version: int) -> None:
        """Nothing to load: later generations report ``version``."""
        self.policy_version = version

    def _next(self, prompt_ids: Sequence[int], sampling: SamplingParams) -> Generation:
        n = self.calls
        self.calls += 1
        if self.keep_prompts:
            self.prompts.append(tuple(prompt_ids))
            self.samplings.append(sampling)
        if callable(self._replies):
            reply = self._replies(prompt_ids, n)
        else:
            if n >= len(self._replies):
                raise EngineError(f"ScriptedEngine ran out of replies after {len(self._replies)} calls")
            reply = self._replies[n]
        eos = self._tokenizer.convert_tokens_to_ids(self._tokenizer.eos_token)
        if isinstance(reply, str):
            ids = [*self._tokenizer.encode(reply, add_special_tokens=False), eos]
        else:
            ids = list(reply)
        finish = "stop"
        if len(ids) > sampling.max_tokens:
            ids, finish = ids[: sampling.max_tokens], "length"
        return Generation(completion_ids=tuple(ids), logprobs=tuple(self.logprob - 0.001 * i for i in range(len(ids))),
                          finish_reason=finish, policy_version=self.policy_version)
