"""``agentgym quickstart``: the whole loop on an embedded default, no GPU, no network.

1. build (or reuse) the tiny local model,
2. roll out our ReAct harness on the terminal tasks (Docker when its engine answers, else the
   local runtime — it says which),
3. reconstruct token-faithful trajectories and export them (JSONL journal + Parquet),
4. take one GRPO update on CPU and push the new weights to the engine,
5. print a summary.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from typing import Any

DEFAULT_ENV = "terminal/basic-v0"
DEFAULT_HARNESS = "agentgym/react-v0"


@dataclass(frozen=True)
class QuickstartOptions:
    out_dir: str = "runs/quickstart"
    runtime: str = "auto"
    samples: int = 8
    max_steps: int = 6
    max_tokens: int = 96
    concurrency: int = 4
    lr: float = 1e-4


def pick_runtime(requested: str, say: Any) -> str:
    """The runtime to use, saying which isolation it gives."""
    from agentgym.runtime import get_backend

    if requested != "auto":
        say(f"Runtime: {get_backend(requested).describe_isolation()}.")
        return requested
    from agentgym.provision import ensure_base_image
    from agentgym.runtime.docker import docker_available

    if not docker_available():
        say("[yellow]Docker engine not reachable: using the local runtime.[/] "
            "Run `agentgym setup` (Debian, root) to install and start Docker.")
        say(f"Runtime: {get_backend('local').describe_isolation()}.")
        return "local"
    try:
        ensure_base_image()
    except Exception as e:  # no debootstrap, no apt: still usable locally
        say(f"[yellow]Docker is up but the base image could not be built ({e}): using the local runtime.[/]")
        say(f"Runtime: {get_backend('local').describe_isolation()}.")
        return "local"
    say(f"Runtime: [bold]{get_backend('docker').describe_isolation()}[/].")
    return "docker"


def run_quickstart(opts: QuickstartOptions) -> dict[str, Any]:
    import torch
    from rich.console import Console
    from rich.table import Table

    from agentgym.rollout.runner import RolloutConfig, run_rollouts
    from agentgym.trainers.update import policy_update

    console = Console(width=None if sys.stdout.isatty() else 120)
    say = console.print
    t0 = time.time()
    torch.set_num_threads(1)
    say("[bold]agentgym quickstart[/]: tiny model -> rollouts -> trajectories -> dataset -> one GRPO step")
    t = time.time()
    from agentgym.engines import load_engine
    from agentgym.models.tiny import tiny_model_path

    model_path = tiny_model_path()
    say(f"Model: tiny local checkpoint at {model_path} ({time.time() - t:.1f}s)")
    runtime = pick_runtime(opts.runtime, say)
    from agentgym import registries
    from agentgym.runtime import get_backend

    env = registries.envs.make(DEFAULT_ENV)
    backend = get_backend(runtime)
    tasks = [t for t in env.tasks() if not env.unsupported(t, backend)]
    skipped = [t.id for t in env.tasks() if t not in tasks]
    if skipped:
        say(f"Skipping {', '.join(skipped)}: they need a container (see `agentgym setup`).")
    engine = load_engine(str(model_path))
    cfg = RolloutConfig(env=DEFAULT_ENV, harness=DEFAULT_HARNESS, samples=opts.samples, out_dir=opts.out_dir,
                        task_ids=[t.id for t in tasks],
                        runtime=runtime, concurrency=opts.concurrency, max_steps=opts.max_steps,
                        default_max_tokens=opts.max_tokens, harness_kwargs={"max_tokens": opts.max_tokens})
    try:
        result = asyncio.run(run_rollouts(cfg, engine))
        main = result.main
        say(f"Rollouts: {len(main)} episodes in {result.seconds:.1f}s"
            + (f" ({result.skipped} resumed from the journal)" if result.skipped else ""))

        # One GRPO update on a separate trainer copy of the policy, then push to the engine.
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=opts.lr)
        pad = engine.tokenizer.pad_token_id or 0
        metrics = policy_update(model, optimizer, main, estimator="grpo", loss="ppo-clip", pad_id=pad)
        asyncio.run(engine.update_weights(model.state_dict(), version=1))
    finally:
        asyncio.run(engine.aclose())

    table = Table(title="Episodes by task")
    for col in ("task", "episodes", "mean reward", "steps", "sampled tok", "trained tok", "delivered", "stop reasons"):
        table.add_column(col, no_wrap=col != "stop reasons")
    by_task: dict[str, list[Any]] = {}
    for tr in main:
        by_task.setdefault(tr.task_id, []).append(tr)
    for task_id, trs in by_task.items():
        stops: dict[str, int] = {}
        for tr in trs:
            stops[tr.stop_reason.value] = stops.get(tr.stop_reason.value, 0) + 1
        sampled = sum(tr.sampled_tokens for tr in trs)
        trained = sum(tr.trained_tokens for tr in trs)
        table.add_row(task_id, str(len(trs)), f"{sum(tr.reward for tr in trs) / len(trs):.2f}",
                      f"{sum(tr.num_steps for tr in trs) / len(trs):.1f}", str(sampled), str(trained),
                      f"{trained / sampled if sampled else 1.0:.3f}", ", ".join(f"{k}:{v}" for k, v in stops.items()))
    console.print(table)
    sampled = sum(tr.sampled_tokens for tr in main)
    trained = sum(tr.trained_tokens for tr in main)
    mixed = sum(1 for trs in by_task.values() if len({tr.reward for tr in trs}) > 1)
    summary = {
        "runtime": result.backend, "episodes": len(main), "tasks": len(by_task),
        "mean_reward": sum(tr.reward for tr in main) / max(1, len(main)),
        "sampled_tokens": sampled, "trained_tokens": trained,
        "delivered_fraction": trained / sampled if sampled else 1.0,
        "errors": sum(1 for tr in main if tr.error is not None),
        "groups_with_signal": mixed,
        "grpo": {k: metrics[k] for k in ("loss", "pg_loss", "grad_norm", "rows", "groups", "adv_abs_mean",
                                         "action_tokens") if k in metrics},
        "journal": str(result.journal), "parquet": str(result.parquet), "calls": str(result.out_dir / "calls"),
        "seconds": time.time() - t0,
    }
    say(f"{mixed} of {len(by_task)} task groups have differing rewards; the others get zero GRPO advantage "
        "(expected for an untrained tiny model).")
    say(f"GRPO update: loss {metrics.get('loss', 0):.4f}, grad norm {metrics.get('grad_norm', 0):.3f}, "
        f"{int(metrics.get('rows', 0))} steps in {int(metrics.get('groups', 0))} groups; weights pushed to the engine "
        "(policy version 1)")
    say(f"delivered_fraction (trained / sampled tokens): {summary['delivered_fraction']:.3f}")
    say(f"Dataset: {result.parquet} and {result.journal}; call journal: {result.out_dir / 'calls'}")
    say(f"Done in {summary['seconds']:.0f}s. Look at a trajectory: agentgym view {result.out_dir}")
    return summary
