"""Tasks x samples over a pool of runtimes, journaled so an interrupted run resumes.

The journal is ``<out>/episodes.jsonl``: one trajectory record per line, appended as each
episode ends (the dataset schema of :mod:`agentgym.export`). Re-running the same command with
the same ``out_dir`` skips the (task, sample) pairs already there, runs again the ones that
failed outside the agent, re-runs from the start the ones that were in flight (keeping their
recorded calls: :mod:`agentgym.rollout.resume`), and rewrites ``trajectories.parquet`` from the
whole journal at the end.

An operator can rely on a run:

- **one run per directory**: ``<out>/run.lock`` is held for the whole run; a second run on the
  same directory refuses, naming the holder (:mod:`agentgym.rollout.lock`);
- **clean stops** (``RolloutConfig.handle_signals``, set by ``agentgym rollout``): SIGTERM,
  SIGINT or SIGHUP cancel the episodes in flight, stop and remove their sandboxes (containers,
  process trees), list them as half episodes, write the summary and return with
  ``RolloutResult.stopped_by`` set; a third signal exits at once (sandboxes removed first);
- **storage errors** (a full or read-only disk) are one :class:`~agentgym.errors.StorageError`
  line, not a traceback: an output directory that cannot be written is refused before
  anything runs; an episode whose record cannot be written stays in memory and is written
  with the next one that can, while the other episodes go on; whatever is still unwritten at
  the end is reported (and runs again on resume). No failed write leaves half a record;
- **figures**: ``<out>/summary.json`` (and ``runs.jsonl``, one line per invocation) hold the
  run's :class:`~agentgym.rollout.metrics.RunSummary`.

Our ReAct harness on the ``hello-file`` task, on the local runtime, against a scripted engine
that solves it (any :class:`~agentgym.engines.base.Engine` works the same way)::

>>> import tempfile
>>> from agentgym.engines.scripted import ScriptedEngine
>>> from agentgym.models.tiny import train_tokenizer
>>> import json
>>> command = "echo 'Hello, agentgym!' > hello.txt"            # run in the task's workdir, /app
>>> solve = "<tool_call>" + json.dumps({"name": "bash", "arguments": {"command": command}}) + "</tool_call>"
>>> engine = ScriptedEngine(train_tokenizer(), [solve, "Done."])
>>> config = RolloutConfig(env="terminal/hello-file-v0", harness="agentgym/react-v0", samples=1,
...                        out_dir=tempfile.mkdtemp(), runtime="local", progress=False)
>>> result = asyncio.run(run_rollouts(config, engine))
>>> [(t.task_id, t.reward, t.stop_reason.value, t.num_steps) for t in result.main]
[('hello-file', 1.0, 'completed', 2)]
>>> result.summary.status, result.summary.episodes
('completed', 1)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentgym import export
from agentgym.engines.base import Engine
from agentgym.env import Env
from agentgym.errors import ConfigError, StorageError, storage_error
from agentgym.harness import load_harness
from agentgym.jsonl import append_lines, read_records
from agentgym.proxy.pipeline import PinnedSampling
from agentgym.proxy.server import Proxy
from agentgym.rollout.branch import Branch
from agentgym.rollout.episode import EpisodeSpec, new_session_id, run_episode, sandbox_overrides
from agentgym.rollout.lock import RunLock
from agentgym.rollout.metrics import RunMetrics, RunSummary, dumps
from agentgym.rollout.resume import (
    SESSIONS_FILE,
    HalfEpisode,
    ResumeState,
    count_calls,
    read_resume_state,
    record_interrupted,
    record_started,
)
from agentgym.rollout.schedule import GroupTracker, Overprovision, PhaseTimeouts, ResourceLimits, slot, within
from agentgym.runtime import get_backend
from agentgym.runtime.images import ImageCache
from agentgym.runtime.pool import WarmPool
from agentgym.sources import env_from
from agentgym.types import StopReason, Task, Trajectory, TrajectoryGroup

log = logging.getLogger(__name__)

STOP_SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP")
"""What stops a run cleanly when ``RolloutConfig.handle_signals`` is set."""


@dataclass(frozen=True)
class RolloutConfig:
    env: str | Env
    """The environment: a registered id (``terminal/basic-v0``), a task directory or a directory
    of tasks, a SWE-bench-style file, ``module:attr``, or an :class:`Env`
    (:func:`agentgym.sources.env_from`)."""
    harness: str
    """Harness id, e.g. ``agentgym/react-v0`` or ``mini-swe-agent/mini-v2``, or the path of a
    TOML harness spec (:func:`agentgym.harness.load_harness`)."""
    samples: int = 4
    task_ids: Sequence[str] | None = None
    """Run only these tasks (default: the whole suite)."""
    out_dir: str = "runs/latest"
    runtime: str = "auto"
    """``docker``, ``local`` (bubblewrap sandboxes), ``local-unsafe`` (no isolation) or ``auto``
    (Docker when the engine answers, else local)."""
    network: str = "proxy"
    """What the agent's runtime reaches: ``proxy`` (the proxy only, through its Unix socket) or
    ``host`` (the host's network, for harnesses that need more than the policy)."""
    concurrency: int = 4
    max_steps: int | None = None
    timeout_s: float | None = None
    default_max_tokens: int = 256
    max_model_len: int = 4096
    progress: bool = True
    harness_kwargs: dict[str, Any] = field(default_factory=dict)
    pinned_sampling: PinnedSampling | None = None
    """Sample every call with these (training pins them); ``None`` honours the harness."""
    handle_signals: bool = False
    """Stop cleanly on SIGTERM, SIGINT and SIGHUP (only from the main thread). Off for library
    callers, whose own handlers stay in place; ``agentgym rollout`` turns it on."""
    samples_by_task: Mapping[str, int] | None = None
    """Fresh samples of these tasks (others get ``samples``): an uneven split of a budget."""
    branches: Sequence[Branch] = ()
    """Branch episodes to run besides the fresh samples (:mod:`agentgym.rollout.branch`): each is
    one more sample of its task, numbered after the task's fresh samples in list order (so a
    resumed run finds them done)."""

    warm_pool: int = 0
    """Sandboxes kept started ahead of the episodes that will use them (a
    :class:`~agentgym.runtime.pool.WarmPool` of this size over all tasks; each used once). 0:
    each episode starts its own sandbox."""
    timeouts: PhaseTimeouts = field(default_factory=PhaseTimeouts)
    """Limits of the build, setup and verify phases; the agent's is ``timeout_s``."""
    limits: ResourceLimits = field(default_factory=ResourceLimits)
    """Concurrency limits per resource (sandbox starts, verifiers, episodes of one task)."""
    overprovision: float = 0.0
    """Start ``ceil(samples * (1 + overprovision))`` episodes per task and cancel the rest once
    ``samples`` have ended; the cancelled ones are kept, stop reason ``cancelled``
    (:mod:`agentgym.rollout.schedule`)."""
    seed: int | None = None
    """Make the run reproducible: episode ids are a function of (seed, task, sample, attempt) and
    every call that carries no seed of its own is sampled with one derived from (seed, episode,
    agent, call number), so the same run gives the same trajectories (ids and tokens) whatever
    the concurrency, the order episodes end in, or the machines they run on
    (:mod:`agentgym.rollout.distributed`). ``None``: fresh randomness."""
    episodes: Mapping[tuple[str, int], str] | None = None
    """Run only these (task, sample) pairs, each under the given session id (a shard of a
    distributed run, whose driver names the episodes); ``None``: the whole plan."""

    def fresh_samples(self, task_id: str) -> int:
        """Fresh (not branched) samples of one task."""
        if self.samples_by_task is not None and task_id in self.samples_by_task:
            return int(self.samples_by_task[task_id])
        return self.samples


@dataclass(frozen=True)
class RolloutResult:
    trajectories: list[Trajectory]
    """Main-agent and sub-agent trajectories of every episode in the journal."""
    out_dir: Path
    journal: Path
    parquet: Path
    backend: str
    skipped: int
    """Episodes found already done in the journal (resume)."""
    seconds: float
    retried: int = 0
    """Episodes in the journal that had failed outside the agent, run again (resume)."""
    resumed: int = 0
    """Episodes cut short by an earlier crash or stop, run again from the start (resume)."""
    interrupted: tuple[HalfEpisode, ...] = ()
    """This run's episodes cut short by a stop (their calls are kept: ``interrupted.jsonl``)."""
    stopped_by: str | None = None
    """The signal that stopped the run (``SIGTERM``...), or ``None`` when it ran to the end."""
    summary: RunSummary | None = None

    @property
    def main(self) -> list[Trajectory]:
        return [t for t in self.trajectories if t.agent_id == "main"]


def select_tasks(env: Any, task_ids: Sequence[str] | None) -> list[Task]:
    tasks = env.tasks()
    if not task_ids:
        return list(tasks)
    by_id = {t.id: t for t in tasks}
    missing = [t for t in task_ids if t not in by_id]
    if missing:
        raise ConfigError(f"unknown task(s) {', '.join(missing)} in {env.id}; tasks: {', '.join(by_id)}")
    return [by_id[t] for t in task_ids]


class _Storage:
    """A run's file-system failures: the first is logged (one line), the rest only counted, so a
    full disk reads as one warning while the run goes on, and one error at its end."""

    def __init__(self) -> None:
        self.first: StorageError | None = None
        self.failures = 0

    def failed(self, e: OSError, path: Path) -> StorageError:
        err = storage_error(e, path)
        self.failures += 1
        if self.first is None:
            self.first = err
            log.warning("%s; the episodes go on, finished ones wait in memory to be written", err)
        return err

    def attempt(self, write: Callable[[], None], path: Path) -> bool:
        """A bookkeeping write that must not stop the run."""
        try:
            write()
            return True
        except OSError as e:
            self.failed(e, path)
            return False


class _Journal:
    """``episodes.jsonl`` with a backlog: records that could not be written (a full disk) wait
    in memory and go out, in order, with the next write that succeeds."""

    def __init__(self, path: Path, storage: _Storage) -> None:
        self.path = path
        self.storage = storage
        self.backlog: list[Trajectory] = []
        self.error: StorageError | None = None

    def add(self, trajectories: Sequence[Trajectory]) -> None:
        self.backlog.extend(trajectories)
        self.flush()

    def flush(self) -> bool:
        if not self.backlog:
            return True
        try:
            export.write_jsonl(self.backlog, self.path, append=True)  # all lines or none
        except OSError as e:
            self.error = self.storage.failed(e, self.path)
            return False
        if self.error is not None:
            log.warning("%s is writable again: %d waiting episode record(s) written", self.path,
                        len(self.backlog))
            self.error = None
        self.backlog.clear()
        return True

    @property
    def unsaved(self) -> int:
        return sum(1 for t in self.backlog if t.agent_id == "main")


class _Stop:
    """Signals -> a stop event: the first asks for a clean stop, a third exits at once."""

    def __init__(self, on_force: Callable[[], None]) -> None:
        self.event = asyncio.Event()
        self.signal: str | None = None
        self.on_force = on_force
        self.count = 0
        self._old: dict[signal.Signals, Any] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            log.warning("handle_signals ignored: signals reach only the main thread")
            return
        self._loop = asyncio.get_running_loop()
        for name in STOP_SIGNALS:
            sig = signal.Signals[name]
            self._old[sig] = signal.getsignal(sig)
            self._loop.add_signal_handler(sig, self._on, sig)

    def uninstall(self) -> None:
        if self._loop is None:
            return
        for sig, old in self._old.items():
            self._loop.remove_signal_handler(sig)
            with contextlib.suppress(TypeError, ValueError):
                signal.signal(sig, old if old is not None else signal.SIG_DFL)
        self._loop = None

    def _on(self, sig: signal.Signals) -> None:
        self.count += 1
        if self.count == 1:
            self.signal = sig.name
            log.warning("%s: stopping: removing the sandboxes of the episodes in flight and writing the "
                        "summary (send it twice more to exit at once)", sig.name)
            self.event.set()
        elif self.count == 2:
            log.warning("%s: still stopping; once more exits at once", sig.name)
        else:
            log.warning("%s: exiting now", sig.name)
            with contextlib.suppress(Exception):
                self.on_force()
            os._exit(128 + int(sig))


async def run_rollouts(config: RolloutConfig, engine: Engine, *, backend: Any = None,
                       on_group: Callable[[TrajectoryGroup], Awaitable[None]] | None = None,
                       admit: Callable[[], Awaitable[None]] | None = None,
                       stop: asyncio.Event | None = None) -> RolloutResult:
    """Run ``config.samples`` episodes of every selected task; returns all journaled trajectories.

    For services built on it (:mod:`agentgym.rollout.service`): ``on_group`` is awaited with
    each task's group (main-agent trajectories, cancelled ones included) as soon as its last
    episode of this run ends; ``admit`` is awaited before each episode starts (backpressure);
    setting ``stop`` stops the run as a signal would (episodes in flight cut short, their
    sandboxes stopped; ``stopped_by="cancel"``), without closing a ``backend`` it was given.

    Raises :class:`~agentgym.rollout.lock.RunDirLocked` when another run holds ``out_dir`` and
    :class:`~agentgym.errors.StorageError` when ``out_dir`` cannot be written (before anything
    runs), or when finished episodes could not be saved (after the others finished)."""
    t0 = time.time()
    if config.network not in ("proxy", "host"):
        raise ConfigError(f"RolloutConfig.network must be 'proxy' or 'host', got {config.network!r}")
    out = Path(config.out_dir)
    env = env_from(config.env)
    harness = load_harness(config.harness, **config.harness_kwargs)
    tasks = select_tasks(env, config.task_ids)
    with RunLock(out):
        own_backend = backend is None
        backend = backend or get_backend(config.runtime)
        try:
            return await _run_locked(config, engine, backend, env, harness, tasks, out, t0,
                                     _Hooks(on_group, admit, stop, own_backend))
        finally:
            if own_backend:
                backend.close()


@dataclass(frozen=True)
class _Hooks:
    on_group: Callable[[TrajectoryGroup], Awaitable[None]] | None
    admit: Callable[[], Awaitable[None]] | None
    stop: asyncio.Event | None
    own_backend: bool


async def _run_locked(config: RolloutConfig, engine: Engine, backend: Any, env: Any, harness: Any,
                      tasks: list[Task], out: Path, t0: float, hooks: _Hooks) -> RolloutResult:
    journal = out / "episodes.jsonl"
    _write(out / "run.json", json.dumps({
        "env": config.env if isinstance(config.env, str) else env.id, "harness": config.harness,
        "samples": config.samples, "backend": backend.name,
        "model": engine.model_name,
        "model_path": engine.model_name if Path(engine.model_name).is_dir() else None,  # the viewer's tokenizer
    }, indent=2))
    state, used = read_run_state(out)
    run_id = uuid.uuid4().hex[:8]
    storage = _Storage()
    half_calls = sum(h.calls for h in state.half)
    if state.half:
        storage.attempt(lambda: record_interrupted(out, state.half), out / "interrupted.jsonl")
        log.info("%d half episode(s) of an earlier run found (%d recorded calls kept in calls/); their "
                 "(task, sample) pairs run again from the start", len(state.half), half_calls)
    planned = plan_episodes(config, tasks, run_id)
    over = config.overprovision > 0
    groups = {t.id: GroupTracker(config.fresh_samples(t.id), ended_before=state.kept.get(t.id, 0)) for t in tasks}
    # Over-provisioned: a task whose journal already holds its samples runs nothing again.
    todo = [s for s in planned if (s.task.id, s.sample_index) not in state.done
            and not (over and groups[s.task.id].complete)]
    if config.episodes is None:  # a shard runs under the ids its driver gave
        todo = fresh_session_ids(todo, used, config.seed)
    skipped = sum(1 for s in planned if (s.task.id, s.sample_index) in state.done)
    pairs = {(s.task.id, s.sample_index) for s in todo}
    retried = len(pairs & state.retry)
    resumed = len(pairs & (state.interrupted_pairs - state.retry))
    metrics = RunMetrics(config.concurrency, len(todo))
    episodes = _Journal(journal, storage)
    interrupted: list[HalfEpisode] = []
    stopper = _Stop(on_force=backend.close)
    images = ImageCache(backend)
    pool = WarmPool(backend, size=max(0, config.warm_pool), max_starting=config.limits.starting)
    cancelled: list[Trajectory] = []
    if todo:
        await backend.cleanup()
        progress = RunProgress(len(todo), f"{config.harness} on {env.id} ({backend.name})", config.progress,
                             metrics)
        images.on_status = progress.note
        backend.status_listener = progress.note  # what a stand-in base image build is doing
        # Also on a Unix socket (<out>/sock/proxy.sock): what runtimes with network="proxy" reach.
        proxy = Proxy(engine, out, default_max_tokens=config.default_max_tokens,
                      max_model_len=config.max_model_len, pinned_sampling=config.pinned_sampling, seed=config.seed)
        try:
            await proxy.start()
        except OSError as e:
            raise storage_error(e, out / "sock", "listen on a socket in") from None
        _guard_call_journal(proxy, storage)
        sem = asyncio.Semaphore(max(1, config.concurrency))
        task_slots = {t.id: asyncio.Semaphore(config.limits.per_task) for t in tasks} if config.limits.per_task else {}
        verify_slots = asyncio.Semaphore(config.limits.verifying) if config.limits.verifying else None
        in_flight: dict[str, EpisodeSpec] = {}
        left = {t.id: 0 for t in tasks}  # episodes of each task in this run not ended yet
        for spec in todo:
            left[spec.task.id] += 1
        ended: dict[str, list[Trajectory]] = {t.id: [] for t in tasks}

        async def end_of(spec: EpisodeSpec, trajs: Sequence[Trajectory]) -> None:
            task_id = spec.task.id
            left[task_id] -= 1
            ended[task_id].extend(t for t in trajs if t.agent_id == "main")
            if left[task_id] == 0 and ended[task_id] and hooks.on_group is not None:
                await hooks.on_group(TrajectoryGroup(task_id=task_id, trajectories=tuple(ended[task_id])))

        async def one(spec: EpisodeSpec) -> None:
            group = groups[spec.task.id]
            async with slot(task_slots.get(spec.task.id)), sem:
                if hooks.admit is not None:  # holding the slot: a batch held back starts nothing
                    await hooks.admit()
                if over and group.complete:  # never started: nothing to keep
                    if spec.task.id in spec_of:
                        pool.forget(spec_of[spec.task.id], 1)
                    await end_of(spec, ())
                    return
                assert spec.session_id is not None
                storage.attempt(lambda: record_started(out, spec.session_id or "", spec.task.id,
                                                       spec.sample_index, run_id), out / "sessions.jsonl")
                in_flight[spec.session_id] = spec
                trajs = await run_episode(spec, env=env, harness=harness, proxy=proxy, backend=pool,
                                          images=images, max_steps=config.max_steps, timeout_s=config.timeout_s,
                                          network=config.network, timeouts=config.timeouts,
                                          verify_slots=verify_slots,
                                          cancel=group.cancel if over else None)
                del in_flight[spec.session_id]
            main = next((t for t in trajs if t.agent_id == "main"), None)
            if main is not None:
                group.ended(main.stop_reason)
                if main.stop_reason == StopReason.CANCELLED:
                    cancelled.append(main)
            episodes.add(trajs)
            for t in trajs:
                metrics.add(t)
            progress.advance()
            await end_of(spec, trajs)

        async def watch_stop() -> None:
            assert hooks.stop is not None
            await hooks.stop.wait()
            stopper.signal = stopper.signal or "cancel"
            stopper.event.set()

        spec_of: dict[str, Any] = {}
        watcher = asyncio.ensure_future(watch_stop()) if hooks.stop is not None else None

        if config.handle_signals:
            stopper.install()
        try:
            with progress:
                await _build_images(todo, env, harness, backend, images, config.timeouts.build_s)
                if config.warm_pool > 0:
                    spec_of.update(await _expect(pool, todo, env, harness, images, proxy, config.network))
                await _run_all([one(s) for s in todo], stopper.event)
        finally:
            stopper.uninstall()
            if watcher is not None:
                watcher.cancel()
            await pool.aclose()  # warm sandboxes no episode took are stopped with the run
            if stopper.signal is not None:
                if stopper.signal != "cancel" or hooks.own_backend:  # not a backend a service shares
                    backend.close()  # anything still starting when the episodes were cancelled
                for sid, spec in in_flight.items():
                    interrupted.append(HalfEpisode(
                        session_id=sid, task_id=spec.task.id, sample_index=spec.sample_index, run_id=run_id,
                        calls=count_calls(out / "calls" / f"{sid}.jsonl"), calls_path=f"calls/{sid}.jsonl",
                        reason=stopper.signal, found_at=time.time()))
                storage.attempt(lambda: record_interrupted(out, interrupted), out / "interrupted.jsonl")
            await proxy.stop()
    episodes.flush()
    half_calls += sum(h.calls for h in interrupted)
    everything = latest_attempts(read_records(journal, export.trajectory_from_record))
    parquet = out / "trajectories.parquet"
    parquet_error: StorageError | None = None
    try:
        export.write_parquet(everything, parquet)
    except OSError as e:
        parquet_error = storage.failed(e, parquet)
    failure = episodes.error or parquet_error
    status = (f"stopped by {stopper.signal}" if stopper.signal else
              f"failed: {failure}" if failure else "completed")
    summary = metrics.summary(
        run_id=run_id, out_dir=str(out), backend=backend.name, status=status, skipped=skipped, retried=retried,
        resumed=resumed, interrupted=len(interrupted), half_calls_kept=half_calls, unsaved=episodes.unsaved,
        build_s=round(sum(images.seconds.values()), 3), builds=len(images.seconds), cancelled=len(cancelled),
        pool=pool.stats.to_json() if config.warm_pool > 0 else {})
    storage.attempt(lambda: _write(out / "summary.json", dumps(summary) + "\n"), out / "summary.json")
    storage.attempt(lambda: append_lines(out / "runs.jsonl", [json.dumps(summary.to_json())]), out / "runs.jsonl")
    if episodes.unsaved:
        raise StorageError(f"{episodes.error}; {episodes.unsaved} finished episode(s) could not be saved "
                           "and run again on resume")
    if parquet_error is not None:
        raise StorageError(f"{parquet_error} (the journal episodes.jsonl is complete: re-run to rewrite it)")
    return RolloutResult(trajectories=everything, out_dir=out, journal=journal, parquet=parquet,
                         backend=backend.name, skipped=skipped, seconds=time.time() - t0, retried=retried,
                         resumed=resumed, interrupted=tuple(interrupted), stopped_by=stopper.signal,
                         summary=summary)


def plan_episodes(config: RolloutConfig, tasks: Sequence[Task], run_id: str) -> list[EpisodeSpec]:
    """Every episode of a run: each task's fresh samples (over-provisioned: more), then the
    branches (each the next sample index of its task)."""
    by_id = {t.id: t for t in tasks}
    fresh = {t.id: Overprovision(config.overprovision).episodes(config.fresh_samples(t.id)) for t in tasks}
    if config.overprovision and config.branches:
        raise ConfigError("overprovision applies to fresh samples; a run with branches cannot over-provision")
    specs = [EpisodeSpec(task=t, sample_index=i, run_id=run_id, session_id=new_session_id(t, i, config.seed))
             for t in tasks for i in range(fresh[t.id])]
    nxt = dict(fresh)
    for b in config.branches:
        task = by_id.get(b.task_id)
        if task is None:
            raise ConfigError(f"branch of {b.parent_id}: its task {b.task_id!r} is not among the run's tasks")
        i = nxt[task.id]
        nxt[task.id] += 1
        specs.append(EpisodeSpec(task=task, sample_index=i, run_id=run_id, session_id=new_session_id(task, i, config.seed),
                                 branch=b))
    if config.episodes is not None:
        given = config.episodes
        specs = [dataclasses.replace(s, session_id=given[(s.task.id, s.sample_index)])
                 for s in specs if (s.task.id, s.sample_index) in given]
    return specs


def fresh_session_ids(specs: Sequence[EpisodeSpec], used: set[str], seed: int | None) -> list[EpisodeSpec]:
    """``specs`` with a new session id for each whose id an earlier attempt used (a seeded run
    names a retried or resumed episode after its attempt number: still reproducible)."""
    out = []
    for s in specs:
        sid, attempt = s.session_id, 0
        while sid is None or sid in used:
            attempt += 1
            sid = new_session_id(s.task, s.sample_index, seed, attempt)
        used.add(sid)
        out.append(s if sid == s.session_id else dataclasses.replace(s, session_id=sid))
    return out


def read_run_state(out: Path) -> tuple[ResumeState, set[str]]:
    """What ``out`` holds from earlier runs (:func:`~agentgym.rollout.resume.read_resume_state`)
    and the session ids they used; a :class:`~agentgym.errors.StorageError` when it cannot be read."""
    try:
        journaled = read_records(out / "episodes.jsonl", export.trajectory_from_record)
        return read_resume_state(out, latest_attempts(journaled)), used_session_ids(out, journaled)
    except OSError as e:
        raise storage_error(e, out, "read") from None


def used_session_ids(out: Path, journal: Sequence[Trajectory]) -> set[str]:
    """Session ids a run directory has used: started episodes and journaled ones."""
    started = {r.get("session_id") for r in read_records(out / SESSIONS_FILE, dict)}
    return {s for s in started if isinstance(s, str)} | {t.session_id for t in journal}


async def _run_all(coros: list[Any], stop: asyncio.Event) -> None:
    """Run ``coros`` until all end or ``stop`` is set; then cancel the rest and wait for their
    cleanup (each episode stops its sandbox as it is cancelled). An unexpected error in one
    cancels the others the same way, then propagates."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    stopping = asyncio.ensure_future(stop.wait())
    pending: set[asyncio.Future[Any]] = set(tasks)
    failure: BaseException | None = None
    try:
        while pending and failure is None:
            done, _ = await asyncio.wait(pending | {stopping}, return_when=asyncio.FIRST_COMPLETED)
            if stopping in done:
                break
            pending -= done
            failure = next((t.exception() for t in done if not t.cancelled() and t.exception()), None)
    finally:
        stopping.cancel()
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    if failure is not None:
        raise failure


def _write(path: Path, text: str) -> None:
    """Write a small file whole (a temp file renamed over it), or raise a one-line StorageError."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise storage_error(e, path) from None


def _guard_call_journal(proxy: Proxy, storage: _Storage) -> None:
    """Calls the journal cannot take (a full disk) are kept in memory (the episode's trajectory
    is built from memory) and counted, instead of failing the request after its reply was
    sent. Wraps the proxy's journal until the proxy has an error hook of its own."""
    journal = getattr(getattr(proxy, "pipeline", None), "journal", None)
    if journal is None or not hasattr(journal, "append") or not hasattr(journal, "path"):
        return
    append = journal.append

    def guarded(call: Any) -> None:
        try:
            append(call)
        except OSError as e:
            storage.failed(e, journal.path(call.session_id))

    journal.append = guarded


async def _expect(pool: WarmPool, todo: Sequence[EpisodeSpec], env: Env, harness: Any, images: ImageCache,
                  proxy: Proxy, network: str) -> dict[str, Any]:
    """Tell the warm pool which sandboxes the episodes will ask for, in the order they run;
    returns each task's spec (the pool forgets the episodes that never start)."""
    specs: dict[str, Any] = {}
    for spec in todo:
        task = spec.task
        if task.id not in specs:
            if env.unsupported(task, pool):
                continue
            try:
                image = await images.image_for(task, harness)
            except Exception:  # the episodes record it
                continue
            specs[task.id] = env.runtime_spec(task, image=image if pool.uses_images else None,
                                              **sandbox_overrides(proxy, network))
        pool.expect(specs[task.id], 1)
    return specs


async def _build_images(todo: Sequence[EpisodeSpec], env: Env, harness: Any, backend: Any,
                        images: ImageCache, limit_s: float | None = None) -> None:
    """Every image the episodes need, built before the first episode starts, one after another
    (so image builds are not episode time, and do not compete with each other for the CPU). A
    build that fails is left to the episodes, which record it as their runtime error."""
    seen: set[str] = set()
    for spec in todo:
        task = spec.task
        if task.id in seen or env.unsupported(task, backend):
            continue
        seen.add(task.id)
        try:
            await within(images.image_for(task, harness), limit_s, "build")
        except Exception as e:  # recorded on each episode of the task when it tries again
            log.warning("the image of %s does not build: %s", task.id, e)


def latest_attempts(trajectories: Sequence[Trajectory]) -> list[Trajectory]:
    """The journal's trajectories with only the last attempt of each (task, sample): an episode
    that failed outside the agent is run again on resume, and its new attempt replaces the old
    one (with the old attempt's sub-agent trajectories)."""
    last: dict[tuple[str, int], str] = {}
    for t in trajectories:
        if t.agent_id == "main":
            last[(t.task_id, t.sample_index)] = t.session_id
    return [t for t in trajectories if last.get((t.task_id, t.sample_index), t.session_id) == t.session_id]


class RunProgress:
    """A rich progress bar with the run's live figures (silent when disabled or not a TTY)."""

    def __init__(self, total: int, title: str, enabled: bool, metrics: RunMetrics) -> None:
        self.total = total
        self.enabled = enabled
        self.metrics = metrics
        self._bar: Any = None
        self._task: Any = None
        self.title = title

    def __enter__(self) -> RunProgress:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), transient=False)
            self._bar.__enter__()
            self._task = self._bar.add_task(self.title, total=self.total, stats="")
        return self

    def advance(self) -> None:
        if self._bar is not None:
            self._bar.update(self._task, advance=1, stats=self.metrics.stats())

    def note(self, message: str) -> None:
        """Show what is being prepared (an image build) until the next note or episode."""
        if self._bar is not None:
            self._bar.update(self._task, stats=message or self.metrics.stats())

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
