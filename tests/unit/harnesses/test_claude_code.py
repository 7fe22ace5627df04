"""Claude Code's launch and install, without running it (the wire test and the Docker test do)."""

from __future__ import annotations

import json

from agentgym.harness import HarnessContext
from agentgym.harnesses.claude_code import ClaudeCodeHarness
from agentgym.harnesses.npmbundle import bundle_key, install_script, lock_dir
from agentgym.types import Task


def test_launch_points_claude_at_the_session_without_v1() -> None:
    ctx = HarnessContext(task=Task(id="t", instruction="do 'it'", env="e/x-v0"),
                         base_url="http://127.0.0.1:9/s/abc/v1", model="policy", max_steps=7)
    launch = ClaudeCodeHarness(extra_args=["--append-system-prompt", "be brief"]).launch(ctx, None)
    env = launch.env
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9/s/abc"
    assert env["ANTHROPIC_MODEL"] == env["ANTHROPIC_DEFAULT_HAIKU_MODEL"] == "policy"
    assert env["IS_SANDBOX"] == "1" and env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    assert env["AGENTGYM_TASK"] == "do 'it'" and env["HOME"].startswith("/tmp/agentgym-harness")
    assert "--max-turns 7" in launch.cmd and "--output-format stream-json" in launch.cmd
    assert "--append-system-prompt 'be brief'" in launch.cmd


def test_the_lock_pins_every_package_and_the_node_that_installs_it() -> None:
    lock = lock_dir("claude-code")
    pkgs = json.loads((lock / "package-lock.json").read_text())["packages"]
    assert pkgs["node_modules/@anthropic-ai/claude-code"]["version"] == "2.1.332"
    assert all(p.get("integrity", "").startswith("sha512-") for k, p in pkgs.items() if k)
    boot = json.loads((lock / "bootstrap.json").read_text())
    assert boot["node"]["version"].startswith("22.") and boot["npm"]["integrity"].startswith("sha512-")
    assert len(bundle_key(lock)) == 16
    script = install_script("/b", "/opt/x")
    assert "ci --offline --cache /b/cache" in script and "/opt/x/node/bin/node /opt/x/npm/bin/npm-cli.js" in script
    assert "COPY npm/" in ClaudeCodeHarness().dockerfile()


def test_codex_is_configured_to_use_the_session_as_its_provider() -> None:
    from agentgym.harnesses.codex import CodexHarness

    ctx = HarnessContext(task=Task(id="t", instruction="x", env="e/x-v0"),
                         base_url="http://127.0.0.1:9/s/abc/v1", model='pol"icy')
    launch = CodexHarness().launch(ctx, None)
    config = launch.env["AGENTGYM_CODEX_CONFIG"]
    assert 'base_url = "http://127.0.0.1:9/s/abc/v1"' in config and 'wire_api = "responses"' in config
    assert 'model = "pol\\"icy"' in config
    assert "--dangerously-bypass-approvals-and-sandbox" in launch.cmd and launch.env["CODEX_HOME"].endswith("codex-home")
    assert json.loads((lock_dir("codex") / "package-lock.json").read_text())["packages"][
        "node_modules/@openai/codex"]["version"] == "0.171.0"
