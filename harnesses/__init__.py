"""Built-in harness adapters (installed as ``agentgym.harnesses``).

Built-ins register through the same call users use; entry points are lazy, so importing this
package imports no harness module.

============================  =======================================================
id                            what runs
============================  =======================================================
``agentgym/react-v0``         agentgym's stdlib-only ReAct shell agent (:mod:`.react`)
``mini-swe-agent/mini-v2``    mini-swe-agent 2.4.6's ``mini`` CLI (:mod:`.mini_swe_agent`)
``anthropic/claude-code-v2``  Claude Code 2.1.332's ``claude -p`` (:mod:`.claude_code`)
``openai/codex-v1``           Codex CLI 0.171.0's ``codex exec`` (:mod:`.codex`)
============================  =======================================================

>>> from agentgym import registries
>>> registries.harnesses.make("agentgym/react-v0", temperature=0.0).id
'agentgym/react-v0'
"""

from agentgym import registries

__all__: list[str] = []  # harnesses are reached through the registry, not imported from here

registries.harnesses.register(
    "agentgym/react-v0", "agentgym.harnesses.react:ReactHarness",
    description="agentgym's ReAct shell agent: one stdlib Python script, one bash tool, OpenAI chat completions",
)
registries.harnesses.register(
    "anthropic/claude-code-v2", "agentgym.harnesses.claude_code:ClaudeCodeHarness",
    description="Claude Code 2.1.332 `claude -p`, unmodified, installed offline from an npm lock (Anthropic Messages)",
)
registries.harnesses.register(
    "openai/codex-v1", "agentgym.harnesses.codex:CodexHarness",
    description="Codex CLI 0.171.0 `codex exec`, unmodified, installed offline from an npm lock (OpenAI Responses)",
)
registries.harnesses.register(
    "mini-swe-agent/mini-v2", "agentgym.harnesses.mini_swe_agent:MiniSweAgentHarness",
    description="mini-swe-agent 2.4.6 `mini` CLI, unmodified, installed from a wheelhouse",
)
