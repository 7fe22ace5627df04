"""``agentgym/react-v0``: agentgym's own ReAct shell agent as a harness.

The agent is one standard-library script, ``harnesses/scripts/react_agent.py`` (read its
docstring for the loop, the stop rules and the exit statuses). It speaks non-streaming OpenAI
chat completions with one ``bash`` tool, echoes every assistant message back exactly as received
(so each request extends the previous one token for token), and needs only ``python3`` >= 3.8
in the runtime.

- Docker: :meth:`ReactHarness.image_layer` copies the script to ``/opt/agentgym/react_agent.py``;
  :meth:`ReactHarness.install` also writes it into a running container that lacks it.
- Runtimes without images (the local runtime): :meth:`ReactHarness.install` writes the script
  into the runtime, and the launch runs it with the interpreter running agentgym (which the
  local sandbox keeps visible).

Every path the command needs travels in an environment variable, never in the command string
(the local runtime without isolation rewrites absolute paths in command strings). Exit status 3 means the step
limit was hit (:attr:`ReactHarness.step_limit_exit_codes`).

>>> from agentgym.types import Task
>>> from agentgym.harness import HarnessContext
>>> h = ReactHarness(temperature=0.0, max_tokens=512)
>>> ctx = HarnessContext(task=Task(id="t", instruction="say hi", env="demo/x-v0"),
...                      base_url="http://127.0.0.1:8000/s/abc/v1", model="policy", max_steps=5)
>>> launch = h.launch(ctx, runtime=None)  # docker layout when no local runtime is given
>>> launch.env["AGENTGYM_TASK"], launch.env["AGENTGYM_REACT_SCRIPT"]
('say hi', '/opt/agentgym/react_agent.py')
>>> "--max-steps 5" in launch.cmd and "--temperature 0.0" in launch.cmd
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from agentgym.harness import Harness, HarnessContext, ImageLayer, Launch
from agentgym.harnesses.script import install_files, sampling_args, script_launch, script_layer
from agentgym.runtime.base import Runtime

SCRIPT = Path(__file__).resolve().parent / "scripts" / "react_agent.py"
"""The agent script on the host (shipped as package data)."""
CONTAINER_SCRIPT = "/opt/agentgym/react_agent.py"
"""Where the image layer and :meth:`ReactHarness.install` put it inside the runtime."""
LOG_NAME = "react_agent.json"
"""The episode log, written inside ``HarnessContext.output_dir``."""
STEP_LIMIT_EXIT_CODE = 3
API_REFUSED_EXIT_CODE = 4
API_UNAVAILABLE_EXIT_CODE = 5
OUTPUT_MARKER = "\noutput:\n"
"""What the script writes between a command's exit code and its output (``observation()``)."""


class ReactHarness(Harness):
    """agentgym's built-in ReAct shell agent (stdlib-only script, one ``bash`` tool).

    Args:
        temperature, max_tokens, seed: sampling arguments sent with every request (``None``
            leaves one out, so the proxy's default applies).
        command_timeout: seconds each command may run before its process group is killed.
        max_output_chars: command output beyond this is cut in the middle.
        retries: retries of a request on 5xx, 429 and connection errors (backoff 1, 2, 4... s).
        system_prompt: replace the built-in system prompt (passed as ``$AGENTGYM_SYSTEM_PROMPT``).
        python: interpreter inside a container image.
    """

    id: ClassVar[str] = "agentgym/react-v0"
    dialects: ClassVar[tuple[str, ...]] = ("openai",)
    streams: ClassVar[bool] = False
    uses_tools: ClassVar[bool] = True
    step_limit_exit_codes: ClassVar[tuple[int, ...]] = (STEP_LIMIT_EXIT_CODE,)
    version: ClassVar[str] = "0.1"
    install_mb: ClassVar[float | None] = 0.02
    """One script (the runtime's ``python3`` runs it)."""

    def __init__(self, *, temperature: float | None = 1.0, max_tokens: int | None = 1024,
                 seed: int | None = None, command_timeout: float = 60.0, max_output_chars: int = 10000,
                 retries: int = 5, system_prompt: str | None = None, python: str = "python3") -> None:
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.seed = seed
        self.command_timeout = command_timeout
        self.max_output_chars = max_output_chars
        self.retries = retries
        self.system_prompt = system_prompt
        self.python = python

    def observation_targets(self, message: Mapping[str, Any]) -> Sequence[tuple[int, int]] | None:
        """The command output of a tool result (after ``output:\\n``); nothing of a nudge (a user
        message the agent itself writes when a reply has no tool call)."""
        content = message.get("content")
        if not isinstance(content, str):
            return None
        if message.get("role") == "user":
            return ()
        head = content.find(OUTPUT_MARKER)
        return None if head < 0 else ((head + len(OUTPUT_MARKER), len(content)),)

    def image_layer(self) -> ImageLayer:
        return script_layer([(SCRIPT, CONTAINER_SCRIPT)], python=self.python, cache_prefix="react")

    async def install(self, runtime: Runtime) -> None:
        """Write the script into the runtime unless this very script is already there (the
        image layer put it there)."""
        await install_files(runtime, [(SCRIPT, CONTAINER_SCRIPT)])

    def launch(self, ctx: HarnessContext, runtime: Runtime | None) -> Launch:
        args = ["--model", ctx.model, "--max-steps", str(ctx.max_steps),
                "--command-timeout", f"{self.command_timeout:g}", "--max-output-chars", str(self.max_output_chars),
                "--retries", str(self.retries), *sampling_args(self.temperature, self.max_tokens, self.seed)]
        env = {} if self.system_prompt is None else {"AGENTGYM_SYSTEM_PROMPT": self.system_prompt}
        return script_launch(ctx, runtime, script=CONTAINER_SCRIPT, script_var="AGENTGYM_REACT_SCRIPT",
                             python=self.python, args=args, log_name=LOG_NAME, env=env)
