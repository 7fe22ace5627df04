"""One episode: a task, a harness in a fresh runtime, the proxy recording, a reward.

Every failure is attributed to one boundary and recorded on the trajectory; nothing here
raises for a bad episode. A failed rollout is data.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agentgym.env import Env, Stage
from agentgym.errors import AgentGymError, EnvError
from agentgym.harness import Harness, HarnessContext
from agentgym.proxy.server import Proxy
from agentgym.reconstruct import reconstruct
from agentgym.rollout.branch import Branch, branch_summary
from agentgym.rollout.schedule import PhaseTimeouts, slot, within
from agentgym.runtime.base import ExecResult, Runtime, RuntimeBackend
from agentgym.runtime.images import ImageCache, slug
from agentgym.stages import run_stages
from agentgym.types import BRANCH_KEY, ErrorInfo, StopReason, Task, Trajectory

log = logging.getLogger(__name__)


def error_info(e: BaseException, boundary: str | None = None) -> ErrorInfo:
    b = boundary or getattr(e, "boundary", None) or "agentgym"
    return ErrorInfo(type=type(e).__name__, boundary=b, message=str(e)[:4000])


@dataclass(frozen=True)
class EpisodeSpec:
    task: Task
    sample_index: int
    run_id: str
    session_id: str | None = None
    """The proxy session (and call-journal file) of the episode; a fresh one when ``None``."""
    branch: Branch | None = None
    """Replay these recorded calls first (a branch of another episode: :mod:`.branch`)."""


def sandbox_overrides(proxy: Proxy, network: str) -> dict[str, Any]:
    """The sandbox an episode asks ``Env.start`` for, beyond the task's own spec (the same for
    every episode of a run: what a warm pool keys on, with the image)."""
    # The harness reaches the proxy at 127.0.0.1:<port> either way: with "proxy" through a
    # forwarder to its Unix socket, and nothing else (whatever the task's own network).
    return {"network": network, "proxy": proxy.endpoint() if network == "proxy" else None}


def new_session_id(task: Task, sample_index: int, seed: int | None = None, attempt: int = 0) -> str:
    """``<task slug>-s<sample>-<6 hex>``: the episode's proxy session and trajectory id. The hex
    part is random, or with a ``seed`` a function of (seed, task, sample, attempt): a seeded run
    names its episodes the same wherever and in whatever order they run."""
    if seed is None:
        tail = uuid.uuid4().hex[:6]
    else:
        tail = hashlib.blake2b(f"{seed}\0{task.id}\0{sample_index}\0{attempt}".encode(), digest_size=3).hexdigest()
    return f"{slug(task.id)}-s{sample_index}-{tail}"


async def run_episode(spec: EpisodeSpec, *, env: Env, harness: Harness, proxy: Proxy, backend: RuntimeBackend,
                      images: ImageCache, max_steps: int | None = None, timeout_s: float | None = None,
                      metadata: Mapping[str, Any] | None = None, network: str = "proxy",
                      timeouts: PhaseTimeouts | None = None, verify_slots: asyncio.Semaphore | None = None,
                      cancel: asyncio.Event | None = None) -> list[Trajectory]:
    """Run one episode to the end and return its trajectories (main agent first). ``network`` is
    the agent runtime's: ``proxy`` (nothing but the proxy) or ``host``. ``timeouts`` bound its
    build, setup and verify phases; ``verify_slots`` is held while it verifies; setting
    ``cancel`` cuts it short: its sandbox is stopped and it ends ``cancelled``, with the calls
    it made (:mod:`agentgym.rollout.schedule`).

    Time spent getting the image (building it, or waiting for another episode's build) is not
    the episode's: ``started_at`` is when the image was ready, and ``metadata["timings"]`` has
    ``image_s`` beside the episode's own phases (``sandbox_s``, ``agent_s``, ``verify_s``) and
    ``engine_s``, the time its calls spent in the proxy and engine."""
    task = spec.task
    sid = spec.session_id or new_session_id(task, spec.sample_index)
    proxy.open_session(sid, metadata={"task_id": task.id, "sample_index": spec.sample_index},
                       targets=harness.observation_targets, replay=spec.branch.calls if spec.branch else None)
    started = mark = time.time()
    timings: dict[str, float] = {"image_s": 0.0, "sandbox_s": 0.0, "agent_s": 0.0, "verify_s": 0.0}
    timing = "image_s"  # the phase the clock runs for

    def lap(then: str) -> float:  # close the running phase's time; ``then`` runs next
        nonlocal mark, timing
        now = time.time()
        timings[timing] = round(timings[timing] + now - mark, 3)
        mark, timing = now, then
        return now

    stop = StopReason.COMPLETED
    error: ErrorInfo | None = None
    reward = 0.0
    details: dict[str, Any] = {}
    runtime: Runtime | None = None
    result: ExecResult | None = None
    timeout = timeout_s or task.limits.timeout_s
    harness_stop: StopReason | None = None
    phase = "prepare"  # prepare (image, sandbox, setup) -> agent -> verify: a failure is typed by its phase
    limits = timeouts or PhaseTimeouts()
    cancelled = False

    async def verify(aw: Any) -> Any:
        async with slot(verify_slots):  # waiting for a verifier slot is not the verifier's time
            return await within(aw, limits.verify_s, "verify")

    async def body() -> None:
        nonlocal runtime, started, reward, details
        reason = env.unsupported(task, backend)  # before any image is built
        if reason:
            raise EnvError(f"{task.id} cannot run on the {backend.name} runtime: {reason}")
        image = await within(images.image_for(task, harness), limits.build_s, "build")
        started = lap("sandbox_s")  # the episode proper starts once its image is there
        # A start cut short (setup_s, a cancel) stops its sandbox: Env.start and the backends see to it.
        runtime = await within(env.start(task, backend, image=image, **sandbox_overrides(proxy, network),
                                         labels={"agentgym.task": slug(task.id), "agentgym.session": sid}),
                               limits.setup_s, "setup")
        live = runtime

        async def act(stage: Stage, index: int) -> None:
            # One harness run per stage (most tasks have one); the first stage that ends badly
            # gives the episode its stop reason.
            nonlocal result, stop, harness_stop, error
            # The agent's commands see paths as the runtime's processes do (the local runtime's fake root).
            shown = dataclasses.replace(task, instruction=live.rewrite(stage.instruction))
            ctx = HarnessContext(task=shown, base_url=proxy.base_url(sid), model=proxy.engine.model_name,
                                 max_steps=max_steps or task.limits.max_steps)
            limit = timeout_s or stage.timeout_s or timeout
            result = await harness.run(ctx, live, timeout=limit)
            ended = harness.stop_reason(result)
            if harness_stop is None or stop in (StopReason.COMPLETED, StopReason.STEP_LIMIT):
                stop = harness_stop = ended
            if ended not in (StopReason.COMPLETED, StopReason.STEP_LIMIT) and error is None:
                tail = (result.stderr or result.stdout)[-2000:]
                where = f" in stage {stage.name!r}" if stage.name else ""
                error = ErrorInfo(type="HarnessError" if ended != StopReason.TIMEOUT else "ExecTimeout",
                                  boundary="harness",
                                  message=f"{harness.id} ended with {ended.value}{where} (exit {result.exit_code} "
                                          f"after {result.duration_s:.1f}s of {limit:.0f}s): {tail}")

        def on_phase(name: str) -> None:
            nonlocal phase
            phase = name
            if name in ("agent", "verify"):  # the episode's clock: time in the harness, in verifiers
                lap(f"{name}_s")

        evaluation = await run_stages(env, task, runtime, act, on_phase=on_phase, verify=verify)
        lap("verify_s")
        reward = float(evaluation.reward)
        details = dict(evaluation.details)

    work = asyncio.ensure_future(body())
    try:
        if cancel is None:
            await asyncio.wait({work})
        else:
            cancelled_wait = asyncio.ensure_future(cancel.wait())
            try:
                await asyncio.wait({work, cancelled_wait}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                cancelled_wait.cancel()
            if not work.done():
                cancelled = True
                work.cancel()
                await asyncio.wait({work})
        if work.cancelled() and not cancelled:
            raise asyncio.CancelledError
        failure = None if work.cancelled() else work.exception()
        if failure is not None:
            raise failure
    except asyncio.CancelledError:
        if not work.done():  # the run is stopping: the sandbox goes with the episode
            work.cancel()
            with contextlib.suppress(BaseException):
                await work
        raise
    except Exception as e:
        lap(timing)
        if phase == "verify":  # the verifier could not score it: unscorable, never reward 0
            error, stop, reward = error_info(e, "env"), StopReason.EVAL_ERROR, 0.0
        elif phase == "prepare" or getattr(e, "boundary", None) == "runtime":
            error, stop = error_info(e), StopReason.RUNTIME_ERROR  # the sandbox, not the agent
        else:
            error, stop = error_info(e), StopReason.HARNESS_ERROR
        log.warning("episode %s failed while it was in the %s phase: %s", sid, phase, e)
    finally:
        if runtime is not None:
            try:
                await runtime.stop()
            except Exception as e:  # a runtime that will not stop is logged, not fatal
                log.warning("could not stop runtime of %s: %s", sid, e)
    if cancelled:
        lap(timing)
        stop, error, reward = StopReason.CANCELLED, None, 0.0
    if proxy.context_overflow(sid) and stop in (StopReason.COMPLETED, StopReason.HARNESS_ERROR):
        # The harness stopped after its last request was refused for its length: the episode
        # outgrew the context (not a harness bug).
        stop = StopReason.CONTEXT_OVERFLOW
        if error is not None and error.boundary == "harness":
            error = ErrorInfo(type="ContextOverflow", boundary="proxy", message=error.message)
    engine_errors = proxy.session_errors(sid)
    if engine_errors and (error is None or stop == StopReason.HARNESS_ERROR):
        # the harness gave up because the engine failed it: the engine's failure, not the agent's
        error = ErrorInfo(type="EngineError", boundary="engine", message="; ".join(engine_errors)[:4000])
        if stop == StopReason.HARNESS_ERROR:
            stop = StopReason.ENGINE_ERROR
    calls = proxy.close_session(sid)
    if not calls and error is None and stop in (StopReason.COMPLETED, StopReason.STEP_LIMIT):
        # A harness that ends "fine" without one request never reached the policy (a wrong base
        # URL, a key or model check that failed quietly, a crash it swallowed): nothing to train on.
        stop = StopReason.HARNESS_ERROR
        error = ErrorInfo(type="NoModelCalls", boundary="harness", message=(
            f"{harness.id} exited {result.exit_code if result else '?'} without calling the model: check that it "
            f"reads its base URL from the launch environment ({proxy.base_url(sid)}) and that its own checks "
            f"(model name, API key) pass. Output tail: "
            f"{((result.stderr or result.stdout) if result else '')[-1500:]}"))
    timings["engine_s"] = round(sum(max(0.0, c.timings.end - c.timings.start) for c in calls), 3)
    meta = {**(metadata or {}), "run_id": spec.run_id, "eval": details, "timings": timings,
            "harness_exit_code": None if result is None else result.exit_code,
            "harness_stop": None if harness_stop is None else harness_stop.value, "backend": backend.name}
    if cancelled:
        meta["cancelled_in"] = phase  # the phase it was in when its group was complete
    if details.get("tampering"):
        meta["tampering"] = list(details["tampering"])
    if spec.branch is not None and spec.branch.turn > 0:
        meta[BRANCH_KEY] = branch_summary(spec.branch, calls)
    try:
        return reconstruct(calls, task_id=task.id, trajectory_id=sid, reward=reward, stop_reason=stop,
                           harness=harness.id, env=task.env, sample_index=spec.sample_index, error=error,
                           started_at=started, ended_at=time.time(), anchor_fn=env.anchor, metadata=meta,
                           session_id=sid)
    except AgentGymError as e:  # keep the episode, without tokens, with the reason
        return [Trajectory(id=sid, task_id=task.id, session_id=sid, segments=(), steps=(), reward=reward,
                  stop_reason=stop, harness=harness.id, env=task.env, sample_index=spec.sample_index,
                  error=error_info(e), sampled_tokens=sum(len(c.completion_ids) for c in calls),
                  started_at=started, ended_at=time.time(), metadata=meta)]

