"""Checks for fix-python-script. AGENTGYM_ROOT is unset in a container (agentgym's local-unsafe runtime
sets it to its fake root).

As root (the sealed verifier container) the agent's script runs as ``nobody``, on input files
that user can read: it cannot touch the verifier or its reward. (Where ``nobody`` cannot run this
interpreter, e.g. a host's private Python under the local runtime, which protects nothing anyway,
it runs as the caller.)"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

APP = Path(os.environ.get("AGENTGYM_ROOT", "") + "/app")


def unprivileged() -> dict:
    if os.geteuid() != 0:
        return {}
    user = {"user": 65534, "group": 65534, "extra_groups": []}
    try:
        subprocess.run([sys.executable, "-c", "pass"], check=True, capture_output=True, timeout=30, cwd="/", **user)
    except (OSError, subprocess.SubprocessError):
        return {}
    return user


USER = unprivileged()


@pytest.fixture
def tmp_path():
    """A directory the script's user can read (pytest's own tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="stats-inputs-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run(*args: str) -> str:
    for arg in args:
        Path(arg).chmod(0o644)
    proc = subprocess.run([sys.executable, str(APP / "stats.py"), *args], capture_output=True, text=True,
                          timeout=30, stdin=subprocess.DEVNULL, **USER)
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
