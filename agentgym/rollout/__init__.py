"""The rollout service: tasks x samples over runtimes, journaled and resumable.

- :mod:`.runner` — :func:`run_rollouts` and its :class:`RolloutConfig`;
- :mod:`.episode` — one episode (:func:`run_episode`): runtime, harness, proxy session, reward;
- :mod:`.branch` — a :class:`Branch`: an episode replaying another's first calls (tree rollouts).
- :mod:`.schedule` — per-phase timeouts, concurrency limits per resource, over-provisioning.
"""

from agentgym.rollout.branch import Branch
from agentgym.rollout.episode import EpisodeSpec, run_episode
from agentgym.rollout.runner import RolloutConfig, RolloutResult, run_rollouts
from agentgym.rollout.schedule import Overprovision, PhaseTimeouts, ResourceLimits

__all__ = ["Branch", "EpisodeSpec", "Overprovision", "PhaseTimeouts", "ResourceLimits", "RolloutConfig",
           "RolloutResult", "run_episode", "run_rollouts"]
