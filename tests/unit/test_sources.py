"""``agentgym.env_from``: one resolution for every ``--env``, checked before any model loads."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentgym import env_from, registries
from agentgym.cli import app
from agentgym.env import Env, Evaluation
from agentgym.envs import SWE_INSTANCES
from agentgym.envs.harbor import HarborEnv
from agentgym.envs.swe import SWEEnv
from agentgym.errors import EnvError
from agentgym.runtime.base import Runtime
from agentgym.sources import source_for
from agentgym.types import Task

FIXTURE_TASKS = Path(__file__).resolve().parents[1] / "fixtures" / "tasks"


class TinyEnv(Env):
    id = "tests/tiny-v0"

    def __init__(self, n: int = 1) -> None:
        self.n = n

    def tasks(self) -> list[Task]:
        return [Task(id=f"t{i}", instruction="x", env=self.id) for i in range(self.n)]

    async def evaluate(self, task: Task, runtime: Runtime) -> Evaluation:
        return Evaluation(reward=0.0)


def test_a_registered_id_and_an_env_pass_through() -> None:
    assert [t.id for t in env_from("terminal/hello-file-v0").tasks()] == ["hello-file"]
    env = TinyEnv()
    assert env_from(env) is env


def test_a_directory_of_tasks_of_both_layouts_is_one_suite() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = env_from(str(FIXTURE_TASKS))
    assert isinstance(env, HarborEnv) and env.id == str(FIXTURE_TASKS)
    formats = {t.id: t.metadata["format"] for t in env.tasks()}
    assert formats == {"harbor-multi-step": "harbor", "harbor-sidecar": "harbor", "harbor-ubuntu-uv": "harbor",
                       "tb1-word-count": "terminal-bench"}
    # Loading warns, once, about the tasks that cannot run, and why.
    assert any("1 task(s) cannot run: harbor-sidecar (environment/docker-compose.yaml runs sidecar service(s) db"
               in str(w.message) for w in caught)


def test_a_single_task_directory_of_each_layout() -> None:
    harbor = env_from(str(FIXTURE_TASKS / "harbor-ubuntu-uv"))
    assert [t.id for t in harbor.tasks()] == ["harbor-ubuntu-uv"]
    tb1 = env_from(str(FIXTURE_TASKS / "tb1-word-count")).tasks()[0]
    assert tb1.metadata["format"] == "terminal-bench" and tb1.workdir == "/app"
    assert tb1.limits.timeout_s == 360.0 and tb1.metadata["verifier_timeout_s"] == 120.0
    assert tb1.instruction.startswith("The file /app/words.txt") and dict(tb1.env_vars) == {"TEST_DIR": "/tests"}


def test_a_swe_bench_file_reaches_swe_env(tmp_path: Path) -> None:
    jsonl = tmp_path / "mine.jsonl"
    jsonl.write_text(SWE_INSTANCES.read_text().splitlines()[0] + "\n")
    env = env_from(str(jsonl))
    assert isinstance(env, SWEEnv) and len(env.tasks()) == 1 and env.id == str(jsonl)
    assert source_for(jsonl) is not None and source_for(jsonl).name == "swe"  # type: ignore[union-attr]


def test_module_attr_names_an_env_across_processes() -> None:
    env = env_from("tests.unit.test_sources:TinyEnv", n=2)
    assert [t.id for t in env.tasks()] == ["t0", "t1"]
    with pytest.raises(EnvError, match=r"cannot load the env 'tests\.unit\.nowhere:X'"):
        env_from("tests.unit.nowhere:X")


def test_what_was_tried_is_said(tmp_path: Path) -> None:
    with pytest.raises(EnvError, match="no such file or directory"):
        env_from("./my-tasks")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EnvError, match=r"not a task collection agentgym reads.*task\.yaml"):
        env_from(str(tmp_path / "empty"))
    with pytest.raises(EnvError, match=r"not a registered env id: unknown env id 'terminal/helo-file-v0'\. Did you mean"):
        env_from("terminal/helo-file-v0")
    assert env_from(TinyEnv(n=0)).tasks() == []  # an Env passes through as it is...
    with pytest.raises(EnvError, match="has no tasks"), registries.envs.override("tests/none-v0", TinyEnv, n=0):
        env_from("tests/none-v0")  # ...an id is validated


def test_a_broken_or_unsupported_task_does_not_hide_its_suite(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    shutil.copytree(FIXTURE_TASKS, suite)
    (suite / "broken").mkdir()
    (suite / "broken" / "task.toml").write_text("[verifier\n")
    (suite / "broken" / "instruction.md").write_text("x")
    with pytest.warns(UserWarning, match="2 task.s. cannot run: broken .cannot be loaded"):
        env = env_from(str(suite))
    by_id = {t.id: t for t in env.tasks()}
    from agentgym.runtime import get_backend

    docker = get_backend("docker")
    try:
        assert "invalid TOML" in (env.unsupported(by_id["broken"], docker) or "")
        assert env.unsupported(by_id["harbor-multi-step"], docker) is None
        assert "sidecar service(s) db" in (env.unsupported(by_id["harbor-sidecar"], docker) or "")
        assert env.unsupported(by_id["harbor-ubuntu-uv"], docker) is None
        assert env.unsupported(by_id["tb1-word-count"], docker) is None
    finally:
        docker.close()


def test_rollout_fails_before_the_model_loads(tmp_path: Path) -> None:
    """A bad --env or --tasks is reported while --model is still unread (it does not exist here)."""
    runner = CliRunner()
    missing = runner.invoke(app, ["rollout", "--env", str(tmp_path / "my-tasks"), "--model", str(tmp_path / "no-model"),
                                  "--out", str(tmp_path / "out")])
    assert missing.exit_code == 2 and "my-tasks: no such file or directory" in missing.output
    unknown = runner.invoke(app, ["rollout", "--env", str(FIXTURE_TASKS / "harbor-ubuntu-uv"), "--tasks", "nope",
                                  "--model", str(tmp_path / "no-model"), "--out", str(tmp_path / "out")])
    assert unknown.exit_code == 2 and "no task 'nope'" in unknown.output
    harness = runner.invoke(app, ["rollout", "--env", "terminal/hello-file-v0", "--harness", "acme/nope-v0",
                                  "--model", str(tmp_path / "no-model"), "--out", str(tmp_path / "out")])
    assert harness.exit_code == 2 and "unknown harness id 'acme/nope-v0'" in harness.output
    assert not (tmp_path / "out").exists()


def test_envs_show_lists_images_limits_runtimes_and_what_is_not_honoured(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    shutil.copytree(FIXTURE_TASKS, suite)
    toml = suite / "harbor-ubuntu-uv" / "task.toml"
    toml.write_text(toml.read_text() + "storage_mb = 4096\n[metadata.agentgym]\npids_limit = 64\n")
    out = CliRunner().invoke(app, ["envs", "show", str(suite)])
    assert out.exit_code == 0, out.output
    text = out.output
    assert "harbor-ubuntu-uv\n  image     agentgym/harbor-harbor-ubuntu-uv:latest (built from" in text
    assert "timeout 300s, memory 1024m, cpus 1.0, pids 64" in text
    assert "not honoured: environment.storage_mb: disk size is not limited" in text
    assert "local     no: the task does not declare [metadata.agentgym] local = true" in text
    assert "docker    no: environment/docker-compose.yaml runs sidecar service(s) db" in text
    assert "harbor-multi-step\n" in text and "local     yes (does not limit memory, cpus, pids)" in text
    local = CliRunner().invoke(app, ["envs", "show", "terminal/hello-file-v0"]).output
    assert "local     yes (does not limit memory, cpus, pids)" in local and "docker    yes\n" in local


def test_train_takes_a_path_and_checks_it_before_anything_else(tmp_path: Path) -> None:
    out = tmp_path / "train"
    r = CliRunner().invoke(app, ["train", "--set", f"env={tmp_path / 'no-such-tasks'}", "--set", f"out={out}"])
    assert r.exit_code == 2 and "no-such-tasks: no such file or directory" in r.output
    assert not out.exists()
