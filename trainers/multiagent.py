"""Multi-agent training data (M-GRPO): every agent's trajectories, the reference rewards, and
exactly ``D`` sub-agent trajectories per main rollout.

A multi-agent harness (``agentgym/planner-v0``) makes one trajectory per agent of an episode: the
main agent's, and one per sub-agent invocation, linked to it by ``parent_trajectory_id``. The
training loop hands them all to :func:`select_multiagent_groups`, which

1. leaves out episodes that ended for reasons outside the agent (the main rollout's stop reason,
   :data:`~agentgym.trainers.config.INFRA_STOP_REASONS` by default) together with their
   sub-agents, and trajectories without a trained token (a main rollout without one takes its
   sub-agents along: nothing could be credited to them);
2. gives the reference rewards (``rewards="reference"``,
   :func:`~agentgym.trainers.advantages.mgrpo.reference_rewards`: the main agent 1 / 0.1 / 0 for
   correct / wrong but well-formed / malformed, each sub-agent 0 if malformed, else 0.1 when its
   main rollout scored 0 or 0.1, else 1), or keeps the episode's reward on every agent
   (``rewards="env"``);
3. keeps task groups with a learning signal: some agent role whose trajectories got different
   rewards (``skip_groups_without_signal``);
4. aligns each group: every main rollout keeps exactly ``subagents_per_main`` sub-agent
   trajectories (:func:`~agentgym.trainers.advantages.mgrpo.align_group_subagents`, seeded per
   iteration).

The estimator (``mgrpo``) then normalises within ``(task group, agent role)``.

``policies="shared"`` trains one model on every role's tokens; ``"per-agent"`` trains one model and
optimizer per role in ``roles`` (roles not listed share the first one's), served by an
:class:`~agentgym.engines.routed.AgentRoutedEngine` with one embedded engine per role.

>>> MultiAgentConfig(**{"subagents_per_main": 3, "policies": "per-agent", "roles": ["main", "sub"]}).roles
('main', 'sub')
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from agentgym.agents import MAIN_AGENT, agent_role
from agentgym.errors import ConfigError
from agentgym.types import Trajectory, TrajectoryGroup, group_by_task

from .advantages.mgrpo import align_group_subagents, reference_rewards, subagent_links

__all__ = ["MultiAgentConfig", "multiagent_config", "select_multiagent_groups"]


@dataclass(frozen=True)
class MultiAgentConfig:
    """How the loop trains a main agent and its sub-agents (``[multi_agent]`` in the TOML)."""

    subagents_per_main: int = 2
    """``D``: sub-agent trajectories each main rollout contributes (duplicated or dropped at random)."""
    rewards: Literal["reference", "env"] = "reference"
    """``"reference"``: M-GRPO's reward rules (credit flows down from the main outcome);
    ``"env"``: every agent keeps the episode's reward."""
    success_threshold: float = 1.0
    """An episode reward at least this is a correct main outcome (reference rewards)."""
    policies: Literal["shared", "per-agent"] = "shared"
    """One policy for every agent, or one per role in ``roles`` (embedded engine only)."""
    roles: tuple[str, ...] = (MAIN_AGENT, "sub")
    """The roles that get a policy of their own under ``policies="per-agent"``; the first one also
    serves and trains agents of any other role."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "roles", tuple(self.roles))
        if self.subagents_per_main < 1:
            raise ConfigError(f"multi_agent.subagents_per_main must be at least 1, got {self.subagents_per_main}")
        if self.rewards not in ("reference", "env"):
            raise ConfigError(f"multi_agent.rewards must be 'reference' or 'env', got {self.rewards!r}")
        if self.policies not in ("shared", "per-agent"):
            raise ConfigError(f"multi_agent.policies must be 'shared' or 'per-agent', got {self.policies!r}")
        if not self.roles or len(set(self.roles)) != len(self.roles):
            raise ConfigError(f"multi_agent.roles must name distinct roles, got {list(self.roles)}")

    def policy_role(self, agent_id: str) -> str:
        """The role whose policy serves and trains ``agent_id`` (per-agent policies)."""
        role = agent_role(agent_id)
        return role if role in self.roles else self.roles[0]


def multiagent_config(estimator: str, multi_agent: Mapping[str, Any] | None) -> MultiAgentConfig | None:
    """The run's multi-agent settings: the ``[multi_agent]`` table, or its defaults under the
    ``mgrpo`` estimator; ``None`` (train the main agent only) otherwise."""
    if multi_agent is None:
        return MultiAgentConfig() if estimator == "mgrpo" else None
    if estimator != "mgrpo":
        raise ConfigError(f"multi_agent training groups each agent role separately: it needs estimator='mgrpo', "
                          f"not {estimator!r}")
    try:
        return MultiAgentConfig(**dict(multi_agent))
    except TypeError as e:
        raise ConfigError(f"bad multi_agent table: {e}") from e


def select_multiagent_groups(trajectories: Sequence[Trajectory], config: MultiAgentConfig, *,
                             drop_stop_reasons: Sequence[str] = (), skip_groups_without_signal: bool = True,
                             rng: random.Random | int = 0) -> tuple[list[TrajectoryGroup], dict[str, Any]]:
    """The aligned task groups to train on, and counts of what was left out and why (see the
    module docstring)."""
    drop = set(drop_stop_reasons)
    mains = [t for t in trajectories if agent_role(t.agent_id) == MAIN_AGENT]
    links = subagent_links(trajectories)
    kept_mains = {t.id for t in mains if t.stop_reason.value not in drop}
    kept = [t for t in trajectories if t.id in kept_mains or links.get(t.id) in kept_mains]
    counts: dict[str, Any] = {"episodes_dropped_infra": len(mains) - len(kept_mains),
                              "subagents_orphaned": sum(1 for t in trajectories
                                                        if agent_role(t.agent_id) != MAIN_AGENT and t.id not in links)}
    if config.rewards == "reference":
        kept = reference_rewards(kept, config.success_threshold)
    trainable_mains = {t.id for t in kept if t.id in kept_mains and t.segments and t.trained_tokens > 0}
    counts["episodes_without_tokens"] = len(kept_mains) - len(trainable_mains)
    subs = [t for t in kept if links.get(t.id) in trainable_mains]
    trainable_subs = {t.id for t in subs if t.segments and t.trained_tokens > 0}
    counts["subagents_without_tokens"] = len(subs) - len(trainable_subs)
    usable = [t for t in kept if t.id in trainable_mains or t.id in trainable_subs]
    counts["groups"] = len({t.task_id for t in mains if t.id in kept_mains})
    groups = group_by_task(usable)

    def has_signal(group: TrajectoryGroup) -> bool:
        by_role: dict[str, set[float]] = {}
        for t in group.trajectories:
            by_role.setdefault(agent_role(t.agent_id), set()).add(t.reward)
        return any(len(r) > 1 for r in by_role.values())

    with_signal = [g for g in groups if has_signal(g)]
    counts["groups_with_signal"] = len(with_signal)
    chosen = with_signal if skip_groups_without_signal else groups
    gen = rng if isinstance(rng, random.Random) else random.Random(rng)
    aligned = [align_group_subagents(g, config.subagents_per_main, gen) for g in chosen]
    counts["groups_trained"] = len(aligned)
    before = Counter(agent_role(t.agent_id) == MAIN_AGENT for g in chosen for t in g.trajectories)
    after = Counter(agent_role(t.agent_id) == MAIN_AGENT for g in aligned for t in g.trajectories)
    counts["subagents_before_alignment"] = before[False]
    counts["subagents_after_alignment"] = after[False]
    return aligned, counts
