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
    qwen = registries.harnesses.make("qwen/qwen-code-v0")
    assert qwen.id == "qwen/qwen-code-v0" and qwen.dialects == ("openai",) and qwen.streams
    assert qwen.step_limit_exit_codes == (53,) and qwen.version == "0.24.4"


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


def test_npm_harnesses_declare_the_version_their_lock_pins() -> None:
    import json

    from agentgym.harnesses.npmbundle import lock_dir

    for hid, lock, package in [("anthropic/claude-code-v2", "claude-code", "@anthropic-ai/claude-code"),
                               ("openai/codex-v1", "codex", "@openai/codex"),
                               ("qwen/qwen-code-v0", "qwen-code", "@qwen-code/qwen-code")]:
        cls = type(registries.harnesses.make(hid))
        pkgs = json.loads((lock_dir(lock) / "package-lock.json").read_text())["packages"]
        assert cls.version == pkgs[f"node_modules/{package}"]["version"], hid
        assert cls.install_mb is not None and cls.install_mb > 100
