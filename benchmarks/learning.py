"""Does it learn? GRPO, GiGPO, HGPO, GiGPO + ECHO and tree rollouts at the same episode budget,
several seeds, on the procedurally generated workspace tasks, with the tiny model on CPU; and
M-GRPO training a planner and its workers on team tasks, against GRPO training a single ReAct
agent on them.

    python3 benchmarks/learning.py                       # 6 arms x 3 seeds, 20 iterations each
    python3 benchmarks/learning.py --seeds 0 1 --iterations 10 --parallel 2
    python3 benchmarks/learning.py --arms mgrpo grpo-team --seeds 0 --iterations 1   # a quick look
    python3 benchmarks/learning.py --report-only         # re-plot what is in the output directory
    python3 benchmarks/learning.py --arms tree --seeds 0 --iterations 1 --runtime local   # smallest

Each (arm, seed) is one ``agentgym train`` run (resumable) with 4 tasks x 8 samples per
iteration; the same seed draws the same tasks for every arm of one environment. It prints a table
of success before training (the first iteration) and at the end (the mean of the last five
iterations) with the spread across seeds, writes ``learning.png`` (success rate against episodes,
mean and range over seeds) and ``learning.json`` into the output directory. Each arm is compared
with the baseline of its environment: GRPO on ``terminal/workspace-v0``, ``grpo-team`` on
``terminal/workspace-team-v0``.

The tree arm (``tree``): ``rollout = "tree"`` spends the same 32 episodes per iteration as
trees (:mod:`agentgym.trainers.tree_rollout`): 16 fresh roots split over the 4 tasks by
``V_root``, then 16 branches from the roots' turn-level prefixes chosen by ``V_pref``, each
replaying its prefix's calls through the proxy in a fresh runtime; the ``tree`` estimator trains
on the trees, each shared prefix once. Its curve is the success of its *fresh* episodes
(``tree.root_success_rate``): a branch starts from a chosen prefix, so branch outcomes are not the
policy's success rate. Its table line adds the divergence rate (branches whose harness did not
repeat the recorded requests).

The M-GRPO arm (``mgrpo``): ``terminal/workspace-team-v0`` asks for three independent
requirements, one list item each. The planner (``agentgym/planner-v0``) must delegate: with
``split = "lines"`` every item goes to its own worker before the planner's first call, and its
own tool is the read-only ``inspect``, so only workers change ``/app``; it then checks and
finishes (3 planner calls at most, 4 per worker). M-GRPO trains the planner (role ``main``) and the
workers (role ``sub``) with one shared policy, the reference rewards (a worker's credit comes from
its planner's outcome) and ``D = 3`` workers per planner rollout. The split is the harness's, not
the model's: the tiny model was warm-started on the ``bash`` tool alone and does not call
``delegate`` on its own. Episodes differ in length: up to 15 model calls for the team, 10 for
the ReAct agent of ``grpo-team``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "train" / "tiny-cpu.toml"
TEAM_ENV = "terminal/workspace-team-v0"
ARMS: dict[str, list[str]] = {
    "grpo": ["estimator=grpo", "estimator_config={}"],
    "gigpo": ["estimator=gigpo", "estimator_config={mode = 'mean_std_norm'}"],
    "hgpo": ["estimator=hgpo", "estimator_config={}"],
    "gigpo+echo": ["estimator=gigpo", "estimator_config={mode = 'mean_std_norm'}", "echo={lam = 0.05}",
                   "heldout_tasks=4"],
    "tree": ["estimator=tree", "estimator_config={}", "rollout=tree", "tree={root_fraction = 0.5}"],
    "grpo-team": [f"env={TEAM_ENV}", "estimator=grpo", "estimator_config={}"],
    "mgrpo": [f"env={TEAM_ENV}", "harness=agentgym/planner-v0",
              "harness_kwargs={split = 'lines', planner_tools = 'inspect', worker_max_steps = 4}", "max_steps=3",
              "estimator=mgrpo", "estimator_config={}", "multi_agent={subagents_per_main = 3}"],
}
BASE_ENV = "terminal/workspace-v0"
"""The environment of arms that do not set one (the config file's)."""
BASELINE = {BASE_ENV: "grpo", TEAM_ENV: "grpo-team"}
"""The arm each environment's arms are compared with."""
LAST = 5


def arm_env(arm: str) -> str:
    return next((item[4:] for item in ARMS[arm] if item.startswith("env=")), BASE_ENV)


def run_arm(arm: str, seed: int, args: argparse.Namespace) -> tuple[str, int, float, int]:
    out = Path(args.out) / f"{arm}-s{seed}"
    cmd = [sys.executable, "-m", "agentgym.cli", "train", "--config", str(CONFIG),
           "--set", f"out={out}", "--set", f"seed={seed}", "--set", f"iterations={args.iterations}",
           "--set", f"runtime={args.runtime}", "--set", "progress=false",
           "--set", f"concurrency={args.concurrency}"]
    for item in ARMS[arm]:
        cmd += ["--set", item]
    t = time.time()
    log = out.with_suffix(".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as f:
        code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=False).returncode
    return arm, seed, time.time() - t, code


def load(out: Path, arm: str, seed: int) -> list[dict[str, Any]]:
    path = out / f"{arm}-s{seed}" / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def report(args: argparse.Namespace) -> dict[str, Any]:
    out = Path(args.out)
    summary: dict[str, Any] = {}
    curves: dict[str, list[tuple[list[int], list[float]]]] = {}
    for arm in ARMS:
        finals, firsts, curves[arm] = [], [], []
        nll: list[tuple[float, float]] = []
        divergence: list[float] = []
        for seed in args.seeds:
            m = load(out, arm, seed)
            if not m:
                continue
            episodes, success, total = [], [], 0
            for it in m:
                total += it["episodes"]
                episodes.append(total)
                # a tree's branches start from chosen prefixes: its fresh episodes measure the policy
                success.append(it["tree"]["root_success_rate"] if "tree" in it else it["success_rate"])
                if "tree" in it:
                    divergence.append(it["tree"]["divergence_rate"])
            curves[arm].append((episodes, success))
            firsts.append(success[0])
            finals.append(statistics.fmean(success[-LAST:]))
            if "heldout_obs_nll" in m[0]:
                nll.append((m[0]["heldout_obs_nll"], m[-1]["heldout_obs_nll"]))
        if finals:
            summary[arm] = {"env": arm_env(arm), "seeds": len(finals), "iterations": len(curves[arm][0][0]),
                            "episodes": curves[arm][0][0][-1], "first": statistics.fmean(firsts),
                            "final_mean": statistics.fmean(finals),
                            "final_std": statistics.stdev(finals) if len(finals) > 1 else 0.0,
                            "final_min": min(finals), "final_max": max(finals), "finals": finals}
            if divergence:
                summary[arm]["divergence_rate"] = statistics.fmean(divergence)
            if nll:
                summary[arm]["heldout_obs_nll_first"] = statistics.fmean(a for a, _ in nll)
                summary[arm]["heldout_obs_nll_last"] = statistics.fmean(b for _, b in nll)
    print(f"\nSuccess rate (tiny model, CPU; final = mean of the last {LAST} iterations; "
          "each arm against its environment's baseline)")
    print(f"{'arm':12} {'env':27} {'seeds':>5} {'episodes':>8} {'first':>7} {'final':>14} {'range':>13} "
          f"{'vs base':>8}")
    for arm, s in summary.items():
        base = summary.get(BASELINE.get(s["env"], ""), {}).get("final_mean")
        ratio = f"{s['final_mean'] / base:7.2f}x" if base else "      -"
        print(f"{arm:12} {s['env']:27} {s['seeds']:5d} {s['episodes']:8d} {s['first']:7.2f} {s['final_mean']:7.2f} "
              f"± {s['final_std']:.2f} {s['final_min']:6.2f}-{s['final_max']:.2f} {ratio:>8}")
        if "divergence_rate" in s:
            print(f"{'':12} branch divergence rate {s['divergence_rate']:.3f} (fresh episodes' success shown)")
        if "heldout_obs_nll_first" in s:
            print(f"{'':12} held-out observation NLL {s['heldout_obs_nll_first']:.3f} -> {s['heldout_obs_nll_last']:.3f} "
                  "nats/token")
    (out / "learning.json").write_text(json.dumps(summary, indent=1))
    plot(curves, out / "learning.png")
    return summary


def plot(curves: dict[str, list[tuple[list[int], list[float]]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for arm, runs in curves.items():
        if not runs:
            continue
        n = min(len(e) for e, _ in runs)
        x = runs[0][0][:n]
        ys = [s[:n] for _, s in runs]
        mean = [statistics.fmean(col) for col in zip(*ys, strict=True)]
        lo = [min(col) for col in zip(*ys, strict=True)]
        hi = [max(col) for col in zip(*ys, strict=True)]
        env = "" if arm_env(arm) == BASE_ENV else f", {arm_env(arm).split('/')[-1]}"
        (line,) = ax.plot(x, mean, label=f"{arm} ({len(runs)} seeds{env})")
        ax.fill_between(x, lo, hi, alpha=0.15, color=line.get_color())
    ax.set_xlabel("episodes")
    ax.set_ylabel("success rate per iteration (32 episodes)")
    ax.set_title("workspace tasks, tiny model on CPU: mean and range over seeds")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=2, help="runs at once (each uses one CPU thread)")
    parser.add_argument("--concurrency", type=int, default=8, help="episodes in flight per run")
    parser.add_argument("--runtime", default="docker")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "learning"))
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    if not args.report_only:
        jobs = [(arm, seed) for seed in args.seeds for arm in args.arms]
        t0 = time.time()
        with concurrent.futures.ThreadPoolExecutor(args.parallel) as pool:
            for arm, seed, secs, code in pool.map(lambda j: run_arm(j[0], j[1], args), jobs):
                status = "ok" if code == 0 else f"FAILED (exit {code}, see {arm}-s{seed}.log)"
                print(f"{arm:12} seed {seed}: {secs / 60:5.1f} min {status}", flush=True)
        print(f"all runs: {(time.time() - t0) / 60:.1f} min")
    report(args)


if __name__ == "__main__":
    main()
