"""A rollout killed with SIGKILL while its containers run (its warm pool's among them) leaves them
behind (nothing of it can run), and the next ``agentgym rollout`` removes them before it starts (``DockerBackend.cleanup``:
containers whose creating process, by pid and start time, is gone). On the local runtime nothing
is left at all: each sandbox dies with the process that started it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def containers_of(pid: int, *labels: str) -> list[str]:
    filters = [arg for label in ("agentgym=1", f"agentgym.pid={pid}", *labels) for arg in ("--filter", f"label={label}")]
    out = subprocess.run(["docker", "ps", "-a", "-q", *filters], capture_output=True, text=True, check=True)
    return out.stdout.split()


def rollout(out: Path, *extra: str, runtime: str = "docker") -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "agentgym.cli", "rollout", "--env", "terminal/hello-file-v0", "--runtime", runtime,
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


@pytest.mark.docker
@pytest.mark.slow
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


def test_a_killed_run_leaves_no_local_sandbox_running(tmp_path: Path, tiny_model: Path) -> None:
    marker = "sleep 598"  # this test's harness processes
    harness = tmp_path / "waits.toml"
    harness.write_text(WAITING_HARNESS.replace("sleep 600", marker))
    run = rollout(tmp_path / "killed", "--harness", str(harness), "--timeout", "600", runtime="local")
    try:
        deadline = time.monotonic() + 300
        while len(pgrep(marker)) < 2:
            assert run.poll() is None, run.communicate()[0]
            assert time.monotonic() < deadline, "the two episodes' harnesses did not start in 5 minutes"
            time.sleep(0.3)
        os.kill(run.pid, signal.SIGKILL)
        run.wait(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
        if run.stdout is not None:
            run.stdout.close()
    deadline = time.monotonic() + 10
    while pgrep(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert pgrep(marker) == [], "the sandboxes (bwrap and the agent inside) died with the killed run"


def pgrep(pattern: str) -> list[str]:
    return subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
