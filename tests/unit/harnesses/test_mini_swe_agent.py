"""MiniSweAgentHarness: config specs, image layer, and the launch command with a stub ``mini``
(argv, environment, and the mapping of mini's exit status to our exit codes)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import agentgym.harnesses.mini_swe_agent as msa
from agentgym.harness import HarnessContext
from agentgym.harnesses.mini_swe_agent import CONTAINER_CONFIG, LOCK, MiniSweAgentHarness
from agentgym.harnesses.wheelhouse import LOCK_NAME
from agentgym.runtime.base import ExecResult, RuntimeSpec
from agentgym.runtime.local import LocalBackend
from agentgym.types import StopReason, Task
from tests.unit.harnesses.conftest import StubRun

TASK = Task(id="t", instruction="Fix 'it' \"now\" $(rm -rf /) `x`", env="demo/x-v0")


def ctx(**kw: Any) -> HarnessContext:
    return HarnessContext(task=TASK, base_url="http://127.0.0.1:8000/s/abc/v1", model="org/policy-7b",
                          api_key="sk-1", **kw)


def test_config_specs_set_step_limit_and_model_kwargs() -> None:
    h = MiniSweAgentHarness(temperature=0.5, max_tokens=300, seed=1, command_timeout=45,
                            extra_config={"agent.max_consecutive_format_errors": 5})
    assert h.config_specs(ctx(max_steps=12)) == [
        "agent.step_limit=12", "agent.cost_limit=0", "model.set_cache_control=null", "environment.timeout=45",
        "model.model_kwargs.temperature=0.5", "model.model_kwargs.max_tokens=300", "model.model_kwargs.seed=1",
        "agent.max_consecutive_format_errors=5",
    ]
    assert not any("model_kwargs" in s for s in MiniSweAgentHarness().config_specs(ctx()))


@pytest.mark.slow
def test_config_specs_merge_as_mini_reads_them(mini_venv_python: str, tmp_path: Path) -> None:
    """Parse our specs with mini-swe-agent's own config code, in the locked virtualenv."""
    specs = MiniSweAgentHarness(temperature=0.0, max_tokens=64).config_specs(ctx(max_steps=3))
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from minisweagent import config\n"
        "from minisweagent.utils import serialize\n"
        "base = config.get_config_from_spec(Path(config.builtin_config_dir) / 'mini.yaml')\n"
        "merged = serialize.recursive_merge(base, *[config.get_config_from_spec(s) for s in sys.argv[1:]])\n"
        "print(json.dumps(merged))\n")
    env = {**os.environ, "MSWEA_GLOBAL_CONFIG_DIR": str(tmp_path)}  # mini prints banners on import
    proc = subprocess.run([mini_venv_python, "-c", script, *specs], capture_output=True, text=True, check=False,
                          env=env)
    assert proc.returncode == 0, proc.stderr
    merged = json.loads(proc.stdout.strip().splitlines()[-1])
    assert merged["agent"]["step_limit"] == 3 and merged["agent"]["cost_limit"] == 0
    assert merged["model"]["model_kwargs"] == {"drop_params": True, "temperature": 0.0, "max_tokens": 64}
    assert merged["model"]["set_cache_control"] is None
    assert merged["environment"]["timeout"] == 30
    assert "instance_template" in merged["agent"]  # the default prompt is kept


def test_image_layer_installs_from_the_wheelhouse(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def fake_wheelhouse(*, lock: Any, python_version: str) -> Path:
        seen.update(lock=lock, python_version=python_version)
        return tmp_path

    monkeypatch.setattr(msa, "ensure_wheelhouse", fake_wheelhouse)
    layer = MiniSweAgentHarness().image_layer()
    assert seen == {"lock": LOCK, "python_version": "3.11"}
    assert LOCK.pinned("mini-swe-agent") == "2.4.6" and LOCK.pinned("litellm") and LOCK.pinned("mcp")
    assert layer.context_files == {"wheels": str(tmp_path)}
    d = layer.dockerfile
    assert "COPY wheels/ /tmp/agentgym-wheels/" in d
    assert "python3 -m venv /opt/mini" in d
    assert "pip install --no-index --find-links /tmp/agentgym-wheels" in d
    assert f"--require-hashes --no-deps -r /tmp/agentgym-wheels/{LOCK_NAME}" in d
    assert "rm -rf /tmp/agentgym-wheels" in d and CONTAINER_CONFIG.rsplit("/", 1)[0] in d
    assert layer.cache_key.startswith("mini-")


def test_launch_env_and_argv(stub_run: StubRun) -> None:
    h = MiniSweAgentHarness(temperature=0.7, retry_attempts=2)
    launch = h.launch(ctx(max_steps=9, output_dir="/out"), None)
    env = dict(launch.env)
    assert {k: env[k] for k in ("MSWEA_CONFIGURED", "MSWEA_COST_TRACKING", "LITELLM_LOCAL_MODEL_COST_MAP",
                                "OPENAI_API_KEY", "OPENAI_BASE_URL", "MSWEA_MODEL_NAME")} == {
        "MSWEA_CONFIGURED": "true", "MSWEA_COST_TRACKING": "ignore_errors", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "OPENAI_API_KEY": "sk-1", "OPENAI_BASE_URL": "http://127.0.0.1:8000/s/abc/v1",
        "MSWEA_MODEL_NAME": "openai/org/policy-7b"}
    assert env["MSWEA_MODEL_RETRY_STOP_AFTER_ATTEMPT"] == "2"
    assert env["AGENTGYM_MINI"] == "/opt/mini/bin/mini" and env["AGENTGYM_MINI_CONFIG"] == CONTAINER_CONFIG
    assert env["MSWEA_GLOBAL_CONFIG_DIR"] == "/out/mini-config"
    assert "/out" not in launch.cmd and "rm -rf" not in launch.cmd
    out = stub_run.tmp_path / "out"
    proc, argv = stub_run.run(launch.cmd, env, AGENTGYM_MINI=str(stub_run.stub), AGENTGYM_PYTHON=sys.executable,
                              AGENTGYM_OUTPUT_DIR=str(out), AGENTGYM_MINI_TRAJ=str(out / "traj.json"),
                              STUB_EXIT_STATUS="Submitted")
    assert proc.returncode == 0, proc.stderr
    assert argv == ["-y", "--exit-immediately", "-c", CONTAINER_CONFIG, "-c", "agent.step_limit=9",
                    "-c", "agent.cost_limit=0", "-c", "model.set_cache_control=null", "-c", "environment.timeout=30",
                    "-c", "model.model_kwargs.temperature=0.7", "-t", TASK.instruction, "-o", str(out / "traj.json")]


@pytest.mark.parametrize(("status", "mini_exit", "expected"), [
    ("Submitted", "0", 0),
    ("LimitsExceeded", "0", 3),
    ("RepeatedFormatError", "0", 4),
    ("SomethingNew", "0", 1),
    ("BadRequestError", "1", 1),   # mini's own failure is kept
    (None, "0", 1),                # no trajectory written
])
def test_exit_status_mapping(stub_run: StubRun, status: str | None, mini_exit: str, expected: int) -> None:
    launch = MiniSweAgentHarness().launch(ctx(), None)
    out = stub_run.tmp_path / "out"
    extra = {"STUB_EXIT_STATUS": status} if status is not None else {}
    proc, _ = stub_run.run(launch.cmd, launch.env, AGENTGYM_MINI=str(stub_run.stub), AGENTGYM_PYTHON=sys.executable,
                           AGENTGYM_OUTPUT_DIR=str(out), AGENTGYM_MINI_TRAJ=str(out / "traj.json"),
                           STUB_EXIT=mini_exit, **extra)
    assert proc.returncode == expected, proc.stderr
    if expected == 3:
        assert "LimitsExceeded" in proc.stderr
        assert MiniSweAgentHarness().stop_reason(ExecResult(exit_code=3, stdout="")) == StopReason.STEP_LIMIT


@pytest.mark.parametrize("isolation", ["bubblewrap", "none"])
def test_launch_on_local_runtime_uses_host_mini(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, isolation: str) -> None:
    monkeypatch.setattr(msa, "_host_mini", lambda lock: ("/venv/bin/mini", "/site/minisweagent/config/mini.yaml",
                                                         "/venv/bin/python"))

    async def main() -> None:
        async with await LocalBackend(tmp_root=str(tmp_path), isolation=isolation).start(RuntimeSpec()) as rt:
            launch = MiniSweAgentHarness().launch(ctx(output_dir="/tmp/h"), rt)
            assert launch.env["AGENTGYM_MINI"] == "/venv/bin/mini"
            assert launch.env["AGENTGYM_MINI_CONFIG"] == "/site/minisweagent/config/mini.yaml"
            assert launch.env["AGENTGYM_PYTHON"] == "/venv/bin/python"
            root = "" if isolation == "bubblewrap" else str(rt.root)
            assert launch.env["AGENTGYM_MINI_TRAJ"] == f"{root}/tmp/h/mini.traj.json"

    asyncio.run(main())


@pytest.mark.slow
def test_host_mini_comes_from_the_locked_venv(mini_venv_python: str) -> None:
    mini, config, python = msa._host_mini()
    assert Path(mini).name == "mini" and Path(mini).parent == Path(python).parent == Path(mini_venv_python).parent
    assert config.endswith("minisweagent/config/mini.yaml") and Path(config).is_file()
    proc = subprocess.run([python, "-c", "import importlib.metadata as m; print(m.version('litellm'), "
                           "m.version('openai'), m.version('mini-swe-agent'))"], capture_output=True, text=True, check=True)
    assert proc.stdout.split() == [LOCK.pinned("litellm"), LOCK.pinned("openai"), LOCK.pinned("mini-swe-agent")]
