"""The public names of every agentgym.trainers module, pinned (a change here is an API change)."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import agentgym.trainers

PUBLIC: dict[str, list[str]] = {
    "agentgym.trainers": [],
    "agentgym.trainers.advantages": [],
    "agentgym.trainers.advantages.base": ["AdvantageResult", "Estimator"],
    "agentgym.trainers.advantages.gigpo": [
        "GiGPOConfig", "anchor_step_groups", "anchor_step_groups_reference", "gigpo_advantages",
        "gigpo_advantages_reference", "gigpo_episode_advantages", "gigpo_episode_advantages_reference",
    ],
    "agentgym.trainers.advantages.grpo": [
        "DrGRPOConfig", "GRPOConfig", "drgrpo_advantages", "drgrpo_advantages_reference", "grpo_advantages",
        "grpo_advantages_reference",
    ],
    "agentgym.trainers.advantages.hgpo": ["HGPOConfig", "hgpo_advantages", "hgpo_advantages_reference"],
    "agentgym.trainers.advantages.mgrpo": [
        "MAIN_REWARD_ATOL", "MGRPOConfig", "agent_role", "align_group_subagents", "align_subagents",
        "main_agent_reward", "mgrpo_advantages", "mgrpo_advantages_reference", "reference_rewards",
        "subagent_links", "subagent_reward", "well_formed",
    ],
    "agentgym.trainers.advantages.synthetic": ["random_step_batch"],
    "agentgym.trainers.advantages.tree": ["TreeConfig", "tree_advantages", "tree_advantages_reference",
                                          "tree_structure"],
    "agentgym.trainers.batch": ["StepBatch", "intern"],
    "agentgym.trainers.anchors": ["with_anchors"],
    "agentgym.trainers.collate": ["collate_groups"],
    "agentgym.trainers.losses": [],
    "agentgym.trainers.losses.base": [
        "AGG_MODES", "AggMode", "KL_CLAMP", "LOG_RATIO_CLAMP", "LossConfig", "LossResult", "PolicyLoss",
        "agg_units", "aggregate", "kl_term", "low_var_kl", "masked_mean",
    ],
    "agentgym.trainers.losses.echo": [
        "EchoConfig", "EchoNorm", "EchoSchedule", "EchoTargets", "echo_lambda", "echo_observation_loss",
        "echo_units", "observation_masks",
    ],
    "agentgym.trainers.losses.gspo": ["GSPO_AGG", "GSPO_DEFAULTS", "GSPO_LOG_RATIO_MAX", "gspo_loss"],
    "agentgym.trainers.losses.ppo": ["DAPO_DEFAULTS", "DR_GRPO_DEFAULTS", "PPO_DEFAULTS", "dapo_loss",
                                     "dr_grpo_loss", "ppo_clip_loss"],
    "agentgym.trainers.losses.reference": ["Matrix", "ref_aggregate", "ref_echo", "ref_gspo", "ref_low_var_kl",
                                           "ref_ppo_clip"],
    "agentgym.trainers.checkpoint": ["capture_rng", "latest_checkpoint", "read_state", "restore_rng",
                                     "save_checkpoint"],
    "agentgym.trainers.config": ["INFRA_STOP_REASONS", "TrainConfig", "apply_overrides", "load_config"],
    "agentgym.trainers.metrics": ["MetricsLog", "format_line", "read_metrics"],
    "agentgym.trainers.multiagent": ["MultiAgentConfig", "multiagent_config", "select_multiagent_groups"],
    "agentgym.trainers.step": ["TokenBatch", "compute_token_logprobs", "train_step"],
    "agentgym.trainers.train": ["TrainResult", "heldout_obs_nll", "select_groups", "train", "train_async",
                                "train_from"],
    "agentgym.trainers.tree_alloc": [
        "allocate_prefix_continuations", "allocate_root_budget", "backup_values", "batch_value_targets",
        "best_prefixes", "prefix_value", "root_value",
    ],
    "agentgym.trainers.tree_rollout": ["PrefixCandidate", "SuccessPredictor", "TaskTree", "TreeRolloutConfig",
                                       "plan_branches", "plan_roots", "prefix_candidates", "tree_rollouts"],
    "agentgym.trainers.update": ["policy_update"],
}


NOT_PINNED: set[str] = set()


def public_modules() -> list[str]:
    found = ["agentgym.trainers"]
    for info in pkgutil.walk_packages(agentgym.trainers.__path__, "agentgym.trainers."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            found.append(info.name)
    return sorted(found)


def test_every_public_module_is_pinned() -> None:
    assert [m for m in public_modules() if m not in NOT_PINNED] == sorted(PUBLIC)


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_all_is_pinned(name: str) -> None:
    assert sorted(importlib.import_module(name).__all__) == sorted(PUBLIC[name])


@pytest.mark.parametrize("name", public_modules())
def test_every_module_has_an_all_naming_what_it_defines(name: str) -> None:
    module = importlib.import_module(name)
    assert isinstance(module.__all__, list)
    assert len(set(module.__all__)) == len(module.__all__)
    for attr in module.__all__:
        assert hasattr(module, attr), f"{name}.__all__ names {attr!r}, which the module does not define"
