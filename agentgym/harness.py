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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from agentgym.runtime.base import ExecResult, Runtime
from agentgym.runtime.images import ImageLayer
from agentgym.types import StopReason, Task

__all__ = ["Harness", "HarnessContext", "ImageLayer", "Launch"]


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
