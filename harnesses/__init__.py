"""Built-in harness adapters (installed as ``agentgym.harnesses``).

Built-ins register through the same call users use; entry points are lazy, so importing this
package imports no harness module.

============================  =======================================================
id                            what runs
============================  =======================================================
``agentgym/react-v0``         agentgym's stdlib-only ReAct shell agent (:mod:`.react`)
``agentgym/planner-v0``       a planner delegating to worker sub-agents (:mod:`.planner`)
``mini-swe-agent/mini-v2``    mini-swe-agent 2.4.6's ``mini`` CLI (:mod:`.mini_swe_agent`)
``agentgym/terminus-v0``      a Terminus-style tmux agent: keystrokes in, screen out (:mod:`.terminus`)
``aider/aider-v0``            Aider 0.86.2, one ``--message`` per episode (:mod:`.aider`)
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
    "agentgym/planner-v0", "agentgym.harnesses.planner:PlannerHarness",
    description="a planner that delegates sub-tasks to worker sub-agents (the proxy's sub-agent route) and "
                "verifies: one stdlib Python script, OpenAI chat completions",
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
registries.harnesses.register(
    "agentgym/terminus-v0", "agentgym.harnesses.terminus:TerminusHarness",
    description="Terminus-style tmux agent (stdlib script): JSON keystrokes in, terminal screen out, no tools",
)
registries.harnesses.register(
    "aider/aider-v0", "agentgym.harnesses.aider:AiderHarness",
    description="Aider 0.86.2 (aider-chat), one --message per episode, streaming by default, from a lock",
)
