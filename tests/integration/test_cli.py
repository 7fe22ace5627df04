"""The command line as a user runs it: a real subprocess, real output, real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agentgym import export


def agentgym(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentgym.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def test_lists_show_the_builtins(tmp_path: Path) -> None:
    envs = agentgym("envs", "list", cwd=tmp_path)
    assert envs.returncode == 0, envs.stderr
    assert "terminal/basic-v0" in envs.stdout and "terminal/leave-a-note-v0" in envs.stdout
    harnesses = agentgym("harnesses", "list", cwd=tmp_path)
    assert "agentgym/react-v0" in harnesses.stdout and "mini-swe-agent/mini-v2" in harnesses.stdout


def test_unknown_env_is_a_clear_error_with_a_suggestion(tmp_path: Path) -> None:
    r = agentgym("rollout", "--env", "terminal/hello-fil-v0", "--runtime", "local", "--out", "x", cwd=tmp_path)
    assert r.returncode == 2
    assert "Did you mean 'terminal/hello-file-v0'" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.slow
def test_quickstart_then_export_then_view(tmp_path: Path) -> None:
    r = agentgym("quickstart", "--runtime", "local", "--samples", "2", "--max-steps", "2", "--out", "qs", "--json",
                 cwd=tmp_path)
    assert r.returncode == 0, r.stderr + r.stdout
    summary = json.loads(r.stdout[r.stdout.index("{\n"):])
    assert summary["runtime"] == "local" and summary["episodes"] == 8  # 4 local tasks x 2 samples
    assert summary["sampled_tokens"] > 0 and summary["delivered_fraction"] == 1.0
    assert summary["grpo"]["rows"] > 0
    trajs = export.read(tmp_path / "qs" / "trajectories.parquet")
    assert len(trajs) == 8 and all(t.segments for t in trajs)

    e = agentgym("export", "qs", "out.jsonl", cwd=tmp_path)
    assert e.returncode == 0, e.stderr
    assert export.read(tmp_path / "out.jsonl") == trajs

    v = agentgym("view", "qs", cwd=tmp_path)
    assert v.returncode == 0, v.stderr
    html = (tmp_path / "qs" / "view.html").read_text()
    assert all(t.id in html for t in trajs)
    assert "\\u003c|im_start|>" in html  # token bytes from the run's own tokenizer (run.json), for the page to decode
