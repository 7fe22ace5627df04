"""Rollouts on Ray: the same run, its episodes spread over Ray actors on one machine or many.

``agentgym rollout ... --ray-workers 4`` (or :func:`run_rollouts_ray`) runs the episodes a
:func:`~agentgym.rollout.runner.run_rollouts` would run, but on ``workers`` Ray actors, spread
over the cluster's nodes. Each worker is a process with **its own engine** (loaded from the same
model string), **its own runtime backend** (Docker or local sandboxes on its node) and, for each
piece of work, **its own proxy**; it runs its episodes with ``run_rollouts`` itself (so timeouts,
limits, sandbox isolation and the proxy's records are the same code) in a scratch directory of
its node, and sends back the trajectories and their call journals. The driver keeps the run's
**one journal**: it plans and names the episodes, records each as started, and as each piece
comes back writes its call journals to ``<out>/calls/`` and its trajectories to
``<out>/episodes.jsonl`` (calls first: a journaled trajectory always has its calls), so a driver
killed at any point resumes like a local run.

With ``seed`` set (``--seed``) the run is reproducible: episode ids and sampling seeds are
functions of the seed and the episode (:attr:`RolloutConfig.seed`), so a Ray run writes the same
trajectories, ids and tokens, as the same run on one machine (a test pins it on a two-node
local Ray cluster).

Scheduling: the driver hands out pieces of ``chunk`` episodes (default 1: the long tail of one
worker never holds back the others), at most ``concurrency`` pieces per worker at a time. A
piece whose worker dies is handed to another worker once; if it fails again its episodes are
left for the next run to resume, and the summary says so.

Not on Ray (refused with a clear error): over-provisioning (it cancels across a group) and
branch episodes of tree rollouts (they replay calls held in the driver's directory). A warm pool
applies within each piece (useful with ``chunk`` > 1).

A remote cluster needs agentgym (and the harness's host tools, Docker for the docker runtime)
on every node, and the model and the task files at the same paths on every node (a shared file
system or a hub id); ``tiny`` is resolved to its cached path by the driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import shutil
import socket
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentgym import export
from agentgym.errors import AgentGymError, ConfigError
from agentgym.harness import load_harness
from agentgym.jsonl import append_lines, read_records
from agentgym.rollout.episode import EpisodeSpec
from agentgym.rollout.lock import RunLock
from agentgym.rollout.metrics import RunMetrics, dumps
from agentgym.rollout.resume import HalfEpisode, record_interrupted, record_started
from agentgym.rollout.runner import (
    STOP_SIGNALS,
    RolloutConfig,
    RolloutResult,
    RunProgress,
    fresh_session_ids,
    latest_attempts,
    plan_episodes,
    read_run_state,
    select_tasks,
)
from agentgym.sources import env_from

__all__ = ["RayOptions", "RayRolloutPool", "RolloutWorker", "run_rollouts_ray"]

log = logging.getLogger(__name__)

WORKER_CALL_TIMEOUT_S = 120.0
"""How long the driver waits for a worker to start (engine loaded) or to answer a stop."""


@dataclass(frozen=True)
class RayOptions:
    workers: int = 2
    """Ray actors (processes), each with its own engine, runtime backend and proxies."""
    address: str | None = None
    """The Ray cluster to join (``auto``, ``<host>:<port>``, ``ray://...``); ``None``: start a
    Ray instance on this machine for the run and stop it after."""
    cpus_per_worker: float = 1.0
    """CPUs each actor reserves (Ray places actors where they fit, spread over the nodes)."""
    chunk: int = 1
    """Episodes per piece of work handed to a worker."""


class RolloutWorker:
    """One worker of a Ray run (used as a Ray actor; plain Python, testable without Ray)."""

    def __init__(self, model: str, runtime: str) -> None:
        from agentgym.engines import load_engine
        from agentgym.runtime import get_backend

        self.engine = load_engine(model)
        self.backend = get_backend(runtime)
        self.scratch = Path(tempfile.mkdtemp(prefix="agentgym-worker-"))
        self._stops: set[asyncio.Event] = set()
        self.episodes = 0

    def info(self) -> dict[str, Any]:
        node = ""
        with contextlib.suppress(Exception):
            import ray

            node = ray.get_runtime_context().get_node_id()
        return {"pid": os.getpid(), "host": socket.gethostname(), "node_id": node, "backend": self.backend.name}

    async def run(self, config: RolloutConfig, episodes: dict[tuple[str, int], str]) -> dict[str, Any]:
        """Run these episodes (``(task, sample) -> session id``) of ``config``; returns their
        trajectory records, the call journals of their sessions, and the run's summary."""
        from agentgym.rollout.runner import run_rollouts

        out = self.scratch / uuid.uuid4().hex[:12]
        stop = asyncio.Event()
        self._stops.add(stop)
        try:
            cfg = dataclasses.replace(config, out_dir=str(out), episodes=episodes, progress=False,
                                      handle_signals=False)
            result = await run_rollouts(cfg, self.engine, backend=self.backend, stop=stop)
            calls = {p.stem: p.read_bytes() for p in sorted((out / "calls").glob("*.jsonl"))}
            self.episodes += len(result.main)
            return {"records": [export.trajectory_to_record(t) for t in result.trajectories], "calls": calls,
                    "interrupted": [h.to_json() for h in result.interrupted],
                    "build_s": result.summary.build_s if result.summary else 0.0,
                    "builds": result.summary.builds if result.summary else 0, "worker": self.info()}
        finally:
            self._stops.discard(stop)
            shutil.rmtree(out, ignore_errors=True)

    async def update_weights(self, state_dict: dict[str, Any], version: int) -> int:
        """Load new policy weights into this worker's engine; returns its policy version."""
        await self.engine.update_weights(state_dict, version)
        return int(self.engine.policy_version)

    def stop(self) -> int:
        """Stop the pieces in flight as a signal would (sandboxes removed, episodes listed as
        interrupted in their results); returns how many were stopped."""
        for event in self._stops:
            event.set()
        return len(self._stops)

    async def close(self) -> int:
        """Close the backend and the engine; returns the episodes this worker ran."""
        self.backend.close()
        await self.engine.aclose()
        shutil.rmtree(self.scratch, ignore_errors=True)
        return self.episodes


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("Ray is not installed: pip install 'agentgym[ray]' (on every node of the cluster)") from None
    return ray


def _check(config: RolloutConfig, options: RayOptions) -> None:
    if options.workers < 1:
        raise ConfigError(f"--ray-workers must be at least 1, got {options.workers}")
    if options.chunk < 1:
        raise ConfigError(f"the chunk of a Ray run must be at least 1 episode, got {options.chunk}")
    if config.overprovision:
        raise ConfigError("over-provisioning cancels episodes across a group: it does not run on Ray yet; "
                          "drop --overprovision or --ray-workers")
    if config.branches:
        raise ConfigError("branch episodes replay calls kept in the run's directory: tree rollouts do not run on "
                          "Ray yet")
    if not isinstance(config.env, str):
        raise ConfigError("a Ray run's env must be a string (a registered id, a path, module:attr): each worker "
                          "loads it")


def _engine_model(model: str) -> str:
    """What the workers load: ``tiny`` resolved here (built once, not once per worker)."""
    if model == "tiny":
        from agentgym.models.tiny import tiny_model_path

        return str(tiny_model_path())
    return model


async def run_rollouts_ray(config: RolloutConfig, model: str, options: RayOptions | None = None) -> RolloutResult:
    """Run ``config`` on Ray workers (see the module docstring); the result is what
    :func:`~agentgym.rollout.runner.run_rollouts` returns for the same run. Starts the workers
    for this run and stops them after (:class:`RayRolloutPool` keeps them for many runs)."""
    options = options or RayOptions()
    prepare(config, options)  # a bad config fails before Ray starts
    async with RayRolloutPool(model, config.runtime, options, concurrency=config.concurrency) as pool:
        return await pool.run(config)


def prepare(config: RolloutConfig, options: RayOptions) -> tuple[RolloutConfig, Any, list[Any]]:
    """``config`` as the workers need it (absolute paths: they may run elsewhere), its env and
    tasks; a :class:`~agentgym.errors.ConfigError` for what a Ray run cannot do."""
    _check(config, options)
    out = Path(config.out_dir).resolve()
    env_path = Path(str(config.env))
    env_target = str(env_path.resolve()) if env_path.exists() else str(config.env)
    env = env_from(env_target)
    load_harness(config.harness, **config.harness_kwargs)
    harness_path = Path(config.harness)
    harness = str(harness_path.resolve()) if harness_path.exists() else config.harness
    tasks = select_tasks(env, config.task_ids)
    return dataclasses.replace(config, env=env_target, harness=harness, out_dir=str(out)), env, tasks


class RayRolloutPool:
    """Ray workers kept for many runs (a training loop's iterations): :meth:`run` runs one
    rollout on them, :meth:`update_weights` pushes new policy weights to every worker's engine.

    Use as ``async with RayRolloutPool(model, runtime, options) as pool: ...``; the workers
    (and a Ray instance it started) stop at the end."""

    def __init__(self, model: str, runtime: str, options: RayOptions | None = None, *, concurrency: int = 4) -> None:
        self.options = options or RayOptions()
        self.runtime = runtime
        self.concurrency = max(1, concurrency)
        self.model = _engine_model(model)
        self.ray = _import_ray()
        self.actors: list[Any] = []
        self.infos: list[dict[str, Any]] = []
        self.alive: set[int] = set()
        self._own_ray = False
        self.policy_version = 0

    async def __aenter__(self) -> RayRolloutPool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        if self.actors:
            return
        # Ray started or joined here is shut down (or left) at the end; a caller's own stays.
        self._own_ray = not self.ray.is_initialized()
        if self._own_ray:
            _start_ray(self.ray, self.options)
        try:
            self.actors, self.infos = await _start_workers(self.ray, self.runtime, self.concurrency, self.model,
                                                           self.options)
        except BaseException:
            if self._own_ray:
                self.ray.shutdown()
            raise
        self.alive = set(range(len(self.actors)))

    async def run(self, config: RolloutConfig) -> RolloutResult:
        """One rollout (``config``) on the pool's workers, journaled in ``config.out_dir``."""
        if config.runtime != self.runtime:
            raise ConfigError(f"this pool's workers run {self.runtime!r} sandboxes; the rollout asks for {config.runtime!r}")
        if config.concurrency > self.concurrency:
            raise ConfigError(f"the pool's workers take {self.concurrency} episodes at once; the rollout asks for "
                              f"{config.concurrency}")
        config, env, tasks = prepare(config, self.options)
        await self.start()
        out = Path(config.out_dir)
        with RunLock(out):
            return await _drive(self, config, env, tasks, out, time.time())

    async def update_weights(self, state_dict: dict[str, Any], version: int, timeout_s: float = 600.0) -> None:
        """Load ``state_dict`` into every live worker's engine as policy ``version``; raises
        :class:`~agentgym.errors.EngineError` when one fails or takes longer than ``timeout_s``."""
        from agentgym.errors import EngineError

        ref = self.ray.put(state_dict)  # once into the object store, not once per worker
        live = sorted(self.alive)
        try:
            versions = await asyncio.wait_for(
                asyncio.gather(*[_await(self.actors[i].update_weights.remote(ref, version)) for i in live]), timeout_s)
        except asyncio.TimeoutError:
            raise EngineError(f"pushing policy version {version} to {len(live)} Ray worker(s) took more than "
                              f"{timeout_s:.0f}s") from None
        except Exception as e:
            raise EngineError(f"pushing policy version {version} to the Ray workers failed: {_reason(e)}") from None
        if any(v != version for v in versions):
            raise EngineError(f"Ray workers report policy versions {versions} after an update to {version}")
        self.policy_version = version

    async def aclose(self) -> None:
        await _close_workers(self.ray, self.actors)
        self.actors, self.alive = [], set()
        if self._own_ray:
            self.ray.shutdown()
            self._own_ray = False


@dataclass
class _Piece:
    specs: list[EpisodeSpec]
    tries: int = 0


class _Driver:
    """The driver's side of a Ray run: hands out pieces, gathers results into the one journal."""

    def __init__(self, config: RolloutConfig, out: Path, run_id: str, metrics: RunMetrics) -> None:
        self.config = config
        self.out = out
        self.run_id = run_id
        self.metrics = metrics
        self.journal = out / "episodes.jsonl"
        self.interrupted: list[HalfEpisode] = []
        self.lost: list[EpisodeSpec] = []
        self.build_s = 0.0
        self.builds = 0
        self.by_worker: dict[int, int] = {}
        self.stop_reason = "cancel"
        """What stopped the run (a signal's name), for its half episodes."""

    def gather(self, result: dict[str, Any], worker: int) -> None:
        calls_dir = self.out / "calls"
        calls_dir.mkdir(parents=True, exist_ok=True)
        for sid, data in result["calls"].items():
            tmp = calls_dir / f".{sid}.jsonl.tmp"
            tmp.write_bytes(data)
            tmp.replace(calls_dir / f"{sid}.jsonl")
        trajectories = [export.trajectory_from_record(r) for r in result["records"]]
        if trajectories:
            export.write_jsonl(trajectories, self.journal, append=True)  # all lines or none
        for t in trajectories:
            self.metrics.add(t)
            if t.agent_id == "main" and t.error is not None and t.stop_reason.outside_the_agent:
                log.warning("episode %s failed on worker %d (%s): %s", t.session_id, worker, t.error.boundary,
                            t.error.message)
        halves = [HalfEpisode(**{**h, "run_id": self.run_id, "reason": self.stop_reason}) for h in result["interrupted"]]
        record_interrupted(self.out, halves)
        self.interrupted.extend(halves)
        self.build_s += float(result.get("build_s", 0.0))
        self.builds += int(result.get("builds", 0))
        self.by_worker[worker] = self.by_worker.get(worker, 0) + sum(1 for t in trajectories if t.agent_id == "main")


async def _drive(pool: RayRolloutPool, config: RolloutConfig, env: Any, tasks: Sequence[Any], out: Path,
                 t0: float) -> RolloutResult:
    journal = out / "episodes.jsonl"
    state, used = read_run_state(out)
    if state.half:
        record_interrupted(out, state.half)
    run_id = uuid.uuid4().hex[:8]
    planned = plan_episodes(config, tasks, run_id)
    todo = fresh_session_ids([s for s in planned if (s.task.id, s.sample_index) not in state.done], used, config.seed)
    skipped = len(planned) - len(todo)
    pairs = {(s.task.id, s.sample_index) for s in todo}
    retried = len(pairs & state.retry)
    resumed = len(pairs & (state.interrupted_pairs - state.retry))
    metrics = RunMetrics(len(pool.alive) * max(1, config.concurrency), len(todo))
    driver = _Driver(config, out, run_id, metrics)
    stop = asyncio.Event()
    why: dict[str, str] = {}  # the signal that set ``stop``
    stopped_by: str | None = None
    _write_run_json(out, config, env, pool)
    if todo:
        uninstall = _install_signals(stop, why) if config.handle_signals else (lambda: None)
        try:
            stopped_by = await _dispatch(driver, pool, todo, pool.options, config, stop, why)
        finally:
            uninstall()
    everything = latest_attempts(read_records(journal, export.trajectory_from_record))
    parquet = export.write_parquet(everything, out / "trajectories.parquet")
    status = (f"stopped by {stopped_by}" if stopped_by else
              f"failed: {len(driver.lost)} episode(s) lost with their workers (a re-run resumes them)"
              if driver.lost else "completed")
    summary = metrics.summary(
        run_id=run_id, out_dir=str(out), backend=f"ray:{config.runtime}", status=status, skipped=skipped,
        retried=retried, resumed=resumed, interrupted=len(driver.interrupted),
        half_calls_kept=sum(h.calls for h in (*state.half, *driver.interrupted)),
        build_s=round(driver.build_s, 3), builds=driver.builds)
    (out / "summary.json").write_text(dumps(summary) + "\n", encoding="utf-8")
    append_lines(out / "runs.jsonl", [json.dumps({**summary.to_json(), "workers": [
        {**w, "episodes": driver.by_worker.get(i, 0)} for i, w in enumerate(pool.infos)]})])
    return RolloutResult(trajectories=everything, out_dir=out, journal=journal, parquet=parquet,
                         backend=summary.backend, skipped=skipped, seconds=time.time() - t0, retried=retried,
                         resumed=resumed, interrupted=tuple(driver.interrupted), stopped_by=stopped_by,
                         summary=summary)


def _start_ray(ray: Any, options: RayOptions) -> None:
    quiet = not log.isEnabledFor(logging.INFO)  # -v: Ray's notes and the workers' logs too
    level = logging.ERROR if quiet else logging.INFO
    if options.address is not None:
        ray.init(address=options.address, log_to_driver=not quiet, logging_level=level)
        return
    need = options.workers * options.cpus_per_worker
    ray.init(num_cpus=max(os.cpu_count() or 1, int(need + 0.999)), include_dashboard=False,
             object_store_memory=128 * 1024 * 1024, log_to_driver=not quiet, logging_level=level)


async def _start_workers(ray: Any, runtime: str, concurrency: int, model: str,
                         options: RayOptions) -> tuple[list[Any], list[dict[str, Any]]]:
    remote = ray.remote(RolloutWorker).options(
        num_cpus=options.cpus_per_worker, max_concurrency=max(1, concurrency) + 4, scheduling_strategy="SPREAD")
    actors = [remote.remote(model, runtime) for _ in range(options.workers)]
    try:
        infos = await asyncio.wait_for(asyncio.gather(*[_await(a.info.remote()) for a in actors]),
                                       WORKER_CALL_TIMEOUT_S)
    except asyncio.TimeoutError:
        for a in actors:
            ray.kill(a)
        raise AgentGymError(f"the Ray workers did not start within {WORKER_CALL_TIMEOUT_S:.0f}s (does the cluster "
                            f"have {options.workers} x {options.cpus_per_worker:g} CPUs free? `ray status` says)") from None
    except Exception as e:
        for a in actors:
            ray.kill(a)
        raise AgentGymError(f"a Ray worker failed to start: {_reason(e)}") from None
    log.info("%d Ray worker(s) on %d node(s), engines loaded", len(actors), len({i["node_id"] for i in infos}))
    return actors, list(infos)


async def _close_workers(ray: Any, actors: Sequence[Any]) -> None:
    for actor in actors:
        try:
            await asyncio.wait_for(_await(actor.close.remote()), WORKER_CALL_TIMEOUT_S)
        except Exception as e:  # a dead worker's sandboxes go with the next run's cleanup
            log.warning("a Ray worker did not close cleanly: %s", _reason(e))
        with contextlib.suppress(Exception):
            ray.kill(actor)


async def _dispatch(driver: _Driver, pool: RayRolloutPool, todo: Sequence[EpisodeSpec], options: RayOptions,
                    config: RolloutConfig, stop: asyncio.Event, why: dict[str, str]) -> str | None:
    """Hand the pieces out until all came back (or a stop); returns the stop's reason or None."""
    queue = deque(_Piece(list(todo[i:i + options.chunk])) for i in range(0, len(todo), options.chunk))
    per_worker = max(1, config.concurrency)
    actors, alive = pool.actors, pool.alive  # a worker that dies is gone for the pool's later runs too
    busy = {i: 0 for i in alive}
    running: dict[asyncio.Future[Any], tuple[int, _Piece]] = {}
    progress = RunProgress(len(todo), f"{config.harness} on {config.env} (Ray: {len(alive)} workers)",
                           config.progress, driver.metrics)
    stopping = asyncio.ensure_future(stop.wait())
    stopped = False
    try:
        with progress:
            while queue or running:
                while queue and not stopped:
                    free = [i for i in alive if busy[i] < per_worker]
                    if not free:
                        break
                    worker = min(free, key=lambda i: busy[i])
                    piece = queue.popleft()
                    for s in piece.specs:
                        record_started(driver.out, s.session_id or "", s.task.id, s.sample_index, driver.run_id)
                    episodes = {(s.task.id, s.sample_index): s.session_id or "" for s in piece.specs}
                    fut = _await(actors[worker].run.remote(driver.config, episodes))
                    running[fut] = (worker, piece)
                    busy[worker] += 1
                if not running:
                    if queue and not alive:
                        driver.lost.extend(s for p in queue for s in p.specs)
                        queue.clear()
                    break
                done, _ = await asyncio.wait([*running, stopping], return_when=asyncio.FIRST_COMPLETED)
                if stopping in done and not stopped:
                    stopped = True
                    driver.stop_reason = why.get("signal", "cancel")
                    log.warning("stopping: the Ray workers stop their episodes in flight and remove their sandboxes")
                    for i in alive:
                        with contextlib.suppress(Exception):
                            actors[i].stop.remote()
                    queue.clear()
                for fut in [f for f in done if f is not stopping]:
                    worker, piece = running.pop(fut)
                    busy[worker] -= 1
                    try:
                        result = fut.result()
                    except Exception as e:
                        _failed(driver, queue, alive, worker, piece, e, stopped)
                        continue
                    driver.gather(result, worker)
                    for _ in piece.specs:
                        progress.advance()
    finally:
        stopping.cancel()
    return driver.stop_reason if stopped else None


def _failed(driver: _Driver, queue: deque[_Piece], alive: set[int], worker: int, piece: _Piece, e: BaseException,
            stopped: bool) -> None:
    dead = type(e).__name__ in ("ActorDiedError", "RayActorError", "ActorUnavailableError")
    if dead:
        alive.discard(worker)
    piece.tries += 1
    what = f"worker {worker} {'died' if dead else 'failed'} running {', '.join(s.session_id or '' for s in piece.specs)}"
    if piece.tries < 2 and not stopped and alive:
        log.warning("%s: %s; handing the piece to another worker", what, _reason(e))
        queue.appendleft(piece)
    else:
        log.warning("%s: %s; its episodes are left for a re-run to resume", what, _reason(e))
        driver.lost.extend(piece.specs)


def _install_signals(stop: asyncio.Event, why: dict[str, str]) -> Any:
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()

    def on(sig: signal.Signals) -> None:
        if stop.is_set():
            log.warning("%s: exiting now (the workers' sandboxes are removed by the next run)", sig.name)
            os._exit(128 + int(sig))
        why["signal"] = sig.name
        stop.set()

    sigs = [signal.Signals[n] for n in STOP_SIGNALS]
    for sig in sigs:
        loop.add_signal_handler(sig, on, sig)

    def uninstall() -> None:
        for sig in sigs:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)

    return uninstall


def _write_run_json(out: Path, config: RolloutConfig, env: Any, pool: RayRolloutPool) -> None:
    model = pool.model
    info = {"env": config.env if isinstance(config.env, str) else env.id, "harness": config.harness,
            "samples": config.samples, "backend": f"ray:{config.runtime}", "model": model,
            "model_path": model if Path(model).is_dir() else None, "seed": config.seed,
            "ray": {"workers": pool.infos, "address": pool.options.address, "chunk": pool.options.chunk}}
    (out / "run.json").write_text(json.dumps(info, indent=2), encoding="utf-8")


def _await(ref: Any) -> asyncio.Future[Any]:
    return asyncio.wrap_future(ref.future())


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[-1] if text else ''}"
