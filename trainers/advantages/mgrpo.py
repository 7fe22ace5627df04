"""M-GRPO: a main agent and its sub-agents, each normalised among the same agent's samples.

Advantages: GRPO (unbiased std, ``eps = 1e-6``, no guard for std = 0; a one-sample group uses
mean 0, std 1) over trajectories grouped by ``(task group, agent)``. Each trajectory is one sample
(``stats_over="trajectories"``, as in the M-GRPO reference, where an agent's multi-turn
transcript is one sequence); ``"steps"`` weighs rows like verl-agent's GRPO. The agent of a trajectory is
its rows' ``agent_ids`` reduced to the *role* (:func:`agentgym.agents.agent_role`: ``"sub-1"`` and
``"sub-2"``, or ``"sub:0"`` and ``"sub:1"``, are all ``"sub"``) by default, or the full id with
``agent_key="id"``. A trajectory must belong to one agent: split sub-agent calls into their own
trajectories (the reconstructor does: one trajectory per agent of a session).

Links: a sub-agent trajectory belongs to the main rollout named by its ``parent_trajectory_id``
(:func:`subagent_links`; data written before that field existed falls back to the main trajectory
of the same session). A batch built from groups carries the link per row
(``StepBatch.parent_traj``); the estimator refuses a sub-agent whose main rollout sits in another
task group (its credit would come from another task's outcome) and reports
``mgrpo/subagents_per_main``.

Rewards (the reference's): :func:`main_agent_reward` gives 1.0 correct / 0.1 well-formed but wrong /
0.0 malformed; :func:`subagent_reward` gives 0 to a malformed sub-agent transcript, else 0.1 when the
main agent scored 0 or 0.1, else 1.0 (credit flows down from the main outcome).
:func:`reference_rewards` applies both to the trajectories of episodes, through the links: a
transcript is well-formed when it has a step and every step's reply parsed (:func:`well_formed`),
the main agent is correct when the episode's reward reaches ``success_threshold``. The main reward is
compared with 0 and 0.1 within :data:`MAIN_REWARD_ATOL`, not exactly: a reward read back from a
float32 :class:`~agentgym.trainers.batch.StepBatch` is ``0.10000000149011612``, not ``0.1``.

Alignment: :func:`align_subagents` makes every main rollout contribute exactly ``D`` sub-agent
trajectories, duplicating random ones when there are fewer and dropping random ones when there
are more, from a seeded generator. A main rollout with no sub-agent trajectory has nothing to
duplicate and contributes none (reported, never invented). :func:`align_group_subagents` does it
on a task group, through the links.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import torch

from agentgym.agents import agent_role
from agentgym.errors import ConfigError
from agentgym.types import Trajectory, TrajectoryGroup

from ..batch import StepBatch
from ._common import dense, make_result, resolve_config, trajectory_scores
from .base import AdvantageResult
from .grpo import (
    StatsOver,
    check_stats_over,
    trajectory_group_advantages,
    trajectory_group_advantages_reference,
)

__all__ = [
    "MAIN_REWARD_ATOL",
    "MGRPOConfig",
    "agent_role",
    "align_group_subagents",
    "align_subagents",
    "main_agent_reward",
    "mgrpo_advantages",
    "mgrpo_advantages_reference",
    "reference_rewards",
    "subagent_links",
    "subagent_reward",
    "well_formed",
]

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")

MAIN_REWARD_ATOL = 1e-3
"""How close a main-agent reward must be to 0.0 or 0.1 to count as that outcome in
:func:`subagent_reward`. Rewards come back from float32 (or coarser) storage slightly off; the
reference values 0, 0.1 and 1 are at least 0.1 apart, so 1e-3 cannot confuse them."""


@dataclass(frozen=True)
class MGRPOConfig:
    eps: float = 1e-6
    agent_key: Literal["role", "id"] = "role"
    """``"role"``: group ``sub:0`` with ``sub:1`` (the part before ``:``); ``"id"``: the full agent id."""
    stats_over: StatsOver = "trajectories"
    """``"trajectories"``: each trajectory is one sample (reference); ``"steps"``: statistics over rows."""

    def __post_init__(self) -> None:
        check_stats_over(self.stats_over)
        if self.agent_key not in ("role", "id"):
            raise ConfigError(f"agent_key must be 'role' or 'id', got {self.agent_key!r}")


def main_agent_reward(correct: bool, well_formed: bool) -> float:
    """The reference main-agent reward: 1.0 correct, 0.1 well-formed but wrong, 0.0 malformed."""
    if not well_formed:
        return 0.0
    return 1.0 if correct else 0.1


def subagent_reward(main_reward: float, well_formed: bool) -> float:
    """The reference sub-agent reward: 0 if malformed, 0.1 if the main agent scored 0 or 0.1, else 1.0.

    ``main_reward`` matches 0 or 0.1 within :data:`MAIN_REWARD_ATOL`, so a reward read back from a
    float32 batch still counts as "wrong but well-formed":

    >>> import torch
    >>> main = float(torch.tensor(0.1))   # 0.10000000149011612
    >>> subagent_reward(main, True), subagent_reward(1.0, True), subagent_reward(main, False)
    (0.1, 1.0, 0.0)
    """
    if not well_formed:
        return 0.0
    wrong = any(math.isclose(main_reward, v, rel_tol=0.0, abs_tol=MAIN_REWARD_ATOL) for v in (0.0, 0.1))
    return 0.1 if wrong else 1.0


def well_formed(trajectory: Trajectory) -> bool:
    """A transcript is well-formed when it has at least one step and every step's reply parsed
    into the format the harness asked for (``Step.valid``: the proxy's ``valid_action``)."""
    return bool(trajectory.steps) and all(s.valid for s in trajectory.steps)


def subagent_links(trajectories: Sequence[Trajectory]) -> dict[str, str]:
    """Sub-agent trajectory id -> the id of its main rollout's trajectory.

    The link is ``parent_trajectory_id``; a sub-agent trajectory without one (read from data
    written before the field existed, dataset schema v1) belongs to the main trajectory of its
    session. Main-role trajectories, and sub-agents with neither, are not in the result.
    """
    main_of_session = {t.session_id: t.id for t in trajectories if agent_role(t.agent_id) == "main"}
    links: dict[str, str] = {}
    for t in trajectories:
        if agent_role(t.agent_id) == "main":
            continue
        parent = t.parent_trajectory_id or main_of_session.get(t.session_id)
        if parent is not None:
            links[t.id] = parent
    return links


def reference_rewards(trajectories: Sequence[Trajectory], success_threshold: float = 1.0) -> list[Trajectory]:
    """The trajectories with M-GRPO's reference rewards in place of the episode's reward.

    A main-role trajectory gets :func:`main_agent_reward` (correct: its episode reward is at least
    ``success_threshold``; well-formed: :func:`well_formed`); a sub-agent gets
    :func:`subagent_reward` of its main rollout's new reward (through :func:`subagent_links`). A
    sub-agent whose main rollout is not among ``trajectories`` keeps its reward (no outcome to
    credit it from; alignment drops it). The episode's own reward stays in
    ``metadata["episode_reward"]``.
    """
    mains = {t.id: main_agent_reward(t.reward >= success_threshold, well_formed(t))
             for t in trajectories if agent_role(t.agent_id) == "main"}
    links = subagent_links(trajectories)
    out: list[Trajectory] = []
    for t in trajectories:
        if t.id in mains:
            reward = mains[t.id]
        elif links.get(t.id) in mains:
            reward = subagent_reward(mains[links[t.id]], well_formed(t))
        else:
            out.append(t)
            continue
        out.append(dataclasses.replace(t, reward=reward, metadata={**t.metadata, "episode_reward": t.reward}))
    return out


# -- advantages ------------------------------------------------------------------------------------
def _agent_keys(batch: StepBatch, agent_key: str) -> list[str]:
    return [agent_role(a) if agent_key == "role" else a for a in batch.agent_names]


def mgrpo_advantages(batch: StepBatch, config: MGRPOConfig | Mapping[str, Any] | None = None) -> AdvantageResult:
    """M-GRPO advantages (vectorised): GRPO within ``(task group, agent)``.

    >>> from agentgym.trainers.batch import StepBatch
    >>> b = StepBatch.from_arrays(group_ids=[0, 0, 0, 0], traj_ids=[0, 1, 2, 3], step_rewards=[0] * 4,
    ...                           episode_rewards=[1, 0.1, 1, 0.1], agent_ids=["main", "main", "sub:0", "sub:1"])
    >>> [round(x, 3) for x in mgrpo_advantages(b).rows.tolist()]
    [0.707, -0.707, 0.707, -0.707]
    """
    cfg = resolve_config(config, MGRPOConfig)
    if batch.num_rows == 0:
        return make_result(batch, torch.zeros(0, dtype=torch.float64), {})
    keys = _agent_keys(batch, cfg.agent_key)
    vocab = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    agent_of_row = torch.tensor([vocab[k] for k in keys], dtype=torch.long)[batch.agent_index]
    t = batch.num_trajectories
    lo = torch.full((t,), len(vocab), dtype=torch.long).scatter_reduce_(0, batch.traj_ids, agent_of_row, "amin")
    hi = torch.full((t,), -1, dtype=torch.long).scatter_reduce_(0, batch.traj_ids, agent_of_row, "amax")
    if bool((lo != hi).any()):
        bad = int(torch.nonzero(lo != hi)[0, 0])
        raise ConfigError(f"M-GRPO: trajectory {bad} mixes agents; give each sub-agent invocation its own trajectory")
    _, group_t = trajectory_scores(batch)
    key_t, _ = dense(group_t, lo)
    adv = trajectory_group_advantages(batch, key_t, scale=True, eps=cfg.eps, stats_over=cfg.stats_over)
    metrics = {"mgrpo/agent_groups": float(int(key_t.max()) + 1)}
    if batch.parent_traj is not None:
        parent_t = torch.full((t,), -1, dtype=torch.long).scatter_reduce_(0, batch.traj_ids, batch.parent_traj, "amax")
        linked = parent_t >= 0
        if bool(linked.any()):
            crossed = torch.logical_and(linked, torch.ne(group_t[parent_t.clamp(min=0)], group_t))
            if bool(crossed.any()):
                raise ConfigError(f"M-GRPO: sub-agent trajectory {int(torch.nonzero(crossed)[0, 0])} is in another task "
                                  "group than its main rollout; its credit would come from another task's outcome")
        mains = int((lo == vocab["main"]).sum()) if "main" in vocab else 0
        metrics["mgrpo/subagents_per_main"] = float(linked.sum()) / mains if mains else 0.0
    return make_result(batch, adv, metrics)


def mgrpo_advantages_reference(batch: StepBatch,
                               config: MGRPOConfig | Mapping[str, Any] | None = None) -> AdvantageResult:
    """Plain loop version of :func:`mgrpo_advantages` (for tests)."""
    cfg = resolve_config(config, MGRPOConfig)
    key: dict[int, tuple[int, str]] = {}
    for t, g, a in zip(batch.traj_ids.tolist(), batch.group_ids.tolist(), batch.agent_ids, strict=True):
        agent = agent_role(a) if cfg.agent_key == "role" else a
        if key.setdefault(t, (g, agent)) != (g, agent):
            raise ConfigError(f"M-GRPO: trajectory {t} mixes agents; give each sub-agent invocation its own trajectory")
    if batch.parent_traj is not None:
        for t, p in zip(batch.traj_ids.tolist(), batch.parent_traj.tolist(), strict=True):
            if p >= 0 and key[p][0] != key[t][0]:
                raise ConfigError(f"M-GRPO: sub-agent trajectory {t} is in another task group than its main rollout; "
                                  "its credit would come from another task's outcome")
    adv = trajectory_group_advantages_reference(batch, key, scale=True, eps=cfg.eps, stats_over=cfg.stats_over)
    return make_result(batch, torch.tensor(adv, dtype=torch.float64), {})


# -- alignment -------------------------------------------------------------------------------------
def align_subagents(subs_by_main: Mapping[K, Sequence[T]], d: int,
                    rng: random.Random | int) -> dict[K, list[T]]:
    """Give every main rollout exactly ``d`` sub-agent items.

    More than ``d``: keep a random ``d`` (original order kept). Fewer: keep all and append random
    duplicates (drawn with replacement). None: stays empty (nothing to duplicate).

    >>> out = align_subagents({"m0": ["a"], "m1": ["b", "c", "d"], "m2": []}, 2, rng=0)
    >>> {k: len(v) for k, v in out.items()}
    {'m0': 2, 'm1': 2, 'm2': 0}
    """
    if d < 1:
        raise ConfigError(f"align_subagents needs d >= 1, got {d}")
    gen = rng if isinstance(rng, random.Random) else random.Random(rng)
    out: dict[K, list[T]] = {}
    for main, subs in subs_by_main.items():
        items = list(subs)
        if len(items) > d:
            keep = sorted(gen.sample(range(len(items)), d))
            out[main] = [items[i] for i in keep]
        elif items:
            out[main] = items + gen.choices(items, k=d - len(items))
        else:
            out[main] = []
    return out


def align_group_subagents(group: TrajectoryGroup, d: int, rng: random.Random | int) -> TrajectoryGroup:
    """:func:`align_subagents` on a task group: sub-agent trajectories (role other than ``"main"``)
    belong to the main rollout their link names (:func:`subagent_links`: ``parent_trajectory_id``,
    or the same session for data without it). Duplicates get ids ``"<id>#dup<n>"`` so trajectory
    ids stay unique. Sub-agent trajectories whose main rollout is not in the group are dropped.
    The result lists each main rollout followed by its ``d`` sub-agent trajectories.
    """
    mains = [t for t in group.trajectories if agent_role(t.agent_id) == "main"]
    subs: dict[str, list[Trajectory]] = {m.id: [] for m in mains}
    links = subagent_links(group.trajectories)
    for t in group.trajectories:
        if links.get(t.id) in subs:
            subs[links[t.id]].append(t)
    aligned = align_subagents(subs, d, rng)
    out: list[Trajectory] = []
    seen: dict[str, int] = {}
    for m in mains:
        out.append(m)
        for s in aligned[m.id]:
            n = seen.get(s.id, 0)
            seen[s.id] = n + 1
            out.append(s if n == 0 else dataclasses.replace(s, id=f"{s.id}#dup{n}"))
    return dataclasses.replace(group, trajectories=tuple(out))
