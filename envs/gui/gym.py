"""The GUI family as a ``gymnasium.Env``: screenshots (and the app's accessible text) in,
computer-use actions out.

Observation space, a ``Dict``:

- ``screen``: ``Box(0, 255, (600, 800, 3), uint8)``, the display after the action, once it is
  still (RGB; the mouse pointer is not drawn);
- ``text``: ``Text``, the app's accessible tree, one node a line
  (``button "Submit" @ 350,420 94x36``: role, name, value, states, bounds in screen pixels).

Action space, a ``Dict`` (fields an action kind does not use are ignored):

=========  ================================================================================
field      meaning
=========  ================================================================================
``kind``   ``Discrete(9)``: index into :data:`KINDS` (or the kind's name, when you build the
           action by hand): ``wait``, ``click``, ``double_click``, ``move``, ``type``,
           ``key``, ``scroll``, ``drag``, ``submit``
``x, y``   ``Discrete(800)``, ``Discrete(600)``: where to click, double-click, move, scroll,
           or where a drag starts
``x2, y2`` where a drag ends
``button`` ``Discrete(3)``: left, middle, right (click, double_click)
``text``   ``Text(200)``: what ``type`` types (``\\n`` is Return), or the keys of ``key``
           (xdotool names separated by spaces: ``ctrl+a BackSpace``, ``Return``)
``amount`` ``Discrete(21, start=-10)``: wheel clicks of ``scroll`` (positive: down)
=========  ================================================================================

``wait`` waits half a second; ``submit`` ends the episode and runs the verifier. A partial dict
(``{"kind": "click", "x": 120, "y": 40}``) is accepted too. An action the server cannot perform
(an unknown key name, a key the app refuses such as ``ctrl+w`` in the browser) leaves the app
as it was; ``info["error"]`` says why. ``info["png"]`` is the screenshot as PNG bytes.

>>> from gymnasium import spaces
>>> space = action_space((800, 600))
>>> sorted(space.spaces)
['amount', 'button', 'kind', 'text', 'x', 'x2', 'y', 'y2']
>>> to_request({"kind": "click", "x": 5, "y": 7})
{'action': 'click', 'x': 5, 'y': 7, 'button': 'left'}
>>> to_request({"kind": KINDS.index("key"), "text": "ctrl+a"})
{'action': 'key', 'keys': 'ctrl+a'}
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces

from agentgym.env import Env, Evaluation, Stage
from agentgym.envs.gui.client import ActionClient, Observation
from agentgym.errors import EnvError
from agentgym.gym import EpisodeEnv
from agentgym.runtime.base import Runtime, RuntimeBackend
from agentgym.types import Task

__all__ = ["BUTTONS", "KINDS", "TEXT_CHARSET", "GuiGymEnv", "action_space", "observation_space", "to_request"]

KINDS = ("wait", "click", "double_click", "move", "type", "key", "scroll", "drag", "submit")
"""The action kinds, in the order of the ``kind`` field's values."""
BUTTONS = ("left", "middle", "right")
TEXT_CHARSET = string.printable
"""Characters of the ``text`` fields (observation and action)."""
MAX_ACTION_TEXT = 200
MAX_OBSERVATION_TEXT = 20_000


def action_space(screen: tuple[int, int]) -> spaces.Dict:
    """The action space for a ``(width, height)`` display (see the module docstring)."""
    width, height = screen
    return spaces.Dict({
        "kind": spaces.Discrete(len(KINDS)), "x": spaces.Discrete(width), "y": spaces.Discrete(height),
        "x2": spaces.Discrete(width), "y2": spaces.Discrete(height), "button": spaces.Discrete(len(BUTTONS)),
        "text": spaces.Text(max_length=MAX_ACTION_TEXT, min_length=0, charset=TEXT_CHARSET),
        "amount": spaces.Discrete(21, start=-10),
    })


def observation_space(screen: tuple[int, int]) -> spaces.Dict:
    """The observation space for a ``(width, height)`` display: ``screen`` pixels and ``text``."""
    width, height = screen
    return spaces.Dict({
        "screen": spaces.Box(0, 255, (height, width, 3), np.uint8),
        "text": spaces.Text(max_length=MAX_OBSERVATION_TEXT, min_length=0, charset=TEXT_CHARSET),
    })


def _kind(action: Mapping[str, Any]) -> str:
    kind = action.get("kind", "wait")
    if isinstance(kind, str):
        if kind not in KINDS:
            raise EnvError(f"unknown action kind {kind!r}; kinds: {', '.join(KINDS)}")
        return kind
    index = int(kind)
    if not 0 <= index < len(KINDS):
        raise EnvError(f"action kind {index} is out of range 0..{len(KINDS) - 1} ({', '.join(KINDS)})")
    return KINDS[index]


def to_request(action: Mapping[str, Any]) -> dict[str, Any]:
    """An action of :func:`action_space` as a request of the action server."""
    kind = _kind(action)
    point = {"x": int(action.get("x", 0)), "y": int(action.get("y", 0))}
    button = action.get("button", 0)
    button = button if isinstance(button, str) else BUTTONS[int(button)]
    if kind == "wait":
        return {"action": "wait", "seconds": 0.5}
    if kind in ("click", "double_click"):
        return {"action": kind, **point, "button": button}
    if kind == "move":
        return {"action": "move", **point}
    if kind == "type":
        return {"action": "type", "text": str(action.get("text", ""))}
    if kind == "key":
        return {"action": "key", "keys": str(action.get("text", ""))}
    if kind == "scroll":
        return {"action": "scroll", **point, "amount": int(action.get("amount", 3))}
    if kind == "drag":
        return {"action": "drag", **point, "x2": int(action.get("x2", 0)), "y2": int(action.get("y2", 0))}
    raise EnvError(f"{kind!r} is not sent to the action server")


def _printable(text: str) -> str:
    text = "".join(c if c in TEXT_CHARSET else "?" for c in text)
    return text if len(text) <= MAX_OBSERVATION_TEXT else text[: MAX_OBSERVATION_TEXT - 20] + "\n[... cut]"


class GuiGymEnv(EpisodeEnv):
    """A GUI env as a ``gymnasium.Env`` (see the module docstring for the spaces).

    Args:
        env, task_id, backend, max_steps: see :class:`~agentgym.gym.EpisodeEnv`.
        screen: the display's width and height (the env's, 800x600 for the built-in suite).
    """

    def __init__(self, env: Env | str, task_id: str | None = None, backend: RuntimeBackend | str = "docker",
                 max_steps: int = 50, screen: tuple[int, int] | None = None) -> None:
        super().__init__(env, task_id=task_id, backend=backend, max_steps=max_steps)
        width, height = screen or self.env.tasks()[0].metadata.get("screen", (800, 600))
        self.screen: tuple[int, int] = (int(width), int(height))
        self.observation_space = observation_space(self.screen)
        self.action_space = action_space(self.screen)
        self.client: ActionClient | None = None
        self._last_screen: np.ndarray | None = None
        self.last: Observation | None = None
        """The action server's last reply (its timing included)."""
        self._begin_info: dict[str, Any] = {}

    def _observation(self, obs: Observation) -> tuple[dict[str, Any], dict[str, Any]]:
        pixels = obs.pixels()
        if pixels.shape != (self.screen[1], self.screen[0], 3):
            raise EnvError(f"the display is {obs.width}x{obs.height}, the observation space {self.screen}")
        self.last = obs
        self._last_screen = pixels
        return ({"screen": pixels.copy(), "text": _printable(obs.text())},
                {"error": obs.error, "png": obs.png})

    def _begin(self, task: Task, runtime: Runtime) -> dict[str, Any]:
        from agentgym.envs.gui.env import GuiEnv

        # Through the env, so that its verifier can replay what was done.
        connect = self.env.actions(runtime) if isinstance(self.env, GuiEnv) else ActionClient.over_exec(runtime)
        self.client = self._run(connect)
        assert self.client is not None
        obs, self._begin_info = self._observation(self._run(self.client.observe()))
        return obs

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        obs, info = super().reset(seed=seed, options=options)
        assert self.task is not None
        # The screen does not say what to do: the instruction comes with the first observation.
        return obs, {**info, "instruction": self._stages[0].instruction, **self._begin_info}

    def _is_submit(self, action: Any) -> bool:
        return isinstance(action, Mapping) and _kind(action) == "submit"

    def _act(self, action: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        if not isinstance(action, Mapping):
            raise EnvError(f"a GUI action is a dict (see agentgym.envs.gui.gym), got {type(action).__name__}")
        assert self.client is not None
        return self._observation(self._run(self.client.request(to_request(action))))

    def _stage_observation(self, stage: Stage) -> dict[str, Any]:
        # The screen as it is, with the next instruction as the text.
        assert self.client is not None
        obs, _ = self._observation(self._run(self.client.observe()))
        return {**obs, "text": _printable(stage.instruction)}

    def _final_observation(self, evaluation: Evaluation) -> dict[str, Any]:
        screen = self._last_screen.copy() if self._last_screen is not None else \
            np.zeros((self.screen[1], self.screen[0], 3), np.uint8)
        return {"screen": screen, "text": f"reward: {evaluation.reward:g}"}

    def _end(self) -> None:
        if self.client is not None:
            client, self.client = self.client, None
            self._run(client.close())
