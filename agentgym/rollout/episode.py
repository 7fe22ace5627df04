"""One episode: a task, a harness in a fresh runtime, the proxy recording, a reward.

Every failure is attributed to one boundary and recorded on the trajectory; nothing here
raises for a bad episode. A failed rollout is data.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentgym.envs.base import Env
from agentgym.errors import AgentGymError
from agentgym.harnesses.base import Harness, HarnessContext
from agentgym.proxy.server import Proxy
from agentgym.reconstruct import reconstruct
from agentgym.runtime.base import ExecResult, Runtime, RuntimeBackend, RuntimeSpec
from agentgym.types import ErrorInfo, StopReason, Task, Trajectory

log = logging.getLogger(__name__)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_.-]+", "-", text.lower()).strip("-")[:60] or "x"


def error_info(e: BaseException, boundary: str | None = None) -> ErrorInfo:
    b = boundary or getattr(e, "boundary", None) or "agentgym"
    return ErrorInfo(type=type(e).__name__, boundary=b, message=str(e)[:4000])


class ImageCache:
    """Builds each (task image, harness layer) image once per run, even when many episodes of
    the same task start at once. ``on_status`` hears what is being prepared (for progress UIs)."""

    def __init__(self, backend: RuntimeBackend, on_status: Callable[[str], None] | None = None) -> None:
        self.backend = backend
        self.on_status = on_status or (lambda msg: None)
        self._done: dict[tuple[str, str], str] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def image_for(self, task: Task, harness: Harness) -> str | None:
        if self.backend.name != "docker":
            return task.image
        if task.image is None:
            raise AgentGymError(f"task {task.id} has no image; the Docker runtime needs one")
        key = (task.image, harness.id)
        async with self._locks.setdefault(key, asyncio.Lock()):
            if key not in self._done:
                self.on_status(f"preparing image {task.image} + {harness.id} (the first build can take minutes)")
                self._done[key] = await self._build(task, harness)
                self.on_status("")
        return self._done[key]

    async def _build(self, task: Task, harness: Harness) -> str:
        assert task.image is not None
        base = await self.backend.ensure_image(task.image, task.dockerfile_dir)
        layer = await asyncio.to_thread(harness.image_layer)  # may download a wheelhouse
        if layer is None:
            return base
        tag = f"agentgym/{slug(harness.id.replace('/', '-'))}:{slug(base.replace('/', '-').replace(':', '-'))}"
        with tempfile.TemporaryDirectory(prefix="agentgym-layer-") as tmp:
            ctx = Path(tmp)
            (ctx / "Dockerfile").write_text(f"FROM {base}\n{layer.dockerfile}\n")
            for name, src in layer.context_files.items():
                dst = ctx / name
                if Path(src).is_dir():
                    shutil.copytree(src, dst)
                else:
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, dst)
            return await self.backend.ensure_image(tag, str(ctx))


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
    proxy.open_session(sid, metadata={"task_id": task.id, "sample_index": spec.sample_index})
    started = time.time()
    stop = StopReason.COMPLETED
    error: ErrorInfo | None = None
    reward = 0.0
    details: dict[str, Any] = {}
    runtime: Runtime | None = None
    result: ExecResult | None = None
    timeout = timeout_s or task.limits.timeout_s
    try:
        image = await images.image_for(task, harness)
        runtime = await backend.start(RuntimeSpec(
            image=image, workdir=task.workdir, memory=task.limits.memory, cpus=task.limits.cpus,
            env=dict(task.metadata.get("environment_env") or {}),
            # Host networking so the harness reaches the proxy on 127.0.0.1. Tasks that ask for no
            # network still get it: the Unix-socket forwarder for --network none is not built yet.
            network="host", labels={"agentgym.task": slug(task.id), "agentgym.session": sid}))
        await env.setup(task, runtime)
        shown = task
        rewrite = getattr(runtime, "rewrite", None)
        if runtime.backend == "local" and rewrite is not None:
            # No container: the agent's commands see host paths, so tell it where /app really is.
            shown = dataclasses.replace(task, instruction=rewrite(task.instruction))
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
