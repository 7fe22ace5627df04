"""The GUI suite in real containers: Xvfb, openbox, the Tk apps and chromium, driven through the
in-container action server.

``agentgym check env gui/all-v0`` (as CI and a user run it): every task scores 0 untouched and 1
after its oracle, which solves it with the same actions an agent has. Then what an agent sees
and does: each reply carries a PNG of the screen and the app's accessible tree, actions change
the app, refused keys and bad requests leave it as it was; the verifier grades what the
recorded GUI actions do when replayed (a forged state file does not count) and, without a
record, ignores what runs in the container after the episode; and ``agentgym.make("gui/...")`` is a ``gymnasium.Env`` that passes gymnasium's own
checker. All of it shares the suite's one image (built once, content-addressed).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest

from agentgym.envs.gui import ActionClient, GuiEnv
from agentgym.envs.gui.client import center
from agentgym.envs.gui.env import STATE_FILE
from agentgym.envs.gui.gym import KINDS
from agentgym.runtime.base import Runtime
from agentgym.runtime.docker import DockerBackend

pytestmark = pytest.mark.docker

SUITE = GuiEnv()


@pytest.fixture(scope="module")
def image(docker_backend: DockerBackend) -> str:
    task = SUITE.tasks()[0]
    assert task.image is not None
    return asyncio.run(docker_backend.ensure_image(task.image, task.dockerfile_dir))


@asynccontextmanager
async def desktop(task_id: str, backend: DockerBackend, *,
                  recorded: bool = False) -> AsyncIterator[tuple[Runtime, ActionClient]]:
    """A started task and a client of its action server: ``recorded`` through the env (its
    verifier replays the actions), else directly (as an agent inside the container would)."""
    runtime = await SUITE.start(SUITE.task(task_id), backend)
    try:
        async with await (SUITE.actions(runtime) if recorded else ActionClient.over_exec(runtime)) as gui:
            yield runtime, gui
    finally:
        await runtime.stop()


FORGED_FORM = ('{"submitted": true, "name": "Ada Lovelace", "email": "ada@example.org", "plan": "Pro", '
               '"newsletter": true}')


@pytest.mark.slow
def test_check_env_scores_nothing_0_and_the_oracle_1(image: str, tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "agentgym.cli", "check", "env", "gui/all-v0", "--runtime", "docker"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    for task in SUITE.tasks():
        line = next(line for line in r.stdout.splitlines() if line.startswith(f"{task.id} "))
        assert "nothing=0 ok" in line and "oracle=1 ok" in line, r.stdout
    assert "gui/all-v0: 3 task(s) on docker: 3 ok" in r.stdout


def test_an_action_answers_with_the_screen_and_the_apps_tree(image: str, docker_backend: DockerBackend) -> None:
    async def go() -> None:
        async with desktop("tk-todo", docker_backend) as (runtime, gui):
            before = await gui.observe()
            assert before.error is None and (before.width, before.height) == (800, 600)
            pixels = before.pixels()
            assert pixels.shape == (600, 800, 3) and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 10
            item = next(n for n in before.tree if n["role"] == "listitem" and n["name"] == "[ ] Pay rent")
            after = await gui.double_click(*center(item))
            assert after.error is None
            assert any(n["name"] == "[x] Pay rent" for n in after.tree)
            assert (after.pixels() != pixels).any()  # the screenshot shows it, too
            assert set(after.timing) >= {"action_s", "settle_s", "encode_s", "tree_s"}
            # What the verifier reads is what the app saved.
            state = (await runtime.exec(f"cat {STATE_FILE}", timeout=10)).stdout
            assert '"done": true' in state

    asyncio.run(go())


def test_refused_keys_and_bad_requests_leave_the_app_as_it_was(image: str, docker_backend: DockerBackend) -> None:
    async def go() -> None:
        async with desktop("web-cart", docker_backend) as (_, gui):
            before = await gui.observe()
            assert any(n["name"] == "Add one Apples" for n in before.tree)
            for keys in ("ctrl+l", "Ctrl+W", "alt+F4", "ctrl+shift+i"):  # address bar, close, devtools
                reply = await gui.key(keys)
                assert reply.error and "not allowed" in reply.error
            assert (await gui.key("NoSuchKey")).error
            assert (await gui.request({"action": "click", "x": 5})).error == "'click' needs 'y'"
            after = await gui.wait(0.3)
            assert [n["name"] for n in after.tree] == [n["name"] for n in before.tree]
            assert (after.pixels() == before.pixels()).all()

    asyncio.run(go())


def test_a_forged_state_does_not_count_the_verifier_replays_the_recorded_actions(
        image: str, docker_backend: DockerBackend) -> None:
    """The agent has a shell too: it fills in one field through the GUI, then writes the state
    file the form would have saved. The replay of its GUI actions in a fresh container submits
    nothing, so the reward is 0, and the mismatch is recorded."""
    async def go() -> None:
        task = SUITE.task("tk-form")
        async with desktop("tk-form", docker_backend, recorded=True) as (runtime, gui):
            obs = await gui.observe()
            await gui.click_on(obs.find("textbox", "Full name"))
            typed = await gui.type("Ada Lovelace")
            assert typed.find("textbox", "Full name")["value"] == "Ada Lovelace"
            await runtime.write_file(STATE_FILE, FORGED_FORM)
            evaluation = await SUITE.evaluate(task, runtime)
        details = evaluation.details
        assert evaluation.reward == 0.0 and details["problem"] == "no state file: the app never saved"
        assert details["verified_by"].startswith("replaying the episode's 3 recorded actions")
        assert details["replay"] == {"actions": 3, "matches_agent_state": False}
        assert any(e.startswith("state: ") for e in details["tampering"])

    asyncio.run(go())


def test_the_replay_gives_what_the_gui_actions_did(image: str, docker_backend: DockerBackend) -> None:
    """Recorded actions that solve the task score 1 through the replay, and the agent's own
    container saved the same state."""
    async def go() -> None:
        task = SUITE.task("tk-todo")
        async with desktop("tk-todo", docker_backend) as (runtime, _):
            assert (await SUITE.oracle(task, runtime)).ok  # through SUITE.actions: recorded
            evaluation = await SUITE.evaluate(task, runtime)
        assert evaluation.reward == 1.0, evaluation.details
        assert evaluation.details["replay"]["matches_agent_state"] is True
        assert evaluation.details["replay"]["actions"] >= 7
        assert evaluation.details["tampering"] == []

    asyncio.run(go())


def test_without_recorded_actions_the_state_file_is_read_with_nothing_of_the_episode_running(
        image: str, docker_backend: DockerBackend) -> None:
    """An agent that drove the action server itself leaves no record: the state file is graded,
    read in a sealed container. A process left to forge it after the episode is gone by then."""
    async def go() -> None:
        task = SUITE.task("tk-form")
        async with desktop("tk-form", docker_backend) as (runtime, gui):
            await gui.observe()
            await runtime.write_file("/tmp/forged.json", FORGED_FORM)
            await runtime.write_file("/tmp/late.sh", f"sleep 3; cp /tmp/forged.json {STATE_FILE}\n")
            started = await runtime.exec("setsid -f sh /tmp/late.sh >/dev/null 2>&1", timeout=10)
            assert started.ok
            evaluation = await SUITE.evaluate(task, runtime)
        assert evaluation.reward == 0.0
        assert evaluation.details["problem"] == "no state file: the app never saved"
        assert evaluation.details["verified_by"].startswith("the state file, read in a sealed container")
        assert any("late.sh" in e for e in evaluation.details["tampering"]), evaluation.details["tampering"]

    asyncio.run(go())


@pytest.mark.slow
def test_make_gives_a_gymnasium_env_of_screens_that_passes_check_env(image: str, docker_backend: DockerBackend) -> None:
    import gymnasium
    from gymnasium.utils.env_checker import check_env

    import agentgym

    env = agentgym.make("gui/tk-form-v0", backend=docker_backend, max_steps=4)
    try:
        assert isinstance(env, gymnasium.Env)
        obs, info = env.reset(seed=0)
        assert obs in env.observation_space and obs["screen"].shape == (600, 800, 3)
        assert 'button "Submit"' in obs["text"] and "Ada Lovelace" in info["instruction"]
        assert info["png"].startswith(b"\x89PNG")
        obs, reward, terminated, truncated, info = env.step({"kind": "key", "text": "ctrl+w"})
        assert (reward, terminated, truncated, info["error"]) == (0.0, False, False, None)  # Tk has no such key
        obs, reward, terminated, truncated, info = env.step({"kind": KINDS.index("submit")})
        assert (reward, terminated, truncated) == (0.0, True, False)
        assert info["evaluation"]["checks"] == {"state": False}
        check_env(env, skip_render_check=True)
    finally:
        env.close()
