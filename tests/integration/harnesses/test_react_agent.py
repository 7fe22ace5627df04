"""react_agent.py against a scripted OpenAI server: on the host, through the local runtime, and
inside a Docker container (``--network host``)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentgym.harness import HarnessContext
from agentgym.harnesses.react import SCRIPT, ReactHarness
from agentgym.types import StopReason, Task
from tests.integration.harnesses.fake_openai import FakeOpenAI, error, text, tool_call

BASE_IMAGE = "agentgym/base:bookworm"


def run_script(srv: FakeOpenAI, tmp_path: Path, *args: str, task: str = "make a file",
               timeout: float = 60) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    log = tmp_path / "episode.json"
    env = {**os.environ, "OPENAI_API_KEY": "sk-test"}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--base-url", srv.base_url, "--model", "policy", "--task", task,
         "--log", str(log), "--workdir", str(tmp_path), "--retry-backoff", "0.01", *args],
        capture_output=True, text=True, timeout=timeout, env=env, check=False)
    return proc, (json.loads(log.read_text()) if log.exists() else {})


def test_runs_command_returns_tool_result_and_stops_on_final_answer(tmp_path: Path) -> None:
    first = tool_call("echo hello > out.txt && cat out.txt", call_id="call_abc")
    with FakeOpenAI([first, text("The file is written.")]) as srv:
        proc, log = run_script(srv, tmp_path, "--temperature", "0.5", "--max-tokens", "77", "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out.txt").read_text() == "hello\n"
    assert len(srv.requests) == 2
    req0, req1 = srv.requests
    assert req0["path"] == "/s/test-session/v1/chat/completions"
    assert req0["headers"]["Authorization"] == "Bearer sk-test"
    body0 = req0["body"]
    assert [m["role"] for m in body0["messages"]] == ["system", "user"]
    assert body0["messages"][1]["content"] == "make a file"
    assert body0["model"] == "policy"
    assert (body0["temperature"], body0["max_tokens"], body0["seed"]) == (0.5, 77, 3)
    assert "stream" not in body0
    assert [t["function"]["name"] for t in body0["tools"]] == ["bash"]
    msgs = req1["body"]["messages"]
    assert msgs[:2] == body0["messages"]
    assert msgs[2] == first["message"]  # echoed exactly as received
    assert msgs[3]["role"] == "tool" and msgs[3]["tool_call_id"] == "call_abc"
    assert msgs[3]["content"].startswith("exit code: 0\n") and "hello" in msgs[3]["content"]
    assert log["exit_reason"] == "final_answer" and log["exit_code"] == 0
    assert log["steps"][0]["commands"][0]["command"] == "echo hello > out.txt && cat out.txt"
    assert log["messages"][-1]["content"] == "The file is written."


def test_stops_at_step_limit_with_exit_code_3(tmp_path: Path) -> None:
    with FakeOpenAI(default=tool_call("true")) as srv:
        proc, log = run_script(srv, tmp_path, "--max-steps", "3")
    assert proc.returncode == 3
    assert "step limit" in proc.stderr
    assert len(srv.requests) == 3
    assert log["exit_reason"] == "step_limit"
    # every request extends the previous one
    for a, b in zip(srv.bodies, srv.bodies[1:], strict=False):
        assert b["messages"][: len(a["messages"])] == a["messages"]


def test_submit_sentinel_ends_the_episode(tmp_path: Path) -> None:
    with FakeOpenAI([tool_call("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"), text("unused")]) as srv:
        proc, log = run_script(srv, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(srv.requests) == 1
    assert log["exit_reason"] == "submitted"


def test_sentinel_not_first_line_does_not_submit(tmp_path: Path) -> None:
    script = [tool_call("echo before; echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"), text("done")]
    with FakeOpenAI(script) as srv:
        proc, _ = run_script(srv, tmp_path)
    assert proc.returncode == 0
    assert len(srv.requests) == 2


def test_malformed_reply_is_nudged_and_counts_as_a_step(tmp_path: Path) -> None:
    script = [text("I will run:\n```bash\nls\n```"), tool_call("echo ok"), text("done")]
    with FakeOpenAI(script) as srv:
        proc, log = run_script(srv, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(srv.requests) == 3
    second = srv.bodies[1]["messages"]
    assert second[2] == script[0]["message"]  # the malformed reply stays in the history
    assert second[3]["role"] == "user" and "no valid tool call" in second[3]["content"]
    assert log["steps"][0]["format_error"] is True


def test_malformed_replies_still_hit_the_step_limit(tmp_path: Path) -> None:
    with FakeOpenAI(default=text('{"command": "ls"}')) as srv:
        proc, _ = run_script(srv, tmp_path, "--max-steps", "2")
    assert proc.returncode == 3
    assert len(srv.requests) == 2


def test_reply_cut_off_at_the_token_limit_is_not_a_final_answer(tmp_path: Path) -> None:
    cut = text("Let me think about this at great length and then")
    cut["finish_reason"] = "length"
    with FakeOpenAI([cut, text("done")]) as srv:
        proc, log = run_script(srv, tmp_path)
    assert proc.returncode == 0
    assert len(srv.requests) == 2
    nudge = srv.bodies[1]["messages"][3]
    assert nudge["role"] == "user" and "cut off" in nudge["content"]
    assert log["steps"][0]["finish_reason"] == "length"


def test_bad_tool_arguments_and_unknown_tools_get_an_error_result(tmp_path: Path) -> None:
    script = [tool_call("", arguments="{not json", call_id="c1"), tool_call("ls", name="python", call_id="c2"),
              text("giving up")]
    with FakeOpenAI(script) as srv:
        proc, _ = run_script(srv, tmp_path)
    assert proc.returncode == 0
    msgs = srv.bodies[2]["messages"]
    assert msgs[3] == {"role": "tool", "tool_call_id": "c1", "content": msgs[3]["content"]}
    assert "not valid JSON" in msgs[3]["content"]
    assert msgs[5]["tool_call_id"] == "c2" and "unknown tool 'python'" in msgs[5]["content"]


def test_parallel_tool_calls_each_get_a_result(tmp_path: Path) -> None:
    reply = tool_call("echo one", call_id="a")
    reply["message"]["tool_calls"].append(
        {"id": "b", "type": "function", "function": {"name": "bash", "arguments": json.dumps({"command": "exit 7"})}})
    with FakeOpenAI([reply, text("done")]) as srv:
        proc, _ = run_script(srv, tmp_path)
    assert proc.returncode == 0
    msgs = srv.bodies[1]["messages"]
    assert [(m["role"], m.get("tool_call_id")) for m in msgs[3:]] == [("tool", "a"), ("tool", "b")]
    assert msgs[4]["content"].startswith("exit code: 7")


def test_command_timeout_and_output_truncation(tmp_path: Path) -> None:
    script = [tool_call("sleep 30"), tool_call("python3 -c 'print(\"x\" * 5000)'"), text("done")]
    with FakeOpenAI(script) as srv:
        proc, _ = run_script(srv, tmp_path, "--command-timeout", "1", "--max-output-chars", "100")
    assert proc.returncode == 0
    timed_out = srv.bodies[1]["messages"][3]["content"]
    assert "timed out after 1s" in timed_out
    truncated = srv.bodies[2]["messages"][5]["content"]
    assert "characters elided" in truncated and len(truncated) < 300


def test_4xx_exits_4_and_prints_the_body(tmp_path: Path) -> None:
    with FakeOpenAI([error(400, "messages[1]: unsupported content type")]) as srv:
        proc, log = run_script(srv, tmp_path)
    assert proc.returncode == 4
    assert "HTTP 400" in proc.stderr and "unsupported content type" in proc.stderr
    assert len(srv.requests) == 1
    assert log["exit_reason"] == "api_error"


def test_5xx_is_retried_then_succeeds(tmp_path: Path) -> None:
    with FakeOpenAI([error(500), error(503), text("done")]) as srv:
        proc, _ = run_script(srv, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(srv.requests) == 3
    assert srv.bodies[0] == srv.bodies[2]


def test_persistent_5xx_exits_5(tmp_path: Path) -> None:
    with FakeOpenAI(default=error(502)) as srv:
        proc, _ = run_script(srv, tmp_path, "--retries", "2")
    assert proc.returncode == 5
    assert len(srv.requests) == 3
    assert "giving up" in proc.stderr


def test_unreachable_server_exits_5(tmp_path: Path) -> None:
    srv = FakeOpenAI().start()
    srv.stop()  # the port is now closed
    proc, _ = run_script(srv, tmp_path, "--retries", "1")
    assert proc.returncode == 5
    assert "ConnectionRefused" in proc.stderr or "Connection refused" in proc.stderr


def test_task_from_environment_and_missing_task(tmp_path: Path) -> None:
    env = {**os.environ, "AGENTGYM_TASK": "from env", "OPENAI_API_KEY": "k"}
    with FakeOpenAI([text("ok")]) as srv:
        proc = subprocess.run([sys.executable, str(SCRIPT), "--base-url", srv.base_url, "--model", "m"],
                              capture_output=True, text=True, env=env, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    assert srv.bodies[0]["messages"][1]["content"] == "from env"
    env.pop("AGENTGYM_TASK")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--base-url", "http://127.0.0.1:9/v1", "--model", "m"],
                          capture_output=True, text=True, env=env, timeout=30, check=False)
    assert proc.returncode == 2 and "no task" in proc.stderr


# -- through the harness -------------------------------------------------------------------------
def _ctx(srv: FakeOpenAI, instruction: str, max_steps: int = 5, workdir: str = "/app") -> HarnessContext:
    task = Task(id="t1", instruction=instruction, env="test/fake-v0", image=BASE_IMAGE, workdir=workdir)
    return HarnessContext(task=task, base_url=srv.base_url, model="policy", api_key="sk-test",
                          max_steps=max_steps, output_dir="/tmp/agentgym-harness")


def test_harness_on_local_runtime(tmp_path: Path) -> None:
    from agentgym.runtime.base import RuntimeSpec
    from agentgym.runtime.local import LocalBackend

    harness = ReactHarness(temperature=0.0, max_tokens=64)
    # In the local runtime's sandbox the agent's commands see the task's paths: /app is /app.
    script = [tool_call("echo local > made.txt && pwd", call_id="c1"), text("done")]

    async def main() -> tuple[Any, bytes, bytes]:
        backend = LocalBackend(tmp_root=str(tmp_path))
        async with await backend.start(RuntimeSpec(workdir="/app")) as rt:
            result = await harness.run(_ctx(srv, "write made.txt"), rt, timeout=60)
            return result, await rt.read_file("/app/made.txt"), await rt.read_file("/tmp/agentgym-harness/react_agent.json")

    with FakeOpenAI(script) as srv:
        result, made, log = asyncio.run(main())
    assert result.exit_code == 0, result.stderr
    assert harness.stop_reason(result) == StopReason.COMPLETED
    assert made == b"local\n"
    assert json.loads(log)["exit_reason"] == "final_answer"
    body = srv.bodies[0]
    assert (body["temperature"], body["max_tokens"]) == (0.0, 64)
    assert srv.bodies[1]["messages"][3]["content"].rstrip().endswith("\n/app")
    assert body["messages"][1]["content"] == "write made.txt"


def test_harness_step_limit_on_local_runtime(tmp_path: Path) -> None:
    from agentgym.runtime.base import RuntimeSpec
    from agentgym.runtime.local import LocalBackend

    harness = ReactHarness()

    async def main() -> Any:
        async with await LocalBackend(tmp_root=str(tmp_path)).start(RuntimeSpec(workdir="/app")) as rt:
            return await harness.run(_ctx(srv, "loop", max_steps=2), rt, timeout=60)

    with FakeOpenAI(default=tool_call("true")) as srv:
        result = asyncio.run(main())
    assert result.exit_code == 3
    assert harness.stop_reason(result) == StopReason.STEP_LIMIT
    assert len(srv.requests) == 2


# -- in a Docker container -----------------------------------------------------------------------
async def _run_in_docker(harness: ReactHarness, ctx: HarnessContext, *, use_layer: bool) -> tuple[Any, str, str]:
    from agentgym.runtime.base import RuntimeSpec
    from agentgym.runtime.docker import DockerBackend
    from agentgym.runtime.images import ImageCache

    backend = DockerBackend()
    try:
        image = await ImageCache(backend).image_for(ctx.task, harness) if use_layer else BASE_IMAGE
        async with await backend.start(RuntimeSpec(image=image, workdir=ctx.task.workdir, network="host")) as rt:
            result = await harness.run(ctx, rt, timeout=120)
            made = await rt.exec("cat /app/made.txt 2>/dev/null; true", timeout=30)
            log = (await rt.read_file(f"{ctx.output_dir}/react_agent.json")).decode()
            return result, made.stdout, log
    finally:
        backend.close()


@pytest.mark.docker
def test_harness_in_docker_with_image_layer() -> None:
    harness = ReactHarness(temperature=0.0)
    script = [tool_call("echo in-container > /app/made.txt && cat /etc/debian_version", call_id="d1"),
              tool_call("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT", call_id="d2")]
    with FakeOpenAI(script) as srv:
        result, made, log = asyncio.run(_run_in_docker(harness, _ctx(srv, "write made.txt"), use_layer=True))
    assert result.exit_code == 0, result.stderr
    assert made == "in-container\n"
    assert json.loads(log)["exit_reason"] == "submitted"
    assert len(srv.requests) == 2
    tool_msg = srv.bodies[1]["messages"][3]
    assert tool_msg["tool_call_id"] == "d1" and tool_msg["content"].startswith("exit code: 0")
    assert "12." in tool_msg["content"]  # bookworm's /etc/debian_version, read inside the container


@pytest.mark.docker
def test_harness_in_docker_without_layer_installs_and_hits_step_limit() -> None:
    harness = ReactHarness()
    with FakeOpenAI(default=tool_call("true")) as srv:
        result, _, log = asyncio.run(_run_in_docker(harness, _ctx(srv, "loop", max_steps=2), use_layer=False))
    assert result.exit_code == 3, result.stderr
    assert harness.stop_reason(result) == StopReason.STEP_LIMIT
    assert "step limit" in result.stderr
    assert json.loads(log)["exit_reason"] == "step_limit"
    assert len(srv.requests) == 2
