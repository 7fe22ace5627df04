"""Tasks x samples over a pool of runtimes, journaled so an interrupted run resumes.

The journal is ``<out>/episodes.jsonl``: one trajectory record per line, appended as each
episode ends (the dataset schema of :mod:`agentgym.export`). Re-running the same command with
the same ``out_dir`` skips the (task, sample) pairs already there, re-runs the ones that were in
flight, and rewrites ``trajectories.parquet`` from the whole journal at the end.

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
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentgym import export, registries
from agentgym.engines.base import Engine
from agentgym.env import Env
from agentgym.errors import ConfigError
from agentgym.jsonl import read_records
from agentgym.proxy.pipeline import PinnedSampling
from agentgym.proxy.server import Proxy
from agentgym.rollout.episode import EpisodeSpec, run_episode
from agentgym.runtime import get_backend
from agentgym.runtime.images import ImageCache
from agentgym.sources import env_from
from agentgym.types import Task, Trajectory

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RolloutConfig:
    env: str | Env
    """The environment: a registered id (``terminal/basic-v0``), a task directory or a directory
    of tasks, a SWE-bench-style file, ``module:attr``, or an :class:`Env`
    (:func:`agentgym.sources.env_from`)."""
    harness: str
    """Harness id, e.g. ``agentgym/react-v0`` or ``mini-swe-agent/mini-v2``."""
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


async def run_rollouts(config: RolloutConfig, engine: Engine, *, backend: Any = None) -> RolloutResult:
    """Run ``config.samples`` episodes of every selected task; returns all journaled trajectories."""
    t0 = time.time()
    if config.network not in ("proxy", "host"):
        raise ConfigError(f"RolloutConfig.network must be 'proxy' or 'host', got {config.network!r}")
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    env = env_from(config.env)
    harness = registries.harnesses.make(config.harness, **config.harness_kwargs)
    tasks = select_tasks(env, config.task_ids)
    backend = backend or get_backend(config.runtime)
    journal = out / "episodes.jsonl"
    (out / "run.json").write_text(json.dumps({
        "env": config.env if isinstance(config.env, str) else env.id, "harness": config.harness, "samples": config.samples, "backend": backend.name,
        "model": engine.model_name,
        "model_path": engine.model_name if Path(engine.model_name).is_dir() else None,  # the viewer's tokenizer
    }, indent=2))
    done_before = latest_attempts(read_records(journal, export.trajectory_from_record))
    done = {(t.task_id, t.sample_index) for t in done_before if t.agent_id == "main"
            and not t.stop_reason.outside_the_agent}
    retried = sum(1 for t in done_before if t.agent_id == "main" and t.stop_reason.outside_the_agent)
    run_id = uuid.uuid4().hex[:8]
    todo = [EpisodeSpec(task=t, sample_index=i, run_id=run_id)
            for t in tasks for i in range(config.samples) if (t.id, i) not in done]
    skipped = len(tasks) * config.samples - len(todo)
    new: list[Trajectory] = []
    if todo:
        await backend.cleanup()
        progress = _Progress(len(todo), f"{config.harness} on {env.id} ({backend.name})", config.progress)
        images = ImageCache(backend, on_status=progress.note)
        backend.status_listener = progress.note  # what a stand-in base image build is doing
        # Also on a Unix socket (<out>/sock/proxy.sock): what runtimes with network="proxy" reach.
        proxy = Proxy(engine, out, default_max_tokens=config.default_max_tokens,
                      max_model_len=config.max_model_len, pinned_sampling=config.pinned_sampling)
        await proxy.start()
        sem = asyncio.Semaphore(max(1, config.concurrency))

        async def one(spec: EpisodeSpec) -> None:
            async with sem:
                trajs = await run_episode(spec, env=env, harness=harness, proxy=proxy, backend=backend,
                                          images=images, max_steps=config.max_steps, timeout_s=config.timeout_s,
                                          network=config.network)
            export.write_jsonl(trajs, journal, append=True)
            new.extend(trajs)
            progress.advance(trajs[0])

        try:
            with progress:
                await _build_images(todo, env, harness, backend, images)
                await asyncio.gather(*(one(s) for s in todo))
        finally:
            await proxy.stop()
    everything = latest_attempts(read_records(journal, export.trajectory_from_record))
    parquet = export.write_parquet(everything, out / "trajectories.parquet")
    return RolloutResult(trajectories=everything, out_dir=out, journal=journal, parquet=parquet,
                         backend=backend.name, skipped=skipped, seconds=time.time() - t0, retried=retried)


async def _build_images(todo: Sequence[EpisodeSpec], env: Env, harness: Any, backend: Any,
                        images: ImageCache) -> None:
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
            await images.image_for(task, harness)
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


class _Progress:
    """A rich progress bar with the running mean reward (silent when disabled or not a TTY)."""

    def __init__(self, total: int, title: str, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled
        self.rewards: list[float] = []
        self._bar: Any = None
        self._task: Any = None
        self.title = title

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), transient=False)
            self._bar.__enter__()
            self._task = self._bar.add_task(self.title, total=self.total, stats="")
        return self

    def _stats(self) -> str:
        return f"mean reward {sum(self.rewards) / len(self.rewards):.2f}" if self.rewards else ""

    def advance(self, t: Trajectory) -> None:
        self.rewards.append(t.reward)
        if self._bar is not None:
            self._bar.update(self._task, advance=1, stats=self._stats())

    def note(self, message: str) -> None:
        """Show what is being prepared (an image build) until the next note or episode."""
        if self._bar is not None:
            self._bar.update(self._task, stats=message or self._stats())

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
