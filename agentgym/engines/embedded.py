"""The embedded engine: a transformers causal LM in this process, batched, CPU or one GPU.

One worker thread owns the model. ``generate`` enqueues a request and awaits its future; the
worker gathers what is pending (up to ``max_batch_size``, waiting at most ``gather_window_s``
after the first request), runs one batched decode loop over it (left padding, KV cache, per-row
sampling parameters and random generators, rows finishing independently and leaving the batch),
resolves the futures, and goes back to the queue. Requests that arrive while a batch runs wait
for the next batch (static batching: simple, and plenty for tiny models and tests).

>>> import asyncio, tempfile
>>> from agentgym.models.tiny import build_tiny_model
>>> from agentgym.types import SamplingParams
>>> path = build_tiny_model(tempfile.mkdtemp() + "/tiny", sft_steps=0)   # random weights, ~2 s
>>> engine = EmbeddedEngine(path, seed=0)
>>> prompt = engine.tokenizer.encode("hello there")
>>> gen = asyncio.run(engine.generate(prompt, SamplingParams(temperature=0.8, max_tokens=5, seed=1)))
>>> len(gen.completion_ids) == len(gen.logprobs) <= 5, gen.policy_version
(True, 0)
>>> asyncio.run(engine.aclose())

Reproducibility: a request with a ``seed`` gets its own ``torch.Generator`` and draws exactly
one uniform number per sampled token, so its tokens do not depend on which other requests share
its batch. Batched and unbatched forward passes agree to float rounding (~1e-6), not bitwise,
so a draw that lands within that distance of a token boundary could in principle differ.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import copy
import inspect
import os
import queue
import random
import threading
import time
from array import array
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentgym.engines.base import Engine, Generation, TokenChunk
from agentgym.errors import EngineError
from agentgym.types import SamplingParams


@dataclass
class _Request:
    prompt_ids: list[int]
    sampling: SamplingParams
    seed: int
    max_tokens: int
    future: concurrent.futures.Future[Generation]
    enqueued: float = field(default_factory=time.perf_counter)
    cancelled: bool = False
    sink: Callable[[int, float], None] | None = None
    """Called from the worker with each token as it is sampled (streaming)."""


@dataclass
class _WeightUpdate:
    state_dict: dict[str, Any]
    version: int
    future: concurrent.futures.Future[None]


_STOP = object()


def sample_token(logits_V: Any, temperature: float, top_p: float, generator: Any) -> tuple[int, float]:
    """Sample one token id from float32 logits; return it with its logprob.

    The logprob is ``log_softmax(logits / T)`` at the sampled id, before top-p truncation (raw
    ``log_softmax`` and argmax when ``T == 0``): what the trainer recomputes. Draws exactly one
    uniform number from ``generator`` when ``T > 0`` (inverse-CDF sampling), none otherwise.
    """
    import torch

    if temperature <= 0.0:
        token = int(torch.argmax(logits_V))
        return token, float(torch.log_softmax(logits_V, dim=-1)[token])
    if temperature < 1e-4:  # logits / T would overflow float32 (and give NaN logprobs): use float64
        logp_V = torch.log_softmax(logits_V.double() / max(temperature, 1e-200), dim=-1)
    else:
        logp_V = torch.log_softmax(logits_V / temperature, dim=-1)
    probs_V = logp_V.double().exp()
    u = float(torch.rand((), generator=generator, dtype=torch.float64))
    if top_p < 1.0:
        probs_sorted, order = torch.sort(probs_V, descending=True, stable=True)
        cum = torch.cumsum(probs_sorted, dim=0)
        keep = (cum - probs_sorted) < top_p  # the smallest prefix whose mass reaches top_p
        kept = probs_sorted * keep
        cdf = torch.cumsum(kept, dim=0)
        idx = min(int(torch.searchsorted(cdf, u * float(cdf[-1]), right=True)), int(keep.sum()) - 1)
        token = int(order[idx])
    else:
        cdf = torch.cumsum(probs_V, dim=0)
        token = min(int(torch.searchsorted(cdf, u * float(cdf[-1]), right=True)), probs_V.shape[0] - 1)
        while float(probs_V[token]) == 0.0 and token > 0:  # never pick a zero-probability id
            token -= 1
    return token, float(logp_V[token])


class _Row:
    """Decode state of one request inside a batch."""

    def __init__(self, request: _Request, generator: Any, stop_window: int) -> None:
        self.request = request
        self.generator = generator
        self.ids: list[int] = []
        self.logprobs: list[float] = []
        self.finish_reason: str | None = None
        self.stop_window = stop_window


def _cache_of(out: Any) -> Any:
    """The KV cache a forward pass returned (``cache`` in transformers 5.2x, ``past_key_values`` before)."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def _cache_keyword(model: Any) -> str:
    """The forward argument that takes a KV cache: ``cache`` where the model accepts it (newer
    transformers warn on ``past_key_values`` on every call), else ``past_key_values``."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


class EmbeddedEngine(Engine):
    """A Hugging Face causal LM served in-process with batched sampling.

    Args:
        model: checkpoint directory or hub id (see
            :func:`agentgym.models.load_model_and_tokenizer`), or an already loaded
            ``PreTrainedModel`` (then pass ``tokenizer`` too).
        device: torch device (``cpu``, ``cuda``, ``cuda:1``).
        dtype: torch dtype; default float32 on CPU, bfloat16 on CUDA.
        max_batch_size: most requests decoded together.
        threads: torch intra-op threads for the worker (1 is fastest for tiny models on a shared
            CPU); ``None`` leaves torch's setting alone.
        max_model_len: prompt + completion limit (default: the model's
            ``max_position_embeddings``). Longer prompts raise :class:`EngineError`; the
            completion is cut (``finish_reason="length"``) where it would exceed it.
        gather_window_s: how long the worker waits after the first pending request for others
            to batch with.
        seed: seeds the seeds of requests that carry none (``None``: fresh entropy).
        tokenizer: tokenizer to use with an already loaded ``model``.
    """

    name = "embedded"

    def __init__(self, model: str | os.PathLike[str] | Any, *, device: str = "cpu", dtype: Any = None,
                 max_batch_size: int = 8, threads: int | None = 1, max_model_len: int | None = None,
                 gather_window_s: float = 0.005, seed: int | None = None, tokenizer: Any = None) -> None:
        if max_batch_size < 1:
            raise EngineError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if isinstance(model, (str, os.PathLike)):
            from agentgym.models.tiny import load_model_and_tokenizer

            self._model, self._tokenizer = load_model_and_tokenizer(model, device=device, dtype=dtype)
            self._name = os.fspath(model)
        else:
            if tokenizer is None:
                raise EngineError("pass tokenizer= together with an already loaded model")
            self._model, self._tokenizer = model, tokenizer
            self._name = str(getattr(getattr(model, "config", None), "_name_or_path", "") or "embedded")
        self.device = device
        self.max_batch_size = max_batch_size
        self.threads = threads
        self.gather_window_s = gather_window_s
        config: Any = self._model.config
        limit: int = max_model_len or getattr(config, "max_position_embeddings", None) or 4096
        self.max_model_len = int(limit)
        self.vocab_size = int(config.vocab_size)
        self.eos_ids = self._eos_ids()
        self.pad_id = self._tokenizer.pad_token_id if self._tokenizer.pad_token_id is not None else min(self.eos_ids)
        self._logits_kw = self._pick_logits_kwarg()
        self._cache_kw = _cache_keyword(self._model)
        self._stop_decoder = self._private_decoder()
        self._seed_rng = random.Random(seed)
        self.policy_version = 0
        self.batch_sizes: collections.Counter[int] = collections.Counter()
        """How many batches of each size the worker ran (``{size: count}``)."""
        self.tokens_generated = 0
        self._queue: queue.Queue[Any] = queue.Queue()
        self._closed = False
        self._thread = threading.Thread(target=self._worker, name="agentgym-embedded-engine", daemon=True)
        self._thread.start()

    # -- Engine API ---------------------------------------------------------------------------
    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    @property
    def model(self) -> Any:
        """The served ``torch.nn.Module`` (read it between batches only)."""
        return self._model

    @property
    def model_name(self) -> str:
        return self._name

    async def generate(self, prompt_ids: Sequence[int], sampling: SamplingParams) -> Generation:
        request = self._make_request(prompt_ids, sampling)
        self._queue.put(request)
        try:
            return await asyncio.wrap_future(request.future)
        except asyncio.CancelledError:
            request.cancelled = True  # the worker drops the row at its next step
            raise

    async def stream(self, prompt_ids: Sequence[int], sampling: SamplingParams) -> AsyncIterator[TokenChunk]:
        """Yield tokens as the worker samples them (handed to the event loop thread-safely); the
        same ids and logprobs as :meth:`generate` for the same seed."""
        loop = asyncio.get_running_loop()
        q: asyncio.Queue[Any] = asyncio.Queue()

        def sink(token: int, logprob: float) -> None:
            loop.call_soon_threadsafe(q.put_nowait, (token, logprob))

        request = self._make_request(prompt_ids, sampling, sink)
        request.future.add_done_callback(lambda _: loop.call_soon_threadsafe(q.put_nowait, None))
        self._queue.put(request)
        done = False
        try:
            while not done:
                item = await q.get()
                ids: list[int] = []
                logprobs: list[float] = []
                while True:
                    if item is None:
                        done = True
                        break
                    ids.append(item[0])
                    logprobs.append(item[1])
                    if q.empty():
                        break
                    item = q.get_nowait()
                if ids:
                    yield TokenChunk(ids=tuple(ids), logprobs=tuple(logprobs))
            gen = request.future.result()
            yield TokenChunk(ids=(), logprobs=(), finish_reason=gen.finish_reason, policy_version=gen.policy_version,
                             queue_s=gen.queue_s)
        finally:
            if not request.future.done():
                request.cancelled = True  # the worker drops the row at its next step

    async def update_weights(self, state_dict: dict[str, Any], version: int) -> None:
        """Load ``state_dict`` between batches; later generations report ``version``.

        A partial state dict updates only the tensors it names; unknown names are an error.
        """
        if self._closed:
            raise EngineError("engine is closed")
        update = _WeightUpdate(state_dict, version, concurrent.futures.Future())
        self._queue.put(update)
        await asyncio.wrap_future(update.future)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        await asyncio.to_thread(self._thread.join)

    # -- request validation -------------------------------------------------------------------
    def _make_request(self, prompt_ids: Sequence[int], sampling: SamplingParams,
                      sink: Callable[[int, float], None] | None = None) -> _Request:
        if self._closed:
            raise EngineError("engine is closed")
        ids = prompt_ids.tolist() if isinstance(prompt_ids, array) else [int(i) for i in prompt_ids]
        if not ids:
            raise EngineError("empty prompt: the engine needs at least one token")
        if len(ids) >= self.max_model_len:
            raise EngineError(f"prompt has {len(ids)} tokens but max_model_len is {self.max_model_len}: "
                              "shorten the conversation or raise max_model_len")
        if min(ids) < 0 or max(ids) >= self.vocab_size:
            bad = [i for i in ids if not 0 <= i < self.vocab_size]
            raise EngineError(f"prompt has token ids outside the vocabulary [0, {self.vocab_size}): {bad[:5]}")
        if sampling.temperature < 0 or not 0 < sampling.top_p <= 1 or sampling.max_tokens < 1:
            raise EngineError(f"invalid sampling parameters {sampling}: need temperature >= 0, "
                              "0 < top_p <= 1, max_tokens >= 1")
        if sampling.seed is not None and not -(2**63) <= sampling.seed < 2**64:
            # Checked here: torch refuses it only when the batch starts, failing every request in it.
            raise EngineError(f"seed {sampling.seed} is out of range: use an integer in [-2**63, 2**64)")
        seed = sampling.seed if sampling.seed is not None else self._seed_rng.randrange(2**63)
        max_tokens = min(sampling.max_tokens, self.max_model_len - len(ids))
        return _Request(ids, sampling, seed, max_tokens, concurrent.futures.Future(), sink=sink)

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        if self._tokenizer.eos_token_id is not None:
            ids.add(int(self._tokenizer.eos_token_id))
        gen_cfg = getattr(self._model, "generation_config", None)
        eos = getattr(gen_cfg, "eos_token_id", None)
        if eos is not None:
            ids.update(int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos]))
        if not ids:
            raise EngineError("the tokenizer and generation config name no eos token; the engine could never stop")
        return ids

    def _private_decoder(self) -> Any:
        """A decoder for stop strings owned by the worker thread.

        A fast tokenizer's Rust object raises "Already borrowed" when one thread decodes while
        another encodes with padding/truncation settings, so the worker never touches the
        tokenizer the proxy uses.
        """
        backend = getattr(self._tokenizer, "backend_tokenizer", None)
        if backend is not None and not getattr(self._tokenizer, "clean_up_tokenization_spaces", False):
            from tokenizers import Tokenizer

            return Tokenizer.from_str(backend.to_str())
        return copy.deepcopy(self._tokenizer)

    def _pick_logits_kwarg(self) -> str | None:
        params = inspect.signature(self._model.forward).parameters
        for name in ("logits_to_keep", "num_logits_to_keep"):
            if name in params:
                return name
        return None

    # -- worker -------------------------------------------------------------------------------
    def _worker(self) -> None:
        import torch

        if self.threads is not None:
            torch.set_num_threads(self.threads)
        while True:
            batch, tail = self._gather(self._queue.get())
            if batch:
                self._run_batch_safely(batch)
            # An update or stop ends a batch: requests queued before it run on the old
            # weights, those after it on the new ones.
            if isinstance(tail, _WeightUpdate):
                self._apply_update(tail)
            elif tail is _STOP:
                break
        self._fail_pending()

    def _gather(self, item: Any) -> tuple[list[_Request], Any]:
        """Requests to batch with ``item``, and the non-request item that ended the gathering."""
        batch: list[_Request] = []
        deadline = time.perf_counter() + self.gather_window_s
        while True:
            if not isinstance(item, _Request):
                return batch, item
            if item.future.set_running_or_notify_cancel():  # False: cancelled while queued
                batch.append(item)
            if len(batch) >= self.max_batch_size:
                return batch, None
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.perf_counter()))
            except queue.Empty:
                return batch, None

    def _fail_pending(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, (_Request, _WeightUpdate)) and not item.future.done():
                item.future.set_exception(EngineError("engine closed before serving this request"))

    def _apply_update(self, update: _WeightUpdate) -> None:
        import torch

        try:
            known = set(self._model.state_dict())
            unknown = sorted(set(update.state_dict) - known)
            if unknown:
                raise EngineError(f"update_weights got tensors the model does not have: {unknown[:5]}")
            with torch.no_grad():
                self._model.load_state_dict(update.state_dict, strict=False)
            self.policy_version = update.version
            update.future.set_result(None)
        except Exception as e:
            update.future.set_exception(e if isinstance(e, EngineError) else
                                        EngineError(f"update_weights failed: {type(e).__name__}: {e}"))

    def _run_batch_safely(self, batch: list[_Request]) -> None:
        try:
            results = self._run_batch(batch)
        except Exception as e:
            err = EngineError(f"embedded engine failed on a batch of {len(batch)}: {type(e).__name__}: {e}")
            for r in batch:
                if not r.future.done():
                    r.future.set_exception(err)
            return
        for r, gen in zip(batch, results, strict=True):
            r.future.set_result(gen)

    def _run_batch(self, batch: list[_Request]) -> list[Generation]:
        import torch

        started = time.perf_counter()
        version = self.policy_version
        self.batch_sizes[len(batch)] += 1
        rows = []
        for r in batch:
            window = 4 * max((len(s) for s in r.sampling.stop), default=0) + 4
            rows.append(_Row(r, torch.Generator().manual_seed(r.seed), window))
        device = self._model.device
        width = max(len(r.prompt_ids) for r in batch)
        ids_BT = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask_BT = torch.zeros((len(batch), width), dtype=torch.long)
        for b, r in enumerate(batch):  # left padding: every row's next token is at the end
            ids_BT[b, width - len(r.prompt_ids):] = torch.tensor(r.prompt_ids)
            mask_BT[b, width - len(r.prompt_ids):] = 1
        pos_BT = (mask_BT.cumsum(-1) - 1).clamp(min=0)
        ids_BT, mask_BT, pos_BT = ids_BT.to(device), mask_BT.to(device), pos_BT.to(device)
        extra = {self._logits_kw: 1} if self._logits_kw else {}
        active = list(range(len(rows)))
        with torch.inference_mode():
            out = self._model(input_ids=ids_BT, attention_mask=mask_BT, position_ids=pos_BT, use_cache=True, **extra)
            cache = _cache_of(out)
            next_pos_B = pos_BT[:, -1] + 1
            while True:
                logits_BV = out.logits[:, -1, :].float().cpu()
                step_tokens = []
                for j, b in enumerate(active):
                    step_tokens.append(self._step_row(rows[b], logits_BV[j]))
                keep = [j for j, b in enumerate(active) if rows[b].finish_reason is None]
                if not keep:
                    break
                if len(keep) < len(active):
                    index = torch.tensor(keep, device=device)
                    cache.batch_select_indices(index)
                    mask_BT, next_pos_B = mask_BT[index], next_pos_B[index]
                    active = [active[j] for j in keep]
                    step_tokens = [step_tokens[j] for j in keep]
                mask_BT = torch.cat([mask_BT, mask_BT.new_ones((len(active), 1))], dim=1)
                out = self._model(input_ids=torch.tensor(step_tokens, device=device)[:, None], attention_mask=mask_BT,
                                  position_ids=next_pos_B[:, None], use_cache=True,
                                  **{self._cache_kw: cache}, **extra)
                cache = _cache_of(out)
                next_pos_B = next_pos_B + 1
        return [Generation(completion_ids=tuple(row.ids), logprobs=tuple(row.logprobs),
                           finish_reason=row.finish_reason or "length", policy_version=version,
                           queue_s=started - row.request.enqueued) for row in rows]

    def _step_row(self, row: _Row, logits_V: Any) -> int:
        """Sample the row's next token and decide whether the row is finished."""
        s = row.request.sampling
        token, logprob = sample_token(logits_V, s.temperature, s.top_p, row.generator)
        row.ids.append(token)
        row.logprobs.append(logprob)
        self.tokens_generated += 1
        if row.request.sink is not None:
            row.request.sink(token, logprob)
        if row.request.cancelled:
            row.finish_reason = "cancelled"
        elif token in self.eos_ids or (s.stop and self._hit_stop(row)):
            row.finish_reason = "stop"
        elif len(row.ids) >= row.request.max_tokens:
            row.finish_reason = "length"
        return token

    def _hit_stop(self, row: _Row) -> bool:
        # An occurrence ending in the newest token fits in the last 4*len(stop)+4 tokens (every
        # token is at least one byte, every character at most four); earlier ones stopped the row.
        tail = self._stop_decoder.decode(row.ids[-row.stop_window:], skip_special_tokens=False)
        return any(stop in tail for stop in row.request.sampling.stop)
