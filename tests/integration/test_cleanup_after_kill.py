"""A rollout killed with SIGKILL while its containers run (its warm pool's among them) leaves them
behind (nothing of it can run), and the next ``agentgym rollout`` removes them before it starts (``DockerBackend.cleanup``:
containers whose creating process, by pid and start time, is gone)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def containers_of(pid: int, *labels: str) -> list[str]:
    filters = [arg for label in ("agentgym=1", f"agentgym.pid={pid}", *labels) for arg in ("--filter", f"label={label}")]
    out = subprocess.run(["docker", "ps", "-a", "-q", *filters], capture_output=True, text=True, check=True)
    return out.stdout.split()


def rollout(out: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "agentgym.cli", "rollout", "--env", "terminal/hello-file-v0", "--runtime", "docker",
         "--samples", "2", "--concurrency", "2", "--model", "tiny", "--out", str(out), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


# The killed run's harness waits, so its episodes are still running when it is killed (the tiny
# model can solve hello-file in a few seconds: a run that had already ended its episodes would
# have removed its containers itself, and the test would prove nothing).
WAITING_HARNESS = """
id = "test/waits-v0"
description = "waits ten minutes without calling the model"
dialect = "openai"

[launch]
command = "sleep 600"
"""


def test_the_next_run_removes_what_a_killed_run_left(tmp_path: Path, tiny_model: Path) -> None:
    harness = tmp_path / "waits.toml"
    harness.write_text(WAITING_HARNESS)
    first = rollout(tmp_path / "killed", "--harness", str(harness), "--timeout", "600", "--warm-pool", "2")
    try:
        deadline = time.monotonic() + 600
        while not containers_of(first.pid):
            assert first.poll() is None, f"the rollout ended before any container ran:\n{first.stdout.read()}"  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "no container of the rollout appeared in 10 minutes"
            time.sleep(0.5)
        time.sleep(1.0)
        os.kill(first.pid, signal.SIGKILL)  # this process only: no atexit, no finally, no cleanup
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
        if first.stdout is not None:
            first.stdout.close()
    left = containers_of(first.pid)
    assert left, "a SIGKILLed rollout cannot remove its containers; they must still be there"
    assert containers_of(first.pid, "agentgym.pool=1"), "the warm pool's sandboxes carry the run's labels too"

    second = rollout(tmp_path / "next", "--max-steps", "1", "--timeout", "60")
    try:
        output, _ = second.communicate(timeout=900)
    finally:
        if second.poll() is None:
            second.kill()
    assert second.returncode == 0, output
    assert containers_of(first.pid) == []
    assert containers_of(second.pid) == []  # and it removed its own
    assert "completed: 2 episode(s)" in output
