"""One episode: a task, a harness in a fresh runtime, the proxy recording, a reward.

Every failure is attributed to one boundary and recorded on the trajectory; nothing here
raises for a bad episode. A failed rollout is data.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agentgym.env import Env
from agentgym.errors import AgentGymError, EnvError
from agentgym.harness import Harness, HarnessContext
from agentgym.proxy.server import Proxy
from agentgym.reconstruct import reconstruct
from agentgym.runtime.base import ExecResult, Runtime, RuntimeBackend
from agentgym.runtime.images import ImageCache, slug
from agentgym.types import ErrorInfo, StopReason, Task, Trajectory

log = logging.getLogger(__name__)


def error_info(e: BaseException, boundary: str | None = None) -> ErrorInfo:
    b = boundary or getattr(e, "boundary", None) or "agentgym"
    return ErrorInfo(type=type(e).__name__, boundary=b, message=str(e)[:4000])


@dataclass(frozen=True)
class EpisodeSpec:
    task: Task
    sample_index: int
    run_id: str


async def run_episode(spec: EpisodeSpec, *, env: Env, harness: Harness, proxy: Proxy, backend: RuntimeBackend,
                      images: ImageCache, max_steps: int | None = None, timeout_s: float | None = None,
                      metadata: Mapping[str, Any] | None = None) -> list[Trajectory]:
    """Run one episode to the end and return its trajectories (main agent first)."""
    task = spec.task
    sid = f"{slug(task.id)}-s{spec.sample_index}-{uuid.uuid4().hex[:6]}"
    proxy.open_session(sid, metadata={"task_id": task.id, "sample_index": spec.sample_index},
                       targets=harness.observation_targets)
    started = time.time()
    stop = StopReason.COMPLETED
    error: ErrorInfo | None = None
    reward = 0.0
    details: dict[str, Any] = {}
    runtime: Runtime | None = None
    result: ExecResult | None = None
    timeout = timeout_s or task.limits.timeout_s
    try:
        reason = env.unsupported(task, backend)  # before any image is built
        if reason:
            raise EnvError(f"{task.id} cannot run on the {backend.name} runtime: {reason}")
        image = await images.image_for(task, harness)
        runtime = await env.start(
            task, backend, image=image,
            # Host networking so the harness reaches the proxy on 127.0.0.1. Tasks that ask for no
            # network still get it: the Unix-socket forwarder for --network none is not built yet.
            network="host", labels={"agentgym.task": slug(task.id), "agentgym.session": sid})
        # The agent's commands see paths as the runtime's processes do (the local runtime's fake root).
        shown = dataclasses.replace(task, instruction=runtime.rewrite(task.instruction))
        ctx = HarnessContext(task=shown, base_url=proxy.base_url(sid), model=proxy.engine.model_name,
                             max_steps=max_steps or task.limits.max_steps)
        result = await harness.run(ctx, runtime, timeout=timeout)
        stop = harness.stop_reason(result)
        if stop not in (StopReason.COMPLETED, StopReason.STEP_LIMIT):
            tail = (result.stderr or result.stdout)[-2000:]
            error = ErrorInfo(type="HarnessError" if stop != StopReason.TIMEOUT else "ExecTimeout",
                              boundary="harness",
                              message=f"{harness.id} ended with {stop.value} (exit {result.exit_code} after "
                                      f"{result.duration_s:.1f}s of {timeout:.0f}s): {tail}")
        try:
            evaluation = await env.evaluate(task, runtime)
            reward = float(evaluation.reward)
            details = dict(evaluation.details)
        except Exception as e:  # the verifier failed: reward 0, typed error, keep the episode
            error = error or error_info(e, "env")
            if stop == StopReason.COMPLETED:
                stop = StopReason.EVAL_ERROR
    except Exception as e:
        error = error_info(e)
        stop = StopReason.RUNTIME_ERROR if error.boundary in ("runtime", "agentgym") else StopReason.HARNESS_ERROR
        log.warning("episode %s failed: %s", sid, e)
    finally:
        if runtime is not None:
            try:
                await runtime.stop()
            except Exception as e:  # a runtime that will not stop is logged, not fatal
                log.warning("could not stop runtime of %s: %s", sid, e)
    if proxy.context_overflow(sid) and stop in (StopReason.COMPLETED, StopReason.HARNESS_ERROR):
        # The harness stopped after its last request was refused for its length: the episode
        # outgrew the context (not a harness bug).
        stop = StopReason.CONTEXT_OVERFLOW
        if error is not None and error.boundary == "harness":
            error = ErrorInfo(type="ContextOverflow", boundary="proxy", message=error.message)
    engine_errors = proxy.session_errors(sid)
    if engine_errors and error is None:
        error = ErrorInfo(type="EngineError", boundary="engine", message="; ".join(engine_errors)[:4000])
        if stop == StopReason.HARNESS_ERROR:
            stop = StopReason.ENGINE_ERROR
    calls = proxy.close_session(sid)
    meta = {**(metadata or {}), "run_id": spec.run_id, "eval": details,
            "harness_exit_code": None if result is None else result.exit_code,
            "backend": backend.name}
    try:
        return reconstruct(calls, task_id=task.id, trajectory_id=sid, reward=reward, stop_reason=stop,
                           harness=harness.id, env=task.env, sample_index=spec.sample_index, error=error,
                           started_at=started, ended_at=time.time(), anchor_fn=env.anchor, metadata=meta)
    except AgentGymError as e:  # keep the episode, without tokens, with the reason
        return [Trajectory(id=sid, task_id=task.id, session_id=sid, segments=(), steps=(), reward=reward,
                  stop_reason=stop, harness=harness.id, env=task.env, sample_index=spec.sample_index,
                  error=error_info(e), sampled_tokens=sum(len(c.completion_ids) for c in calls),
                  started_at=started, ended_at=time.time(), metadata=meta)]
