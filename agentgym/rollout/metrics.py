"""A run's figures: live on the progress bar, and in ``<out>/summary.json`` at the end.

- **episodes per second** over the run's wall time;
- **environment utilization**: the time sandboxes were busy with episodes (image waits left out)
  over the time the run's ``concurrency`` slots were open;
- **engine wait ratio**: the time the agents' calls spent in the proxy and engine over the time
  the agents ran (high: the engine is the bottleneck; low: the environment is);
- **build vs run time**: seconds preparing images (builds, or checks that an image is up to
  date) beside the summed episode time, which no longer includes them;
- **failures by type**: stop reasons other than ``completed``/``step_limit``, and error types;
- **branches** (tree rollouts): episodes that replayed another's first calls, and the share of
  them whose harness diverged from the recording (:mod:`agentgym.rollout.branch`).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from agentgym.types import BRANCH_KEY, StopReason, Trajectory

__all__ = ["RunMetrics", "RunSummary", "format_summary"]

_OK = (StopReason.COMPLETED, StopReason.STEP_LIMIT)


@dataclass(frozen=True)
class RunSummary:
    """What one invocation of a run did (``<out>/summary.json``; history in ``runs.jsonl``)."""

    run_id: str
    out_dir: str
    backend: str
    status: str
    """``completed``, ``stopped by SIGTERM`` (or another signal), or ``failed: <reason>``."""
    episodes: int
    """Episodes this invocation finished (main agents)."""
    skipped: int = 0
    """(task, sample) pairs already done in the journal."""
    retried: int = 0
    """Pairs whose last attempt had failed outside the agent, run again."""
    resumed: int = 0
    """Pairs with a half episode (in flight at an earlier crash or stop), run again from the start."""
    interrupted: int = 0
    """This invocation's episodes cut short by a stop (listed in ``interrupted.jsonl``)."""
    half_calls_kept: int = 0
    """Calls of half episodes found or left by this invocation, kept in ``calls/``."""
    unsaved: int = 0
    """Finished episodes the journal could not take (a full or read-only disk)."""
    seconds: float = 0.0
    episodes_per_s: float = 0.0
    build_s: float = 0.0
    builds: int = 0
    run_s: float = 0.0
    """Summed episode time, image preparation excluded."""
    utilization: float = 0.0
    engine_wait_ratio: float = 0.0
    mean_reward: float = 0.0
    delivered_fraction: float = 1.0
    failures: dict[str, int] = field(default_factory=dict)
    """Stop reason -> episodes, for stops other than completed / step_limit."""
    errors: dict[str, int] = field(default_factory=dict)
    """Error type (at its boundary) -> episodes."""
    branches: int = 0
    """Branch episodes (replaying another episode's first calls)."""
    divergence_rate: float = 0.0
    """Branches whose harness stopped matching the recorded calls, over branches."""
    divergences: dict[str, int] = field(default_factory=dict)
    """Divergence kind -> branches."""
    cancelled: int = 0
    """Episodes cut short because their group had its samples (over-provisioning); kept as data."""
    pool: dict[str, Any] = field(default_factory=dict)
    """What the warm pool did (``RolloutConfig.warm_pool``): warm hand-offs, cold starts..."""
    ended_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class RunMetrics:
    """Accumulates finished episodes; :meth:`stats` for the progress bar, :meth:`summary` at the end."""

    def __init__(self, concurrency: int, total: int) -> None:
        self.slots = max(1, min(concurrency, total)) if total else 1
        self.t0 = time.time()
        self.episodes: list[Trajectory] = []

    def add(self, t: Trajectory) -> None:
        if t.agent_id == "main":
            self.episodes.append(t)

    def _timing(self, key: str) -> float:
        return sum(float((t.metadata.get("timings") or {}).get(key, 0.0)) for t in self.episodes)

    def figures(self) -> dict[str, Any]:
        wall = max(time.time() - self.t0, 1e-9)
        eps = self.episodes
        run_s = sum(max(0.0, t.ended_at - t.started_at) for t in eps)
        agent_s = self._timing("agent_s")
        sampled = sum(t.sampled_tokens for t in eps)
        failures = Counter(t.stop_reason.value for t in eps if t.stop_reason not in _OK)
        scored = [t for t in eps if t.stop_reason != StopReason.CANCELLED]  # cut short: no reward to average
        errors = Counter(f"{t.error.type} ({t.error.boundary})" for t in eps if t.error is not None)
        branches = [t.metadata[BRANCH_KEY] for t in eps if isinstance(t.metadata.get(BRANCH_KEY), dict)]
        kinds = Counter(str(b["divergence"]) for b in branches if b.get("divergence"))
        return {
            "episodes": len(eps), "seconds": wall, "episodes_per_s": len(eps) / wall, "run_s": run_s,
            "utilization": min(1.0, run_s / (wall * self.slots)),
            "engine_wait_ratio": self._timing("engine_s") / agent_s if agent_s > 0 else 0.0,
            "mean_reward": sum(t.reward for t in scored) / len(scored) if scored else 0.0,
            "delivered_fraction": sum(t.trained_tokens for t in eps) / sampled if sampled else 1.0,
            "failures": dict(failures.most_common()), "errors": dict(errors.most_common()),
            "branches": len(branches), "divergence_rate": sum(kinds.values()) / len(branches) if branches else 0.0,
            "divergences": dict(kinds.most_common()),
        }

    def stats(self) -> str:
        """One line for the progress bar."""
        f = self.figures()
        if not f["episodes"]:
            return ""
        failed = sum(f["failures"].values())
        return (f"{f['episodes_per_s']:.2f} ep/s · env {f['utilization']:.0%} · engine wait "
                f"{f['engine_wait_ratio']:.0%} · reward {f['mean_reward']:.2f}"
                + (f" · {failed} failed" if failed else ""))

    def summary(self, **fields: Any) -> RunSummary:
        f = self.figures()
        return RunSummary(**{**f, **fields, "ended_at": time.time()})


def format_summary(s: RunSummary) -> list[str]:
    """The summary as lines for a terminal."""
    lines = [f"{s.status}: {s.episodes} episode(s) in {s.seconds:.1f}s ({s.backend}), "
             f"mean reward {s.mean_reward:.3f}, delivered_fraction {s.delivered_fraction:.3f}"]
    resumed = [f"{n} {what}" for n, what in ((s.skipped, "done before, skipped"),
                                             (s.retried, "failed outside the agent, retried"),
                                             (s.resumed, "cut short earlier, run again from the start"))
               if n]
    if resumed:
        lines.append("resumed: " + ", ".join(resumed))
    if s.half_calls_kept or s.interrupted:
        lines.append(f"half episodes: {s.interrupted} cut short by this stop; their recorded calls "
                     f"({s.half_calls_kept} from this and earlier runs) are kept in {s.out_dir}/calls/, "
                     f"listed in interrupted.jsonl; a resumed run re-runs them from the start")
    lines.append(f"throughput: {s.episodes_per_s:.3f} episodes/s, environment utilization {s.utilization:.0%}, "
                 f"engine wait ratio {s.engine_wait_ratio:.0%}")
    lines.append(f"time: image builds {s.build_s:.1f}s ({s.builds} image(s)), episodes {s.run_s:.1f}s "
                 "(summed, builds excluded)")
    if s.failures or s.errors:
        lines.append("failures: " + ", ".join(f"{k} {v}" for k, v in s.failures.items())
                     + ("; errors: " + ", ".join(f"{k} {v}" for k, v in s.errors.items()) if s.errors else ""))
    if s.branches:
        lines.append(f"branches: {s.branches} replayed another episode's first calls; divergence rate "
                     f"{s.divergence_rate:.3f}" + ("".join(f", {k} {v}" for k, v in s.divergences.items())))
    if s.cancelled:
        lines.append(f"over-provisioning: {s.cancelled} episode(s) cancelled once their group was complete "
                     "(kept, stop reason cancelled, not trained by default)")
    if s.pool:
        lines.append(f"warm pool: {s.pool.get('warm_hits', 0) + s.pool.get('waited', 0)} sandbox(es) handed over "
                     f"warm, {s.pool.get('cold', 0)} started cold, hand-off p50 {s.pool.get('handoff_p50_ms')} ms")
    if s.unsaved:
        lines.append(f"NOT SAVED: {s.unsaved} finished episode(s) could not be written; they run again on resume")
    return lines


def dumps(s: RunSummary) -> str:
    return json.dumps(s.to_json(), indent=2, sort_keys=True)
