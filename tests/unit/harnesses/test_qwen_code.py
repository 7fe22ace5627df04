"""Qwen Code's launch, lock and observation targets, without running it (the wire test and the
Docker test do)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentgym.harness import HarnessContext
from agentgym.harnesses.npmbundle import bundle_key, lock_dir
from agentgym.harnesses.qwen_code import SETTINGS, QwenCodeHarness
from agentgym.runtime.base import ExecResult
from agentgym.types import StopReason, Task

STUB = """#!{python}
import json, os, sys
with open(os.environ["STUB_RECORD"], "w") as f:
    json.dump({{"argv": sys.argv[1:], "stdin": sys.stdin.read()}}, f)
sys.exit(int(os.environ.get("STUB_EXIT", "0")))
"""


def ctx(tmp_path: Path, instruction: str = "do it") -> HarnessContext:
    return HarnessContext(task=Task(id="t", instruction=instruction, env="e/x-v0"),
                          base_url="http://127.0.0.1:9/s/abc/v1", model="policy", max_steps=7,
                          output_dir=str(tmp_path / "out"))


def run_launch(tmp_path: Path, instruction: str, exit_code: int = 0) -> tuple[int, dict[str, object], dict[str, str]]:
    """Runs the launch command with Node replaced by a stub that records its argv and stdin."""
    stub = tmp_path / "node"
    stub.write_text(STUB.format(python=sys.executable))
    stub.chmod(0o755)
    launch = QwenCodeHarness(extra_args=["--append-system-prompt", "be brief"]).launch(ctx(tmp_path, instruction), None)
    env = {"PATH": os.environ["PATH"], **launch.env, "AGENTGYM_NODE": str(stub),
           "STUB_RECORD": str(tmp_path / "rec.json"), "STUB_EXIT": str(exit_code)}
    proc = subprocess.run(["bash", "-c", launch.cmd], env=env, capture_output=True, text=True, timeout=60, check=False)
    return proc.returncode, json.loads((tmp_path / "rec.json").read_text()), dict(launch.env)


def test_launch_points_qwen_at_the_session_with_no_traffic_elsewhere(tmp_path: Path) -> None:
    task = "-v is not an option here: write 'x' and \"y\"\nthen stop"
    rc, rec, env = run_launch(tmp_path, task)
    assert rc == 0
    assert env["OPENAI_BASE_URL"] == "http://127.0.0.1:9/s/abc/v1" and env["OPENAI_MODEL"] == "policy"
    assert env["QWEN_USAGE_STATISTICS_ENABLED"] == "false" and env["QWEN_CODE_DISABLE_PRECONNECT"] == "1"
    assert env["HOME"] == f"{tmp_path}/out/home"
    argv = rec["argv"]
    assert isinstance(argv, list) and argv[0].endswith("@qwen-code/qwen-code/cli-entry.js")
    assert argv[1:] == ["--auth-type", "openai", "--approval-mode", "yolo", "--max-session-turns", "7",
                        "--output-format", "stream-json", "--append-system-prompt", "be brief"]
    assert rec["stdin"] == task  # the task, byte for byte, on stdin: never parsed as options
    settings = json.loads((tmp_path / "out" / "home" / ".qwen" / "settings.json").read_text())
    assert settings == SETTINGS and settings["privacy"]["usageStatisticsEnabled"] is False
    assert settings["general"]["enableAutoUpdate"] is False


@pytest.mark.parametrize(("exit_code", "reason"), [(0, StopReason.COMPLETED), (53, StopReason.STEP_LIMIT),
                                                   (1, StopReason.HARNESS_ERROR), (55, StopReason.HARNESS_ERROR)])
def test_exit_codes_map_to_stop_reasons(tmp_path: Path, exit_code: int, reason: StopReason) -> None:
    rc, _, _ = run_launch(tmp_path, "x", exit_code)
    assert rc == exit_code  # exec: qwen's own exit status is the episode's
    assert QwenCodeHarness().stop_reason(ExecResult(exit_code=rc, stdout="", stderr="")) == reason


def test_the_lock_pins_every_package_at_the_version_the_harness_declares() -> None:
    lock = lock_dir("qwen-code")
    pkgs = json.loads((lock / "package-lock.json").read_text())["packages"]
    assert pkgs["node_modules/@qwen-code/qwen-code"]["version"] == QwenCodeHarness.version
    assert json.loads((lock / "package.json").read_text())["dependencies"] == {
        "@qwen-code/qwen-code": QwenCodeHarness.version}
    assert all(p.get("integrity", "").startswith("sha512-") for k, p in pkgs.items() if k)
    boot = json.loads((lock / "bootstrap.json").read_text())
    assert int(boot["node"]["version"].split(".")[0]) >= 22  # qwen-code's engines: node >= 22
    assert len(bundle_key(lock)) == 16
    assert "COPY npm/" in QwenCodeHarness().dockerfile() and "ci --offline" in QwenCodeHarness().dockerfile()


def test_observation_targets_are_the_shell_output_only() -> None:
    h = QwenCodeHarness()
    framed = ("Command: cat f\nDirectory: (root)\nOutput: line 1\nError: in a file\nError: (none)\nExit Code: 0\n"
              "Signal: (none)\nProcess Group PGID: 12")
    [(s, e)] = h.observation_targets({"role": "tool", "content": [{"type": "text", "text": framed}]}) or []
    assert framed[s:e] == "line 1\nError: in a file"  # up to qwen's own last Error line
    empty = framed.replace("line 1\nError: in a file", "(empty)")
    assert h.observation_targets({"role": "tool", "content": empty}) == ()
    assert h.observation_targets({"role": "tool", "content": "File written: a.txt"}) is None  # other tools: whole
    assert h.observation_targets({"role": "user", "content": "<system-reminder>...</system-reminder>"}) == ()
