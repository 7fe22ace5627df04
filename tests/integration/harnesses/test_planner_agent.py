"""planner_agent.py against a scripted OpenAI server: the delegation protocol, the workers' own
routes and prompts, step limits, the list split, the read-only planner, determinism; then through
the harness on the local runtime and in a Docker container."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentgym.harness import HarnessContext
from agentgym.harnesses.planner import SCRIPT, PlannerHarness
from agentgym.types import StopReason, Task
from tests.integration.harnesses.fake_openai import FakeOpenAI, Reply, error, text, tool_call

BASE_IMAGE = "agentgym/base:bookworm"
PLANNER = "/s/test-session/v1/chat/completions"


def worker_path(n: int) -> str:
    return f"/s/test-session/a/sub-{n}/v1/chat/completions"


def delegate(task: str, call_id: str | None = None) -> Reply:
    return tool_call("", name="delegate", arguments=json.dumps({"task": task}), call_id=call_id, content="Delegating.")


def run_script(srv: FakeOpenAI, tmp_path: Path, *args: str, task: str = "make a.txt and b.txt",
               timeout: float = 60) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    log = tmp_path / "episode.json"
    env = {**os.environ, "OPENAI_API_KEY": "sk-test"}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--base-url", srv.base_url, "--model", "policy", "--task", task,
         "--log", str(log), "--workdir", str(tmp_path), "--retry-backoff", "0.01", *args],
        capture_output=True, text=True, timeout=timeout, env=env, check=False)
    return proc, (json.loads(log.read_text()) if log.exists() else {})


SOLVE = [delegate("Create a.txt containing A.", "p1"),
         tool_call("echo A > a.txt", call_id="w1"), text("Created a.txt."),
         delegate("Create b.txt containing B.", "p2"),
         tool_call("echo B > b.txt", call_id="w2"), text("Created b.txt."),
         tool_call("cat a.txt b.txt", call_id="p3"), text("Both files exist.")]


def test_planner_delegates_to_workers_on_their_own_routes_and_verifies(tmp_path: Path) -> None:
    with FakeOpenAI(SOLVE) as srv:
        proc, log = run_script(srv, tmp_path, "--temperature", "0.5", "--max-tokens", "77")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "a.txt").read_text() == "A\n" and (tmp_path / "b.txt").read_text() == "B\n"
    assert [r["path"] for r in srv.requests] == [PLANNER, worker_path(1), worker_path(1), PLANNER,
                                                 worker_path(2), worker_path(2), PLANNER, PLANNER]
    planner0, worker0 = srv.bodies[0], srv.bodies[1]
    headers = [{k.lower(): v for k, v in r["headers"].items()} for r in srv.requests[:2]]
    assert headers[0]["x-agentgym-agent"] == "main" and "x-agentgym-agent" not in headers[1]
    assert [t["function"]["name"] for t in planner0["tools"]] == ["delegate", "bash"]
    assert [t["function"]["name"] for t in worker0["tools"]] == ["bash"]
    assert "planner" in planner0["messages"][0]["content"]
    assert worker0["messages"][0]["content"].startswith("You are worker sub-1 in a team")
    assert worker0["messages"][1]["content"] == "Sub-task from the planner:\nCreate a.txt containing A."
    assert srv.bodies[4]["messages"][0]["content"].startswith("You are worker sub-2 in a team")
    assert (worker0["temperature"], worker0["max_tokens"]) == (0.5, 77)
    # the worker's report comes back as the delegate call's result
    result = srv.bodies[3]["messages"][3]
    assert result == {"role": "tool", "tool_call_id": "p1",
                      "content": "report from sub-1 (finished after 2 steps):\nCreated a.txt."}
    verify = srv.bodies[7]["messages"][7]
    assert verify["tool_call_id"] == "p3" and verify["content"] == "exit code: 0\noutput:\nA\nB\n"
    # every request of an agent extends that agent's previous one exactly (token prefixes for the proxy)
    by_path: dict[str, list[dict[str, Any]]] = {}
    for r in srv.requests:
        by_path.setdefault(r["path"], []).append(r["body"])
    for bodies in by_path.values():
        for a, b in itertools.pairwise(bodies):
            assert b["messages"][: len(a["messages"])] == a["messages"]
    assert log["exit_reason"] == "final_answer" and [w["agent"] for w in log["workers"]] == ["sub-1", "sub-2"]
    assert log["workers"][1]["report"] == "Created b.txt."
    assert log["planner"]["steps"][0]["commands"][0] == {"tool_call_id": "p1", "delegate": "Create a.txt containing A.",
                                                          "agent": "sub-1"}


def test_same_replies_give_the_same_requests(tmp_path: Path) -> None:
    runs = []
    for i in range(2):
        work = tmp_path / str(i)
        work.mkdir()
        with FakeOpenAI(SOLVE) as srv:
            proc, _ = run_script(srv, work)
        assert proc.returncode == 0, proc.stderr
        runs.append([(r["path"], r["body"]) for r in srv.requests])
    assert runs[0] == runs[1]


def test_worker_step_limit_is_reported_and_the_planner_goes_on(tmp_path: Path) -> None:
    script = [delegate("loop", "p1"), tool_call("true"), tool_call("true"), text("I give up.")]
    with FakeOpenAI(script) as srv:
        proc, log = run_script(srv, tmp_path, "--worker-max-steps", "2")
    assert proc.returncode == 0, proc.stderr
    assert [r["path"] for r in srv.requests] == [PLANNER, worker_path(1), worker_path(1), PLANNER]
    assert srv.bodies[3]["messages"][3]["content"] == (
        "report from sub-1 (stopped at its step limit of 2 steps without a report)")
    assert log["workers"][0]["report"] is None


def test_planner_step_limit_exits_3(tmp_path: Path) -> None:
    with FakeOpenAI(default=tool_call("true")) as srv:
        proc, log = run_script(srv, tmp_path, "--max-steps", "3")
    assert proc.returncode == 3 and "step limit" in proc.stderr
    assert len(srv.requests) == 3 and log["exit_reason"] == "step_limit"


def test_delegations_past_the_limit_get_an_error(tmp_path: Path) -> None:
    script = [delegate("one", "p1"), text("done one"), delegate("two", "p2"), text("ok")]
    with FakeOpenAI(script) as srv:
        proc, log = run_script(srv, tmp_path, "--max-delegations", "1")
    assert proc.returncode == 0, proc.stderr
    assert [r["path"] for r in srv.requests] == [PLANNER, worker_path(1), PLANNER, PLANNER]
    assert srv.bodies[3]["messages"][5]["content"].startswith("error: no delegation left (the limit is 1")
    assert log["planner"]["steps"][1]["commands"][0]["agent"] is None


def test_bad_arguments_unknown_tools_and_malformed_replies(tmp_path: Path) -> None:
    script = [tool_call("", name="delegate", arguments='{"job": 1}', call_id="p1"),
              tool_call("ls", name="python", call_id="p2"),
              text('{"task": "make a file"}'),
              text("Nothing to do.")]
    with FakeOpenAI(script) as srv:
        proc, log = run_script(srv, tmp_path)
    assert proc.returncode == 0, proc.stderr
    msgs = srv.bodies[3]["messages"]
    assert msgs[3]["content"].startswith('error: delegate arguments must be an object with a string "task"')
    assert msgs[5]["content"] == "error: unknown tool 'python': the tools are `delegate` and `bash`"
    assert msgs[7]["role"] == "user" and "no valid tool call" in msgs[7]["content"]
    assert log["planner"]["steps"][2]["format_error"] is True
    assert all(r["path"] == PLANNER for r in srv.requests)  # nothing was delegated


def test_split_lines_delegates_each_item_before_the_planner_starts(tmp_path: Path) -> None:
    task = "In this directory, create:\n- a.txt\n- b.txt\nThat is all."
    script = [tool_call("touch a.txt"), text("made a.txt"), text("made b.txt"), text("Done.")]
    with FakeOpenAI(script) as srv:
        proc, log = run_script(srv, tmp_path, "--split", "lines", task=task)
    assert proc.returncode == 0, proc.stderr
    assert [r["path"] for r in srv.requests] == [worker_path(1), worker_path(1), worker_path(2), PLANNER]
    assert srv.bodies[0]["messages"][1]["content"].endswith("In this directory, create:\n- a.txt\nThat is all.")
    assert srv.bodies[2]["messages"][1]["content"].endswith("In this directory, create:\n- b.txt\nThat is all.")
    first = srv.bodies[3]["messages"][1]["content"]
    assert first.startswith(task + "\n\nEach of the 2 listed requirements was delegated to its own worker.")
    assert "report from sub-1 (finished after 2 steps):\nmade a.txt" in first
    assert "report from sub-2 (finished after 1 steps):\nmade b.txt" in first
    assert log["exit_reason"] == "final_answer" and len(log["workers"]) == 2


def test_split_lines_stops_at_the_delegation_limit(tmp_path: Path) -> None:
    task = "Create:\n- a\n- b\n- c"
    with FakeOpenAI([text("made a"), text("made b"), text("Done.")]) as srv:
        proc, _ = run_script(srv, tmp_path, "--split", "lines", "--max-delegations", "2", task=task)
    assert proc.returncode == 0, proc.stderr
    assert [r["path"] for r in srv.requests] == [worker_path(1), worker_path(2), PLANNER]
    assert "The first 2 of the 3 listed requirements were delegated" in srv.bodies[2]["messages"][1]["content"]


def test_inspect_planner_cannot_run_commands(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("A")
    script = [tool_call("rm a.txt", call_id="p1"),
              tool_call("", name="inspect", arguments=json.dumps({"path": "."}), call_id="p2"),
              text("Checked.")]
    with FakeOpenAI(script) as srv:
        proc, _ = run_script(srv, tmp_path, "--planner-tools", "inspect")
    assert proc.returncode == 0, proc.stderr
    assert [t["function"]["name"] for t in srv.bodies[0]["tools"]] == ["delegate", "inspect"]
    msgs = srv.bodies[2]["messages"]
    assert msgs[3]["content"] == "error: unknown tool 'bash': the tools are `delegate` and `inspect`"
    assert msgs[5]["content"].startswith("inspect .\noutput:\na.txt (1 bytes)")
    assert (tmp_path / "a.txt").exists()


def test_a_refused_worker_call_ends_the_episode_with_4(tmp_path: Path) -> None:
    with FakeOpenAI([delegate("x"), error(400, "bad request from the worker")]) as srv:
        proc, log = run_script(srv, tmp_path)
    assert proc.returncode == 4 and "bad request from the worker" in proc.stderr
    assert log["exit_reason"] == "api_error"


def test_a_base_url_without_v1_is_bad_usage(tmp_path: Path) -> None:
    with FakeOpenAI([text("unused")], prefix="/s/test-session") as srv:
        proc, _ = run_script(srv, tmp_path)
    assert proc.returncode == 2 and "must end in /v1" in proc.stderr and not srv.requests


# -- through the harness -------------------------------------------------------------------------
def _ctx(srv: FakeOpenAI, instruction: str, max_steps: int = 5) -> HarnessContext:
    task = Task(id="t1", instruction=instruction, env="test/fake-v0", image=BASE_IMAGE, workdir="/app")
    return HarnessContext(task=task, base_url=srv.base_url, model="policy", api_key="sk-test",
                          max_steps=max_steps, output_dir="/tmp/agentgym-harness")


TEAM = [delegate("Create /app/a.txt", "p1"), tool_call("echo team > /app/a.txt && pwd", call_id="w1"),
        text("done"), tool_call("cat /app/a.txt", call_id="p2"), text("verified")]


def _check_team_run(srv: FakeOpenAI, result: Any, made: str, log: str, harness: PlannerHarness) -> None:
    assert result.exit_code == 0, result.stderr
    assert harness.stop_reason(result) == StopReason.COMPLETED
    assert made == "team\n"
    assert json.loads(log)["exit_reason"] == "final_answer"
    assert [r["path"] for r in srv.requests] == [PLANNER, worker_path(1), worker_path(1), PLANNER, PLANNER]
    assert srv.bodies[2]["messages"][3]["content"].rstrip().endswith("\n/app")  # the worker ran in the task's workdir
    assert srv.bodies[4]["messages"][5]["content"] == "exit code: 0\noutput:\nteam\n"


def test_harness_on_local_runtime(tmp_path: Path) -> None:
    from agentgym.runtime.base import RuntimeSpec
    from agentgym.runtime.local import LocalBackend

    harness = PlannerHarness(temperature=0.0, max_tokens=64)

    async def main() -> tuple[Any, str, str]:
        async with await LocalBackend(tmp_root=str(tmp_path)).start(RuntimeSpec(workdir="/app")) as rt:
            result = await harness.run(_ctx(srv, "write a.txt"), rt, timeout=60)
            return (result, (await rt.read_file("/app/a.txt")).decode(),
                    (await rt.read_file("/tmp/agentgym-harness/planner_agent.json")).decode())

    with FakeOpenAI(TEAM) as srv:
        result, made, log = asyncio.run(main())
    _check_team_run(srv, result, made, log, harness)


@pytest.mark.docker
@pytest.mark.parametrize("use_layer", [True, False])
def test_harness_in_docker(use_layer: bool) -> None:
    from agentgym.runtime.base import RuntimeSpec
    from agentgym.runtime.docker import DockerBackend
    from agentgym.runtime.images import ImageCache

    harness = PlannerHarness(temperature=0.0)

    async def main(ctx: HarnessContext) -> tuple[Any, str, str]:
        backend = DockerBackend()
        try:
            image = await ImageCache(backend).image_for(ctx.task, harness) if use_layer else BASE_IMAGE
            async with await backend.start(RuntimeSpec(image=image, workdir="/app", network="host")) as rt:
                result = await harness.run(ctx, rt, timeout=120)
                made = await rt.exec("cat /app/a.txt 2>/dev/null; true", timeout=30)
                return result, made.stdout, (await rt.read_file(f"{ctx.output_dir}/planner_agent.json")).decode()
        finally:
            backend.close()

    with FakeOpenAI(TEAM) as srv:
        result, made, log = asyncio.run(main(_ctx(srv, "write a.txt")))
    _check_team_run(srv, result, made, log, harness)
