"""A rollout killed with SIGKILL while its containers run (its warm pool's among them) leaves them
behind (nothing of it can run), and the next ``agentgym rollout`` removes them before it starts (``DockerBackend.cleanup``:
containers whose creating process, by pid and start time, is gone). On the local runtime nothing
is left either: the next run kills sandbox processes of runtimes whose creating process is gone
(``LocalBackend.cleanup``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.waiting import processes, waiting_harness


def containers_of(pid: int, *labels: str) -> list[str]:
    filters = [arg for label in ("agentgym=1", f"agentgym.pid={pid}", *labels) for arg in ("--filter", f"label={label}")]
    out = subprocess.run(["docker", "ps", "-a", "-q", *filters], capture_output=True, text=True, check=True)
    return out.stdout.split()


def rollout(out: Path, *extra: str, runtime: str = "docker") -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "agentgym.cli", "rollout", "--env", "terminal/hello-file-v0", "--runtime", runtime,
         "--samples", "2", "--concurrency", "2", "--model", "tiny", "--out", str(out), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


@pytest.mark.docker
@pytest.mark.slow
def test_the_next_run_removes_what_a_killed_run_left(tmp_path: Path, tiny_model: Path) -> None:
    # The killed run's harness waits, so its episodes are still running when it is killed (a run
    # that had already ended its episodes would have removed its containers itself).
    harness, _ = waiting_harness(tmp_path, 600)
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


def test_the_next_run_kills_the_local_sandboxes_a_killed_run_left(tmp_path: Path, tiny_model: Path) -> None:
    harness, marker = waiting_harness(tmp_path, 598)
    run = rollout(tmp_path / "killed", "--harness", str(harness), "--timeout", "600", runtime="local")
    try:
        deadline = time.monotonic() + 300
        while len(processes(marker)) < 2:
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
    time.sleep(2)
    # Usually the sandboxes die with the run (bwrap --die-with-parent); not always, so the next
    # run kills whatever of them is left (LocalBackend.cleanup) before it starts its own.
    print(f"{len(processes(marker))} sandbox process(es) outlived the killed run")
    second = rollout(tmp_path / "next", "--max-steps", "1", "--timeout", "60", runtime="local")
    try:
        output, _ = second.communicate(timeout=600)
    finally:
        if second.poll() is None:
            second.kill()
    assert second.returncode == 0, output
    assert processes(marker) == [], "the next run killed the killed run's sandboxes"
    assert "completed: 2 episode(s)" in output
