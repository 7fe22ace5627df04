"""The registries, one per extension point. Built-ins register through the same call users use.

>>> from agentgym import registries
>>> "terminal/hello-file-v0" in registries.envs
True
"""

from __future__ import annotations

from typing import Any

from agentgym.registry import Registry

envs: Registry[Any] = Registry("env", "agentgym.envs", builtins="agentgym.envs")
harnesses: Registry[Any] = Registry("harness", "agentgym.harnesses", builtins="agentgym.harnesses")
engines: Registry[Any] = Registry("engine", "agentgym.engines", builtins="agentgym.engines")
estimators: Registry[Any] = Registry(
    "advantage estimator", "agentgym.estimators", builtins="agentgym.trainers.advantages", versioned=False
)
losses: Registry[Any] = Registry("loss", "agentgym.losses", builtins="agentgym.trainers.losses", versioned=False)
