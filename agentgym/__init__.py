"""agentgym: a gym for agentic reinforcement learning.

Black-box harnesses run in containers, their LLM calls go through a token-faithful proxy, and
the recorded calls become step-level training data.
"""

from typing import Any

from agentgym.errors import (
    AgentGymError,
    ConfigError,
    EngineError,
    EnvError,
    HarnessError,
    ProxyError,
    ReconstructionError,
    RegistryError,
    RuntimeError_,
)
from agentgym.types import (
    BreakReason,
    Call,
    Divergence,
    ErrorInfo,
    SamplingParams,
    Segment,
    Step,
    StopReason,
    Task,
    TaskLimits,
    Trajectory,
    TrajectoryGroup,
)

__version__ = "0.1.0"


def env_from(target: Any, **kwargs: Any) -> Any:
    """The :class:`~agentgym.env.Env` a target names: a registered id, a task directory or a
    directory of tasks, a SWE-bench-style ``.json``/``.jsonl`` file, or ``module:attr``
    (:func:`agentgym.sources.env_from`)."""
    from agentgym.sources import env_from as _env_from

    return _env_from(target, **kwargs)


def make(env_id: str, **kwargs: Any) -> Any:
    """A registered environment as a ``gymnasium.Env`` (:class:`agentgym.gym.GymEnv`)."""
    from agentgym.gym import make as _make

    return _make(env_id, **kwargs)


def train(config: Any = None, overrides: Any = (), **kwargs: Any) -> Any:
    """Run (or resume) a training run: ``config`` is a ``TrainConfig``, a path to a TOML file,
    or ``None`` for the defaults; ``overrides`` are ``"key=value"`` strings. Returns a
    ``TrainResult`` (see :mod:`agentgym.trainers.train`).

    The loop lives in the trainers layer; the core reaches it by name, as the registries reach
    their built-ins, so the core never imports ``trainers/``.
    """
    from agentgym.registries import load_entry_point

    return load_entry_point("agentgym.trainers.train:train_from")(config, overrides, **kwargs)


__all__ = [
    "AgentGymError",
    "BreakReason",
    "Call",
    "ConfigError",
    "Divergence",
    "EngineError",
    "EnvError",
    "ErrorInfo",
    "HarnessError",
    "ProxyError",
    "ReconstructionError",
    "RegistryError",
    "RuntimeError_",
    "SamplingParams",
    "Segment",
    "Step",
    "StopReason",
    "Task",
    "TaskLimits",
    "Trajectory",
    "TrajectoryGroup",
    "__version__",
    "env_from",
    "make",
    "train",
]
