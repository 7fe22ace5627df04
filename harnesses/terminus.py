"""``agentgym/terminus-v0``: a Terminus-style terminal agent (keystrokes in, screen out, JSON).

Terminal-Bench's reference agent, Terminus, drives a tmux session: the model answers each turn
with one JSON object ``{analysis, plan, commands: [{keystrokes, duration}], task_complete}``, the
keystrokes go to the terminal verbatim and the screen comes back. This is our own standard-
library implementation of that protocol, ``harnesses/scripts/terminus_agent.py`` (its docstring
has the loop); it needs ``python3`` >= 3.8 and ``tmux`` in the runtime.

- Docker: :meth:`TerminusHarness.image_layer` installs ``tmux`` from Debian (apt, at image build)
  and copies the script to ``/opt/agentgym/terminus_agent.py``.
- The local runtime: :meth:`TerminusHarness.install` writes the script into the runtime, which
  runs it with the interpreter running agentgym and the host's ``tmux`` (``scripts/test.sh``
  installs it).

Quirks, as recorded on the wire (``tests/fixtures/wire/terminus_*.json``):

- Non-streaming chat completions with ``model`` and ``messages`` only (plus ``temperature``,
  ``max_tokens``, ``seed`` when set); **no tools, no system message**: the protocol lives in
  the first user message, with the instruction and the first screen.
- Every assistant message is echoed back exactly as received (``role`` and ``content`` only),
  so the session is one segment unless the model's reply is not valid JSON (then a user message
  names the parse error; the reply stays in the history, so it still extends).
- Observations are user messages: ``New Terminal Output:`` + the new lines of the pane since the
  last capture (from the prompt line the keystrokes were typed on), or ``Current Terminal
  Screen:`` + the visible screen when the history no longer extends (a full-screen program
  redrew it). Framing, parse errors, warnings and the completion prompt are the harness's own
  text (:meth:`TerminusHarness.observation_targets` leaves them out).
- ``"task_complete": true`` is confirmed once ("Are you sure...") before the run ends, so a
  finished episode has at least two calls after the last command.
- Timing decides what is seen: keystrokes are sent, then the agent sleeps ``duration`` seconds
  (at most ``max_duration``) and captures; a slow command's output may arrive one turn later.
- The shell is ``bash --noprofile`` with prompt ``<user>@agentgym:<cwd># `` (no rc files of the
  image, so screens are comparable across images).

Exit statuses: 0 completion confirmed, 3 step limit (:attr:`step_limit_exit_codes`), 4 the API
refused a request (4xx, a full context), 5 the API stayed unavailable after retries.

>>> from agentgym.types import Task
>>> from agentgym.harness import HarnessContext
>>> ctx = HarnessContext(task=Task(id="t", instruction="say hi", env="demo/x-v0"),
...                      base_url="http://127.0.0.1:8000/s/abc/v1", model="policy", max_steps=5)
>>> launch = TerminusHarness(temperature=0.0).launch(ctx, runtime=None)
>>> launch.env["AGENTGYM_TERMINUS_SCRIPT"], "--max-steps 5" in launch.cmd
('/opt/agentgym/terminus_agent.py', True)
>>> TerminusHarness().observation_targets({"role": "user", "content": "New Terminal Output:\\n$ ls\\na"})
((21, 27),)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from agentgym.harness import Harness, HarnessContext, ImageLayer, Launch
from agentgym.harnesses.script import install_files, sampling_args, script_launch, script_layer
from agentgym.runtime.base import Runtime

SCRIPT = Path(__file__).resolve().parent / "scripts" / "terminus_agent.py"
CONTAINER_SCRIPT = "/opt/agentgym/terminus_agent.py"
LOG_NAME = "terminus_agent.json"
STEP_LIMIT_EXIT_CODE = 3
MARKERS = ("New Terminal Output:\n", "Current Terminal Screen:\n", "Current terminal state:\n")
"""What the agent writes right before the terminal's own text in a user message."""
CONFIRM_TAIL = "\n\nAre you sure you want to mark the task as complete?"


def reply(commands: Sequence[tuple[str, float]], *, complete: bool = False, analysis: str = "Looking.",
          plan: str = "Run commands.") -> str:
    """A reply in the Terminus protocol (for tests and ``check harness``)."""
    return json.dumps({"analysis": analysis, "plan": plan,
                       "commands": [{"keystrokes": k, "duration": d} for k, d in commands],
                       "task_complete": complete})


class TerminusHarness(Harness):
    """Terminus-style tmux agent (stdlib script + ``tmux``).

    Args:
        temperature, max_tokens, seed: sent with every request (``None`` leaves one out).
        max_duration: the longest wait after one command's keystrokes, in seconds.
        max_output_chars: terminal output beyond this is cut in the middle.
        retries: retries of a request on 5xx, 429 and connection errors.
        width, height: the tmux window's size.
        python: interpreter inside a container image.
    """

    id: ClassVar[str] = "agentgym/terminus-v0"
    dialects: ClassVar[tuple[str, ...]] = ("openai",)
    streams: ClassVar[bool] = False
    uses_tools: ClassVar[bool] = False
    version: ClassVar[str] = "0.1"
    install_mb: ClassVar[float | None] = 1.5
    """tmux 3.3a and libevent-core from Debian bookworm, plus the script."""
    step_limit_exit_codes: ClassVar[tuple[int, ...]] = (STEP_LIMIT_EXIT_CODE,)

    def __init__(self, *, temperature: float | None = 1.0, max_tokens: int | None = 1024, seed: int | None = None,
                 max_duration: float = 60.0, max_output_chars: int = 10000, retries: int = 5, width: int = 160,
                 height: int = 40, python: str = "python3") -> None:
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.seed = seed
        self.max_duration = max_duration
        self.max_output_chars = max_output_chars
        self.retries = retries
        self.width = width
        self.height = height
        self.python = python

    def observation_targets(self, message: Mapping[str, Any]) -> Sequence[tuple[int, int]] | None:
        """The terminal's text in a user message (after its marker, before the completion
        prompt); nothing of a parse-error message."""
        content = message.get("content")
        if not isinstance(content, str) or message.get("role") != "user":
            return None
        for marker in MARKERS:
            head = content.find(marker)
            if head >= 0:
                start = head + len(marker)
                tail = content.find(CONFIRM_TAIL, start)
                return ((start, tail if tail >= 0 else len(content)),)
        return ()

    def check_replies(self) -> Sequence[str]:
        done = reply([], complete=True, analysis="check.txt holds ok.", plan="Finish.")
        return (reply([("echo ok > check.txt && cat check.txt\n", 0.5)]), done, done)

    def image_layer(self) -> ImageLayer:
        return script_layer(
            [(SCRIPT, CONTAINER_SCRIPT)], python=self.python, cache_prefix="terminus", check="tmux -V",
            before="RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
                   "--no-install-recommends tmux >/dev/null && apt-get clean "
                   "&& rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin\n")

    async def install(self, runtime: Runtime) -> None:
        await install_files(runtime, [(SCRIPT, CONTAINER_SCRIPT)])

    def launch(self, ctx: HarnessContext, runtime: Runtime | None) -> Launch:
        args = ["--model", ctx.model, "--max-steps", str(ctx.max_steps), "--retries", str(self.retries),
                "--max-duration", f"{self.max_duration:g}", "--max-output-chars", str(self.max_output_chars),
                "--width", str(self.width), "--height", str(self.height),
                *sampling_args(self.temperature, self.max_tokens, self.seed)]
        return script_launch(ctx, runtime, script=CONTAINER_SCRIPT, script_var="AGENTGYM_TERMINUS_SCRIPT",
                             python=self.python, args=args, log_name=LOG_NAME)
