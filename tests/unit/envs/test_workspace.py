"""The procedural workspace family: instances are deterministic, the oracle scores 1, doing
nothing scores 0, each requirement is checked on its own, and distractors never count."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agentgym import registries
from agentgym.envs.workspace import _ORACLE, KINDS, WorkspaceEnv, make_instance
from agentgym.errors import ConfigError
from agentgym.runtime.base import RuntimeBackend
from agentgym.runtime.local import LocalBackend


def score(env: WorkspaceEnv, task_index: int, backend: RuntimeBackend, commands: str | None,
          oracle: bool = False) -> tuple[float, dict[str, bool]]:
    async def main() -> tuple[float, dict[str, bool]]:
        task = env.tasks()[task_index]
        async with await env.start(task, backend) as rt:
            if oracle:
                assert (await env.oracle(task, rt)).ok
            elif commands:
                assert (await rt.exec(commands, timeout=30)).ok
            ev = await env.evaluate(task, rt)
            return ev.reward, ev.details["held"]

    return asyncio.run(main())


def test_instances_are_deterministic_and_varied() -> None:
    a, b = WorkspaceEnv(num_tasks=50, seed=3), WorkspaceEnv(num_tasks=50, seed=3)
    assert [t.instruction for t in a.tasks()] == [t.instruction for t in b.tasks()]
    kinds = {tuple(WorkspaceEnv.instance(t).kinds) for t in a.tasks()}
    assert len(kinds) == 6 and all(len(k) == 2 for k in kinds)  # every pair of the four basic kinds
    hard = {tuple(WorkspaceEnv.instance(t).kinds) for t in registries.envs.make("terminal/workspace-hard-v0").tasks()}
    assert len(hard) == 15
    assert WorkspaceEnv(num_tasks=50, seed=4).tasks()[0].instruction != a.tasks()[0].instruction or \
        WorkspaceEnv(num_tasks=50, seed=4).tasks()[1].instruction != a.tasks()[1].instruction
    assert len(registries.envs.make("terminal/workspace-v0").tasks()) == 1000


def test_bad_arguments_say_what_is_allowed() -> None:
    with pytest.raises(ConfigError, match="between 1 and 6"):
        make_instance(0, requirements=7)
    with pytest.raises(ConfigError, match="unknown requirement kind"):
        WorkspaceEnv(kinds=("dir", "nope"))


@pytest.mark.parametrize("i", range(6))
def test_oracle_scores_1_and_nothing_scores_0_locally(tmp_path: Path, i: int) -> None:
    env = WorkspaceEnv(num_tasks=6, seed=11, requirements=3, kinds=tuple(KINDS))
    backend = LocalBackend(tmp_root=str(tmp_path))
    assert score(env, i, backend, None)[0] == 0.0
    reward, held = score(env, i, backend, None, oracle=True)
    assert reward == 1.0 and all(held.values()) and len(held) == 3


@pytest.mark.parametrize("kind, commands, expected", [
    ("dir", "mkdir sub", True),
    ("dir", "touch notadir", False),
    ("file", "echo x > a.txt", True),
    ("file", "touch a.txt", False),
    ("word", "mkdir d && echo 'say {word} now' > d/w.txt", True),
    ("word", "echo nothing > w.txt", False),
    ("empty", "touch e.txt", True),
    ("empty", "echo x > e.txt", False),
    ("python", "echo 'print(1)' > m.py", True),
    ("python", "echo x > m.txt", False),
    ("nested", "mkdir -p s && echo x > s/f.txt", True),
    ("nested", "mkdir -p s && touch s/f.txt", False),
])
def test_each_requirement_is_checked(tmp_path: Path, kind: str, commands: str, expected: bool) -> None:
    env = WorkspaceEnv(num_tasks=1, seed=0, requirements=1, kinds=(kind,))
    word = WorkspaceEnv.instance(env.tasks()[0]).word
    reward, held = score(env, 0, LocalBackend(tmp_root=str(tmp_path)), commands.format(word=word))
    assert held == {kind: expected} and reward == float(expected)


def test_distractor_files_do_not_count(tmp_path: Path) -> None:
    env = WorkspaceEnv(num_tasks=1, seed=5, requirements=1, kinds=("file",))
    inst = WorkspaceEnv.instance(env.tasks()[0])
    assert inst.noise  # there are distractors, all non-empty files
    touch_noise = " && ".join(f"echo more >> {name}" for name, _ in inst.noise)
    assert score(env, 0, LocalBackend(tmp_root=str(tmp_path)), touch_noise)[0] == 0.0


def test_every_kind_has_an_oracle_and_a_wording() -> None:
    from agentgym.envs.workspace import _ORACLE

    assert set(_ORACLE) == set(KINDS)


@pytest.mark.docker
def test_oracle_and_nothing_in_docker(docker_backend: RuntimeBackend) -> None:
    env = WorkspaceEnv(num_tasks=2, seed=1, requirements=3, kinds=tuple(KINDS))
    for i in range(2):
        assert score(env, i, docker_backend, None)[0] == 0.0
        assert score(env, i, docker_backend, None, oracle=True)[0] == 1.0


def test_team_variant_lists_three_independent_requirements_one_per_line(tmp_path: Path) -> None:
    import importlib.util

    from agentgym.harnesses.planner import SCRIPT

    env = registries.envs.make("terminal/workspace-team-v0")
    assert env.id == "terminal/workspace-team-v0" and len(env.tasks()) == 1000
    spec = importlib.util.spec_from_file_location("planner_agent_for_env_test", SCRIPT)
    assert spec is not None and spec.loader is not None
    planner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(planner)
    backend = LocalBackend(tmp_root=str(tmp_path))
    for i in range(3):
        task = env.tasks()[i]
        kinds = WorkspaceEnv.instance(task).kinds
        parts = planner.split_task(task.instruction)
        assert len(kinds) == 3 and len(parts) == 3
        # each part is a whole task with one requirement, which its own command meets (a .py file with
        # code is also a non-empty file, so one part can meet another's too); alone it never succeeds
        for kind, part in zip(kinds, parts, strict=True):
            assert KINDS[kind].format(word=WorkspaceEnv.instance(task).word) in part
            assert part.startswith("Set up the workspace in /app.") and "do not count" in part
            assert sum(KINDS[k].format(word=WorkspaceEnv.instance(task).word) in part for k in kinds) == 1
            reward, held = score(env, i, backend, _ORACLE[kind])
            assert reward == 0.0 and held[kind]
        assert score(env, i, backend, None, oracle=True)[0] == 1.0
