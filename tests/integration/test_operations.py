"""A rollout as an operator runs it: `agentgym rollout` in its own process, stopped by signals,
run twice on one directory, killed mid-run and resumed, and on a full or read-only disk.

The child process is the real CLI with one extra registered engine (`test/looping-v0`, a
scripted engine whose agent never finishes), so episodes are in flight whenever we stop it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentgym.rollout.resume import count_calls

CHILD = r'''
import sys
from agentgym import registries
from agentgym.engines.scripted import ScriptedEngine

LOOP = '<tool_call>\n{"name": "bash", "arguments": {"command": "sleep 0.2; echo tick"}}\n</tool_call>'
SOLVE = ('<tool_call>\n{"name": "bash", "arguments": {"command": "printf \'Hello, agentgym!\\\\n\' > '
         '/app/hello.txt"}}\n</tool_call>')


def looping():
    from agentgym.models.tiny import train_tokenizer
    return ScriptedEngine(train_tokenizer(), lambda ids, n: LOOP, delay_s=0.02)


def solving():
    from agentgym.models.tiny import train_tokenizer
    tok = train_tokenizer()
    return ScriptedEngine(tok, lambda ids, n: "Done." if "<tool_response>" in tok.decode(ids) else SOLVE)


registries.engines.register("test/looping-v0", looping)
registries.engines.register("test/solving-v0", solving)
from agentgym.cli import main
sys.argv = ["agentgym", *sys.argv[1:]]
main()
'''


@pytest.fixture(scope="module")
def child(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("child") / "agentgym_child.py"
    path.write_text(CHILD)
    return path


def rollout_cmd(child: Path, out: Path, *, runtime: str = "local", engine: str = "test/looping-v0",
                samples: int = 2, extra: tuple[str, ...] = ()) -> list[str]:
    return [sys.executable, str(child), "rollout", "--env", "terminal/hello-file-v0", "--model", engine,
            "--samples", str(samples), "--concurrency", str(samples), "--runtime", runtime, "--out", str(out),
            "--max-steps", "1000", "--timeout", "600", "--no-progress", *extra]


def start(cmd: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def wait_for(predicate: Any, timeout: float = 90.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def calls_recorded(out: Path, n: int) -> bool:
    """Every in-flight episode has recorded at least ``n`` calls."""
    files = list((out / "calls").glob("*.jsonl")) if (out / "calls").is_dir() else []
    return len(files) >= 2 and all(count_calls(f) >= n for f in files)


def journal_lines_parse(path: Path) -> int:
    """The journal holds whole records only; returns how many."""
    if not path.exists():
        return 0
    data = path.read_bytes()
    assert not data or data.endswith(b"\n"), "torn last line"
    lines = [line for line in data.decode().splitlines() if line.strip()]
    for line in lines:
        json.loads(line)
    return len(lines)


# -- stopping --------------------------------------------------------------------------------
def containers_of(pid: int) -> list[str]:
    import docker

    client = docker.from_env()
    try:
        found = client.api.containers(all=True, filters={"label": f"agentgym.pid={pid}"})
        return [c["Id"] for c in found]
    finally:
        client.close()


@pytest.mark.docker
def test_sigterm_leaves_no_container(child: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = start(rollout_cmd(child, out, runtime="docker"))
    try:
        wait_for(lambda: calls_recorded(out, 2), 240, "both episodes to be serving calls")
        assert len(containers_of(proc.pid)) >= 2
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert containers_of(proc.pid) == []
    assert "stopped by SIGTERM" in stdout and "Traceback" not in stderr
    assert "2 cut short by this stop" in stdout
    halves = [json.loads(line) for line in (out / "interrupted.jsonl").read_text().splitlines()]
    assert sorted(h["reason"] for h in halves) == ["SIGTERM", "SIGTERM"]
    assert all(h["calls"] >= 2 and (out / h["calls_path"]).exists() for h in halves)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "stopped by SIGTERM" and summary["interrupted"] == 2


@pytest.mark.parametrize("sig", ["SIGINT", "SIGHUP"])
def test_sigint_and_sighup_stop_a_local_run_and_leave_no_process(child: Path, tmp_path: Path, sig: str) -> None:
    out = tmp_path / "run"
    proc = start(rollout_cmd(child, out))
    try:
        wait_for(lambda: calls_recorded(out, 2), 120, "both episodes to be serving calls")
        proc.send_signal(signal.Signals[sig])
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.Signals[sig], stderr
    assert f"stopped by {sig}" in stdout
    leftover = subprocess.run(["pgrep", "-f", str(out)], capture_output=True, text=True).stdout.split()
    assert leftover == []  # no harness, no sandbox (they ran from the run's directories)
    assert journal_lines_parse(out / "episodes.jsonl") == 0  # nothing finished; nothing torn


def test_a_crashed_run_keeps_its_half_episodes_calls_and_the_resume_says_so(child: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = start(rollout_cmd(child, out))
    try:
        wait_for(lambda: calls_recorded(out, 2), 120, "both episodes to be serving calls")
        proc.kill()  # SIGKILL: no cleanup at all
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    halves = {p.stem: count_calls(p) for p in (out / "calls").glob("*.jsonl")}
    kept = {p.stem: p.read_bytes() for p in (out / "calls").glob("*.jsonl")}
    assert len(halves) == 2
    resumed = subprocess.run(rollout_cmd(child, out, engine="test/solving-v0"), capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed: 2 cut short earlier, run again from the start" in resumed.stdout
    assert "their recorded calls" in resumed.stdout
    listed = [json.loads(line) for line in (out / "interrupted.jsonl").read_text().splitlines()]
    assert {h["session_id"]: h["calls"] for h in listed} == halves
    assert all(h["reason"] == "crash" for h in listed)
    for sid, data in kept.items():  # kept, untouched
        assert (out / "calls" / f"{sid}.jsonl").read_bytes() == data
    episodes = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    assert sorted(e["sample_index"] for e in episodes) == [0, 1]
    assert all(e["reward"] == 1.0 and e["session_id"] not in halves for e in episodes)
    again = subprocess.run(rollout_cmd(child, out, engine="test/solving-v0"), capture_output=True, text=True,
                           timeout=300)
    assert "resumed: 2 done before, skipped" in again.stdout


# -- one run per directory -------------------------------------------------------------------
def test_a_second_run_on_a_locked_directory_refuses_and_names_the_holder(child: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = start(rollout_cmd(child, out))
    try:
        wait_for(lambda: calls_recorded(out, 1), 120, "the first run to be serving calls")
        second = subprocess.run(rollout_cmd(child, out), capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert f"is in use by pid {first.pid}" in lines[0] and "rollout" in lines[0]
        assert first.poll() is None  # the first run goes on, untouched
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    sessions = (out / "sessions.jsonl").read_text().splitlines()
    assert len(sessions) == 2  # only the first run started episodes


# -- file-system errors ----------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs (root only)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(disk: Path, leave: int) -> None:
    """Fill ``disk`` but ``leave`` bytes."""
    st = os.statvfs(disk)
    free = st.f_bavail * st.f_frsize
    with open(disk / "filler", "wb") as f:
        f.write(b"\0" * max(0, free - leave))


def test_a_full_disk_gives_one_line_and_no_torn_journal(child: Path, small_disk: Path) -> None:
    out = small_disk / "run"
    first = subprocess.run(rollout_cmd(child, out, engine="test/solving-v0", samples=1), capture_output=True,
                           text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    record = (out / "episodes.jsonl").stat().st_size
    # Less room than one episode record. The next two episodes cannot both be saved: a record that
    # does not fit is undone, not torn, and waits in memory; a call the proxy cannot journal is
    # refused, so that episode may end early as an engine error (a small record that can fit, and
    # is retried on resume as a failure outside the agent).
    fill(small_disk, leave=record // 2)
    run = subprocess.run(rollout_cmd(child, out, engine="test/solving-v0", samples=3), capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 2
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0], run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) <= 4, run.stderr
    unsaved = re.search(r"(\d+) finished episode\(s\) could not be saved and run again on resume", errors[0])
    assert unsaved is not None, errors[0]
    saved = journal_lines_parse(out / "episodes.jsonl")  # whole records only: nothing torn
    # Every finished episode is either whole in the journal or counted as not saved.
    assert int(unsaved.group(1)) >= 1 and saved + int(unsaved.group(1)) == 3, (saved, errors[0])
    (small_disk / "filler").unlink()  # space again: the resume runs what was not saved
    again = subprocess.run(rollout_cmd(child, out, engine="test/solving-v0", samples=3), capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    from agentgym import export
    from agentgym.rollout.runner import latest_attempts

    latest = latest_attempts(export.read_jsonl(out / "episodes.jsonl"))
    assert sorted((t.sample_index, t.stop_reason.value, t.reward) for t in latest) == \
        [(0, "completed", 1.0), (1, "completed", 1.0), (2, "completed", 1.0)]


def test_a_read_only_output_directory_gives_one_line(child: Path, tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a read-only tmpfs needs root")
    try:
        run = subprocess.run(rollout_cmd(child, ro / "run", engine="test/solving-v0", samples=1),
                             capture_output=True, text=True, timeout=120)
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        f"error: cannot use the output directory {ro / 'run'}: Read-only file system (the file system is "
        "read-only: pass an output directory on a writable one)"]


# -- in process: the journal's backlog, image time, the lock ---------------------------------
def solving_engine() -> Any:
    from agentgym.engines.scripted import ScriptedEngine
    from agentgym.models.tiny import train_tokenizer

    tok = train_tokenizer()
    solve = ('<tool_call>\n{"name": "bash", "arguments": {"command": "printf \'Hello, agentgym!\\\\n\' > '
             '/app/hello.txt"}}\n</tool_call>')
    return ScriptedEngine(tok, lambda ids, n: "Done." if "<tool_response>" in tok.decode(ids) else solve)


def test_an_episode_whose_record_cannot_be_written_waits_while_the_others_go_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import asyncio
    import errno
    import logging

    from agentgym import export
    from agentgym.rollout.runner import RolloutConfig, run_rollouts

    real = export.write_jsonl
    failures = iter([True, True])  # the first two journal writes hit a full disk

    def flaky(trajs: Any, path: Any, append: bool = False) -> Path:
        if next(failures, False):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(trajs, path, append=append)

    monkeypatch.setattr(export, "write_jsonl", flaky)
    cfg = RolloutConfig(env="terminal/hello-file-v0", harness="agentgym/react-v0", samples=3, concurrency=1,
                        out_dir=str(tmp_path / "run"), runtime="local", progress=False, max_steps=4)
    with caplog.at_level(logging.WARNING, logger="agentgym"):
        result = asyncio.run(run_rollouts(cfg, solving_engine()))
    assert sorted(t.sample_index for t in result.main) == [0, 1, 2]  # the third write took all three
    assert all(t.reward == 1.0 for t in result.main)
    assert journal_lines_parse(result.journal) == 3
    full = [r for r in caplog.records if "No space left" in r.getMessage()]
    assert len(full) == 1  # said once, not per episode
    assert "writable again: 3 waiting episode record(s) written" in caplog.text
    assert result.summary is not None and result.summary.unsaved == 0


def test_image_preparation_is_timed_apart_from_the_episode(tmp_path: Path) -> None:
    import asyncio

    from agentgym.rollout.runner import RolloutConfig, run_rollouts
    from agentgym.runtime.local import LocalBackend

    class SlowImages(LocalBackend):
        """The local runtime, with images that take 1.5 s to 'build' (once per task image + layer)."""

        uses_images = True

        async def ensure_image(self, image: str, dockerfile_dir: str | None) -> str:
            await asyncio.sleep(0.75)
            return image

    cfg = RolloutConfig(env="terminal/hello-file-v0", harness="agentgym/react-v0", samples=2, concurrency=2,
                        out_dir=str(tmp_path / "run"), runtime="local", progress=False, max_steps=4)
    result = asyncio.run(run_rollouts(cfg, solving_engine(), backend=SlowImages(tmp_root=str(tmp_path))))
    for t in result.main:
        timings = t.metadata["timings"]
        # The one build ran before any episode started: no episode waited for it or counts it.
        assert timings["image_s"] < 0.5
        assert t.ended_at - t.started_at == pytest.approx(
            timings["sandbox_s"] + timings["agent_s"] + timings["verify_s"], abs=0.5)
        assert 0 < timings["engine_s"] <= timings["agent_s"]
    summary = result.summary
    assert summary is not None and summary.builds == 1 and summary.build_s >= 1.4
    assert summary.run_s < sum(t.ended_at - t.started_at for t in result.main) + 0.01
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved["build_s"] == summary.build_s and 0 < saved["utilization"] <= 1
    assert 0 < saved["engine_wait_ratio"] < 1 and saved["episodes_per_s"] > 0


def test_run_rollouts_refuses_a_directory_another_run_holds(tmp_path: Path) -> None:
    import asyncio

    from agentgym.rollout.lock import RunDirLocked, RunLock
    from agentgym.rollout.runner import RolloutConfig, run_rollouts

    out = tmp_path / "run"
    cfg = RolloutConfig(env="terminal/hello-file-v0", harness="agentgym/react-v0", samples=1,
                        out_dir=str(out), runtime="local", progress=False)
    holder = rf"in use by pid {os.getpid()} .*agentgym rollout --out run"
    with RunLock(out, what="agentgym rollout --out run"), pytest.raises(RunDirLocked, match=holder) as e:
        asyncio.run(run_rollouts(cfg, solving_engine()))
    assert e.value.holder["pid"] == os.getpid()
    assert sorted(p.name for p in out.iterdir()) == ["run.lock"]  # nothing else was touched
    assert asyncio.run(run_rollouts(cfg, solving_engine())).main[0].reward == 1.0  # released: runs
