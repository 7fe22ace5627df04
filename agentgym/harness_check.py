"""``agentgym check harness``: run a harness once on a trivial task against a scripted engine,
through the real proxy, and report what it did on the wire.

What a newcomer needs to know before training with a harness: which API dialect it spoke,
whether it streamed, how many calls it made, whether it started sub-agents (lineages), whether
its session reconstructed into one token sequence per agent (and, where not, each segment
break's reason: history it rewrote, replies it dropped), the fraction of sampled tokens that
training can use (``delivered_fraction``) and how long it took to make its first call.

The scripted engine answers :meth:`Harness.check_replies` (one ``bash`` tool call, then a final
answer, by default); the task asks for ``check.txt`` holding ``ok`` in the working directory.

>>> import asyncio, tempfile
>>> from agentgym import registries
>>> from agentgym.runtime import get_backend
>>> report = asyncio.run(check_harness(registries.harnesses.make("agentgym/react-v0"),
...                                    get_backend("local"), out_dir=tempfile.mkdtemp()))
>>> report.ok, report.dialects, report.streaming, report.calls, report.one_segment
(True, ('openai',), False, 2, True)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agentgym.env import Env, Evaluation
from agentgym.harness import Harness
from agentgym.runtime.base import Runtime, RuntimeBackend
from agentgym.runtime.images import BASE_IMAGE, ImageCache
from agentgym.types import Call, StopReason, Task, TaskLimits, Trajectory

__all__ = ["CHECK_TASK", "HarnessCheck", "check_harness", "format_check"]

CHECK_TASK = Task(
    id="check-harness", env="agentgym/check-harness-v0", image=BASE_IMAGE, workdir="/app",
    instruction="Create a file named check.txt in the current directory containing the word ok. "
                "Then stop.",
    limits=TaskLimits(timeout_s=300, max_steps=5))
"""The trivial task every harness is checked on."""


class _CheckEnv(Env):
    id = "agentgym/check-harness-v0"

    def tasks(self) -> list[Task]:
        return [CHECK_TASK]

    async def evaluate(self, task: Task, runtime: Runtime) -> Evaluation:
        result = await runtime.exec("cat check.txt", timeout=30, login=False)
        return Evaluation(reward=float(result.exit_code == 0 and result.stdout.strip() == "ok"))


@dataclass(frozen=True)
class HarnessCheck:
    """What one checked episode showed."""

    harness: str
    backend: str
    calls: int
    """Requests the proxy served (all agents)."""
    dialects: tuple[str, ...]
    """API dialects of those requests (``openai``: chat completions)."""
    streaming: bool | None
    """Whether the requests asked for SSE (``None``: no request; mixed counts as ``True``)."""
    lineages: tuple[str, ...]
    """Agent ids of the session (``main`` and any sub-agents)."""
    segments: dict[str, int] = field(default_factory=dict)
    """Segments each agent's trajectory reconstructed into (1: one token sequence)."""
    breaks: tuple[str, ...] = ()
    """``agent: reason`` of every segment after an agent's first."""
    delivered_fraction: float = 1.0
    """Trained sampled tokens / sampled tokens over the session."""
    time_to_first_call_s: float | None = None
    """From the start of the episode (image ready) to the harness's first request."""
    stop_reason: str = ""
    exit_code: int | None = None
    reward: float = 0.0
    """1 when ``check.txt`` holds ``ok`` afterwards (informative: the scripted replies may not
    suit the harness's protocol)."""
    error: str | None = None
    seconds: float = 0.0

    @property
    def one_segment(self) -> bool:
        return bool(self.segments) and all(n == 1 for n in self.segments.values())

    @property
    def ok(self) -> bool:
        """It called the model, ended on its own (completed or step limit) and reconstructed."""
        return (self.calls > 0 and bool(self.segments)
                and self.stop_reason in (StopReason.COMPLETED.value, StopReason.STEP_LIMIT.value))


def _summarise(harness: Harness, backend: str, trajectories: Sequence[Trajectory], calls: Sequence[Call],
               started: float, seconds: float) -> HarnessCheck:
    main = trajectories[0]
    breaks = [f"{t.agent_id}: {s.break_reason.value}" for t in trajectories for s in t.segments[1:]]
    sampled = sum(t.sampled_tokens for t in trajectories)
    trained = sum(t.trained_tokens for t in trajectories)
    streams = [bool(c.request.get("stream")) for c in calls]
    error = f"{main.error.type} ({main.error.boundary}): {main.error.message}" if main.error else None
    return HarnessCheck(
        harness=harness.id, backend=backend, calls=len(calls),
        dialects=tuple(sorted({c.dialect for c in calls})), streaming=any(streams) if streams else None,
        lineages=tuple(dict.fromkeys(c.agent_id for c in calls)),
        segments={t.agent_id: len(t.segments) for t in trajectories if t.segments},
        breaks=tuple(breaks), delivered_fraction=trained / sampled if sampled else 1.0,
        time_to_first_call_s=(min(c.timings.start for c in calls) - started) if calls else None,
        stop_reason=main.stop_reason.value, exit_code=main.metadata.get("harness_exit_code"),
        reward=main.reward, error=error, seconds=seconds)


CHECK_MAX_MODEL_LEN = 262_144
"""The check's proxy context limit, in tokens of the tiny tokenizer (several per word)."""


async def check_harness(harness: Harness, backend: RuntimeBackend, *, out_dir: str | Path,
                        timeout_s: float = 300.0, max_steps: int = 5, network: str = "proxy") -> HarnessCheck:
    """Run ``harness`` once on :data:`CHECK_TASK` in ``backend`` against a scripted engine
    through a real proxy (journal under ``out_dir``). Failures are reported, never raised."""
    from agentgym.engines.scripted import ScriptedEngine
    from agentgym.models.tiny import train_tokenizer
    from agentgym.proxy.server import Proxy
    from agentgym.rollout.episode import EpisodeSpec, run_episode

    replies = list(harness.check_replies())
    engine = ScriptedEngine(train_tokenizer(), lambda ids, n: replies[min(n, len(replies) - 1)])
    # The scripted engine has no context limit, and a real agent's system prompt and tool schemas
    # (Qwen Code's: ~36k tokens of the tiny tokenizer) must not end the check as an overflow.
    proxy = Proxy(engine, out_dir, max_model_len=CHECK_MAX_MODEL_LEN)
    await proxy.start()
    t0 = time.time()
    try:
        env = _CheckEnv()
        images = ImageCache(backend)
        await images.image_for(CHECK_TASK, harness)  # built before the clock starts
        started = time.time()
        trajectories = await run_episode(EpisodeSpec(task=CHECK_TASK, sample_index=0, run_id="check"), env=env,
                                         harness=harness, proxy=proxy, backend=backend, images=images,
                                         max_steps=max_steps, timeout_s=timeout_s, network=network)
        # no session id: the episode ended before its first call was journaled
        calls = proxy.journal.read(trajectories[0].session_id) if trajectories[0].session_id else []
    finally:
        await proxy.stop()
    return _summarise(harness, backend.name, trajectories, calls, started, time.time() - t0)


def format_check(check: HarnessCheck) -> str:
    """The report, one fact a line."""
    def yes(flag: bool | None) -> str:
        return "-" if flag is None else ("yes" if flag else "no")

    first = "-" if check.time_to_first_call_s is None else f"{check.time_to_first_call_s:.2f}s"
    sub = [a for a in check.lineages if a != "main"]
    lines = [
        f"harness            {check.harness} on the {check.backend} runtime",
        f"dialect            {', '.join(check.dialects) or '-'}",
        f"streaming          {yes(check.streaming)}",
        f"calls              {check.calls}",
        f"sub-agents         {', '.join(sub) if sub else 'none'}",
        f"one segment        {yes(check.one_segment if check.segments else None)}"
        + "".join(f"\n  break            {b}" for b in check.breaks),
        f"delivered_fraction {check.delivered_fraction:.3f}",
        f"first call after   {first}",
        f"ended              {check.stop_reason or '-'} (exit {check.exit_code}) in {check.seconds:.1f}s, "
        f"reward {check.reward:g}",
    ]
    if check.error:
        lines.append(f"error              {check.error[:1500]}")
    lines.append("OK" if check.ok else "FAILED: " + (
        "it never called the model" if check.calls == 0 else
        "its session did not reconstruct" if not check.segments else f"it ended with {check.stop_reason}"))
    return "\n".join(lines)
