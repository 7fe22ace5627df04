"""A Python client of the rollout service (:mod:`agentgym.rollout.service`), on httpx.

>>> import asyncio
>>> async def collect(url: str) -> list[float]:                     # doctest: +SKIP
...     async with RolloutClient(url) as client:
...         batch = await client.submit("terminal/hello-file-v0", "agentgym/react-v0", samples=4,
...                                     policy_version=None)
...         return [t.reward async for group in client.groups(batch) for t in group.trajectories]
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx

from agentgym import export
from agentgym.errors import AgentGymError
from agentgym.types import TrajectoryGroup

__all__ = ["BatchEnded", "RolloutClient", "RolloutServiceError"]


class RolloutServiceError(AgentGymError):
    """The service refused a request: ``status`` is the HTTP status (400 bad batch, 404 no such
    batch, 409 wrong policy version or a second reader, 429 too many batches queued)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(f"rollout service answered {status}: {message}")

    def __reduce__(self) -> tuple[type[RolloutServiceError], tuple[int, str]]:
        return (RolloutServiceError, (self.status, str(self)))


class BatchEnded(dict[str, Any]):
    """The last line of a batch's stream: ``state`` (``done``, ``cancelled``, ``failed``),
    ``summary`` (the run's :class:`~agentgym.rollout.metrics.RunSummary` as JSON), ``error``."""


class RolloutClient:
    """Submit batches, read their groups as they complete, cancel them. Use ``async with``.

    Args:
        base_url: the service's URL (``http://127.0.0.1:8100``).
        timeout: seconds for each request but the groups' stream (which waits for episodes).
    """

    def __init__(self, base_url: str, *, timeout: float = 30.0, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport)
        self.ended: dict[str, BatchEnded] = {}
        """Each batch's end line once its stream was read to the end."""

    async def __aenter__(self) -> RolloutClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _json(self, method: str, path: str, body: Any = None) -> Any:
        response = await self._http.request(method, path, json=body)
        if response.status_code >= 400:
            raise RolloutServiceError(response.status_code, _message(response.text))
        return response.json()

    async def health(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._json("GET", "/v1/health")
        return result

    async def submit(self, env: str, harness: str, *, samples: int, policy_version: int | None,
                     task_ids: Sequence[str] | None = None, **options: Any) -> str:
        """Queue a batch; returns its id. ``options``: ``concurrency``, ``max_steps``,
        ``timeout_s``, ``warm_pool``, ``overprovision`` (:data:`~agentgym.rollout.service.BATCH_OPTIONS`)."""
        body = {"env": env, "harness": harness, "samples": samples, "policy_version": policy_version,
                "task_ids": list(task_ids) if task_ids else None, **options}
        return str((await self._json("POST", "/v1/batches", body))["batch_id"])

    async def status(self, batch_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._json("GET", f"/v1/batches/{batch_id}")
        return result

    async def cancel(self, batch_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._json("DELETE", f"/v1/batches/{batch_id}")
        return result

    async def groups(self, batch_id: str) -> AsyncIterator[TrajectoryGroup]:
        """Each task's group as it completes (trajectories rebuilt from their dataset records);
        the end line goes to :attr:`ended`. Reading slowly holds the batch back (backpressure)."""
        async with self._http.stream("GET", f"/v1/batches/{batch_id}/groups",
                                     timeout=httpx.Timeout(self._http.timeout.connect, read=None)) as response:
            if response.status_code >= 400:
                raise RolloutServiceError(response.status_code, _message((await response.aread()).decode()))
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                item = json.loads(line)
                if item.get("type") == "end":
                    self.ended[batch_id] = BatchEnded(item)
                    return
                trajectories = tuple(export.trajectory_from_record(r) for r in item["trajectories"])
                yield TrajectoryGroup(task_id=item["task_id"], trajectories=trajectories)

    async def run(self, env: str, harness: str, *, samples: int, policy_version: int | None,
                  task_ids: Sequence[str] | None = None, **options: Any) -> list[TrajectoryGroup]:
        """Submit a batch and return all its groups once it ends."""
        batch = await self.submit(env, harness, samples=samples, policy_version=policy_version, task_ids=task_ids,
                                  **options)
        return [group async for group in self.groups(batch)]


def _message(text: str) -> str:
    try:
        return str(json.loads(text)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return text[:500]
