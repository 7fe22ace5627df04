"""The rollout service: rollouts for any trainer, over HTTP.

A trainer (ours, or one in another process or language) submits a *batch* — tasks x samples of
an env with a harness, at a policy version — and reads back each task's
:class:`~agentgym.types.TrajectoryGroup` as soon as its last episode ends, as one JSON line per
group. Batches run one after another, each a :func:`~agentgym.rollout.runner.run_rollouts` in
its own directory (``<root>/batches/<id>``: journal, calls, summary), on one shared runtime
backend, so everything a run does (warm pool, timeouts, limits, over-provisioning, journals)
applies.

HTTP API (JSON; errors are ``{"error": {"message": ...}}`` with a 4xx status):

``GET /v1/health``
    ``{"status": "ok", "model": ..., "policy_version": ...}``.
``POST /v1/batches``
    Body: ``env``, ``harness``, ``samples``, ``policy_version`` (``null``: whatever the engine
    serves; otherwise it must be the engine's current version, else 409: push the weights
    first), and optional ``task_ids``, ``concurrency``, ``max_steps``, ``timeout_s``,
    ``warm_pool``, ``overprovision``. Answers 201 ``{"batch_id", "state", "tasks"}``; 400 for a
    bad body or an unknown env/harness/task; 429 (``Retry-After``) when ``max_queued`` batches
    already wait.
``GET /v1/batches/{id}``
    State (``queued``, ``running``, ``done``, ``cancelled``, ``failed``), groups finished and
    delivered, episodes started, whether the batch is held back (``backpressure``), and the
    run's summary once it ended.
``GET /v1/batches/{id}/groups``
    The groups as they complete, as NDJSON: ``{"type": "group", "task_id", "policy_version",
    "trajectories": [<dataset records>]}`` per group (main-agent trajectories, records of
    :func:`agentgym.export.trajectory_to_record`), then ``{"type": "end", "state", "summary"}``.
    One reader per batch (409 for a second). **Backpressure**: while ``max_pending_groups``
    finished groups wait for a reader, the batch starts no new episode (those in flight go on).
``DELETE /v1/batches/{id}``
    Cancel: a queued batch never runs; a running one stops as on SIGTERM (episodes in flight cut
    short, sandboxes removed, listed in ``interrupted.jsonl``); its stream ends with
    ``"state": "cancelled"``.

:class:`~agentgym.rollout.client.RolloutClient` speaks it from Python; ``agentgym
serve-rollouts`` runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from agentgym import export
from agentgym.engines.base import Engine
from agentgym.errors import AgentGymError
from agentgym.harness import load_harness
from agentgym.rollout.runner import RolloutConfig, run_rollouts, select_tasks
from agentgym.runtime import get_backend
from agentgym.runtime.base import RuntimeBackend
from agentgym.sources import env_from
from agentgym.types import TrajectoryGroup

__all__ = ["BATCH_OPTIONS", "RolloutService"]

log = logging.getLogger(__name__)

BATCH_OPTIONS = ("task_ids", "concurrency", "max_steps", "timeout_s", "warm_pool", "overprovision")
"""Optional fields of a batch (``RolloutConfig`` fields of the same names)."""


@dataclass
class _Batch:
    id: str
    config: RolloutConfig
    policy_version: int | None
    tasks: list[str]
    state: str = "queued"
    unsent: deque[TrajectoryGroup] = field(default_factory=deque)
    """Finished groups no reader has received yet (backpressure counts them)."""
    ended: bool = False
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    finished_groups: int = 0
    delivered: int = 0
    started: int = 0
    blocked: bool = False
    reading: bool = False
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    taken: asyncio.Event = field(default_factory=asyncio.Event)
    summary: dict[str, Any] | None = None
    error: str | None = None

    def status(self) -> dict[str, Any]:
        return {"batch_id": self.id, "state": self.state, "tasks": self.tasks, "samples": self.config.samples,
                "policy_version": self.policy_version, "groups_finished": self.finished_groups,
                "groups_delivered": self.delivered, "episodes_started": self.started,
                "backpressure": self.blocked, "summary": self.summary, "error": self.error}


class RolloutService:
    """Serves rollouts of ``engine`` over HTTP (see the module docstring).

    Args:
        engine: the policy every batch samples from (its weights are the trainer's business:
            ``engine.update_weights``).
        root: where batches write their runs (``<root>/batches/<id>``).
        backend: the runtime backend shared by the batches (default: ``get_backend(runtime)``,
            closed by :meth:`stop`).
        runtime: the backend to create when none is given.
        max_pending_groups: finished groups a batch may hold for its reader before it starts no
            more episodes.
        max_queued: batches that may wait behind the running one (more: 429).
    """

    def __init__(self, engine: Engine, root: str | Path, *, backend: RuntimeBackend | None = None,
                 runtime: str = "auto", host: str = "127.0.0.1", port: int = 0, max_pending_groups: int = 8,
                 max_queued: int = 16) -> None:
        self.engine = engine
        self.root = Path(root)
        self._own_backend = backend is None
        self.backend = backend or get_backend(runtime)
        self.host = host
        self.port = port
        self.max_pending_groups = max(1, max_pending_groups)
        self.max_queued = max_queued
        self.batches: dict[str, _Batch] = {}
        self._queue: deque[_Batch] = deque()
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._current: _Batch | None = None
        self._runner: web.AppRunner | None = None
        self._closing = False

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/health", self._health)
        app.router.add_post("/v1/batches", self._submit)
        app.router.add_get("/v1/batches/{id}", self._status)
        app.router.add_get("/v1/batches/{id}/groups", self._groups)
        app.router.add_delete("/v1/batches/{id}", self._cancel)
        return app

    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        sockets = getattr(site._server, "sockets", None)
        if self.port == 0 and sockets:
            self.port = sockets[0].getsockname()[1]
        self._worker = asyncio.ensure_future(self._work())

    async def stop(self) -> None:
        """Cancel every batch (the running one stops cleanly), stop serving, close the backend
        it created."""
        self._closing = True
        for batch in list(self._queue):
            self._finish(batch, "cancelled")
        self._queue.clear()
        if self._current is not None:
            self._current.stop.set()
            self._current.taken.set()
        self._wake.set()
        if self._worker is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if self._runner is not None:
            await self._runner.cleanup()
        if self._own_backend:
            self.backend.close()

    # -- running batches -------------------------------------------------------------------------
    async def _work(self) -> None:
        while not self._closing:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self._queue.popleft()
            self._current = batch
            try:
                await self._run(batch)
            finally:
                self._current = None

    async def _run(self, batch: _Batch) -> None:
        batch.state = "running"

        async def on_group(group: TrajectoryGroup) -> None:
            batch.finished_groups += 1
            batch.unsent.append(group)
            batch.arrived.set()

        async def admit() -> None:
            while len(batch.unsent) >= self.max_pending_groups and not batch.stop.is_set():
                batch.blocked = True
                batch.taken.clear()
                await batch.taken.wait()
            batch.blocked = False
            batch.started += 1

        try:
            result = await run_rollouts(batch.config, self.engine, backend=self.backend, on_group=on_group,
                                        admit=admit, stop=batch.stop)
        except Exception as e:  # a batch that fails says why on its stream; the service goes on
            log.warning("batch %s failed: %s", batch.id, e)
            batch.error = str(e)
            self._finish(batch, "failed")
            return
        batch.summary = result.summary.to_json() if result.summary else None
        self._finish(batch, "cancelled" if result.stopped_by else "done")

    def _finish(self, batch: _Batch, state: str) -> None:
        batch.state = state
        batch.ended = True
        batch.arrived.set()

    # -- HTTP ------------------------------------------------------------------------------------
    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "model": self.engine.model_name,
                                  "policy_version": self.engine.policy_version,
                                  "running": self._current.id if self._current else None,
                                  "queued": len(self._queue)})

    async def _submit(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "the body is not JSON")
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object")
        missing = [k for k in ("env", "harness", "samples") if k not in body]
        unknown = sorted(set(body) - {"env", "harness", "samples", "policy_version", *BATCH_OPTIONS})
        if missing or unknown:
            return _error(400, f"missing field(s): {', '.join(missing) or 'none'}; unknown field(s): "
                               f"{', '.join(unknown) or 'none'} (optional: {', '.join(BATCH_OPTIONS)})")
        version = body.get("policy_version")
        if version is not None and version != self.engine.policy_version:
            return _error(409, f"policy_version {version} asked, the engine serves {self.engine.policy_version}: "
                               "push the weights (engine.update_weights) before submitting")
        batch_id = uuid.uuid4().hex[:12]
        try:
            env = env_from(str(body["env"]))
            load_harness(str(body["harness"]))
            tasks = select_tasks(env, body.get("task_ids"))
            options = {k: body[k] for k in BATCH_OPTIONS if body.get(k) is not None}
            config = RolloutConfig(env=env, harness=str(body["harness"]), samples=int(body["samples"]),
                                   out_dir=str(self.root / "batches" / batch_id), progress=False, **options)
            if config.samples < 1:
                raise ValueError("samples must be >= 1")
        except (AgentGymError, ValueError, TypeError) as e:
            return _error(400, str(e))
        if len(self._queue) >= self.max_queued:
            return web.json_response({"error": {"message": f"{len(self._queue)} batches wait already; retry later"}},
                                     status=429, headers={"Retry-After": "5"})
        batch = _Batch(id=batch_id, config=config, policy_version=version, tasks=[t.id for t in tasks])
        self.batches[batch_id] = batch
        self._queue.append(batch)
        self._wake.set()
        return web.json_response({"batch_id": batch_id, "state": batch.state, "tasks": batch.tasks}, status=201)

    def _batch(self, request: web.Request) -> _Batch:
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            raise web.HTTPNotFound(text=json.dumps({"error": {"message": f"no batch {request.match_info['id']!r}"}}),
                                   content_type="application/json")
        return batch

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response(self._batch(request).status())

    async def _cancel(self, request: web.Request) -> web.Response:
        batch = self._batch(request)
        if batch in self._queue:
            self._queue.remove(batch)
            self._finish(batch, "cancelled")
        elif batch.state == "running":
            batch.stop.set()
            batch.taken.set()
        return web.json_response(batch.status())

    async def _groups(self, request: web.Request) -> web.StreamResponse:
        batch = self._batch(request)
        if batch.reading:
            return _error(409, f"batch {batch.id} already has a reader")
        batch.reading = True
        try:
            response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
            await response.prepare(request)
            while True:
                if batch.unsent:  # a group leaves the buffer once written: a reader that drops loses none
                    group = batch.unsent[0]
                    await response.write(_line({
                        "type": "group", "task_id": group.task_id, "policy_version": batch.policy_version,
                        "trajectories": [export.trajectory_to_record(t) for t in group.trajectories]}))
                    batch.unsent.popleft()
                    batch.delivered += 1
                    batch.taken.set()
                    continue
                if batch.ended:
                    await response.write(_line({"type": "end", "state": batch.state, "summary": batch.summary,
                                                "error": batch.error}))
                    break
                batch.arrived.clear()
                await batch.arrived.wait()
            await response.write_eof()
            return response
        finally:
            batch.reading = False


def _line(obj: Any) -> bytes:
    return (json.dumps(obj, default=str) + "\n").encode()


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"message": message}}, status=status)
