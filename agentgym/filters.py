"""Which trajectories go into a dataset: :class:`TrajectoryFilter`.

Every field narrows; the default keeps everything. ``agentgym export`` builds one from its
options (``--min-reward``, ``--stop-reason``...), and the dataset card records the filter that
made the dataset (:meth:`TrajectoryFilter.describe`).

>>> from agentgym.types import StopReason, Trajectory
>>> t = Trajectory(id="t", task_id="x", session_id="s", segments=(), steps=(), reward=1.0,
...                stop_reason=StopReason.COMPLETED)
>>> TrajectoryFilter(min_reward=0.5, stop_reasons=("completed",)).matches(t)
True
>>> TrajectoryFilter(lineage="sub").matches(t), TrajectoryFilter(max_reward=0).reason(t)
(False, 'reward: 1 > max_reward 0')
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from agentgym.errors import ConfigError
from agentgym.types import BreakReason, StopReason, Trajectory

__all__ = ["LINEAGES", "TrajectoryFilter", "apply_filter"]

LINEAGES = ("all", "main", "sub")
"""``main``: main-agent trajectories; ``sub``: sub-agents' (their ``parent_trajectory_id`` set)."""


@dataclass(frozen=True)
class TrajectoryFilter:
    """Keep the trajectories that pass every set field."""

    min_reward: float | None = None
    max_reward: float | None = None
    stop_reasons: Sequence[str] = ()
    """Keep only these stop reasons (``completed``, ``step_limit``...)."""
    harnesses: Sequence[str] = ()
    envs: Sequence[str] = ()
    min_tokens: int | None = None
    max_tokens: int | None = None
    """Bounds on the longest segment's length (what a trainer's ``max_length`` cuts)."""
    min_steps: int | None = None
    max_steps: int | None = None
    exclude_breaks: Sequence[str] = ()
    """Drop trajectories with a segment that starts for one of these reasons (``history_edited``,
    ``assistant_edited``...): keep only histories the harness never rewrote."""
    lineage: str = "all"
    """``all``, ``main`` (main agents only) or ``sub`` (sub-agents only)."""
    min_policy_version: int | None = None
    max_policy_version: int | None = None
    """Bounds on the policy versions of every sampled token (on-policy slices of a training run)."""
    scorable_only: bool = False
    """Drop episodes that ended outside the agent (runtime, engine or verifier failures)."""

    def __post_init__(self) -> None:
        if self.lineage not in LINEAGES:
            raise ConfigError(f"lineage must be one of {', '.join(LINEAGES)}, got {self.lineage!r}")
        known = {s.value for s in StopReason}
        bad = [s for s in self.stop_reasons if s not in known]
        if bad:
            raise ConfigError(f"unknown stop reason(s) {', '.join(bad)}; known: {', '.join(sorted(known))}")
        breaks = {b.value for b in BreakReason}
        bad = [b for b in self.exclude_breaks if b not in breaks]
        if bad:
            raise ConfigError(f"unknown break reason(s) {', '.join(bad)}; known: {', '.join(sorted(breaks))}")

    def reason(self, t: Trajectory) -> str | None:
        """Why ``t`` is left out, ``kind: detail`` (``None``: it is kept)."""
        if self.min_reward is not None and t.reward < self.min_reward:
            return f"reward: {t.reward:g} < min_reward {self.min_reward:g}"
        if self.max_reward is not None and t.reward > self.max_reward:
            return f"reward: {t.reward:g} > max_reward {self.max_reward:g}"
        if self.stop_reasons and t.stop_reason.value not in self.stop_reasons:
            return f"stop_reason: {t.stop_reason.value}"
        if self.scorable_only and t.stop_reason.outside_the_agent:
            return f"unscorable: {t.stop_reason.value}"
        if self.harnesses and t.harness not in self.harnesses:
            return f"harness: {t.harness}"
        if self.envs and t.env not in self.envs:
            return f"env: {t.env}"
        longest = max((len(s) for s in t.segments), default=0)
        if self.min_tokens is not None and longest < self.min_tokens:
            return f"length: longest segment {longest} < min_tokens {self.min_tokens}"
        if self.max_tokens is not None and longest > self.max_tokens:
            return f"length: longest segment {longest} > max_tokens {self.max_tokens}"
        if self.min_steps is not None and t.num_steps < self.min_steps:
            return f"steps: {t.num_steps} < min_steps {self.min_steps}"
        if self.max_steps is not None and t.num_steps > self.max_steps:
            return f"steps: {t.num_steps} > max_steps {self.max_steps}"
        breaks = {s.break_reason.value for s in t.segments}
        hit = sorted(breaks & set(self.exclude_breaks))
        if hit:
            return f"break_reason: {', '.join(hit)}"
        is_sub = t.agent_id != "main" or t.parent_trajectory_id is not None
        if (self.lineage == "main" and is_sub) or (self.lineage == "sub" and not is_sub):
            return f"lineage: {'sub-agent' if is_sub else 'main agent'}"
        if self.min_policy_version is not None or self.max_policy_version is not None:
            versions = [v for s in t.segments for v, a in zip(s.policy_version, s.action_mask, strict=False) if a]
            lo = self.min_policy_version
            hi = self.max_policy_version
            if lo is not None and any(v < lo for v in versions):
                return f"policy_version: {min(versions)} < min_policy_version {lo}"
            if hi is not None and any(v > hi for v in versions):
                return f"policy_version: {max(versions)} > max_policy_version {hi}"
        return None

    def matches(self, t: Trajectory) -> bool:
        return self.reason(t) is None

    def describe(self) -> dict[str, Any]:
        """The fields that narrow (for the dataset card); ``{}`` when nothing is filtered."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value in (None, (), [], False) or (f.name == "lineage" and value == "all"):
                continue
            out[f.name] = list(value) if isinstance(value, (tuple, list)) else value
        return out


def apply_filter(trajectories: Iterable[Trajectory], flt: TrajectoryFilter) -> tuple[list[Trajectory], Counter[str]]:
    """The trajectories ``flt`` keeps, and how many were dropped for which kind of reason."""
    kept: list[Trajectory] = []
    dropped: Counter[str] = Counter()
    for t in trajectories:
        why = flt.reason(t)
        if why is None:
            kept.append(t)
        else:
            dropped[why.split(":")[0]] += 1
    return kept, dropped
