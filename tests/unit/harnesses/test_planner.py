"""PlannerHarness: image layer, install, the launch command, observation targets, and the
script's helpers (sub-agent URLs, the list split, the read-only inspect tool)."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from agentgym.errors import ConfigError
from agentgym.harness import HarnessContext
from agentgym.harnesses.planner import (
    CONTAINER_HELPER,
    CONTAINER_SCRIPT,
    HELPER,
    SCRIPT,
    STEP_LIMIT_EXIT_CODE,
    PlannerHarness,
)
from agentgym.runtime.base import ExecResult, RuntimeSpec
from agentgym.runtime.local import LocalBackend
from agentgym.types import StopReason, Task
from tests.unit.harnesses.conftest import StubRun

TASK = Task(id="t", instruction="Set up /app:\n- a dir\n- a 'file' with \"$HOME\"", env="demo/x-v0")


def ctx(**kw: Any) -> HarnessContext:
    return HarnessContext(task=TASK, base_url="http://127.0.0.1:8000/s/abc/v1", model="org/policy-7b",
                          api_key="sk-1", **kw)


def test_script_imports_only_the_stdlib_and_its_sibling() -> None:
    source = SCRIPT.read_text()
    imported = {line.split()[1].split(".")[0] for line in source.splitlines()
                if line.startswith(("import ", "from ")) and "__future__" not in line}
    assert imported - set(sys.stdlib_module_names) == {"react_agent"}
    assert HELPER.parent == SCRIPT.parent and HELPER.name == "react_agent.py"


def test_image_layer_copies_both_scripts() -> None:
    layer = PlannerHarness().image_layer()
    assert layer.context_files == {"planner_agent.py": str(SCRIPT), "react_agent.py": str(HELPER)}
    assert f"COPY planner_agent.py {CONTAINER_SCRIPT}" in layer.dockerfile
    assert f"COPY react_agent.py {CONTAINER_HELPER}" in layer.dockerfile
    digest = hashlib.sha256(SCRIPT.read_bytes() + HELPER.read_bytes()).hexdigest()[:16]
    assert layer.cache_key == f"planner-{digest}"


def test_launch_env_and_args(stub_run: StubRun) -> None:
    harness = PlannerHarness(worker_max_steps=3, max_delegations=2, split="lines", planner_tools="inspect",
                             temperature=0.2, max_tokens=99, seed=7, command_timeout=5, max_output_chars=123, retries=2)
    launch = harness.launch(ctx(max_steps=4, output_dir="/out"), None)
    env = dict(launch.env)
    assert env["OPENAI_BASE_URL"] == "http://127.0.0.1:8000/s/abc/v1" and env["OPENAI_API_KEY"] == "sk-1"
    assert env["AGENTGYM_TASK"] == TASK.instruction and env["AGENTGYM_PLANNER_SCRIPT"] == CONTAINER_SCRIPT
    assert "/out" not in launch.cmd and "file" not in launch.cmd  # paths and the task travel in the environment
    out = stub_run.tmp_path / "out"
    proc, argv = stub_run.run(launch.cmd, env, AGENTGYM_PYTHON=str(stub_run.stub), AGENTGYM_OUTPUT_DIR=str(out))
    assert proc.returncode == 0, proc.stderr
    assert argv == [CONTAINER_SCRIPT, "--base-url", "http://127.0.0.1:8000/s/abc/v1", "--model", "org/policy-7b",
                    "--max-steps", "4", "--worker-max-steps", "3", "--max-delegations", "2", "--split", "lines",
                    "--planner-tools", "inspect", "--command-timeout", "5", "--max-output-chars", "123",
                    "--retries", "2", "--temperature", "0.2", "--max-tokens", "99", "--seed", "7",
                    "--log", f"{out}/planner_agent.json"]


def test_bad_options_are_refused() -> None:
    with pytest.raises(ConfigError, match="split"):
        PlannerHarness(split="random")
    with pytest.raises(ConfigError, match="planner_tools"):
        PlannerHarness(planner_tools="python")
    with pytest.raises(ConfigError, match="worker_max_steps"):
        PlannerHarness(worker_max_steps=0)


def test_install_writes_both_scripts_where_missing_or_stale(tmp_path: Path) -> None:
    async def main() -> None:
        harness = PlannerHarness()
        async with await LocalBackend(tmp_root=str(tmp_path)).start(RuntimeSpec()) as rt:
            await harness.install(rt)
            assert rt.host_path(CONTAINER_SCRIPT).read_bytes() == SCRIPT.read_bytes()
            assert rt.host_path(CONTAINER_HELPER).read_bytes() == HELPER.read_bytes()
            rt.host_path(CONTAINER_HELPER).write_text("stale")
            await harness.install(rt)
            assert rt.host_path(CONTAINER_HELPER).read_bytes() == HELPER.read_bytes()
            launch = harness.launch(ctx(), rt)
            assert launch.env["AGENTGYM_PYTHON"] == sys.executable  # no image: the host interpreter

    asyncio.run(main())


@pytest.mark.parametrize(("message", "targets"), [
    ({"role": "tool", "content": "exit code: 0\noutput:\nhello\n"}, ((21, 27),)),
    ({"role": "tool", "content": "inspect /app\noutput:\na.txt (3 bytes)"}, ((21, 36),)),
    ({"role": "tool", "content": "report from sub-1 (finished after 2 steps):\noutput:\nI made it"}, ()),
    ({"role": "tool", "content": "error: no delegation left (the limit is 4 workers per episode)"}, ()),
    ({"role": "user", "content": "Your last reply contained no valid tool call."}, ()),
    ({"role": "tool", "content": [{"type": "text", "text": "x"}]}, None),
])
def test_observation_targets(message: dict[str, Any], targets: Any) -> None:
    got = PlannerHarness().observation_targets(message)
    assert got == targets
    if targets:
        (start, end), = targets
        assert message["content"][start:end] in ("hello\n", "a.txt (3 bytes)")


@pytest.mark.parametrize(("result", "reason"), [
    (ExecResult(exit_code=0, stdout=""), StopReason.COMPLETED),
    (ExecResult(exit_code=STEP_LIMIT_EXIT_CODE, stdout=""), StopReason.STEP_LIMIT),
    (ExecResult(exit_code=5, stdout=""), StopReason.HARNESS_ERROR),
])
def test_stop_reason(result: ExecResult, reason: StopReason) -> None:
    assert PlannerHarness().stop_reason(result) == reason


# -- the script's helpers ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def agent() -> ModuleType:
    spec = importlib.util.spec_from_file_location("planner_agent_under_test", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sub_agent_urls_come_from_the_session_base_url(agent: ModuleType) -> None:
    assert agent.agent_base_url("http://127.0.0.1:9/s/ep-s0-abc/v1", "sub-2") == "http://127.0.0.1:9/s/ep-s0-abc/a/sub-2/v1"
    with pytest.raises(ValueError, match="must end in /v1"):
        agent.agent_base_url("http://127.0.0.1:9/s/abc", "sub-1")


def test_split_keeps_the_text_around_each_list_item(agent: ModuleType) -> None:
    task = "Header.\n- one\n  * two\n3) three\n4. four\nnot -an item\nFooter."
    parts = agent.split_task(task)
    assert parts == [f"Header.\n{item}\nnot -an item\nFooter." for item in ("- one", "  * two", "3) three", "4. four")]
    assert agent.split_task("no list here\n-also not") == []


def test_inspect_lists_and_reads_without_changing_anything(agent: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "a.txt").write_text("hello")
    assert agent.inspect_path(".", str(tmp_path), 100) == "inspect .\noutput:\na.txt (5 bytes)\nd/"
    assert agent.inspect_path("a.txt", str(tmp_path), 100) == "inspect a.txt\noutput:\nhello"
    assert agent.inspect_path(str(tmp_path / "d"), None, 100).endswith("(empty directory)")
    assert agent.inspect_path("nope", str(tmp_path), 100).endswith("no such file or directory")
    (tmp_path / "big.txt").write_text("x" * 500)
    assert "characters elided" in agent.inspect_path("big.txt", str(tmp_path), 50)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "big.txt", "d"]


@pytest.mark.parametrize(("content", "attempt"), [
    ('{"task": "make a dir"}', True),
    ("delegate(make a dir)", True),
    ("<tool_call>{}</tool_call>", True),
    ("All three workers reported success.", False),
])
def test_attempt_detection(agent: ModuleType, content: str, attempt: bool) -> None:
    assert bool(agent.ATTEMPT_RE.search(content)) is attempt
