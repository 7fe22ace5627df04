"""TOML harness specs and the three ways to register a harness (a Python call, an entry point of
an installed package, a TOML spec), all resolved by ``load_harness``."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agentgym import registries
from agentgym.errors import ConfigError, HarnessError, RegistryError
from agentgym.harness import Harness, HarnessContext, Launch, load_harness
from agentgym.harness_spec import CommandHarness, HarnessSpec
from agentgym.runtime.base import ExecResult
from agentgym.types import StopReason, Task

CTX = HarnessContext(task=Task(id="t", instruction="say 'hi'; rm -rf / $(boom)", env="demo/x-v0", workdir="/app"),
                     base_url="http://127.0.0.1:9/s/abc/v1", model="policy", api_key="k", max_steps=7)


def write_spec(tmp_path: Path, body: str, name: str = "h.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def test_placeholders_are_shell_quoted_in_the_command_and_verbatim_in_env(tmp_path: Path) -> None:
    h = load_harness(str(write_spec(tmp_path, """
        id = "acme/echo-v0"
        [launch]
        command = "printf %s {instruction} > {output_dir}/said"
        env = { BASE = "{base_url}", ROOT = "{session_url}", TASK = "{instruction}", STEPS = "{max_steps}", LIT = "{{x}}" }
        """)))
    launch = h.launch(CTX, None)
    assert launch.env == {"BASE": "http://127.0.0.1:9/s/abc/v1", "ROOT": "http://127.0.0.1:9/s/abc",
                          "TASK": CTX.task.instruction, "STEPS": "7", "LIT": "{x}"}
    out = tmp_path / "out"
    cmd = launch.cmd.replace("/tmp/agentgym-harness", str(out))
    subprocess.run(["bash", "-c", cmd], check=True, timeout=30)
    assert (out / "said").read_text() == CTX.task.instruction  # nothing of it ran as shell


def test_exit_table_maps_statuses_and_the_runtime_outcomes_come_first(tmp_path: Path) -> None:
    h = load_harness(str(write_spec(tmp_path, """
        id = "acme/exit-v0"
        [launch]
        command = "true"
        [exit]
        0 = "completed"
        3 = "step_limit"
        4 = "completed"
        9 = "killed"
        """)))
    assert h.step_limit_exit_codes == (3,)
    assert h.stop_reason(ExecResult(3, "")) == StopReason.STEP_LIMIT
    assert h.stop_reason(ExecResult(4, "")) == StopReason.COMPLETED
    assert h.stop_reason(ExecResult(9, "")) == StopReason.KILLED
    assert h.stop_reason(ExecResult(1, "")) == StopReason.HARNESS_ERROR  # the default mapping
    assert h.stop_reason(ExecResult(4, "", timed_out=True)) == StopReason.TIMEOUT
    assert h.stop_reason(ExecResult(0, "", oom_killed=True)) == StopReason.OOM


def test_capabilities_are_class_variables_of_a_subclass_per_spec(tmp_path: Path) -> None:
    a = load_harness(str(write_spec(tmp_path, """
        id = "acme/a-v0"
        version = "2.1"
        dialect = "anthropic"
        streams = true
        install_mb = 12.5
        [launch]
        command = "true"
        """, "a.toml")))
    b = load_harness(str(write_spec(tmp_path, 'id = "acme/b-v0"\n[launch]\ncommand = "true"\n', "b.toml")))
    assert isinstance(a, CommandHarness) and isinstance(a, Harness)
    assert (type(a).id, type(a).dialects, type(a).streams, type(a).version, type(a).install_mb) == (
        "acme/a-v0", ("anthropic",), True, "2.1", 12.5)
    assert (type(b).id, type(b).dialects, type(b).streams) == ("acme/b-v0", ("openai",), False)


@pytest.mark.parametrize(("body", "message"), [
    ('id = "nope"\n[launch]\ncommand = "x"\n', "namespace/name-vN"),
    ('id = "a/b-v0"\n', r"\[launch\] command is required"),
    ('id = "a/b-v0"\n[launch]\ncommand = "echo {task}"\n', r"unknown placeholder\(s\) \{task\}"),
    ('id = "a/b-v0"\n[launch]\ncommand = "x"\nenv = { A = "{oops" }\n', "literal brace"),
    ('id = "a/b-v0"\ndialect = "grpc"\n[launch]\ncommand = "x"\n', "dialect must be one of"),
    ('id = "a/b-v0"\n[launch]\ncommand = "x"\n[exit]\n1 = "fine"\n', r"\[exit\] 1 = 'fine'"),
    ('id = "a/b-v0"\n[launch]\ncommand = "x"\n[install]\nfiles = { "missing.sh" = "/opt/m.sh" }\n',
     "missing.sh is not a file beside the spec"),
    ('id = "a/b-v0"\ncomand = "x"\n', r"unknown key\(s\) comand"),
    ('id = "a/b-v0"\n[launch]\ncommand = "x"\nenviron = {}\n', r"unknown key\(s\) in \[launch\]: environ"),
    ('id = "a/b-v0"\n[launch\n', "not valid TOML"),
])
def test_bad_specs_say_what_is_wrong(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        HarnessSpec.from_toml(write_spec(tmp_path, body))


def test_files_steps_and_apt_make_one_cached_image_layer(tmp_path: Path) -> None:
    (tmp_path / "agent.sh").write_text("#!/bin/sh\necho hi\n")
    path = write_spec(tmp_path, """
        id = "acme/layer-v0"
        [install]
        apt = ["tmux", "curl"]
        files = { "agent.sh" = "/opt/acme/agent.sh" }
        run = ["chmod 0755 /opt/acme/agent.sh"]
        [launch]
        command = "/opt/acme/agent.sh"
        """)
    layer = load_harness(str(path)).image_layer()
    assert layer is not None
    lines = layer.dockerfile.splitlines()
    assert "apt-get install" in lines[0] and "tmux curl" in lines[0]
    assert lines[1].startswith("COPY files/") and lines[1].endswith(" /opt/acme/agent.sh")
    assert lines[2] == "RUN chmod 0755 /opt/acme/agent.sh"
    assert [Path(p).name for p in layer.context_files.values()] == ["agent.sh"]
    same = load_harness(str(path)).image_layer()
    assert same is not None and same.cache_key == layer.cache_key
    (tmp_path / "agent.sh").write_text("#!/bin/sh\necho changed\n")
    changed = load_harness(str(path)).image_layer()
    assert changed is not None and changed.cache_key != layer.cache_key  # the files' content counts
    assert load_harness(str(write_spec(tmp_path, 'id = "a/b-v0"\n[launch]\ncommand = "x"\n', "b.toml"))).image_layer() is None


def test_install_without_images_writes_files_and_runs_steps_in_the_runtime(tmp_path: Path) -> None:
    from agentgym.runtime.base import RuntimeSpec
    from agentgym.runtime.local import LocalBackend

    (tmp_path / "agent.sh").write_text("#!/bin/sh\necho \"agent says $1\"\n")
    (tmp_path / "agent.sh").chmod(0o755)
    h = load_harness(str(write_spec(tmp_path, """
        id = "acme/local-v0"
        [install]
        files = { "agent.sh" = "/opt/acme/agent.sh" }
        run = ["echo installed > /opt/acme/stamp"]
        [launch]
        command = "/opt/acme/agent.sh {model} && cat /opt/acme/stamp"
        """)))

    async def main() -> ExecResult:
        async with await LocalBackend(tmp_root=str(tmp_path)).start(RuntimeSpec(workdir="/app")) as rt:
            return await h.run(CTX, rt, timeout=60)

    result = asyncio.run(main())
    assert result.exit_code == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["agent says policy", "installed"]


def test_a_failing_install_step_is_a_harness_error(tmp_path: Path) -> None:
    from agentgym.runtime.base import RuntimeSpec
    from agentgym.runtime.local import LocalBackend

    h = load_harness(str(write_spec(tmp_path, """
        id = "acme/badinstall-v0"
        [install]
        run = ["echo no such package >&2; exit 100"]
        [launch]
        command = "true"
        """)))

    async def main() -> None:
        async with await LocalBackend(tmp_root=str(tmp_path)).start(RuntimeSpec(workdir="/app")) as rt:
            await h.run(CTX, rt, timeout=60)

    with pytest.raises(HarnessError, match=r"install step .* exited 100: no such package"):
        asyncio.run(main())


# -- the three ways to register ------------------------------------------------------------------

class PythonHarness(Harness):
    id = "acme/python-v0"

    def __init__(self, greeting: str = "hi") -> None:
        self.greeting = greeting

    def launch(self, ctx: HarnessContext, runtime: object) -> Launch:
        return Launch(cmd=f"echo {self.greeting}")


def test_a_python_call_registers_a_harness_that_load_harness_finds() -> None:
    with registries.harnesses.override("acme/python-v0", PythonHarness, greeting="hello"):
        h = load_harness("acme/python-v0")
        assert isinstance(h, PythonHarness) and h.greeting == "hello"
        assert load_harness("acme/python-v0", greeting="hey").greeting == "hey"  # type: ignore[attr-defined]
    with pytest.raises(RegistryError, match="unknown harness id"):
        load_harness("acme/python-v0")


def test_an_installed_packages_entry_point_registers_a_harness(tmp_path: Path) -> None:
    """A package that declares ``[project.entry-points."agentgym.harnesses"]`` is found by id."""
    pkg = tmp_path / "acme_agentgym_plugin"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent("""
        from agentgym.harness import Harness, Launch

        class PluginHarness(Harness):
            id = "acme/plugin-v0"
            version = "0.3"

            def launch(self, ctx, runtime):
                return Launch(cmd="echo plugin")
        """))
    info = tmp_path / "acme_agentgym_plugin-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-agentgym-plugin\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text("[agentgym.harnesses]\nacme/plugin-v0 = acme_agentgym_plugin:PluginHarness\n")
    code = ("from agentgym.harness import load_harness; h = load_harness('acme/plugin-v0'); "
            "print(type(h).__module__, h.id, h.version, h.launch(None, None).cmd)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["acme_agentgym_plugin", "acme/plugin-v0", "0.3", "echo", "plugin"]


def test_a_toml_path_is_a_harness_and_takes_no_arguments(tmp_path: Path) -> None:
    path = write_spec(tmp_path, 'id = "acme/toml-v0"\n[launch]\ncommand = "true"\n')
    assert load_harness(str(path)).id == "acme/toml-v0"
    with pytest.raises(ConfigError, match="takes no arguments"):
        load_harness(str(path), temperature=0.0)
    with pytest.raises(ConfigError, match="cannot read the harness spec"):
        load_harness(str(tmp_path / "missing.toml"))
