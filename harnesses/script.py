"""What the built-in script harnesses share (``agentgym/react-v0``, ``agentgym/terminus-v0``,
``agentgym/planner-v0``): each is a standard-library Python script copied into the runtime and run
with the runtime's ``python3`` (or, without images, the interpreter running agentgym), every path
it needs passed in an environment variable, never in the command string (the local runtime
without isolation rewrites absolute paths in command strings).

>>> from agentgym.harness import HarnessContext
>>> from agentgym.types import Task
>>> ctx = HarnessContext(task=Task(id="t", instruction="hi", env="demo/x-v0"),
...                      base_url="http://127.0.0.1:8000/s/abc/v1", model="policy", max_steps=5)
>>> launch = script_launch(ctx, None, script="/opt/agentgym/a.py", script_var="AGENTGYM_A_SCRIPT",
...                        python="python3", args=["--model", "policy"], log_name="a.json")
>>> launch.env["AGENTGYM_A_SCRIPT"], launch.env["AGENTGYM_PYTHON"]
('/opt/agentgym/a.py', 'python3')
>>> sampling_args(0.5, 64, None)
['--temperature', '0.5', '--max-tokens', '64']
"""

from __future__ import annotations

import hashlib
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from agentgym.harness import HarnessContext, ImageLayer, Launch
from agentgym.runtime.base import Runtime

__all__ = ["install_files", "sampling_args", "script_launch", "script_layer"]


def script_layer(files: Sequence[tuple[Path, str]], *, python: str, cache_prefix: str, before: str = "",
                 check: str = "") -> ImageLayer:
    """An image layer copying each host file to its path (executable) after the ``before`` lines,
    and failing the build, not the episode, when the image has no usable ``python`` (or when the
    shell command ``check`` fails). Cached by the files' contents."""
    digest = hashlib.sha256(b"".join(source.read_bytes() for source, _ in files)).hexdigest()[:16]
    targets = " ".join(target for _, target in files)
    dockerfile = (before + "".join(f"COPY {source.name} {target}\n" for source, target in files)
                  + f"RUN {python} -c 'import sys; assert sys.version_info >= (3, 8), sys.version' "
                  + f"&& chmod 0755 {targets}" + (f" && {check}" if check else "") + "\n")
    return ImageLayer(dockerfile=dockerfile, context_files={source.name: str(source) for source, _ in files},
                      cache_key=f"{cache_prefix}-{digest}")


async def install_files(runtime: Runtime, files: Sequence[tuple[Path, str]]) -> None:
    """Write each host file to its path in the runtime (executable) unless that very file is
    already there (the image layer put it there)."""
    for source, target in files:
        data = source.read_bytes()
        try:
            if await runtime.read_file(target) == data:
                continue
        except FileNotFoundError:
            pass
        await runtime.write_file(target, data, mode=0o755)


def sampling_args(temperature: float | None, max_tokens: int | None, seed: int | None) -> list[str]:
    """The scripts' sampling flags; ``None`` leaves a flag out (the proxy's default applies)."""
    args: list[str] = []
    if temperature is not None:
        args += ["--temperature", repr(float(temperature))]
    if max_tokens is not None:
        args += ["--max-tokens", str(max_tokens)]
    if seed is not None:
        args += ["--seed", str(seed)]
    return args


def script_launch(ctx: HarnessContext, runtime: Runtime | None, *, script: str, script_var: str, python: str,
                  args: Sequence[str], log_name: str, env: Mapping[str, str] | None = None) -> Launch:
    """Run ``script`` (its path in the runtime) once: the proxy session in ``OPENAI_BASE_URL``,
    the task in ``AGENTGYM_TASK``, the log at ``$AGENTGYM_OUTPUT_DIR/<log_name>``, stdin closed.
    ``runtime=None`` gives the container layout."""
    on_host = runtime is not None and not runtime.uses_images
    out_dir = runtime.process_path(ctx.output_dir) if runtime is not None else ctx.output_dir
    path = runtime.process_path(script) if runtime is not None else script
    full_env = {
        "OPENAI_API_KEY": ctx.api_key,
        "OPENAI_BASE_URL": ctx.base_url,
        "AGENTGYM_TASK": ctx.task.instruction,
        "AGENTGYM_OUTPUT_DIR": out_dir,
        script_var: path,
        # Without an image the script runs on the host, with the interpreter running agentgym.
        "AGENTGYM_PYTHON": sys.executable if on_host else python,
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    cmd = (
        f'mkdir -p "$AGENTGYM_OUTPUT_DIR" && exec "$AGENTGYM_PYTHON" "${script_var}" '
        f'--base-url "$OPENAI_BASE_URL" {shlex.join(args)} --log "$AGENTGYM_OUTPUT_DIR/{log_name}" </dev/null'
    )
    return Launch(cmd=cmd, env=full_env)
