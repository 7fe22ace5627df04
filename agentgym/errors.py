"""One root error, one type per boundary.

Each boundary wraps its failures in its own type so the rollout can record *which* part
failed on the trajectory. Types that replace a stdlib error also inherit it (``LookupError``
for unknown registry ids, ``TimeoutError`` for timeouts) so ordinary ``except`` clauses work.
All errors stay picklable (they cross process boundaries under Ray).
"""

from __future__ import annotations


class AgentGymError(Exception):
    """Root of every error agentgym raises on purpose."""

    boundary = "agentgym"


class ConfigError(AgentGymError, ValueError):
    """A bad argument or configuration value; the message says which and what to do."""

    boundary = "config"


class RegistryError(AgentGymError, LookupError):
    """An unknown or duplicate registry id."""

    boundary = "registry"


class EngineError(AgentGymError):
    boundary = "engine"


class RuntimeError_(AgentGymError, RuntimeError):
    boundary = "runtime"


class ExecTimeout(RuntimeError_, TimeoutError):
    """A command in a runtime ran past its timeout and was killed."""


class HarnessError(AgentGymError):
    boundary = "harness"


class EnvError(AgentGymError):
    boundary = "env"


class ReconstructionError(AgentGymError):
    boundary = "reconstruction"


class ProxyError(AgentGymError):
    """A request the proxy refuses. ``status`` is the HTTP status, ``code`` a stable string."""

    boundary = "proxy"

    def __init__(self, message: str, status: int = 400, code: str = "invalid_request_error",
                 param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.param = param

    def __reduce__(self):  # keep picklable with the extra constructor arguments
        return (type(self), (self.message, self.status, self.code, self.param))


class TrainerError(AgentGymError):
    boundary = "trainer"


class StorageError(AgentGymError, OSError):
    """A run's files cannot be written or read (a read-only or full disk, a missing directory,
    permissions): one line naming the path, the cause and what to do (also an ``OSError``)."""

    boundary = "storage"


def storage_error(e: OSError, path: object, doing: str = "write") -> StorageError:
    """``e`` as a one-line :class:`StorageError`: what could not be done to ``path`` and why."""
    import errno

    hint = {errno.ENOSPC: "free some space, then re-run the same command to resume",
            errno.EDQUOT: "raise the quota or free some space, then re-run the same command to resume",
            errno.EROFS: "the file system is read-only: pass an output directory on a writable one",
            errno.EACCES: "you may not write there: pass an output directory you own",
            errno.EPERM: "you may not write there: pass an output directory you own"}.get(
                e.errno or 0, "check the path and the disk")
    return StorageError(f"cannot {doing} {path}: {e.strerror or e} ({hint})")
