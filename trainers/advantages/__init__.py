"""Advantage estimators: one registry, one signature.

Every estimator is ``estimator(batch: StepBatch, config) -> AdvantageResult`` where ``config`` is
the estimator's frozen config dataclass, a mapping of its fields, or ``None`` for the reference
defaults. Look one up by name::

    from agentgym import registries
    result = registries.estimators.get("gigpo")(batch, {"mode": "mean_std_norm"})

This list is the only place built-ins are registered; importing this package imports no
estimator module (entry points are lazy ``"module:function"`` strings).
"""

from __future__ import annotations

from agentgym.registries import estimators

__all__: list[str] = []  # nothing to import from here: look estimators up in the registry

_M = "agentgym.trainers.advantages"

estimators.register("grpo", f"{_M}.grpo:grpo_advantages",
                    description="GRPO: trajectory score normalised within the task group (unbiased std)")
estimators.register("drgrpo", f"{_M}.grpo:drgrpo_advantages",
                    description="Dr.GRPO: trajectory score minus the task-group mean")
estimators.register("gigpo", f"{_M}.gigpo:gigpo_advantages",
                    description="GiGPO: episode advantage over step rows + anchor-state step advantage")
estimators.register("hgpo", f"{_M}.hgpo:hgpo_advantages",
                    description="HGPO: weighted advantages over history-consistent step groups")
estimators.register("mgrpo", f"{_M}.mgrpo:mgrpo_advantages",
                    description="M-GRPO: GRPO with separate groups per agent role (main / sub-agents)")
estimators.register("tree", f"{_M}.tree:tree_advantages",
                    description="TreeRL-style: leave-one-out leaf values backed up a rollout tree")
