"""Helpers for harness command tests: run a launch command with its programs replaced by stubs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

ARGV_STUB = """#!{python}
import json, os, sys
with open(os.environ["STUB_RECORD"], "w") as f:
    json.dump(sys.argv[1:], f)
traj = os.environ.get("AGENTGYM_MINI_TRAJ")
status = os.environ.get("STUB_EXIT_STATUS")
if traj and status is not None:
    os.makedirs(os.path.dirname(traj), exist_ok=True)
    with open(traj, "w") as f:
        json.dump({{"info": {{"exit_status": status}}}}, f)
sys.exit(int(os.environ.get("STUB_EXIT", "0")))
"""


class StubRun:
    """Writes an executable that records its argv (and, for mini, a trajectory file)."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.stub = tmp_path / "stub"
        self.stub.write_text(ARGV_STUB.format(python=sys.executable))
        self.stub.chmod(0o755)
        self.record = tmp_path / "argv.json"

    def run(self, cmd: str, env: Mapping[str, str], **overrides: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
        full = {"PATH": os.environ["PATH"], "STUB_RECORD": str(self.record), **env, **overrides}
        proc = subprocess.run(["bash", "-c", cmd], env=full, capture_output=True, text=True, timeout=60, check=False)
        argv = json.loads(self.record.read_text()) if self.record.exists() else []
        return proc, argv


@pytest.fixture
def stub_run(tmp_path: Path) -> StubRun:
    return StubRun(tmp_path)
