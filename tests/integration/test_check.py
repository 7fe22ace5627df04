"""``agentgym check env`` and ``agentgym prebuild`` as a user runs them, against Docker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def agentgym(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentgym.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def remove_image(tag: str) -> None:
    import docker

    client = docker.from_env()
    try:
        client.images.remove(tag, force=True)
    except docker.errors.ImageNotFound:
        pass
    finally:
        client.close()


@pytest.mark.docker
def test_check_env_on_a_registered_task_in_docker(tmp_path: Path) -> None:
    r = agentgym("check", "env", "terminal/hello-file-v0", "--runtime", "docker", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    line = next(line for line in r.stdout.splitlines() if line.startswith("hello-file "))
    assert "nothing=0 ok" in line and "oracle=1 ok" in line
    assert line.split()[1].endswith("s")  # build seconds
    assert "terminal/hello-file-v0: 1 task(s) on docker: 1 ok" in r.stdout


@pytest.mark.docker
def test_check_env_fails_loudly_on_a_task_directory_whose_verifier_cannot_pass(tmp_path: Path) -> None:
    task = tmp_path / "never-passes"
    for sub in ("environment", "tests", "solution"):
        (task / sub).mkdir(parents=True)
    (task / "instruction.md").write_text("Create /app/done.\n")
    (task / "task.toml").write_text('version = "1.0"\n')
    (task / "environment" / "Dockerfile").write_text("FROM agentgym/base:bookworm\nWORKDIR /app\n")
    (task / "solution" / "solve.sh").write_text("touch /app/done\n")
    (task / "tests" / "test.sh").write_text(
        'mkdir -p /logs/verifier\necho "FAIL: looked for /app/finished"\n'
        '[ -f /app/finished ] && echo 1 > /logs/verifier/reward.txt || echo 0 > /logs/verifier/reward.txt\n')
    try:
        r = agentgym("check", "env", str(task), "--runtime", "docker", cwd=tmp_path)
    finally:
        remove_image("agentgym/harbor-never-passes:latest")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "never-passes" in r.stdout and "oracle=1 FAIL" in r.stdout
    assert "FAIL: looked for /app/finished" in r.stdout  # the verifier's own output tail
    assert "1 FAILED (never-passes)" in r.stdout


@pytest.mark.docker
def test_prebuild_builds_task_images_and_the_harness_layer(tmp_path: Path) -> None:
    r = agentgym("prebuild", "terminal/hello-file-v0", "--harness", "agentgym/react-v0", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [line.split() for line in r.stdout.splitlines() if line.startswith("hello-file ")]
    assert [parts[2:] for parts in lines] == [
        ["agentgym/harbor-hello-file:latest"],
        ["+", "agentgym/react-v0", "agentgym/agentgym-react-v0:agentgym-harbor-hello-file-latest"]]
    assert all(parts[1].endswith("s") for parts in lines)
    assert "2 image(s) ready" in r.stdout
