"""Terminal environments in the Harbor and Terminal-Bench 1 task layouts.

- :mod:`.task` — the Harbor task layout and its parser (:func:`load_harbor_task`, :func:`load_task`);
- :mod:`.tb1` — Terminal-Bench 1 ``task.yaml`` tasks (:func:`load_tb1_task`);
- :mod:`.env` — :class:`HarborEnv`, a suite of such tasks.
"""

from agentgym.envs.harbor.env import HarborEnv, read_reward, read_rewards
from agentgym.envs.harbor.task import load_harbor_task, load_task, parse_reward
from agentgym.envs.harbor.tb1 import load_tb1_task

__all__ = ["HarborEnv", "load_harbor_task", "load_task", "load_tb1_task", "parse_reward", "read_reward",
           "read_rewards"]
