"""The embedded engine: sampling semantics, reproducibility under batching, logprobs, lifecycle."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from agentgym.engines.base import Generation
from agentgym.engines.embedded import EmbeddedEngine, sample_token
from agentgym.errors import EngineError
from agentgym.types import SamplingParams

USER_TEXTS = ["hi", "Create a file named hello.txt that contains hello.", "ls -la", "What is 2 + 2?",
              "Please list the files in /app and count them.", "echo done", "x" * 40, "Summarize the log."]


def prompt(engine: Any, text: str) -> list[int]:
    tok = engine.tokenizer
    rendered = tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False)
    return list(tok(rendered, add_special_tokens=False)["input_ids"])


def gen(engine: Any, ids: list[int], **kw: Any) -> Generation:
    return asyncio.run(engine.generate(ids, SamplingParams(**{"max_tokens": 16, **kw})))


def gen_many(engine: Any, requests: list[tuple[list[int], SamplingParams]]) -> list[Generation]:
    async def main() -> list[Generation]:
        return list(await asyncio.gather(*(engine.generate(i, s) for i, s in requests)))

    return asyncio.run(main())


def recompute_logprobs(engine: Any, ids: list[int], g: Generation, temperature: float) -> torch.Tensor:
    """What the trainer does: one plain forward pass over prompt + completion."""
    full = torch.tensor([ids + list(g.completion_ids)])
    with torch.no_grad():
        logits = engine.model(full).logits[0, len(ids) - 1:-1].float()
    if temperature > 0:
        logits = logits / temperature
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(g.completion_ids)[:, None])[:, 0]


def test_same_seed_same_tokens(engine: Any) -> None:
    ids = prompt(engine, USER_TEXTS[1])
    a, b = gen(engine, ids, temperature=1.0, seed=7), gen(engine, ids, temperature=1.0, seed=7)
    assert a.completion_ids == b.completion_ids and a.logprobs == b.logprobs
    c = gen(engine, ids, temperature=1.0, seed=8)
    assert c.completion_ids != a.completion_ids


def test_batched_equals_unbatched(engine: Any) -> None:
    # Prompts of different lengths (left padding), mixed temperatures and top_p, one greedy row.
    reqs = [(prompt(engine, t), SamplingParams(temperature=[1.0, 0.7, 0.0, 1.3][i % 4], top_p=[1.0, 0.9][i % 2],
                                                max_tokens=12 + 3 * i, seed=100 + i))
            for i, t in enumerate(USER_TEXTS)]
    before = engine.batch_sizes[8]
    batched = gen_many(engine, reqs)
    assert engine.batch_sizes[8] == before + 1, engine.batch_sizes
    for (ids, sp), b in zip(reqs, batched, strict=True):
        solo = asyncio.run(engine.generate(ids, sp))
        assert solo.completion_ids == b.completion_ids
        assert max(abs(x - y) for x, y in zip(solo.logprobs, b.logprobs, strict=True)) < 1e-4


@pytest.mark.parametrize(("temperature", "top_p"), [(0.0, 1.0), (0.7, 1.0), (1.0, 1.0), (1.0, 0.8)])
def test_logprobs_match_a_plain_forward_pass(engine: Any, temperature: float, top_p: float) -> None:
    ids = prompt(engine, USER_TEXTS[4])
    g = gen(engine, ids, temperature=temperature, top_p=top_p, max_tokens=24, seed=3)
    expected = recompute_logprobs(engine, ids, g, temperature)
    assert torch.allclose(torch.tensor(g.logprobs), expected, atol=1e-4), (g.logprobs, expected)


def test_greedy_matches_argmax(engine: Any) -> None:
    ids = prompt(engine, USER_TEXTS[0])
    g = gen(engine, ids, temperature=0.0, max_tokens=10)
    with torch.no_grad():
        out = engine.model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=10, eos_token_id=None,
                                    pad_token_id=engine.pad_id)
    assert list(g.completion_ids) == out[0, len(ids):].tolist()[: len(g.completion_ids)]


def test_tiny_top_p_is_greedy(engine: Any) -> None:
    ids = prompt(engine, USER_TEXTS[3])
    greedy = gen(engine, ids, temperature=0.0, max_tokens=10)
    nucleus = gen(engine, ids, temperature=0.9, top_p=1e-9, max_tokens=10, seed=1)
    assert nucleus.completion_ids == greedy.completion_ids
    # ... but its logprobs are still those of the full temperature-scaled distribution.
    assert all(lp < 0 for lp in nucleus.logprobs)


def test_max_tokens(engine: Any) -> None:
    g = gen(engine, prompt(engine, USER_TEXTS[2]), temperature=1.0, max_tokens=5, seed=1)
    assert len(g.completion_ids) == len(g.logprobs) == 5 and g.finish_reason == "length"


def test_stop_string_stops_and_keeps_the_sampled_tokens(engine: Any) -> None:
    tok = engine.tokenizer
    ids = prompt(engine, USER_TEXTS[5])
    free = gen(engine, ids, temperature=0.0, max_tokens=20)
    # A stop string made of the text of tokens 5..6 of the unconstrained run.
    stop = tok.decode(free.completion_ids[5:7])
    assert stop
    g = gen(engine, ids, temperature=0.0, max_tokens=20, stop=(stop,))
    assert g.finish_reason == "stop"
    assert free.completion_ids[: len(g.completion_ids)] == g.completion_ids
    assert stop in tok.decode(g.completion_ids)
    assert stop not in tok.decode(g.completion_ids[:-1])  # stopped at the first token that completed it
    assert len(g.completion_ids) <= 7


def test_eos_stops_and_is_included(tiny_model_dir: Path) -> None:
    async def main() -> tuple[Generation, Generation]:
        eng = EmbeddedEngine(tiny_model_dir)
        try:
            ids = prompt(eng, USER_TEXTS[0])
            free = await eng.generate(ids, SamplingParams(temperature=0.0, max_tokens=8))
            eng.eos_ids = {free.completion_ids[3]}  # pretend the 4th greedy token ends the turn
            return free, await eng.generate(ids, SamplingParams(temperature=0.0, max_tokens=8))
        finally:
            await eng.aclose()

    free, g = asyncio.run(main())
    cut = free.completion_ids.index(free.completion_ids[3]) + 1
    assert g.completion_ids == free.completion_ids[:cut] and g.finish_reason == "stop"
    assert g.completion_ids[-1] == free.completion_ids[3]


def test_eos_is_the_end_of_turn_token(engine: Any) -> None:
    assert engine.tokenizer.convert_tokens_to_ids("<|im_end|>") in engine.eos_ids


def test_concurrent_requests_are_batched(engine: Any) -> None:
    before = sum(engine.batch_sizes.values())
    reqs = [(prompt(engine, t), SamplingParams(temperature=1.0, max_tokens=8, seed=i)) for i, t in enumerate(USER_TEXTS)]
    out = gen_many(engine, reqs)
    assert len(out) == 8 and all(len(g.completion_ids) >= 1 for g in out)
    assert sum(engine.batch_sizes.values()) - before <= 2  # 8 requests, at most 2 batches
    assert max(engine.batch_sizes) == 8


def test_prompt_errors(engine: Any) -> None:
    with pytest.raises(EngineError, match="max_model_len"):
        gen(engine, [1] * engine.max_model_len)
    with pytest.raises(EngineError, match="outside the vocabulary"):
        gen(engine, [1, engine.vocab_size + 5])
    with pytest.raises(EngineError, match="empty prompt"):
        gen(engine, [])
    with pytest.raises(EngineError, match="invalid sampling"):
        gen(engine, [1, 2], top_p=0.0)


def test_completion_is_cut_at_max_model_len(tiny_model_dir: Path) -> None:
    async def main() -> Generation:
        eng = EmbeddedEngine(tiny_model_dir, max_model_len=40)
        try:
            return await eng.generate(list(range(3, 38)), SamplingParams(temperature=1.0, max_tokens=50, seed=0))
        finally:
            await eng.aclose()

    g = asyncio.run(main())
    assert len(g.completion_ids) <= 5 and (g.finish_reason == "length" or len(g.completion_ids) < 5)


def test_update_weights_between_batches(tiny_model_dir: Path) -> None:
    async def main() -> None:
        eng = EmbeddedEngine(tiny_model_dir)
        try:
            ids = prompt(eng, USER_TEXTS[1])
            sp = SamplingParams(temperature=0.0, max_tokens=6)
            before = await eng.generate(ids, sp)
            assert before.policy_version == 0
            state = {k: v.clone() for k, v in eng.model.state_dict().items()}
            state["model.norm.weight"] = -state["model.norm.weight"]  # a real change of the policy
            # Requests queued before the update run on the old weights, those after on the new.
            old_t = asyncio.create_task(eng.generate(ids, sp))
            await asyncio.sleep(0)
            await eng.update_weights({"model.norm.weight": state["model.norm.weight"]}, version=3)
            old, new = await old_t, await eng.generate(ids, sp)
            assert old.policy_version == 0 and old.completion_ids == before.completion_ids
            assert new.policy_version == 3 and eng.policy_version == 3
            assert new.completion_ids != before.completion_ids
            with pytest.raises(EngineError, match="does not have"):
                await eng.update_weights({"no.such.weight": torch.zeros(1)}, version=4)
            assert eng.policy_version == 3
        finally:
            await eng.aclose()

    asyncio.run(main())


def test_cancelled_request_does_not_break_the_engine(engine: Any) -> None:
    async def main() -> Generation:
        ids = prompt(engine, USER_TEXTS[0])
        task = asyncio.create_task(engine.generate(ids, SamplingParams(temperature=1.0, max_tokens=200, seed=1)))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await engine.generate(ids, SamplingParams(temperature=1.0, max_tokens=4, seed=1))

    assert len(asyncio.run(main()).completion_ids) == 4


def test_closed_engine_refuses(tiny_model_dir: Path) -> None:
    async def main() -> None:
        eng = EmbeddedEngine(tiny_model_dir)
        await eng.aclose()
        with pytest.raises(EngineError, match="closed"):
            await eng.generate([1, 2, 3], SamplingParams())

    asyncio.run(main())


def test_registered(tiny_model_dir: Path) -> None:
    from agentgym import registries

    eng = registries.engines.make("agentgym/embedded-v0", model=tiny_model_dir)
    assert isinstance(eng, EmbeddedEngine)
    asyncio.run(eng.aclose())


# -- sample_token ------------------------------------------------------------------------------

def test_sample_token_follows_the_distribution() -> None:
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0])
    g = torch.Generator().manual_seed(0)
    n = 20000
    counts = torch.zeros(4)
    for _ in range(n):
        counts[sample_token(logits, 1.0, 1.0, g)[0]] += 1
    assert torch.allclose(counts / n, torch.softmax(logits, -1), atol=0.015)


def test_sample_token_top_p_support_and_logprob() -> None:
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0])  # probs .64 .24 .09 .03
    g = torch.Generator().manual_seed(0)
    seen = {sample_token(logits, 1.0, 0.7, g)[0] for _ in range(500)}
    assert seen == {0, 1}
    token, lp = sample_token(logits, 0.5, 0.7, g)
    assert math.isclose(lp, float(torch.log_softmax(logits / 0.5, -1)[token]), abs_tol=1e-6)


def test_sample_token_greedy_draws_nothing() -> None:
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    assert sample_token(torch.tensor([0.0, 3.0, 1.0]), 0.0, 1.0, g)[0] == 1
    assert torch.equal(g.get_state(), state)


def test_stream_yields_what_generate_returns_for_the_same_seed(engine: Any) -> None:
    ids = prompt(engine, USER_TEXTS[1])
    sp = SamplingParams(temperature=1.0, max_tokens=24, seed=5)

    async def main() -> tuple[Generation, list[Any], list[float]]:
        loop = asyncio.get_running_loop()
        arrivals: list[float] = []
        chunks = []
        async for c in engine.stream(ids, sp):
            arrivals.append(loop.time())
            chunks.append(c)
        return await engine.generate(ids, sp), chunks, arrivals

    g, chunks, arrivals = asyncio.run(main())
    assert tuple(t for c in chunks for t in c.ids) == g.completion_ids
    assert tuple(lp for c in chunks for lp in c.logprobs) == g.logprobs
    assert chunks[-1].finish_reason == g.finish_reason and all(c.finish_reason is None for c in chunks[:-1])
    # Tokens arrive as the worker samples them, not all at the end.
    assert len(chunks) > 2 and arrivals[-1] - arrivals[0] > 0


def test_closing_a_stream_cancels_its_row(engine: Any) -> None:
    ids = prompt(engine, USER_TEXTS[2])

    async def main() -> Generation:
        agen = engine.stream(ids, SamplingParams(temperature=1.0, max_tokens=200, seed=1))
        await agen.__anext__()
        await agen.aclose()
        return await engine.generate(ids, SamplingParams(max_tokens=4, seed=2))

    assert len(asyncio.run(main()).completion_ids) <= 4  # the engine keeps serving


def test_out_of_range_seed_fails_alone_not_its_batch(engine: Any) -> None:
    ids = prompt(engine, USER_TEXTS[0])

    async def main() -> tuple[Any, Generation]:
        bad = engine.generate(ids, SamplingParams(max_tokens=4, seed=2**64))
        good = engine.generate(ids, SamplingParams(max_tokens=4, seed=3))
        return tuple(await asyncio.gather(bad, good, return_exceptions=True))  # type: ignore[return-value]

    bad, good = asyncio.run(main())
    assert isinstance(bad, EngineError) and "out of range" in str(bad)
    assert isinstance(good, Generation) and len(good.completion_ids) >= 1


def test_a_vanishing_temperature_gives_finite_logprobs(engine: Any) -> None:
    g = gen(engine, prompt(engine, USER_TEXTS[3]), temperature=1e-40, seed=1)
    assert all(math.isfinite(lp) for lp in g.logprobs)
    assert g.completion_ids == gen(engine, prompt(engine, USER_TEXTS[3]), temperature=0.0).completion_ids
