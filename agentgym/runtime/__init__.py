"""Runtimes: sandboxes to start, run commands in, read and write, snapshot and stop.

- :class:`DockerBackend` / :class:`DockerRuntime` — real containers through the docker SDK.
- :class:`LocalBackend` / :class:`LocalRuntime` — subprocesses in a temp directory, for machines
  without Docker. **No isolation.**

The backends are imported lazily (the docker SDK is not imported until a Docker backend is used).

>>> from agentgym.runtime import get_backend
>>> get_backend("local").name
'local'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentgym.errors import ConfigError
from agentgym.runtime.base import ExecResult, Runtime, RuntimeBackend, RuntimeFileNotFound, RuntimeSpec

if TYPE_CHECKING:
    from agentgym.runtime.docker import DockerBackend, DockerRuntime
    from agentgym.runtime.images import ImageBuildError
    from agentgym.runtime.local import LocalBackend, LocalRuntime


_LAZY = {
    "DockerBackend": "agentgym.runtime.docker",
    "DockerRuntime": "agentgym.runtime.docker",
    "ImageBuildError": "agentgym.runtime.images",
    "LocalBackend": "agentgym.runtime.local",
    "LocalRuntime": "agentgym.runtime.local",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_backend(name: str = "auto", **kwargs: Any) -> RuntimeBackend:
    """A backend by name: ``docker``, ``local``, or ``auto`` (Docker when its engine answers,
    else local). ``kwargs`` go to the backend's constructor."""
    if name == "auto":
        from agentgym.runtime.docker import docker_available

        name = "docker" if docker_available() else "local"
    if name == "docker":
        from agentgym.runtime.docker import DockerBackend

        return DockerBackend(**kwargs)
    if name == "local":
        from agentgym.runtime.local import LocalBackend

        return LocalBackend(**kwargs)
    raise ConfigError(f"unknown runtime backend {name!r}; expected 'docker', 'local' or 'auto'")


__all__ = [
    "DockerBackend",
    "DockerRuntime",
    "ExecResult",
    "ImageBuildError",
    "LocalBackend",
    "LocalRuntime",
    "Runtime",
    "RuntimeBackend",
    "RuntimeFileNotFound",
    "RuntimeSpec",
    "get_backend",
]
