"""Time the vectorised policy losses and ECHO against their plain-loop references.

    python3 benchmarks/losses.py --segments 32 --length 2048

Prints one line per loss: forward+backward time of the vectorised version, and (for a small
slice) the loop reference's time, so regressions in either show up as numbers, not test failures.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from agentgym import registries
from agentgym.trainers.losses.base import LossConfig, PolicyLoss
from agentgym.trainers.losses.echo import EchoConfig, echo_observation_loss, observation_masks
from agentgym.trainers.losses.reference import ref_echo, ref_gspo, ref_ppo_clip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--segments", type=int, default=32)
    ap.add_argument("--length", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    S, L = args.segments, args.length
    g = torch.Generator().manual_seed(0)
    old = -torch.rand(S, L, generator=g) * 3
    new = (old + 0.1 * torch.randn(S, L, generator=g)).requires_grad_(True)
    adv = torch.randn(S, L, generator=g)
    kind = torch.randint(0, 3, (S, L), generator=g)
    action, obs = (kind == 1).float(), (kind == 2).float()

    def timeit(fn: Callable[[], object]) -> float:
        best = float("inf")
        for _ in range(args.repeats):
            new.grad = None
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        return best

    small = slice(0, 2)
    for name in registries.losses.ids():
        fn: PolicyLoss = registries.losses.get(name)

        def run(fn: PolicyLoss = fn) -> None:
            fn(new, old, adv, action).loss.backward()

        t = timeit(run)
        lists = [x[small].tolist() for x in (new.detach(), old, adv, action)]
        cfg = LossConfig()
        t0 = time.perf_counter()
        ref_gspo(*lists, cfg) if name == "gspo" else ref_ppo_clip(*lists, cfg)
        t_ref = (time.perf_counter() - t0) * S / 2
        print(f"{name:10s} vectorised {t * 1e3:8.2f} ms   loop reference (extrapolated) {t_ref * 1e3:10.1f} ms")

    target, count = observation_masks(obs, action)
    t = timeit(lambda: echo_observation_loss(new, target, count).loss.backward())
    att = torch.ones(2, L).tolist()
    t0 = time.perf_counter()
    ref_echo(new.detach()[small].tolist(), obs[small].tolist(), action[small].tolist(), att, None, EchoConfig())
    t_ref = (time.perf_counter() - t0) * S / 2
    print(f"{'echo':10s} vectorised {t * 1e3:8.2f} ms   loop reference (extrapolated) {t_ref * 1e3:10.1f} ms")


if __name__ == "__main__":
    main()
