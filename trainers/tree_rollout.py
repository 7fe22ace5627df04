"""Tree rollouts: spend an iteration's episode budget as trees, branching black-box harnesses by
replay (``rollout = "tree"`` in the training config).

One iteration with a budget of ``M`` episodes (``tasks_per_iteration x group_size``, as GRPO):

1. **Roots.** ``root_fraction`` of ``M`` (at least ``min_roots_per_task`` per task) are fresh
   episodes, split over the tasks by :func:`~agentgym.trainers.tree_alloc.allocate_root_budget`
   (``V_root``) with each task's predicted success rate.
2. **Branches**, in ``waves`` waves. The candidates are the turn-level prefixes of the finished
   episodes so far: the first ``t`` turns of an episode, ``1 <= t < its turns``, one candidate per
   tree node (a branch's replayed turns are its parent's node). Each gets ``(V(H), r)``: ``r`` the
   mean outcome of the episodes through it, ``V(H)`` the predicted success from the prefix
   (:class:`SuccessPredictor`); :func:`~agentgym.trainers.tree_alloc.allocate_prefix_continuations`
   gives the wave's budget to the prefixes with the largest ``V_pref``. A continuation from a
   prefix is a branch episode that replays the prefix's calls through the proxy
   (:mod:`agentgym.rollout.branch`), then samples. Budget no prefix can take (every episode
   ended after one turn) goes to fresh episodes, so the iteration always runs ``M``.
3. The episodes read back as trees (``TrajectoryGroup.parents`` from each branch's
   ``metadata["branch"]``, by :func:`agentgym.types.group_by_task`): the ``tree`` estimator
   computes advantages on them, and a shared prefix's tokens are trained once (in the episode
   that sampled them; the replayed copies are context).

The success predictor is tabular and online. Per task it keeps decayed counts of backed-up
outcomes (the tree's root value, :func:`~agentgym.trainers.tree_alloc.backup_values`: the mean
outcome of every episode in the tree), from which ``v_task`` is predicted; a prefix's ``V(H)`` is
the backed-up value of its node, shrunk toward ``v_task`` by ``prior_weight`` pseudo-episodes.
It does not read the prefix's content (TRACE learns a model for that); its targets, predictions
and Brier score are reported every iteration (``metrics["tree"]``) and it is saved with the run
(``tree_predictor.json``). Outcomes are rewards clipped to ``[0, 1]``.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentgym.errors import ConfigError
from agentgym.rollout.branch import Branch, branch_from
from agentgym.rollout.runner import RolloutResult
from agentgym.types import BRANCH_KEY, StopReason, Trajectory

from .tree_alloc import allocate_prefix_continuations, allocate_root_budget, backup_values

__all__ = ["PrefixCandidate", "SuccessPredictor", "TaskTree", "TreeRolloutConfig", "plan_branches", "plan_roots",
           "prefix_candidates", "tree_rollouts"]

RunWave = Callable[[Mapping[str, int], Sequence[Branch]], Awaitable[RolloutResult]]
"""``run(samples_by_task, branches)``: runs (or resumes) the iteration's episodes so far into one
rollout directory and returns all of them."""


@dataclass(frozen=True)
class TreeRolloutConfig:
    """The ``[tree]`` table of a training config (``rollout = "tree"``)."""

    root_fraction: float = 0.5
    """Share of the iteration's episodes that are fresh roots; the rest are branches."""
    min_roots_per_task: int = 2
    max_roots_per_task: int | None = None
    waves: int = 1
    """Branch waves; each branches from every episode finished before it (branches of branches)."""
    max_per_prefix: int | None = None
    """Most continuations one prefix gets in one wave (``None``: no cap)."""
    prior_weight: float = 1.0
    """Pseudo-episodes of the task's predicted success in a prefix's value."""
    prior_success: float = 0.5
    """Predicted success of a task never seen."""
    predictor_decay: float = 0.5
    """Weight kept by a task's earlier counts each time it is updated (the policy moves on)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.root_fraction <= 1.0:
            raise ConfigError(f"tree.root_fraction must be in (0, 1], got {self.root_fraction}")
        if self.min_roots_per_task < 1 or self.waves < 1:
            raise ConfigError("tree.min_roots_per_task and tree.waves must be at least 1")
        if not 0.0 <= self.prior_success <= 1.0 or not 0.0 <= self.predictor_decay <= 1.0 or self.prior_weight < 0:
            raise ConfigError("tree.prior_success and tree.predictor_decay are in [0, 1]; tree.prior_weight >= 0")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> TreeRolloutConfig:
        try:
            return cls(**dict(data or {}))
        except TypeError as e:
            raise ConfigError(f"bad [tree] table: {e} (fields: {', '.join(cls.__dataclass_fields__)})") from None


def outcome(t: Trajectory) -> float:
    return min(1.0, max(0.0, float(t.reward)))


@dataclass
class SuccessPredictor:
    """Per-task success rates from decayed counts of backed-up tree values (see the module docstring).

    >>> p = SuccessPredictor(TreeRolloutConfig())
    >>> p.predict("t"), p.update("t", value=1.0, leaves=3), round(p.predict("t"), 3)
    (0.5, None, 0.875)
    >>> round(p.prefix_value("t", value=0.0, leaves=1), 4)   # one failure through the prefix
    0.4375
    """

    config: TreeRolloutConfig
    counts: dict[str, tuple[float, float]] = field(default_factory=dict)
    """task -> (decayed sum of outcomes, decayed number of episodes)."""

    def predict(self, task_id: str) -> float:
        s, n = self.counts.get(task_id, (0.0, 0.0))
        w, v0 = 1.0, self.config.prior_success
        return (s + w * v0) / (n + w)

    def update(self, task_id: str, value: float, leaves: int) -> None:
        """Fold in one tree's backed-up root value (the mean outcome of its ``leaves`` episodes)."""
        s, n = self.counts.get(task_id, (0.0, 0.0))
        d = self.config.predictor_decay
        self.counts[task_id] = (d * s + value * leaves, d * n + leaves)

    def prefix_value(self, task_id: str, value: float, leaves: int) -> float:
        """``V(H)``: the backed-up value of a prefix's node, shrunk toward the task's prediction."""
        w = self.config.prior_weight
        return (value * leaves + w * self.predict(task_id)) / (leaves + w) if leaves + w > 0 else self.predict(task_id)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({k: list(v) for k, v in sorted(self.counts.items())}, indent=1))

    def load(self, path: Path) -> None:
        if path.is_file():
            self.counts = {k: (float(v[0]), float(v[1])) for k, v in json.loads(path.read_text()).items()}


@dataclass(frozen=True)
class PrefixCandidate:
    """The first ``turn`` turns of ``trajectory`` (a tree node), with its value and outcome."""

    trajectory: Trajectory
    turn: int
    value: float
    """``V(H)``: predicted success from this prefix."""
    outcome: float
    """``r``: mean outcome of the episodes through it."""


class TaskTree:
    """One task's episodes as a tree of turn-level prefixes (node 0 is the task's root)."""

    def __init__(self, trajectories: Sequence[Trajectory]) -> None:
        self.trajectories = [t for t in trajectories if t.agent_id == "main"]
        self.by_id = {t.id: t for t in self.trajectories}
        self.parents: list[int] = [-1]
        self.key_of: list[tuple[str, int]] = [("", -1)]
        self._node: dict[tuple[str, int], int] = {}
        leaves: dict[int, list[float]] = {}
        for t in self.trajectories:
            leaves.setdefault(self.node(t.id, len(t.steps) - 1), []).append(outcome(t))
        self.values, self.leaves = backup_values(self.parents, leaves)

    def _resolve(self, traj_id: str, turn: int) -> tuple[str, int]:
        seen: set[str] = set()
        while traj_id not in seen:
            seen.add(traj_id)
            b = self.by_id[traj_id].metadata.get(BRANCH_KEY)
            if not isinstance(b, Mapping) or b.get("parent") not in self.by_id or turn >= int(b.get("shared_turns") or 0):
                break
            traj_id = str(b["parent"])
        return traj_id, turn

    def node(self, traj_id: str, turn: int) -> int:
        """The node reached by turn ``turn`` of a trajectory (the root for ``turn < 0``)."""
        if turn < 0:
            return 0
        key = self._resolve(traj_id, turn)
        n = self._node.get(key)
        if n is None:
            parent = self.node(key[0], key[1] - 1)
            n = self._node[key] = len(self.parents)
            self.parents.append(parent)
            self.key_of.append(key)
        return n

    @property
    def root_value(self) -> float:
        return self.values[0]


def branchable(t: Trajectory) -> bool:
    """A finished main-agent episode whose journal can be replayed, with a turn to branch after."""
    return (t.agent_id == "main" and not t.stop_reason.outside_the_agent and len(t.steps) >= 2 and bool(t.segments)
            and t.stop_reason != StopReason.CONTEXT_OVERFLOW)


def prefix_candidates(trajectories: Sequence[Trajectory], predictor: SuccessPredictor) -> list[PrefixCandidate]:
    """Every distinct branchable prefix (turns ``1 .. n-1`` of each episode), earliest turns first."""
    out: list[PrefixCandidate] = []
    by_task: dict[str, list[Trajectory]] = {}
    for t in trajectories:
        by_task.setdefault(t.task_id, []).append(t)
    for task_id, trajs in by_task.items():
        tree = TaskTree(trajs)
        seen: set[int] = set()
        for t in tree.trajectories:
            if not branchable(t):
                continue
            for turn in range(1, len(t.steps)):
                n = tree.node(t.id, turn - 1)
                owner_id, last = tree.key_of[n]
                owner = tree.by_id[owner_id]
                if n in seen or not branchable(owner):
                    continue
                seen.add(n)
                out.append(PrefixCandidate(owner, last + 1, predictor.prefix_value(task_id, tree.values[n], tree.leaves[n]),
                                           tree.values[n]))
    return sorted(out, key=lambda c: c.turn)  # stable: ties spread over episodes, early turns first


def plan_roots(task_ids: Sequence[str], budget: int, predictor: SuccessPredictor,
               config: TreeRolloutConfig) -> dict[str, int]:
    """Fresh episodes per task for the first wave (``V_root`` with predicted success rates)."""
    n = min(budget, max(len(task_ids) * config.min_roots_per_task, round(budget * config.root_fraction)))
    floor = min(config.min_roots_per_task, n // max(1, len(task_ids)))
    alloc = allocate_root_budget([predictor.predict(t) for t in task_ids], n, min_per_task=floor,
                                 max_per_task=config.max_roots_per_task)
    return dict(zip(task_ids, alloc, strict=True))


def plan_branches(trajectories: Sequence[Trajectory], budget: int, predictor: SuccessPredictor,
                  config: TreeRolloutConfig, calls_dir: Path) -> tuple[list[Branch], int]:
    """Branches for one wave (``V_pref`` over the prefixes so far) and the budget left unplaced."""
    cands = prefix_candidates(trajectories, predictor)
    cap = config.max_per_prefix
    room = len(cands) * cap if cap is not None else (budget if cands else 0)
    placed = min(budget, room)
    ks = allocate_prefix_continuations([(c.value, c.outcome) for c in cands], placed, max_per_prefix=cap) if placed else []
    branches = [branch_from(c.trajectory, c.turn, calls_dir) for c, k in zip(cands, ks, strict=True) for _ in range(k)]
    return branches, budget - placed


async def tree_rollouts(run: RunWave, task_ids: Sequence[str], budget: int, predictor: SuccessPredictor,
                        config: TreeRolloutConfig, calls_dir: Path) -> tuple[RolloutResult, dict[str, Any]]:
    """Run one iteration's budget as trees (module docstring); returns every episode and the
    ``tree`` metrics. The predictor is updated with the trees' backed-up values at the end."""
    roots = plan_roots(task_ids, budget, predictor, config)
    predicted = {t: predictor.predict(t) for t in task_ids}
    result = await run(roots, [])
    left = budget - sum(roots.values())
    branches: list[Branch] = []
    waves = config.waves
    for w in range(waves):
        share = left // (waves - w)
        planned, unplaced = plan_branches(_planned(result.main, roots, branches), share, predictor, config, calls_dir)
        left -= share
        fresh = [Branch(parent_id="", task_id=task_ids[i % len(task_ids)], turn=0, calls=())
                 for i in range(unplaced)]  # a branch at the root is a fresh episode
        if not planned and not fresh:
            continue
        branches += planned + fresh
        result = await run(roots, branches)
    mine = _planned(result.trajectories, roots, branches)
    result = dataclasses.replace(result, trajectories=mine)
    return result, _report(result.main, roots, branches, predicted, predictor)


def _planned(trajectories: Sequence[Trajectory], roots: Mapping[str, int],
             branches: Sequence[Branch]) -> list[Trajectory]:
    """The episodes of this plan so far. A rollout directory returns every episode in its journal,
    and a resumed iteration's journal may hold episodes of waves not planned yet: planning from
    them would number its branches differently from the run it resumes."""
    n = dict(roots)
    for b in branches:
        n[b.task_id] = n.get(b.task_id, 0) + 1
    return [t for t in trajectories if t.sample_index < n.get(t.task_id, 0)]


def _report(trajectories: Sequence[Trajectory], roots: Mapping[str, int], branches: Sequence[Branch],
            predicted: Mapping[str, float], predictor: SuccessPredictor) -> dict[str, Any]:
    kids = [t for t in trajectories if isinstance(t.metadata.get(BRANCH_KEY), Mapping)]
    kinds = Counter(str(t.metadata[BRANCH_KEY].get("divergence")) for t in kids
                    if t.metadata[BRANCH_KEY].get("divergence"))
    by_task: dict[str, list[Trajectory]] = {}
    for t in trajectories:
        if not t.stop_reason.outside_the_agent:
            by_task.setdefault(t.task_id, []).append(t)
    targets: dict[str, float] = {}
    observed: dict[str, float] = {}
    fresh_all: list[float] = []
    for task_id, trajs in by_task.items():
        tree = TaskTree(trajs)
        targets[task_id] = tree.root_value
        fresh = [outcome(t) for t in trajs if not isinstance(t.metadata.get(BRANCH_KEY), Mapping)]
        if fresh:
            observed[task_id] = sum(fresh) / len(fresh)
            fresh_all += fresh
        predictor.update(task_id, tree.root_value, tree.leaves[0])
    brier = [(predicted[t] - observed[t]) ** 2 for t in observed if t in predicted]
    return {
        "roots": int(sum(roots.values())), "branches": len(kids),
        "fresh_for_unplaced_budget": sum(1 for b in branches if b.turn == 0),
        "divergence_rate": sum(kinds.values()) / len(kids) if kids else 0.0,
        "divergences": dict(kinds),
        "shared_turns_mean": (sum(int(t.metadata[BRANCH_KEY].get("shared_turns") or 0) for t in kids) / len(kids)
                              if kids else 0.0),
        "replayed_calls": sum(int(t.metadata[BRANCH_KEY].get("replayed") or 0) for t in kids),
        "roots_by_task": dict(roots),
        "predicted_success": dict(predicted),
        "root_success": observed,
        "root_success_rate": sum(f >= 1.0 for f in fresh_all) / len(fresh_all) if fresh_all else 0.0,
        "value_targets": targets,
        "predictor_brier": sum(brier) / len(brier) if brier else None,
    }
