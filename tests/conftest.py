"""Fixtures shared by the whole test suite.

Tests marked ``@pytest.mark.docker`` need a Docker engine. When none answers they FAIL (CI must
notice a broken engine), unless ``AGENTGYM_ALLOW_NO_DOCKER=1``, which turns them into skips.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from agentgym.runtime.docker import DockerBackend

_docker_status: list[tuple[bool, str]] = []


def docker_status() -> tuple[bool, str]:
    """(engine answers, why not), checked once per session."""
    if not _docker_status:
        try:
            import docker

            client = docker.from_env(timeout=5)
            client.ping()
            client.close()
            _docker_status.append((True, ""))
        except Exception as e:  # no SDK, no socket, engine down...
            _docker_status.append((False, f"{type(e).__name__}: {e}"))
    return _docker_status[0]


def require_docker() -> None:
    """Fail (or skip, with AGENTGYM_ALLOW_NO_DOCKER=1) when no Docker engine answers."""
    ok, why = docker_status()
    if ok:
        return
    if os.environ.get("AGENTGYM_ALLOW_NO_DOCKER") == "1":
        pytest.skip(f"no Docker engine ({why}); skipped because AGENTGYM_ALLOW_NO_DOCKER=1")
    pytest.fail(f"this test needs Docker and no engine answers ({why}). Start one with "
                "`agentgym setup`, or set AGENTGYM_ALLOW_NO_DOCKER=1 to skip "
                "Docker tests.", pytrace=False)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("docker") is not None:
        require_docker()


@pytest.fixture(scope="session")
def docker_backend() -> Iterator[DockerBackend]:
    """One :class:`DockerBackend` for the session; removes its containers at the end."""
    require_docker()
    from agentgym.runtime.docker import DockerBackend

    backend = DockerBackend(run_id=f"pytest-{os.getpid()}")
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def mini_venv_python() -> str:
    """The python of the locked mini-swe-agent virtualenv on this host (built once, cached)."""
    from agentgym.harnesses.mini_swe_agent import LOCK
    from agentgym.harnesses.wheelhouse import ensure_venv

    return str(ensure_venv(LOCK) / "bin" / "python")
