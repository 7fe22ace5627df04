"""Checks for fix-python-script. AGENTGYM_ROOT is unset in a container (agentgym's local-unsafe runtime
sets it to its fake root)."""

import os
import subprocess
import sys
from pathlib import Path

APP = Path(os.environ.get("AGENTGYM_ROOT", "") + "/app")


def run(*args: str) -> str:
    proc = subprocess.run([sys.executable, str(APP / "stats.py"), *args], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_given_file():
    assert run() == "count=6 mean=4.50 max=12"


def test_hidden_file(tmp_path):
    data = tmp_path / "other.txt"
    data.write_text("# header\n-3\n\n  10\n-8\n# 99\n2\n1\n")
    assert run(str(data)) == "count=5 mean=0.40 max=10"


def test_all_negative(tmp_path):
    data = tmp_path / "neg.txt"
    data.write_text("-5\n-2\n-9\n")
    assert run(str(data)) == "count=3 mean=-5.33 max=-2"
