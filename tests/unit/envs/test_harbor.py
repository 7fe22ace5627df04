"""Harbor task parsing and HarborEnv.evaluate edge cases, on the local runtime (no Docker)."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import pytest

from agentgym import registries
from agentgym.envs import TERMINAL_TASKS
from agentgym.envs.harbor import HarborEnv, load_harbor_task, parse_reward
from agentgym.envs.harbor.task import dockerfile_workdir
from agentgym.errors import EnvError
from agentgym.runtime.local import LocalBackend

FULL_TOML = """
schema_version = "1.1"

[task]
name = "acme/demo"
description = "A demo"
keywords = ["k1"]

[metadata]
difficulty = "hard"
category = "programming"
tags = ["python", "files"]

[metadata.agentgym]
local = true

[verifier]
timeout_sec = 42.0
env = { API_KEY = "sk-test" }

[agent]
timeout_sec = 123.0

[environment]
build_timeout_sec = 300.0
cpus = 2
memory_mb = 4096
storage_mb = 10240
allow_internet = false
env = { MODE = "x" }

[solution]
env = { HINT = "y" }
"""


def make_task(root: Path, name: str = "demo", toml: str = FULL_TOML, test_sh: str | None = None,
              dockerfile: str = "FROM agentgym/base:bookworm\nWORKDIR /srv\nWORKDIR code\n") -> Path:
    d = root / name
    (d / "environment").mkdir(parents=True)
    (d / "tests").mkdir()
    (d / "solution").mkdir()
    (d / "instruction.md").write_text("Do the thing.\n")
    (d / "task.toml").write_text(toml)
    (d / "environment" / "Dockerfile").write_text(dockerfile)
    (d / "solution" / "solve.sh").write_text("echo solved\n")
    (d / "tests" / "test.sh").write_text(test_sh or 'mkdir -p "${AGENTGYM_ROOT:-}/logs/verifier"\n')
    return d


def test_load_full_task_toml(tmp_path: Path) -> None:
    task = load_harbor_task(make_task(tmp_path), env_id="acme/suite-v0")
    assert task.id == "demo" and task.env == "acme/suite-v0" and task.instruction == "Do the thing.\n"
    assert task.image == "agentgym/harbor-demo:latest" and task.dockerfile_dir == str(tmp_path / "demo" / "environment")
    assert task.workdir == "/srv/code"
    assert (task.limits.timeout_s, task.limits.memory, task.limits.cpus) == (123.0, "4096m", 2.0)
    md = task.metadata
    assert (md["difficulty"], md["category"], md["tags"]) == ("hard", "programming", ["python", "files"])
    assert md["name"] == "acme/demo" and md["description"] == "A demo"
    assert md["verifier_timeout_s"] == 42.0 and md["verifier_env"] == {"API_KEY": "sk-test"}
    assert md["solution_env"] == {"HINT": "y"} and dict(task.env_vars) == {"MODE": "x"}
    assert task.network == "none" and md["local"] is True and md["build_timeout_s"] == 300.0
    assert task.tests_dir and task.solution_dir
    spec = HarborEnv(tmp_path).runtime_spec(task)
    assert (spec.image, spec.workdir, spec.memory, spec.cpus, spec.network) == (
        task.image, "/srv/code", "4096m", 2.0, "none")
    assert dict(spec.env) == {"MODE": "x"}


def test_defaults_deprecated_memory_and_prebuilt_image(tmp_path: Path) -> None:
    toml = 'version = "1.0"\n[environment]\nmemory = "512M"\ndocker_image = "acme/prebuilt:1"\n'
    d = make_task(tmp_path, toml=toml)
    task = load_harbor_task(d)
    assert task.image == "acme/prebuilt:1" and task.dockerfile_dir is None
    assert task.limits.memory == "512m" and task.limits.timeout_s == 600.0
    assert task.metadata["verifier_timeout_s"] == 600.0 and task.network == "host"
    reason = HarborEnv(tmp_path).unsupported(task, LocalBackend())
    assert reason is not None and "local = true" in reason


def test_missing_pieces_raise_env_error_naming_the_file(tmp_path: Path) -> None:
    d = make_task(tmp_path)
    (d / "task.toml").write_text("[verifier\n")
    with pytest.raises(EnvError, match=r"task\.toml: invalid TOML"):
        load_harbor_task(d)
    (d / "task.toml").write_text("")
    (d / "environment" / "Dockerfile").unlink()
    with pytest.raises(EnvError, match="Dockerfile"):
        load_harbor_task(d)
    (d / "instruction.md").unlink()
    with pytest.raises(EnvError, match=r"instruction\.md"):
        load_harbor_task(d)


def test_dockerfile_workdir_handles_continuations_and_comments() -> None:
    text = "FROM x\n# WORKDIR /nope\nRUN a \\\n  && b\nWORKDIR /w\n"
    assert dockerfile_workdir(text) == "/w" and dockerfile_workdir("FROM x\n") == "/app"


def test_parse_reward() -> None:
    assert parse_reward(" 0.75\n") == 0.75
    for bad in ("", "yes", "nan", "inf"):
        with pytest.raises(ValueError):
            parse_reward(bad)


def test_suite_selection_and_registry_ids() -> None:
    env = HarborEnv(TERMINAL_TASKS, task_ids=["log-report", "hello-file"])
    assert [t.id for t in env.tasks()] == ["log-report", "hello-file"]
    with pytest.raises(EnvError, match="no task 'nope'"):
        HarborEnv(TERMINAL_TASKS, task_ids=["nope"]).tasks()
    ids = registries.envs.ids()
    assert {"terminal/basic-v0", "terminal/all-v0"} <= set(ids)
    suite = registries.envs.make("terminal/all-v0")
    assert len(suite.tasks()) >= 12
    basic = [t.id for t in registries.envs.make("terminal/basic-v0").tasks()]
    assert basic == sorted(basic) and set(basic) < {t.id for t in suite.tasks()}
    for task in suite.tasks():
        single = registries.envs.make(f"terminal/{task.id}-v0")
        assert [t.id for t in single.tasks()] == [task.id] and single.id == f"terminal/{task.id}-v0"
        assert single.tasks()[0].env == single.id
        assert task.tests_dir and task.solution_dir and task.dockerfile_dir


def evaluate_locally(task_dir: Path) -> tuple[float, dict[str, object]]:
    async def main() -> tuple[float, dict[str, object]]:
        env = HarborEnv(task_dir)
        task = env.tasks()[0]
        rt = await env.start(task, LocalBackend(tmp_root=str(task_dir.parent)))
        try:
            ev = await env.evaluate(task, rt)
            return ev.reward, dict(ev.details)
        finally:
            await rt.stop()

    return asyncio.run(main())


PREFIX = 'L="${AGENTGYM_ROOT:-}/logs/verifier"; mkdir -p "$L"\n'


@pytest.mark.parametrize(("script", "reward"), [
    (PREFIX + "echo 0.5 > $L/reward.txt", 0.5),
    (PREFIX + "echo '{\"reward\": 0.25}' > $L/reward.json", 0.25),
])
def test_reward_files(tmp_path: Path, script: str, reward: float) -> None:
    got, details = evaluate_locally(make_task(tmp_path, test_sh=script))
    assert got == reward and details["reward_file"] == "ok"


@pytest.mark.parametrize(("script", "reason"), [
    (PREFIX + "echo garbage > $L/reward.txt; exit 1", "does not hold a number"),
    (PREFIX + "echo nothing here", "wrote neither"),
    (PREFIX + "echo '[1, 2]' > $L/reward.json", "does not hold a reward"),
])
def test_a_verifier_that_gives_no_reward_leaves_the_episode_unscored(tmp_path: Path, script: str,
                                                                    reason: str) -> None:
    """Unscorable is not reward 0: the episode becomes an eval_error, outside training."""
    with pytest.raises(EnvError, match=reason):
        evaluate_locally(make_task(tmp_path, test_sh=script))


def test_stale_reward_written_by_the_agent_does_not_count(tmp_path: Path) -> None:
    d = make_task(tmp_path, test_sh=PREFIX + "echo 0 > $L/reward.txt")

    async def main() -> float:
        env = HarborEnv(d)
        task = env.tasks()[0]
        rt = await env.start(task, LocalBackend(tmp_root=str(tmp_path)))
        try:
            await rt.write_file("/logs/verifier/reward.txt", "1")
            return (await env.evaluate(task, rt)).reward
        finally:
            await rt.stop()

    assert asyncio.run(main()) == 0.0


def test_verifier_timeout_raises_env_error(tmp_path: Path) -> None:
    toml = FULL_TOML.replace("timeout_sec = 42.0", "timeout_sec = 1.0")
    with pytest.raises(EnvError, match="verifier timed out after 1s"):
        evaluate_locally(make_task(tmp_path, toml=toml, test_sh="sleep 30"))


def test_setup_replays_copy_locally_and_local_refusal(tmp_path: Path) -> None:
    dockerfile = ("FROM agentgym/base:bookworm\nWORKDIR /app\nCOPY data/ /app/data/\nCOPY run.sh ./bin/\n"
                  "ADD [\"note.txt\", \"/etc/note.txt\"]\n")
    d = make_task(tmp_path, dockerfile=dockerfile)
    ctx = d / "environment"
    (ctx / "data").mkdir()
    (ctx / "data" / "a.csv").write_text("a,b\n")
    (ctx / "run.sh").write_text("echo run\n")
    (ctx / "run.sh").chmod(0o755)
    (ctx / "note.txt").write_text("note")

    async def main() -> None:
        env = HarborEnv(d)
        task = env.tasks()[0]
        rt = await env.start(task, LocalBackend(tmp_root=str(tmp_path)))
        try:
            r = await rt.exec("cat data/a.csv && ./bin/run.sh")
            assert r.stdout == "a,b\nrun\n"
            assert await rt.read_file("/etc/note.txt") == b"note"
        finally:
            await rt.stop()
        (d / "task.toml").write_text(textwrap.dedent("""
            [metadata.agentgym]
            local = false
            local_reason = "needs root"
        """))
        with pytest.raises(EnvError, match="needs root"):
            await HarborEnv(d).start(HarborEnv(d).tasks()[0], LocalBackend(tmp_root=str(tmp_path)))

    asyncio.run(main())


def test_gymnasium_wrapper_on_the_local_runtime(tmp_path: Path) -> None:
    import gymnasium

    from agentgym.gym import GymEnv

    env = GymEnv("terminal/hello-file-v0", backend=LocalBackend(tmp_root=str(tmp_path)), max_steps=3)
    try:
        assert isinstance(env, gymnasium.Env)
        obs, info = env.reset(seed=0)
        assert "/app/hello.txt" in obs and info["task_id"] == "hello-file"
        obs, reward, terminated, truncated, info = env.step("printf 'Hello, agentgym!\\n' > /app/hello.txt; echo done")
        assert (obs, reward, terminated, truncated) == ("exit code: 0\ndone\n", 0.0, False, False)
        obs, reward, terminated, truncated, info = env.step("submit")
        assert (reward, terminated, truncated) == (1.0, True, False)
        env.reset(options={"task_id": "hello-file"})
        for _ in range(2):
            assert env.step("true")[3] is False
        obs, reward, terminated, truncated, info = env.step("true")  # step limit: evaluated, truncated
        assert (reward, terminated, truncated) == (0.0, False, True) and "evaluation" in info
    finally:
        env.close()


def test_reward_json_keeps_every_key_and_reward_key_picks_the_training_reward(tmp_path: Path) -> None:
    script = PREFIX + "echo '{\"reward\": 0.5, \"style\": 1, \"speed\": 0.25}' > $L/reward.json; echo 0 > $L/reward.txt"
    reward, details = evaluate_locally(make_task(tmp_path / "a", test_sh=script))
    # reward.json wins over reward.txt (Harbor's order), and no key is dropped.
    assert reward == 0.5 and details["rewards"] == {"reward": 0.5, "style": 1.0, "speed": 0.25}
    toml = FULL_TOML.replace("local = true", 'local = true\nreward_key = "speed"')
    reward, details = evaluate_locally(make_task(tmp_path / "b", toml=toml, test_sh=script))
    assert reward == 0.25 and details["reward_key"] == "speed"


def test_a_reward_json_without_the_training_key_names_its_keys(tmp_path: Path) -> None:
    script = PREFIX + "echo '{\"accuracy\": 1, \"style\": 0}' > $L/reward.json"
    with pytest.raises(EnvError, match=r"no key 'reward' \(keys: accuracy, style\)"):
        evaluate_locally(make_task(tmp_path, test_sh=script))


def test_reward_env_option_and_read_rewards() -> None:
    from agentgym.envs.harbor import read_reward, read_rewards

    assert read_rewards("1", None) == ({"reward": 1.0}, "ok")
    assert read_rewards(None, '{"a": 1, "b": 2.5}') == ({"a": 1.0, "b": 2.5}, "ok")
    assert read_rewards(None, '{"a": "1"}')[0] is None and read_rewards(None, '{"a": NaN}')[0] is None
    assert read_reward(None, '{"a": 1, "b": 2.5}', "b") == (2.5, "ok")
    assert HarborEnv(TERMINAL_TASKS, reward_key="b").reward_key == "b"


def test_limits_env_templates_canary_and_per_task_pids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTGYM_TEST_TOKEN", "t0k")
    toml = FULL_TOML.replace('env = { MODE = "x" }', 'env = { MODE = "${AGENTGYM_TEST_TOKEN}", D = "${NOPE_X:-dflt}" }')
    toml = toml.replace("local = true", "local = true\npids_limit = 64")
    d = make_task(tmp_path, toml=toml)
    (d / "instruction.md").write_text("<!-- harbor-canary GUID 123 -->\n\nDo the thing.\n")
    task = load_harbor_task(d)
    assert dict(task.env_vars) == {"MODE": "t0k", "D": "dflt"} and task.instruction == "Do the thing.\n"
    spec = HarborEnv(d).runtime_spec(task)
    assert (spec.pids, spec.memory, spec.cpus) == (64, "4096m", 2.0)
    missing = make_task(tmp_path / "m", toml=FULL_TOML.replace('MODE = "x"', 'MODE = "${AGENTGYM_UNSET_VAR_X}"'))
    assert "AGENTGYM_UNSET_VAR_X" in load_harbor_task(missing).metadata["unsupported"]


@pytest.mark.parametrize(("command", "ok"), [("test -d /app", True), ("false", False)])
def test_healthcheck_runs_before_the_agent(tmp_path: Path, command: str, ok: bool) -> None:
    toml = FULL_TOML + f'\n[environment.healthcheck]\ncommand = "{command}"\ninterval_sec = 0.05\nretries = 2\n'
    d = make_task(tmp_path, toml=toml)

    async def main() -> None:
        env = HarborEnv(d)
        rt = await env.start(env.tasks()[0], LocalBackend(tmp_root=str(tmp_path)))
        await rt.stop()

    if ok:
        asyncio.run(main())
    else:
        with pytest.raises(EnvError, match="healthcheck failed 2 times"):
            asyncio.run(main())


def test_multi_step_tasks_load_their_steps_and_sidecars_say_why_they_cannot_run() -> None:
    fixtures = Path(__file__).resolve().parents[2] / "fixtures" / "tasks"
    multi = load_harbor_task(fixtures / "harbor-multi-step")
    assert multi.metadata["steps"] == ["write", "append"] and multi.instruction.startswith('Write "one"')
    assert multi.metadata["unsupported"] == "" and multi.metadata["multi_step_reward_strategy"] == "mean"
    write, append = multi.metadata["step_defs"]
    assert (write["agent_timeout_s"], write["min_reward"], append["verifier_timeout_s"]) == (60.0, 1.0, 30.0)
    assert append["workdir_dir"] and not write["workdir_dir"]
    sidecar = load_harbor_task(fixtures / "harbor-sidecar")
    assert "sidecar service(s) db" in sidecar.metadata["unsupported"]
    with pytest.raises(EnvError, match="cannot be scored"):
        asyncio.run(HarborEnv(fixtures / "harbor-sidecar").evaluate(sidecar, None))  # type: ignore[arg-type]


MULTI_STEP = Path(__file__).resolve().parents[2] / "fixtures" / "tasks" / "harbor-multi-step"


def test_a_multi_step_task_runs_its_steps_in_one_sandbox_through_the_gym_adapter(tmp_path: Path) -> None:
    from agentgym.gym import GymEnv

    env = GymEnv(str(MULTI_STEP), backend=LocalBackend(tmp_root=str(tmp_path)))
    try:
        obs, info = env.reset(seed=0)
        assert obs.startswith('Write "one"') and info["stages"] == 2
        env.step("echo one > /app/log.txt")
        obs, reward, terminated, _, info = env.step("submit")
        assert obs.startswith("Append the contents") and not terminated and info["stage"] == "append"
        assert env.step("cat /app/extra.bak")[0].endswith("two\n")  # setup.sh of the step ran after its upload
        env.step("cat /app/extra.txt >> /app/log.txt")
        _, reward, terminated, _, info = env.step("submit")
        assert (reward, terminated) == (1.0, True)
        details = info["evaluation"]
        assert details["rewards"] == {"reward": 1.0, "wrote": 0.5, "appended": 0.5} and details["steps_run"] == 2
    finally:
        env.close()


def test_min_reward_stops_a_multi_step_task_and_the_mean_covers_the_steps_that_ran(tmp_path: Path) -> None:
    from agentgym.gym import GymEnv

    env = GymEnv(str(MULTI_STEP), backend=LocalBackend(tmp_root=str(tmp_path)))
    try:
        env.reset(seed=0)
        _, reward, terminated, _, info = env.step("submit")  # step 'write' scores 0 < min_reward 1.0
        assert (reward, terminated, info["evaluation"]["steps_run"]) == (0.0, True, 1)
    finally:
        env.close()


def test_a_multi_step_task_in_a_rollout(tmp_path: Path) -> None:
    import json as _json

    from agentgym.engines.scripted import ScriptedEngine
    from agentgym.models.tiny import train_tokenizer
    from agentgym.rollout.runner import RolloutConfig, run_rollouts

    def call(command: str) -> str:
        return "<tool_call>" + _json.dumps({"name": "bash", "arguments": {"command": command}}) + "</tool_call>"

    engine = ScriptedEngine(train_tokenizer(), [call("echo one > /app/log.txt"), "Done.",
                                                call("cat /app/extra.txt >> /app/log.txt"), "Done."])
    config = RolloutConfig(env=str(MULTI_STEP), harness="agentgym/react-v0", samples=1, out_dir=str(tmp_path / "out"),
                           runtime="local", progress=False)
    result = asyncio.run(run_rollouts(config, engine))
    (traj,) = result.main
    assert traj.reward == 1.0 and traj.stop_reason.value == "completed", traj.error
    assert [s["step"] for s in traj.metadata["eval"]["stages"]] == ["write", "append"]
