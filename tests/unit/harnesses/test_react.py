"""ReactHarness: image layer, install, and the launch command (run with a stub interpreter)."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from agentgym.harness import HarnessContext
from agentgym.harnesses.react import CONTAINER_SCRIPT, SCRIPT, STEP_LIMIT_EXIT_CODE, ReactHarness
from agentgym.runtime.base import ExecResult, RuntimeSpec
from agentgym.runtime.local import LocalBackend
from agentgym.types import StopReason, Task
from tests.unit.harnesses.conftest import StubRun

TASK = Task(id="t", instruction="Fix the bug in 'app.py' and say \"done\"; $HOME `x`", env="demo/x-v0")


def ctx(**kw: Any) -> HarnessContext:
    return HarnessContext(task=TASK, base_url="http://127.0.0.1:8000/s/abc/v1", model="org/policy-7b",
                          api_key="sk-1", **kw)


def test_script_is_package_data_and_stdlib_only() -> None:
    assert SCRIPT.is_file() and SCRIPT.name == "react_agent.py"
    source = SCRIPT.read_text()
    imported = {line.split()[1].split(".")[0] for line in source.splitlines()
                if line.startswith(("import ", "from ")) and "__future__" not in line}
    assert imported <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)


def test_image_layer_copies_the_script() -> None:
    layer = ReactHarness().image_layer()
    assert layer.context_files == {"react_agent.py": str(SCRIPT)}
    assert f"COPY react_agent.py {CONTAINER_SCRIPT}" in layer.dockerfile
    assert layer.cache_key == "react-" + hashlib.sha256(SCRIPT.read_bytes()).hexdigest()[:16]


def test_launch_env_and_args(stub_run: StubRun) -> None:
    launch = ReactHarness(temperature=0.2, max_tokens=99, seed=7, command_timeout=5, max_output_chars=123,
                          retries=2).launch(ctx(max_steps=4, output_dir="/out"), None)
    env = dict(launch.env)
    assert env["OPENAI_API_KEY"] == "sk-1"
    assert env["OPENAI_BASE_URL"] == "http://127.0.0.1:8000/s/abc/v1"
    assert env["AGENTGYM_TASK"] == TASK.instruction
    assert env["AGENTGYM_REACT_SCRIPT"] == CONTAINER_SCRIPT
    assert env["AGENTGYM_PYTHON"] == "python3"
    # no path or task text in the command string itself (the local runtime rewrites paths there)
    assert "/out" not in launch.cmd and "app.py" not in launch.cmd
    out = stub_run.tmp_path / "out"
    proc, argv = stub_run.run(launch.cmd, env, AGENTGYM_PYTHON=str(stub_run.stub), AGENTGYM_OUTPUT_DIR=str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.is_dir()
    assert argv == [CONTAINER_SCRIPT, "--base-url", "http://127.0.0.1:8000/s/abc/v1", "--model", "org/policy-7b",
                    "--max-steps", "4", "--command-timeout", "5", "--max-output-chars", "123", "--retries", "2",
                    "--temperature", "0.2", "--max-tokens", "99", "--seed", "7", "--log", f"{out}/react_agent.json"]


def test_launch_leaves_out_unset_sampling_args() -> None:
    launch = ReactHarness(temperature=None, max_tokens=None).launch(ctx(), None)
    assert "--temperature" not in launch.cmd and "--max-tokens" not in launch.cmd and "--seed" not in launch.cmd
    assert "AGENTGYM_SYSTEM_PROMPT" not in launch.env
    assert ReactHarness(system_prompt="Be brief.").launch(ctx(), None).env["AGENTGYM_SYSTEM_PROMPT"] == "Be brief."


@pytest.mark.parametrize("isolation", ["bubblewrap", "none"])
def test_launch_on_a_runtime_without_images_uses_its_paths_and_the_host_python(tmp_path: Path, isolation: str) -> None:
    async def main() -> None:
        async with await LocalBackend(tmp_root=str(tmp_path), isolation=isolation).start(RuntimeSpec()) as rt:
            launch = ReactHarness().launch(ctx(output_dir="/tmp/h"), rt)
            # In the sandbox the task's paths are the paths; without isolation, the fake root's.
            root = "" if isolation == "bubblewrap" else str(rt.root)
            assert launch.env["AGENTGYM_OUTPUT_DIR"] == rt.process_path("/tmp/h") == f"{root}/tmp/h"
            assert launch.env["AGENTGYM_REACT_SCRIPT"] == f"{root}{CONTAINER_SCRIPT}"
            assert launch.env["AGENTGYM_PYTHON"] == sys.executable

    asyncio.run(main())


def test_install_writes_the_script_only_where_it_is_missing_or_stale(tmp_path: Path) -> None:
    async def main() -> None:
        harness = ReactHarness()
        async with await LocalBackend(tmp_root=str(tmp_path)).start(RuntimeSpec()) as rt:
            target = rt.host_path(CONTAINER_SCRIPT)
            await harness.install(rt)
            assert target.read_bytes() == SCRIPT.read_bytes() and target.stat().st_mode & 0o777 == 0o755
            mtime = target.stat().st_mtime_ns
            await harness.install(rt)  # already there (as an image layer leaves it): not rewritten
            assert target.stat().st_mtime_ns == mtime
            target.write_text("stale")
            await harness.install(rt)
            assert target.read_bytes() == SCRIPT.read_bytes()

    asyncio.run(main())


@pytest.mark.parametrize(("result", "reason"), [
    (ExecResult(exit_code=0, stdout=""), StopReason.COMPLETED),
    (ExecResult(exit_code=STEP_LIMIT_EXIT_CODE, stdout=""), StopReason.STEP_LIMIT),
    (ExecResult(exit_code=4, stdout=""), StopReason.HARNESS_ERROR),
    (ExecResult(exit_code=137, stdout="", timed_out=True), StopReason.TIMEOUT),
])
def test_stop_reason(result: ExecResult, reason: StopReason) -> None:
    assert ReactHarness().stop_reason(result) == reason


# -- the script's helpers ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def agent() -> ModuleType:
    spec = importlib.util.spec_from_file_location("react_agent_under_test", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_truncate_keeps_head_and_tail(agent: ModuleType) -> None:
    assert agent.truncate("short", 10) == "short"
    out = agent.truncate("a" * 50 + "b" * 50, 20)
    assert out.startswith("a" * 10) and out.endswith("b" * 10) and "80 characters elided" in out


def test_parse_command(agent: ModuleType) -> None:
    ok = {"function": {"name": "bash", "arguments": json.dumps({"command": "ls -la"})}}
    assert agent.parse_command(ok) == ("ls -la", "")
    assert agent.parse_command({"function": {"name": "bash", "arguments": {"command": "pwd"}}}) == ("pwd", "")
    assert agent.parse_command({"function": {"name": "sh", "arguments": "{}"}})[0] is None
    assert "not valid JSON" in agent.parse_command({"function": {"name": "bash", "arguments": "{x"}})[1]
    assert "string \"command\"" in agent.parse_command({"function": {"name": "bash", "arguments": "{\"cmd\": 1}"}})[1]


@pytest.mark.parametrize(("content", "attempt"), [
    ("```bash\nls\n```", True),
    ("<tool_call>{\"name\": \"bash\"}</tool_call>", True),
    ('{"command": "ls"}', True),
    ("bash(ls)", True),
    ("The answer is 42.", False),
    ("I used bash to check it: all good.", False),
])
def test_attempt_detection(agent: ModuleType, content: str, attempt: bool) -> None:
    assert bool(agent.ATTEMPT_RE.search(content)) is attempt


def test_request_body_has_one_bash_tool(agent: ModuleType) -> None:
    args = agent.parse_args(["--base-url", "http://x/v1", "--model", "m", "--temperature", "0", "--seed", "1"])
    body = agent.Episode(args, "task").request_body()
    assert set(body) == {"model", "messages", "tools", "temperature", "seed"}
    assert body["tools"] == [agent.BASH_TOOL]
    assert body["messages"][1] == {"role": "user", "content": "task"}
