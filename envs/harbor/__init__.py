"""Terminal environments in the Harbor / Terminal-Bench task layout.

- :mod:`.task` — the task directory layout and its parser (:func:`load_harbor_task`);
- :mod:`.env` — :class:`HarborEnv`, a suite of such tasks.
"""

from agentgym.envs.harbor.env import HarborEnv
from agentgym.envs.harbor.task import load_harbor_task, parse_reward

__all__ = ["HarborEnv", "load_harbor_task", "parse_reward"]
