"""The built-in harness ids resolve through the registry, lazily."""

from __future__ import annotations

import subprocess
import sys

from agentgym import registries
from agentgym.harness import Harness


def test_builtin_ids_make_harnesses() -> None:
    for hid in ("agentgym/react-v0", "agentgym/planner-v0", "mini-swe-agent/mini-v2"):
        assert hid in registries.harnesses
        harness = registries.harnesses.make(hid)
        assert isinstance(harness, Harness) and harness.id == hid
        assert harness.step_limit_exit_codes == (3,)
        assert harness.dialects == ("openai",) and not harness.streams and harness.uses_tools
    claude = registries.harnesses.make("anthropic/claude-code-v2")
    assert isinstance(claude, Harness) and claude.id == "anthropic/claude-code-v2"
    assert claude.dialects == ("anthropic",) and claude.streams and claude.step_limit_exit_codes == (3,)
    codex = registries.harnesses.make("openai/codex-v1")
    assert codex.id == "openai/codex-v1" and codex.dialects == ("responses",) and codex.streams


def test_every_builtin_declares_what_harnesses_list_shows() -> None:
    for hid, spec in registries.harnesses.items():
        cls = spec.load()
        assert cls.id == hid and cls.dialects and set(cls.dialects) <= {"openai", "responses", "anthropic"}
        assert isinstance(cls.streams, bool) and isinstance(cls.version, str)


def test_registering_imports_no_harness_module() -> None:
    code = ("import sys, agentgym.harnesses; "
            "print(any(m.startswith('agentgym.harnesses.') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
