"""Scheduling a rollout: per-phase timeouts, concurrency limits per resource, over-provisioned groups.

- :class:`PhaseTimeouts` — how long an episode may spend getting its image (``build_s``), getting
  a ready sandbox (``setup_s``: started or handed over by the warm pool, then ``Env.setup``) and
  in each verification (``verify_s``). The agent's own time is ``RolloutConfig.timeout_s`` (or
  the stage's, or the task's limit), enforced inside the sandbox as before. A phase that runs
  over is typed like any failure of that phase: build and setup are ``runtime_error`` (retried
  on resume), verify is ``eval_error`` (unscorable); the error is a :class:`PhaseTimeout`.
- :class:`ResourceLimits` — most sandbox starts at once (the Docker engine), verifications at
  once (test suites are CPU-heavy) and episodes of one task at once, beside the run's
  ``concurrency`` (episodes at once).
- :class:`Overprovision` — start ``ceil(samples * (1 + extra))`` episodes of a task and cancel
  the rest once ``samples`` of them have ended (:class:`GroupTracker`): the long tail does not
  hold the batch back. Cancelled episodes are kept as data (stop reason ``cancelled``, their
  calls reconstructed), and left out of training by default.

>>> Overprovision(extra=0.5).episodes(4)
6
>>> tracker = GroupTracker(samples=2)
>>> tracker.ended("completed"), tracker.ended("runtime_error"), tracker.complete
(False, False, False)
>>> tracker.ended("timeout"), tracker.complete, tracker.cancel.is_set()
(True, True, True)
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import TypeVar

from agentgym.errors import AgentGymError
from agentgym.types import StopReason

__all__ = ["GroupTracker", "Overprovision", "PhaseTimeout", "PhaseTimeouts", "ResourceLimits", "within"]

T = TypeVar("T")


class PhaseTimeout(AgentGymError):
    """An episode's phase (``build``, ``setup``, ``verify``) ran past its :class:`PhaseTimeouts` limit."""

    def __init__(self, phase: str, limit_s: float) -> None:
        self.phase = phase
        self.limit_s = limit_s
        self.boundary = "env" if phase == "verify" else "runtime"
        super().__init__(f"the {phase} phase ran past its limit of {limit_s:g}s "
                         f"(RolloutConfig.timeouts.{phase}_s)")

    def __reduce__(self) -> tuple[type[PhaseTimeout], tuple[str, float]]:
        return (PhaseTimeout, (self.phase, self.limit_s))


@dataclass(frozen=True)
class PhaseTimeouts:
    """Seconds each phase of an episode may take (``None``: no limit)."""

    build_s: float | None = None
    """Getting the episode's image: the task image plus the harness layer (a build, or waiting
    for another episode's build). Images are built before the first episode starts; this bounds
    that too (a build cut short goes on in its thread and is reused when it ends)."""
    setup_s: float | None = None
    """Getting a ready sandbox: started (or handed over by the warm pool) and ``Env.setup``."""
    verify_s: float | None = None
    """Each stage's verification (``Env.evaluate_stage``)."""


@dataclass(frozen=True)
class ResourceLimits:
    """Concurrency limits per resource (``None``: only the run's ``concurrency`` bounds it)."""

    starting: int | None = None
    """Sandboxes starting at once (warm-ups included): what the container engine takes at once."""
    verifying: int | None = None
    """Verifications at once."""
    per_task: int | None = None
    """Episodes of one task at once."""


@dataclass(frozen=True)
class Overprovision:
    """Start more episodes of each task than needed; cancel the rest once ``samples`` ended."""

    extra: float = 0.0
    """Fraction of ``samples`` started on top (0.25: 5 episodes for 4 samples)."""

    def episodes(self, samples: int) -> int:
        """How many episodes of a task to start for ``samples``."""
        if self.extra < 0:
            raise ValueError(f"Overprovision.extra must be >= 0, got {self.extra}")
        return samples + math.ceil(samples * self.extra - 1e-9) if self.extra else samples


class GroupTracker:
    """The episodes of one task in an over-provisioned rollout: counts those that ended (with a
    stop reason a trainer uses: not cancelled, not a failure outside the agent) and sets
    :attr:`cancel` once there are ``samples`` of them."""

    def __init__(self, samples: int, ended_before: int = 0) -> None:
        self.samples = samples
        self.finished = ended_before
        self.cancel = asyncio.Event()
        if self.complete:
            self.cancel.set()

    @property
    def complete(self) -> bool:
        return self.finished >= self.samples

    def ended(self, stop_reason: str | StopReason) -> bool:
        """Count an episode that ended; returns whether this one completed the group."""
        stop = StopReason(stop_reason)
        if stop == StopReason.CANCELLED or stop.outside_the_agent or self.complete:
            return False
        self.finished += 1
        if self.complete:
            self.cancel.set()
            return True
        return False


async def within(aw: Awaitable[T], limit_s: float | None, phase: str) -> T:
    """``await aw``, raising :class:`PhaseTimeout` (and cancelling it) past ``limit_s`` seconds."""
    if limit_s is None:
        return await aw
    try:
        return await asyncio.wait_for(aw, limit_s)
    except asyncio.TimeoutError:
        raise PhaseTimeout(phase, limit_s) from None


@contextlib.asynccontextmanager
async def slot(sem: asyncio.Semaphore | None) -> AsyncIterator[None]:
    """Hold ``sem`` (a :class:`ResourceLimits` limit) for the block; nothing when ``None``."""
    if sem is None:
        yield
        return
    async with sem:
        yield
