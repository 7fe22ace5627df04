"""``agentgym/planner-v0``: a planner that delegates sub-tasks to worker sub-agents.

The agent is one standard-library script, ``harnesses/scripts/planner_agent.py`` (its docstring
is the protocol: the ``delegate`` tool, the planner's ``bash`` or read-only ``inspect`` tool, how a
worker reports back, the ``lines`` split, the stop rules and exit statuses). It imports the ReAct
agent's helpers from ``react_agent.py``, so both scripts are installed side by side.

The planner calls the session's base URL; worker ``n`` calls the proxy's sub-agent route
``/s/<sid>/a/sub-<n>/v1``, so a session reconstructs into one ``main`` trajectory and one
trajectory per worker (``agent_id`` ``sub-<n>``, ``parent_trajectory_id`` the main one): what
M-GRPO trains on (``docs/algorithms.md``).

- Docker: :meth:`PlannerHarness.image_layer` copies both scripts to ``/opt/agentgym/``;
  :meth:`PlannerHarness.install` also writes them into a running container that lacks them.
- Runtimes without images (the local runtime): :meth:`PlannerHarness.install` writes them into
  the runtime and the launch runs them with the interpreter running agentgym.

Exit status 3 means the planner hit its step limit (:attr:`PlannerHarness.step_limit_exit_codes`);
a worker's step limit is reported to the planner, not to agentgym.

>>> from agentgym.types import Task
>>> from agentgym.harness import HarnessContext
>>> h = PlannerHarness(worker_max_steps=3, split="lines")
>>> ctx = HarnessContext(task=Task(id="t", instruction="- a\\n- b", env="demo/x-v0"),
...                      base_url="http://127.0.0.1:8000/s/abc/v1", model="policy", max_steps=5)
>>> launch = h.launch(ctx, runtime=None)
>>> launch.env["AGENTGYM_PLANNER_SCRIPT"]
'/opt/agentgym/planner_agent.py'
>>> "--max-steps 5 --worker-max-steps 3" in launch.cmd and "--split lines" in launch.cmd
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from agentgym.errors import ConfigError
from agentgym.harness import Harness, HarnessContext, ImageLayer, Launch
from agentgym.harnesses.script import install_files, sampling_args, script_launch, script_layer
from agentgym.runtime.base import Runtime

SCRIPTS = Path(__file__).resolve().parent / "scripts"
SCRIPT = SCRIPTS / "planner_agent.py"
"""The planner script on the host (shipped as package data)."""
HELPER = SCRIPTS / "react_agent.py"
"""The ReAct script, whose helpers the planner imports."""
CONTAINER_DIR = "/opt/agentgym"
CONTAINER_SCRIPT = f"{CONTAINER_DIR}/planner_agent.py"
CONTAINER_HELPER = f"{CONTAINER_DIR}/react_agent.py"
LOG_NAME = "planner_agent.json"
"""The episode log (planner and workers), written inside ``HarnessContext.output_dir``."""
STEP_LIMIT_EXIT_CODE = 3
WORKER_PREFIX = "sub-"
"""Worker ``n``'s agent id is ``sub-<n>``: role ``sub`` for M-GRPO."""
REPORT_PREFIX = "report from "
ERROR_PREFIX = "error: "
OUTPUT_MARKER = "\noutput:\n"


class PlannerHarness(Harness):
    """A planner (the main agent) that delegates sub-tasks to worker sub-agents.

    Args:
        worker_max_steps: model calls per worker (the planner's limit is ``HarnessContext.max_steps``).
        max_delegations: workers per episode.
        split: ``"model"`` (the planner decides what to delegate) or ``"lines"`` (every list item
            of the task goes to its own worker before the planner's first call).
        planner_tools: the planner's own tool besides ``delegate``: ``"bash"`` (verify by running
            commands) or ``"inspect"`` (read-only: list a directory, show a file).
        temperature, max_tokens, seed: sampling arguments sent with every request (``None``
            leaves one out).
        command_timeout, max_output_chars, retries: as for :class:`~agentgym.harnesses.react.ReactHarness`.
        python: interpreter inside a container image.
    """

    id: ClassVar[str] = "agentgym/planner-v0"
    dialects: ClassVar[tuple[str, ...]] = ("openai",)
    streams: ClassVar[bool] = False
    uses_tools: ClassVar[bool] = True
    step_limit_exit_codes: ClassVar[tuple[int, ...]] = (STEP_LIMIT_EXIT_CODE,)

    def __init__(self, *, worker_max_steps: int = 6, max_delegations: int = 4, split: str = "model",
                 planner_tools: str = "bash", temperature: float | None = 1.0, max_tokens: int | None = 1024,
                 seed: int | None = None, command_timeout: float = 60.0, max_output_chars: int = 10000,
                 retries: int = 5, python: str = "python3") -> None:
        if split not in ("model", "lines"):
            raise ConfigError(f"split must be 'model' or 'lines', got {split!r}")
        if planner_tools not in ("bash", "inspect"):
            raise ConfigError(f"planner_tools must be 'bash' or 'inspect', got {planner_tools!r}")
        if worker_max_steps < 1 or max_delegations < 0:
            raise ConfigError(f"worker_max_steps must be >= 1 and max_delegations >= 0, got "
                              f"{worker_max_steps} and {max_delegations}")
        self.worker_max_steps = worker_max_steps
        self.max_delegations = max_delegations
        self.split = split
        self.planner_tools = planner_tools
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.seed = seed
        self.command_timeout = command_timeout
        self.max_output_chars = max_output_chars
        self.retries = retries
        self.python = python

    def observation_targets(self, message: Mapping[str, Any]) -> Sequence[tuple[int, int]] | None:
        """What the environment wrote in a tool result: the command output or the listing after
        ``output:\\n``. Nothing of a worker's report (``report from ...``: the policy wrote it), of
        the harness's own errors, or of a nudge."""
        content = message.get("content")
        if not isinstance(content, str):
            return None
        if message.get("role") == "user" or content.startswith((REPORT_PREFIX, ERROR_PREFIX)):
            return ()
        head = content.find(OUTPUT_MARKER)
        return None if head < 0 else ((head + len(OUTPUT_MARKER), len(content)),)

    def image_layer(self) -> ImageLayer:
        return script_layer([(SCRIPT, CONTAINER_SCRIPT), (HELPER, CONTAINER_HELPER)], python=self.python,
                            cache_prefix="planner")

    async def install(self, runtime: Runtime) -> None:
        """Write both scripts into the runtime unless these very scripts are already there."""
        await install_files(runtime, [(SCRIPT, CONTAINER_SCRIPT), (HELPER, CONTAINER_HELPER)])

    def launch(self, ctx: HarnessContext, runtime: Runtime | None) -> Launch:
        args = ["--model", ctx.model, "--max-steps", str(ctx.max_steps),
                "--worker-max-steps", str(self.worker_max_steps), "--max-delegations", str(self.max_delegations),
                "--split", self.split, "--planner-tools", self.planner_tools,
                "--command-timeout", f"{self.command_timeout:g}", "--max-output-chars", str(self.max_output_chars),
                "--retries", str(self.retries), *sampling_args(self.temperature, self.max_tokens, self.seed)]
        return script_launch(ctx, runtime, script=CONTAINER_SCRIPT, script_var="AGENTGYM_PLANNER_SCRIPT",
                             python=self.python, args=args, log_name=LOG_NAME)
