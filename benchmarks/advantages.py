"""Vectorised advantage estimators vs their plain-Python reference loops, on one random batch.

    python3 benchmarks/advantages.py            # ~100k steps: 8 trajectories x ~12 steps per task
    python3 benchmarks/advantages.py --steps 20000

Prints one row per estimator: the vectorised time (best of ``--repeats``, or the single warm-up
run when that takes over a second), the reference time (one run), the speedup, and the largest
difference between the two results. GiGPO's similarity mode is difflib-bound in both versions, so
it runs on a ``--similarity-steps`` batch (default 20 000) and its row says so. Single-threaded
(``torch.set_num_threads(1)``), CPU.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import torch

from agentgym.trainers.advantages.base import AdvantageResult
from agentgym.trainers.advantages.gigpo import GiGPOConfig, gigpo_advantages, gigpo_advantages_reference
from agentgym.trainers.advantages.grpo import (
    drgrpo_advantages,
    drgrpo_advantages_reference,
    grpo_advantages,
    grpo_advantages_reference,
)
from agentgym.trainers.advantages.hgpo import HGPOConfig, hgpo_advantages, hgpo_advantages_reference
from agentgym.trainers.advantages.mgrpo import mgrpo_advantages, mgrpo_advantages_reference
from agentgym.trainers.advantages.synthetic import random_step_batch
from agentgym.trainers.advantages.tree import tree_advantages, tree_advantages_reference
from agentgym.trainers.batch import StepBatch

Fn = Callable[[StepBatch, Any], AdvantageResult]

TRAJECTORIES_PER_GROUP = 8
MEAN_STEPS = 12.5  # lengths uniform in 1..24: 12 on average


def _time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    best = float("inf")
    out = None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
        if best > 1.0:  # slow enough that one run is a stable measurement
            break
    return best * 1000.0, out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100_000, help="approximate number of step rows")
    parser.add_argument("--repeats", type=int, default=3, help="vectorised runs (best is reported)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--similarity-steps", type=int, default=20_000,
                        help="steps for the GiGPO similarity-mode row (0 skips it)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    def make(steps: int, seed: int, **kwargs: Any) -> StepBatch:
        groups = max(1, round(steps / (TRAJECTORIES_PER_GROUP * (MEAN_STEPS - 0.5))))
        return random_step_batch(seed, groups=groups, trajectories_per_group=TRAJECTORIES_PER_GROUP,
                                 mean_steps=MEAN_STEPS, anchors_per_group=24, **kwargs)

    t0 = time.perf_counter()
    batch = make(args.steps, args.seed, agents=("main", "sub:0"))
    build_ms = (time.perf_counter() - t0) * 1000.0
    tree_batch = make(args.steps, args.seed + 1, tree=True)

    cases: list[tuple[str, Fn, Fn, StepBatch, Any]] = [
        ("grpo", grpo_advantages, grpo_advantages_reference, batch, None),
        ("drgrpo", drgrpo_advantages, drgrpo_advantages_reference, batch, None),
        ("gigpo (exact anchors)", gigpo_advantages, gigpo_advantages_reference, batch, None),
        ("gigpo (mean_std_norm)", gigpo_advantages, gigpo_advantages_reference, batch,
         GiGPOConfig(mode="mean_std_norm")),
        ("hgpo (H=2)", hgpo_advantages, hgpo_advantages_reference, batch, None),
        ("hgpo (H=4, base group)", hgpo_advantages, hgpo_advantages_reference, batch,
         HGPOConfig(history_length=4, base_group=True)),
        ("mgrpo", mgrpo_advantages, mgrpo_advantages_reference, batch, None),
        ("tree (branched)", tree_advantages, tree_advantages_reference, tree_batch, None),
    ]
    if args.similarity_steps > 0:
        fuzzy_batch = make(min(args.similarity_steps, args.steps), args.seed + 2, fuzzy_anchors=True)
        cases.append((f"gigpo (similarity, {fuzzy_batch.num_rows // 1000}k)", gigpo_advantages,
                      gigpo_advantages_reference, fuzzy_batch, GiGPOConfig(similarity=True)))

    print(f"batch: {batch.num_rows} steps, {batch.num_trajectories} trajectories, {batch.num_groups} groups "
          f"(built in {build_ms:.0f} ms incl. anchor interning); torch {torch.__version__}, 1 thread")
    header = f"| {'estimator':<24} | {'vectorised ms':>13} | {'reference ms':>12} | {'speedup':>8} | {'max abs diff':>12} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for name, vec, ref, b, cfg in cases:
        vec(b, cfg)  # warm-up
        vec_ms, vec_out = _time(lambda vec=vec, b=b, cfg=cfg: vec(b, cfg), args.repeats)  # type: ignore[misc]
        ref_ms, ref_out = _time(lambda ref=ref, b=b, cfg=cfg: ref(b, cfg), 1)  # type: ignore[misc]
        diff = float((vec_out.rows - ref_out.rows).abs().max())
        print(f"| {name:<24} | {vec_ms:>13.1f} | {ref_ms:>12.1f} | {ref_ms / vec_ms:>7.1f}x | {diff:>12.1e} |",
              flush=True)


if __name__ == "__main__":
    main()
