"""The GUI family: apps on a virtual display (Xvfb + openbox), acted on with mouse and keyboard.

- :mod:`.tasks` — the tasks (a Tk form, a Tk to-do list, a web shop in chromium), their graders
  and oracles;
- :mod:`.env` — :class:`GuiEnv`: images, the desktop's start, grading from the app's state;
- :mod:`.client` — :class:`ActionClient`, the host side of the in-container action server
  (``container/actiond.py``): one action plus a screenshot per round trip;
- :mod:`.gym` — :class:`GuiGymEnv`, the family as a ``gymnasium.Env`` (``agentgym.make("gui/...")``);
- :mod:`.images` — one image per app, sharing their package layer.
"""

from agentgym.envs.gui.client import ActionClient, Observation
from agentgym.envs.gui.env import GuiEnv
from agentgym.envs.gui.gym import GuiGymEnv
from agentgym.envs.gui.tasks import TASKS

__all__ = ["TASKS", "ActionClient", "GuiEnv", "GuiGymEnv", "Observation"]
