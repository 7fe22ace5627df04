"""Tokens per second of the embedded engine on the tiny model: one request at a time vs batches.

    python3 benchmarks/engine.py                      # builds a random-weight tiny model in a temp dir
    python3 benchmarks/engine.py --model DIR --batch 1 4 8 --tokens 64

For each batch size B it sends B concurrent requests of ``--tokens`` tokens (end-of-turn is
disabled so every row runs to the limit), ``--repeats`` times, and prints generated tokens per
second of wall time and the batch sizes the worker actually formed. One worker thread with
``--threads`` torch threads (1 is fastest for tiny models on a shared CPU).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from agentgym.engines.embedded import EmbeddedEngine
from agentgym.types import SamplingParams

PROMPT = "Create a file named hello.txt that contains the word hello, then show it."


async def run(engine: EmbeddedEngine, batch: int, tokens: int, repeats: int) -> tuple[float, dict[int, int]]:
    tok = engine.tokenizer
    text = tok.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True, tokenize=False)
    ids = list(tok(text, add_special_tokens=False)["input_ids"])
    engine.batch_sizes.clear()
    generated = 0
    t0 = time.perf_counter()
    for r in range(repeats):
        gens = await asyncio.gather(*(engine.generate(ids, SamplingParams(temperature=1.0, max_tokens=tokens,
                                                                          seed=r * batch + i))
                                      for i in range(batch)))
        generated += sum(len(g.completion_ids) for g in gens)
    return generated / (time.perf_counter() - t0), dict(engine.batch_sizes)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="checkpoint directory (default: build a random-weight tiny model)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            from agentgym.models import build_tiny_model

            model = str(build_tiny_model(Path(tmp) / "tiny", seed=0))
        engine = EmbeddedEngine(model, max_batch_size=max(args.batch), threads=args.threads, gather_window_s=0.02)
        engine.eos_ids = {-1}  # run every row to --tokens
        try:
            await run(engine, 1, 8, 1)  # warm up
            print(f"{'batch':>5} {'tokens/s':>10}  batches formed")
            for b in args.batch:
                tps, formed = await run(engine, b, args.tokens, args.repeats)
                print(f"{b:>5} {tps:>10.0f}  {formed}")
        finally:
            await engine.aclose()


if __name__ == "__main__":
    asyncio.run(main())
