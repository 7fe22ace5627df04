"""Scale-out on Ray (:mod:`agentgym.rollout.distributed`): ``agentgym rollout --ray-workers N``
on a local Ray cluster of two nodes (two raylets on this machine, one worker actor on each)
writes the trajectories the same seeded run writes in one process, ids and tokens; a stopped
Ray run removes its sandboxes and resumes like a local one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentgym import export
from agentgym.jsonl import read_records
from agentgym.proxy.calllog import read_calls
from agentgym.types import Trajectory
from tests.integration.waiting import processes, waiting_harness

ray = pytest.importorskip("ray")  # a dev dependency (pyproject's dev extra): CI has it

TASKS = "hello-file,leave-a-note,log-report"


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """Two Ray nodes on this machine (head + one more), one CPU each: the address to join."""
    from ray.cluster_utils import Cluster

    store = 80 * 1024 * 1024
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                            "object_store_memory": store})
    cluster.add_node(num_cpus=1, object_store_memory=store)
    cluster.wait_for_nodes()
    try:
        yield str(cluster.address)
    finally:
        cluster.shutdown()


def cli(*args: str, **popen: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "agentgym.cli", "rollout", "--model", "tiny", "--no-progress",
                             *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def run_cli(*args: str) -> str:
    proc = cli(*args)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    return out


def journal(out: Path) -> dict[tuple[str, int], Trajectory]:
    return {(t.task_id, t.sample_index): t for t in read_records(out / "episodes.jsonl", export.trajectory_from_record)
            if t.agent_id == "main"}


def assert_same_episodes(local: dict[tuple[str, int], Trajectory], on_ray: dict[tuple[str, int], Trajectory],
                         local_dir: Path, ray_dir: Path) -> tuple[int, int]:
    """The same episodes, ids and tokens, as far as the environment lets them be: a command's
    output can differ between two runs (``date``), and then what the policy sees and samples
    after it may too. So every call is compared while the two prompts agree (same prompt and
    same seed: the same completion, token for token), and where they part they must part inside
    the environment's output. Returns (episodes identical end to end, calls compared)."""
    assert local.keys() == on_ray.keys()
    identical = compared = 0
    for pair, a in local.items():
        b = on_ray[pair]
        assert (b.id, b.session_id) == (a.id, a.session_id), pair
        calls_a = read_calls(local_dir / "calls" / f"{a.session_id}.jsonl")
        calls_b = read_calls(ray_dir / "calls" / f"{b.session_id}.jsonl")  # gathered by the driver
        assert calls_a and calls_b, pair
        parted = False
        for ca, cb in zip(calls_a, calls_b, strict=False):
            assert isinstance(ca.sampling["seed"], int), "a seeded run seeds every call"
            assert cb.sampling["seed"] == ca.sampling["seed"], (pair, ca.index)
            if cb.prompt_ids != ca.prompt_ids:
                at = next((i for i, (x, y) in enumerate(zip(ca.prompt_ids, cb.prompt_ids, strict=False))
                           if x != y),
                          min(len(ca.prompt_ids), len(cb.prompt_ids)))
                assert any(lo <= at < hi for lo, hi in ca.obs_spans), \
                    f"{pair} call {ca.index}: the prompts part at token {at}, outside the environment's output"
                parted = True
                break
            compared += 1
            assert cb.completion_ids == ca.completion_ids, (pair, ca.index)
            assert max((abs(x - y) for x, y in zip(ca.completion_logprobs, cb.completion_logprobs, strict=True)),
                       default=0.0) < 1e-3
        if not parted:
            assert len(calls_b) == len(calls_a), pair
            assert [s.input_ids for s in b.segments] == [s.input_ids for s in a.segments], pair
            assert [s.action_mask for s in b.segments] == [s.action_mask for s in a.segments], pair
            assert (b.stop_reason, b.reward, b.num_steps) == (a.stop_reason, a.reward, a.num_steps), pair
            identical += 1
    return identical, compared


def test_a_ray_run_on_two_nodes_writes_the_trajectories_of_the_local_run(tmp_path: Path, tiny_model: Path,
                                                                        ray_cluster: str) -> None:
    common = ("--env", "terminal/basic-v0", "--tasks", TASKS, "--runtime", "local", "--samples", "3",
              "--max-steps", "3", "--seed", "11")
    run_cli(*common, "--out", str(tmp_path / "local"), "--concurrency", "4")
    output = run_cli(*common, "--out", str(tmp_path / "ray"), "--concurrency", "2", "--ray-workers", "2",
                     "--ray-address", ray_cluster)
    assert "completed: 9 episode(s)" in output and "(ray:local)" in output, output

    local, on_ray = journal(tmp_path / "local"), journal(tmp_path / "ray")
    assert len(local) == 9
    identical, compared = assert_same_episodes(local, on_ray, tmp_path / "local", tmp_path / "ray")
    print(f"{identical} of 9 episodes identical end to end; {compared} calls compared token for token")
    assert identical >= 1 and compared >= 9  # every episode's first call at least

    workers = json.loads((tmp_path / "ray" / "run.json").read_text())["ray"]["workers"]
    assert len(workers) == 2
    assert len({w["node_id"] for w in workers}) == 2, "one worker on each node (SPREAD)"
    assert len({w["pid"] for w in workers}) == 2 and os.getpid() not in {w["pid"] for w in workers}
    ran = json.loads((tmp_path / "ray" / "runs.jsonl").read_text().splitlines()[-1])["workers"]
    assert sorted(w["episodes"] for w in ran) != [0, 9] and sum(w["episodes"] for w in ran) == 9, ran
    exported = export.read_parquet(tmp_path / "ray" / "trajectories.parquet")
    assert sorted(t.session_id for t in exported if t.agent_id == "main") == sorted(t.session_id for t in on_ray.values())


@pytest.mark.slow
def test_a_stopped_ray_run_removes_its_sandboxes_and_resumes(tmp_path: Path, tiny_model: Path,
                                                            ray_cluster: str) -> None:
    harness, marker = waiting_harness(tmp_path, 597)
    out = tmp_path / "run"
    common = ("--env", "terminal/basic-v0", "--tasks", "hello-file,leave-a-note", "--runtime", "local",
              "--samples", "2", "--harness", str(harness), "--seed", "5", "--ray-workers", "2",
              "--ray-address", ray_cluster, "--out", str(out))
    first = cli(*common)
    try:
        deadline = time.monotonic() + 300
        while len(processes(marker)) < 4:
            assert first.poll() is None, first.communicate()[0]
            assert time.monotonic() < deadline, "the four episodes' harnesses did not all start in 5 minutes"
            time.sleep(0.5)
        first.send_signal(signal.SIGTERM)
        output, _ = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 128 + signal.SIGTERM, output
    assert "stopped by SIGTERM" in output and "half episodes: 4 cut short" in output, output
    assert processes(marker) == [], "the workers removed their sandboxes (process trees)"
    halves = [json.loads(line) for line in (out / "interrupted.jsonl").read_text().splitlines()]
    assert sorted((h["task_id"], h["sample_index"], h["reason"]) for h in halves) == \
        [("hello-file", 0, "SIGTERM"), ("hello-file", 1, "SIGTERM"), ("leave-a-note", 0, "SIGTERM"),
         ("leave-a-note", 1, "SIGTERM")]

    output = run_cli(*common, "--timeout", "2")
    assert "completed: 4 episode(s)" in output and "resumed: 4 cut short earlier" in output, output
    ended = journal(out)
    assert sorted(ended) == [("hello-file", 0), ("hello-file", 1), ("leave-a-note", 0), ("leave-a-note", 1)]
    assert {t.session_id for t in ended.values()}.isdisjoint({h["session_id"] for h in halves}), \
        "a resumed episode runs in a new session (the half episode's calls are kept under its own)"
    assert all(t.stop_reason.value == "timeout" for t in ended.values())


@pytest.mark.docker
@pytest.mark.slow
def test_ray_workers_run_their_own_docker_sandboxes(tmp_path: Path, tiny_model: Path, ray_cluster: str) -> None:
    common = ("--env", "terminal/hello-file-v0", "--runtime", "docker", "--samples", "2", "--max-steps", "3",
              "--seed", "3")
    run_cli(*common, "--out", str(tmp_path / "local"))
    run_cli(*common, "--out", str(tmp_path / "ray"), "--ray-workers", "2", "--ray-address", ray_cluster)
    local, on_ray = journal(tmp_path / "local"), journal(tmp_path / "ray")
    assert len(local) == 2
    _, compared = assert_same_episodes(local, on_ray, tmp_path / "local", tmp_path / "ray")
    assert compared >= 2
    assert {t.metadata["backend"] for t in on_ray.values()} == {"docker"}
    workers = json.loads((tmp_path / "ray" / "run.json").read_text())["ray"]["workers"]
    for w in workers:
        left = subprocess.run(["docker", "ps", "-a", "-q", "--filter", "label=agentgym=1", "--filter",
                               f"label=agentgym.pid={w['pid']}"], capture_output=True, text=True, check=True)
        assert left.stdout.split() == [], f"worker {w['pid']} removed its containers"


@pytest.mark.slow
def test_the_pieces_of_a_worker_that_dies_go_to_another(tmp_path: Path, tiny_model: Path, ray_cluster: str) -> None:
    harness, marker = waiting_harness(tmp_path, 596)
    out = tmp_path / "run"
    proc = cli("--env", "terminal/basic-v0", "--tasks", "hello-file,leave-a-note", "--runtime", "local",
               "--samples", "2", "--harness", str(harness), "--seed", "5", "--ray-workers", "2",
               "--ray-address", ray_cluster, "--out", str(out), "--timeout", "20")
    try:
        deadline = time.monotonic() + 300
        while len(processes(marker)) < 4 or not (out / "run.json").exists():
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "the four episodes' harnesses did not all start in 5 minutes"
            time.sleep(0.5)
        victim = json.loads((out / "run.json").read_text())["ray"]["workers"][0]["pid"]
        os.kill(victim, signal.SIGKILL)
        output, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert "worker 0 died" in output and "handing the piece to another worker" in output, output
    assert "completed: 4 episode(s)" in output, output
    ended = journal(out)
    assert sorted(ended) == [("hello-file", 0), ("hello-file", 1), ("leave-a-note", 0), ("leave-a-note", 1)]
    assert all(t.stop_reason.value == "timeout" for t in ended.values())
    ran = json.loads((out / "runs.jsonl").read_text().splitlines()[-1])["workers"]
    assert [w["episodes"] for w in ran] == [0, 4], ran


@pytest.mark.slow
def test_training_rolls_out_on_ray_workers_and_sends_them_every_update(tmp_path: Path, tiny_model: Path,
                                                                      ray_cluster: str) -> None:
    from agentgym.export import read_jsonl
    from agentgym.trainers.config import TrainConfig
    from agentgym.trainers.train import train

    result = train(TrainConfig(
        model="tiny", env="tests.integration.train_helpers:SharedAlternatingEnv", runtime="local",
        out=str(tmp_path / "run"), iterations=2, tasks_per_iteration=2, group_size=4, concurrency=4, max_steps=2,
        max_tokens=48, lr=1e-2, progress=False, estimator="grpo", ray_workers=2, ray_address=ray_cluster))
    m0, m1 = result.metrics
    assert m0["update"]["optimizer_steps"] == 1 and m1["update"]["optimizer_steps"] == 1
    assert result.policy_version == 2
    for it, m in enumerate((m0, m1)):
        # the workers sampled with the trainer's weights: before the first update, and after it (pushed)
        assert abs(m["first_step_ratio"]["min"] - 1) < 1e-4 and abs(m["first_step_ratio"]["max"] - 1) < 1e-4, (it, m)
        rollouts = tmp_path / "run" / "rollouts" / f"iter-{it:05d}"
        versions = {v for t in read_jsonl(rollouts / "episodes.jsonl") for s in t.segments
                    for v, a in zip(s.policy_version, s.action_mask, strict=True) if a}
        assert versions == {it}, (it, versions)
        workers = json.loads((rollouts / "run.json").read_text())["ray"]["workers"]
        assert len({w["node_id"] for w in workers}) == 2
