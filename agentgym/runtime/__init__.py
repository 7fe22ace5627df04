"""Runtimes: sandboxes to start, run commands in, read and write, snapshot and stop.

- :class:`DockerBackend` / :class:`DockerRuntime` — real containers through the docker SDK.
- :class:`WarmPool` — sandboxes started ahead of the episodes that will use them, around any backend.
- :class:`LocalBackend` / :class:`LocalRuntime` — commands on this machine, each in a bubblewrap
  sandbox over a temp directory, for machines without Docker (``local``); ``local-unsafe`` runs
  them with **no isolation**, for machines that cannot run bubblewrap.

A sandbox's network (``RuntimeSpec.network``) is ``host``, ``none``, or ``proxy``: nothing but
the proxy, reached through its Unix socket (:class:`ProxyEndpoint`).

The backends are imported lazily (the docker SDK is not imported until a Docker backend is used).

>>> from agentgym.runtime import get_backend
>>> get_backend("local").name
'local'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentgym.errors import ConfigError
from agentgym.runtime.base import (
    ExecResult,
    HostCommand,
    ProxyEndpoint,
    Runtime,
    RuntimeBackend,
    RuntimeFileNotFound,
    RuntimeSpec,
)

if TYPE_CHECKING:
    from agentgym.runtime.docker import DockerBackend, DockerRuntime
    from agentgym.runtime.images import ImageBuildError
    from agentgym.runtime.local import LocalBackend, LocalRuntime
    from agentgym.runtime.pool import WarmPool


_LAZY = {
    "DockerBackend": "agentgym.runtime.docker",
    "DockerRuntime": "agentgym.runtime.docker",
    "ImageBuildError": "agentgym.runtime.images",
    "LocalBackend": "agentgym.runtime.local",
    "LocalRuntime": "agentgym.runtime.local",
    "WarmPool": "agentgym.runtime.pool",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_backend(name: str = "auto", **kwargs: Any) -> RuntimeBackend:
    """A backend by name: ``docker``, ``local`` (bubblewrap sandboxes), ``local-unsafe`` (the local
    runtime without isolation), or ``auto`` (Docker when its engine answers, else local).
    ``kwargs`` go to the backend's constructor."""
    if name == "auto":
        from agentgym.runtime.docker import docker_available

        name = "docker" if docker_available() else "local"
    if name == "docker":
        from agentgym.runtime.docker import DockerBackend

        return DockerBackend(**kwargs)
    if name in ("local", "local-unsafe"):
        from agentgym.runtime.local import LocalBackend

        return LocalBackend(**{"isolation": "none" if name == "local-unsafe" else "bubblewrap", **kwargs})
    raise ConfigError(f"unknown runtime backend {name!r}; expected 'docker', 'local', 'local-unsafe' or 'auto'")


__all__ = [
    "DockerBackend",
    "DockerRuntime",
    "ExecResult",
    "HostCommand",
    "ImageBuildError",
    "LocalBackend",
    "LocalRuntime",
    "ProxyEndpoint",
    "Runtime",
    "RuntimeBackend",
    "RuntimeFileNotFound",
    "RuntimeSpec",
    "WarmPool",
    "get_backend",
]
