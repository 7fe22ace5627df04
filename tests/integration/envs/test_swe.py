"""The SWE suite in real containers, graded by swebench's own parser and resolution status.

For every built-in instance: doing nothing scores 0 (each FAIL_TO_PASS test fails, each
PASS_TO_PASS test passes: SWE-bench's validation), the gold patch alone scores 1 (the verifier
applies the test patch, not the agent) and is what the agent's diff records, the test patch
alone scores 0. Then the ways an agent's final state can be wrong or misleading, a user's
instance file and a user's own repository, the gymnasium adapter and a rollout whose trajectory
carries the agent's diff. Each repository image is built once per session (content-addressed).
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from agentgym.env import Evaluation
from agentgym.envs.swe import SWEEnv
from agentgym.runtime.base import Runtime
from agentgym.runtime.docker import DockerBackend
from agentgym.types import Task

SUITE = SWEEnv()
TASKS = SUITE.tasks()
Act = Callable[[Runtime], Awaitable[None]]

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def images(docker_backend: DockerBackend) -> None:
    """Build (or find) each repository's image once."""
    for image, context in sorted({(t.image or "", t.dockerfile_dir) for t in TASKS}):
        asyncio.run(docker_backend.ensure_image(image, context))


async def episode(env: SWEEnv, task: Task, backend: DockerBackend, act: Act | None = None) -> Evaluation:
    runtime = await env.start(task, backend)
    try:
        if act is not None:
            await act(runtime)
        return await env.evaluate(task, runtime)
    finally:
        await runtime.stop()


def run(env: SWEEnv, task: Task, backend: DockerBackend, act: Act | None = None) -> Evaluation:
    return asyncio.run(episode(env, task, backend, act))


def shell(*commands: str) -> Act:
    async def act(runtime: Runtime) -> None:
        for command in commands:
            result = await runtime.exec(command, timeout=120, workdir="/testbed")
            assert result.ok, f"{command}: {result.stderr or result.stdout}"
    return act


def apply(patch: str, *then: str) -> Act:
    async def act(runtime: Runtime) -> None:
        await runtime.write_file("/tmp/change.patch", patch)
        await shell("git apply /tmp/change.patch && rm /tmp/change.patch", *then)(runtime)
    return act


def oracle(env: SWEEnv, task: Task, *then: str) -> Act:
    async def act(runtime: Runtime) -> None:
        assert (await env.oracle(task, runtime)).ok
        await shell(*then)(runtime)
    return act


@pytest.mark.parametrize("task", TASKS, ids=[t.id for t in TASKS])
def test_nothing_scores_0_the_gold_patch_1_and_the_tests_alone_0(docker_backend: DockerBackend, images: None,
                                                                 task: Task) -> None:
    inst = SUITE.instance(task)

    async def main() -> list[Evaluation]:
        return list(await asyncio.gather(
            episode(SUITE, task, docker_backend),
            episode(SUITE, task, docker_backend, oracle(SUITE, task)),
            episode(SUITE, task, docker_backend, apply(inst.test_patch))))

    nothing, gold, tests_only = asyncio.run(main())
    assert nothing.reward == 0.0 and nothing.details["patch"] == "" and nothing.details["resolution"] == "RESOLVED_NO"
    assert sorted(nothing.details["FAIL_TO_PASS"]["failure"]) == sorted(inst.fail_to_pass)
    assert sorted(nothing.details["PASS_TO_PASS"]["success"]) == sorted(inst.pass_to_pass)
    assert gold.reward == 1.0, gold.details["test_output"]
    assert gold.details["resolution"] == "RESOLVED_FULL" and gold.details["patch"] == inst.patch
    assert gold.details["tests"] == {t: "PASSED" for t in (*inst.fail_to_pass, *inst.pass_to_pass)}
    assert gold.details["tampering"] == [] and "fresh container" in gold.details["isolation"]
    assert tests_only.reward == 0.0 and tests_only.details["patch"] == inst.test_patch
    assert tests_only.details["FAIL_TO_PASS"]["failure"]


def by_id(instance_id: str) -> Task:
    return SUITE.task(instance_id)


def test_a_fix_that_breaks_another_test_scores_0(docker_backend: DockerBackend, images: None) -> None:
    task = by_id("agentgym__spans-9")
    ev = run(SUITE, task, docker_backend, oracle(
        SUITE, task, "sed -i 's/iv.start <= merged\\[-1\\].end/iv.start < merged[-1].end/' spans/ops.py"))
    assert ev.reward == 0.0 and ev.details["resolution"] == "RESOLVED_NO"
    assert ev.details["FAIL_TO_PASS"]["failure"] == []
    assert ev.details["PASS_TO_PASS"]["failure"] == ["tests/test_ops.py::test_merge_touching"]


def test_editing_the_tests_does_not_help(docker_backend: DockerBackend, images: None) -> None:
    task = by_id("agentgym__textkit-7")
    fake = "def test_max_length_drops_whole_words():\n    pass\n"
    ev = run(SUITE, task, docker_backend, shell(f"printf '{fake}' > tests/test_slug.py"))
    assert ev.reward == 0.0 and "tests/test_slug.py" in ev.details["patch"]
    assert ev.details["tests"]["tests/test_slug.py::test_max_length_drops_whole_words"] == "FAILED"


def test_committed_work_counts_even_without_the_git_directory(docker_backend: DockerBackend, images: None) -> None:
    task = by_id("agentgym__textkit-7")
    ev = run(SUITE, task, docker_backend, oracle(
        SUITE, task, "git add -A && git -c user.name=a -c user.email=a@b.c commit -qm fix", "rm -rf .git"))
    assert ev.reward == 1.0 and ev.details["patch"] == SUITE.instance(task).patch


def test_new_files_are_in_the_diff_and_bytecode_is_not(docker_backend: DockerBackend, images: None) -> None:
    task = by_id("agentgym__textkit-24")
    ev = run(SUITE, task, docker_backend, oracle(
        SUITE, task, "printf 'notes\\n' > NOTES.md", "python3 -m pytest -q tests", "rm .gitignore"))
    assert ev.reward == 1.0
    # the agent's .gitignore is gone, the pristine one's patterns still keep bytecode out
    assert re.findall(r"^diff --git a/(\S+) ", ev.details["patch"], re.M) == [".gitignore", "NOTES.md", "textkit/case.py"]


def test_printed_passed_lines_do_not_resolve(docker_backend: DockerBackend, images: None) -> None:
    """A patch that prints fake ``PASSED`` lines after pytest's summary: swebench's exit-code check."""
    task = by_id("agentgym__spans-9")
    lines = "".join(f"print('PASSED {t}')\\n    " for t in SUITE.instance(task).fail_to_pass)
    conftest = f"def pytest_unconfigure(config):\\n    {lines}\\n"
    ev = run(SUITE, task, docker_backend, shell(f"printf \"{conftest}\" > conftest.py"))
    assert "PASSED tests/test_ops.py::test_merge_an_interval_contained_in_another" in ev.details["test_output"]
    assert ev.reward == 0.0 and ev.details["resolution"] == "RESOLVED_NO"
    assert ev.details["patch_applied"] and not ev.details["log_gradable"]


def test_tests_that_hang_score_0(docker_backend: DockerBackend, images: None) -> None:
    env = SWEEnv(instance_ids=["agentgym__spans-9"], test_timeout_s=5)
    task = env.tasks()[0]
    ev = run(env, task, docker_backend, shell("printf 'import time\\ntime.sleep(3600)\\n' >> spans/ops.py"))
    assert ev.reward == 0.0 and ">>>>> Tests Timed Out" in ev.details["test_output"]


# -- instances from elsewhere ----------------------------------------------------------------------
def test_an_instance_file_given_by_path_runs(docker_backend: DockerBackend, images: None, tmp_path: Path) -> None:
    row = SUITE.instance(by_id("agentgym__confparse-13")).row()
    row.update(instance_id="mine__confparse-1", FAIL_TO_PASS=json.loads(row["FAIL_TO_PASS"]),
               PASS_TO_PASS=json.loads(row["PASS_TO_PASS"]))  # SWE-Gym style: lists
    path = tmp_path / "mine.json"
    path.write_text(json.dumps([row]))
    env = SWEEnv(path=path)
    task = env.task("mine__confparse-1")
    assert run(env, task, docker_backend).reward == 0.0
    assert run(env, task, docker_backend, oracle(env, task)).reward == 1.0


def git(repo: Path, *args: str) -> str:
    # fixed identity and dates: the same commit every run, so its image is built once
    env = {"GIT_AUTHOR_NAME": "u", "GIT_AUTHOR_EMAIL": "u@x.invalid", "GIT_COMMITTER_NAME": "u",
           "GIT_COMMITTER_EMAIL": "u@x.invalid", "GIT_AUTHOR_DATE": "1700000000 +0000",
           "GIT_COMMITTER_DATE": "1700000000 +0000", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
           "PATH": "/usr/bin:/bin", "HOME": str(repo)}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout


def test_a_users_own_repository(docker_backend: DockerBackend, tmp_path: Path) -> None:
    repo = tmp_path / "calc"
    (repo / "calc").mkdir(parents=True)
    (repo / "tests").mkdir()
    (repo / "calc" / "__init__.py").write_text("def mean(xs):\n    return sum(xs) / len(xs) if xs else None\n")
    (repo / "tests" / "test_calc.py").write_text("from calc import mean\n\n\ndef test_mean():\n"
                                                 "    assert mean([1, 2, 3]) == 2\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "calc")
    base = git(repo, "rev-parse", "HEAD").strip()
    (repo / "calc" / "__init__.py").write_text("def mean(xs):\n    return sum(xs) / len(xs) if xs else 0.0\n")
    patch = git(repo, "diff")
    git(repo, "checkout", "-q", ".")
    with (repo / "tests" / "test_calc.py").open("a") as f:
        f.write("\n\ndef test_mean_of_nothing():\n    assert mean([]) == 0.0\n")
    test_patch = git(repo, "diff")
    git(repo, "checkout", "-q", ".")
    row = {"instance_id": "acme__calc-1", "repo": "acme/calc", "base_commit": base, "patch": patch,
           "test_patch": test_patch, "problem_statement": "mean([]) is None\n\nIt should be 0.0.",
           "FAIL_TO_PASS": ["tests/test_calc.py::test_mean_of_nothing"], "PASS_TO_PASS": ["tests/test_calc.py::test_mean"]}
    (tmp_path / "calc.jsonl").write_text(json.dumps(row) + "\n")
    env = SWEEnv(path=tmp_path / "calc.jsonl", repos={"acme/calc": repo})
    task = env.task("acme__calc-1")
    assert task.image and task.image.startswith("agentgym/swe-acme-calc:")
    nothing = run(env, task, docker_backend)
    assert nothing.reward == 0.0 and nothing.details["tests"] == {
        "tests/test_calc.py::test_mean": "PASSED", "tests/test_calc.py::test_mean_of_nothing": "FAILED"}
    gold = run(env, task, docker_backend, oracle(env, task))
    assert gold.reward == 1.0 and gold.details["patch"] == patch


# -- the layers above ------------------------------------------------------------------------------
FIX_WRAP = "sed -i 's/len(current) + len(word) <= width/len(current) + 1 + len(word) <= width/' textkit/wrap.py"


def test_gymnasium_adapter_text_in_text_out(docker_backend: DockerBackend, images: None) -> None:
    import agentgym

    env = agentgym.make("swe/agentgym__textkit-21-v0", backend=docker_backend)
    try:
        obs, info = env.reset(seed=0)
        assert info == {"task_id": "agentgym__textkit-21", "workdir": "/testbed"}
        assert obs.startswith("wrap() returns lines longer than width")
        obs, reward, terminated, truncated, _ = env.step("git status --short && grep -c width textkit/wrap.py")
        assert obs.startswith("exit code: 0") and reward == 0.0 and not (terminated or truncated)
        env.step(FIX_WRAP)
        obs, reward, terminated, truncated, info = env.step("submit")
        assert (obs, reward, terminated, truncated) == ("reward: 1", 1.0, True, False)
        assert "+        elif len(current) + 1 + len(word) <= width:" in info["evaluation"]["patch"]
    finally:
        env.close()


def test_gymnasium_check_env_passes(docker_backend: DockerBackend, images: None) -> None:
    """gymnasium's own checker: spaces, reset determinism per seed, random text actions run as
    shell commands in the container, the step limit ending (and grading) an episode."""
    from gymnasium.utils.env_checker import check_env

    import agentgym

    env = agentgym.make("swe/agentgym__textkit-7-v0", backend=docker_backend, max_steps=5)
    try:
        check_env(env, skip_render_check=True)
    finally:
        env.close()


def test_a_rollout_records_the_agents_diff_on_the_trajectory(docker_backend: DockerBackend, images: None,
                                                            tmp_path: Path) -> None:
    from agentgym.engines.scripted import ScriptedEngine
    from agentgym.models.tiny import train_tokenizer
    from agentgym.rollout.runner import RolloutConfig, run_rollouts

    tokenizer = train_tokenizer()
    call = json.dumps({"name": "bash", "arguments": {"command": f"cd /testbed && {FIX_WRAP}"}})

    def reply(prompt_ids: Any, n: int) -> str:
        return "Fixed." if "<tool_response>" in tokenizer.decode(prompt_ids) else f"<tool_call>\n{call}\n</tool_call>"

    cfg = RolloutConfig(env="swe/agentgym__textkit-21-v0", harness="agentgym/react-v0", samples=1,
                        out_dir=str(tmp_path / "run"), runtime="docker", progress=False, max_steps=3,
                        max_model_len=8192)
    result = asyncio.run(run_rollouts(cfg, ScriptedEngine(tokenizer, reply)))
    (trajectory,) = result.main
    assert trajectory.reward == 1.0, trajectory.error
    evaluation = trajectory.metadata["eval"]
    assert evaluation["patch"] == SUITE.instance(by_id("agentgym__textkit-21")).patch
    assert re.search(r"PASSED tests/test_wrap.py::test_lines_never_exceed_the_width\[2\]", evaluation["test_output"])
