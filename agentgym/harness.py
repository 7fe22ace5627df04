"""The harness contract: how to install an agent program into a runtime and launch it with its
LLM base URL pointed at a proxy session. The program itself is a black box.

Implementations live in ``harnesses/`` (``agentgym.harnesses``) and register with
``agentgym.registries.harnesses.register("org/name-v0", "package.module:Class")``.

>>> class Hello(Harness):
...     id = "demo/hello-v0"
...     def launch(self, ctx, runtime):
...         return Launch(cmd='curl -s "$BASE/models"', env={"BASE": ctx.base_url})
>>> ctx = HarnessContext(task=Task(id="t", instruction="hi", env="demo/x-v0"),
...                      base_url="http://127.0.0.1:8000/s/abc/v1", model="policy")
>>> Hello().launch(ctx, None).env["BASE"]
'http://127.0.0.1:8000/s/abc/v1'
"""

from __future__ import annotations

import abc
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from agentgym.runtime.base import ExecResult, Runtime
from agentgym.runtime.images import ImageLayer
from agentgym.types import StopReason, Task

__all__ = ["CHECK_REPLIES", "Harness", "HarnessContext", "ImageLayer", "Launch", "load_harness", "tool_call_text"]


@dataclass(frozen=True)
class Launch:
    """The command that runs the harness once, and its environment."""

    cmd: str
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HarnessContext:
    """What a harness is told about the episode."""

    task: Task
    base_url: str
    """OpenAI-style base URL of the proxy session, ending in ``/v1``."""
    model: str
    api_key: str = "agentgym"
    max_steps: int = 30
    output_dir: str = "/tmp/agentgym-harness"
    """A directory inside the runtime the harness may write logs to."""


class Harness(abc.ABC):
    """Subclass, set ``id``, implement :meth:`launch`; register with
    ``agentgym.registries.harnesses.register("myorg/myagent-v0", "mypkg.mod:MyHarness")``."""

    id: ClassVar[str] = ""
    dialects: ClassVar[tuple[str, ...]] = ("openai",)
    """API dialects the harness speaks to the proxy."""
    streams: ClassVar[bool] = False
    """Whether it asks for SSE streaming."""
    uses_tools: ClassVar[bool] = True
    """Whether it sends ``tools`` and expects ``tool_calls``."""
    version: ClassVar[str] = ""
    """Version of the agent program it runs (a locked harness: its lock's pin)."""
    install_mb: ClassVar[float | None] = None
    """Disk size in MB of what it installs beyond the task image (measured on the installed
    virtualenv or package tree; ``None``: unknown or nothing), for ``agentgym harnesses list``."""

    def image_layer(self) -> ImageLayer | None:
        """Install the harness into a Docker image (built once, cached by docker)."""
        return None

    async def install(self, runtime: Runtime) -> None:
        """Install into a live runtime (used where no image layer applies, e.g. the local runtime)."""
        return None

    @abc.abstractmethod
    def launch(self, ctx: HarnessContext, runtime: Runtime | None) -> Launch:
        """The command line that runs the harness non-interactively to completion. Paths the
        command's processes open go through ``runtime.process_path`` (``None``: a container)."""

    def observation_targets(self, message: Mapping[str, Any]) -> Sequence[tuple[int, int]] | None:
        """Character ranges of an observation message's content that the environment wrote
        (ECHO trains on those), leaving out what this harness added around them (framing such as
        ``exit code: 0``, warnings, nudges). ``None``: all of it (the default)."""
        return None

    def check_replies(self) -> Sequence[str]:
        """What the scripted engine of ``agentgym check harness`` answers, in order (the last
        repeats), as the policy's raw text: tool calls in the chat template's
        ``<tool_call>{...}</tool_call>`` form. The default suits a harness with a ``bash`` tool
        that stops at a reply without a tool call; override it for other protocols."""
        return CHECK_REPLIES

    step_limit_exit_codes: ClassVar[tuple[int, ...]] = ()
    """Exit codes with which the harness reports that it hit its step limit."""

    def stop_reason(self, result: ExecResult) -> StopReason:
        """Map the harness process's outcome to a stop reason."""
        if result.oom_killed:
            return StopReason.OOM
        if result.timed_out:
            return StopReason.TIMEOUT
        if result.exit_code == 0:
            return StopReason.COMPLETED
        if result.exit_code in self.step_limit_exit_codes:
            return StopReason.STEP_LIMIT
        if result.exit_code in (137, -9, 143, -15):
            return StopReason.KILLED
        return StopReason.HARNESS_ERROR

    async def run(self, ctx: HarnessContext, runtime: Runtime, timeout: float) -> ExecResult:
        """Install if needed, launch, wait up to ``timeout`` seconds."""
        await self.install(runtime)
        launch = self.launch(ctx, runtime)
        return await runtime.exec(launch.cmd, env=dict(launch.env), timeout=timeout, workdir=ctx.task.workdir)


def tool_call_text(name: str, arguments: Mapping[str, Any]) -> str:
    """A tool call as the policy writes it (the chat template's ``<tool_call>`` form), which the
    proxy parses into the caller's dialect.

    >>> tool_call_text("bash", {"command": "ls"})
    '<tool_call>\\n{"name": "bash", "arguments": {"command": "ls"}}\\n</tool_call>'
    """
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": dict(arguments)}) + "\n</tool_call>"


CHECK_REPLIES: tuple[str, ...] = (
    tool_call_text("bash", {"command": "echo ok > check.txt && cat check.txt"}),
    "Done: check.txt holds ok.",
)
"""The default :meth:`Harness.check_replies`: one ``bash`` call, then a final answer."""


def load_harness(target: str, **kwargs: Any) -> Harness:
    """The harness a command's ``--harness`` (or a config's ``harness``) names: a registered id
    (``registries.harnesses``, which also holds installed packages' ``agentgym.harnesses`` entry
    points), or the path of a TOML spec of a command-line harness
    (:class:`agentgym.harness_spec.CommandHarness`). The one place that argument is resolved.

    >>> load_harness("agentgym/react-v0", temperature=0.0).id
    'agentgym/react-v0'
    """
    from pathlib import Path

    from agentgym.errors import ConfigError

    if target.endswith(".toml") or Path(target).is_file():
        from agentgym.harness_spec import CommandHarness

        if kwargs:
            raise ConfigError(f"{target} is a TOML harness spec; it takes no arguments "
                              f"({', '.join(sorted(kwargs))}): put them in the spec")
        return CommandHarness.from_toml(target)
    from agentgym import registries

    return registries.harnesses.make(target, **kwargs)
