"""The call journal: every served call, written ahead of its reply, as a delta from its parent.

One JSON Lines file per session, ``<root>/calls/<session>.jsonl``, in which each call is stored
as what is new since the call it extends: the prompt ids after the parent's prompt +
completion, and the conversation items after the parent's request. So a session's journal grows
linearly with its length, and :meth:`CallLog.read` still returns every :class:`Call` with its
exact full ``prompt_ids`` and its whole ``request``.

Lines (format version 2)::

    {"v": 2, "t": "call", "call_id": ..., "prompt_base": "<call id>" | null, "prompt_keep": N,
     "prompt_tail": [...], "conv_key": "messages", "conv_base": ..., "conv_keep": M,
     "request": {... "messages": [<items after the first M>]}, ... [outcome fields]}
    {"v": 2, "t": "outcome", "call_id": ..., "completion_ids": [...], "completion_logprobs": [...], ...}
    {"v": 2, "t": "delivered", "call_id": ...}

A non-streamed call is one ``call`` line with its outcome, written (and acknowledged) before
the reply is sent; a streamed one writes its ``call`` line before the first byte and its
``outcome`` before the last; ``delivered`` follows once the client has the whole reply. A call
with no ``delivered`` line was not delivered. Lines without ``"v"`` are version 1 (a whole
:class:`Call` each) and still read. A torn last line (a crash mid-write) is skipped, and the
next writer starts on a fresh line.

Writes go through one background thread that batches what is queued, writes it with one
``write`` per file, optionally ``fsync``\\ s the batch, and only then acknowledges each record.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from agentgym.errors import ProxyError
from agentgym.proxy.limits import safe_id
from agentgym.proxy.writer import Writer
from agentgym.types import JSON, BreakReason, Call, Divergence, Timings

__all__ = ["CallLog", "CallRecord", "materialize"]

log = logging.getLogger(__name__)

_OUTCOME = ("completion_ids", "completion_logprobs", "response", "finish_reason", "policy_version", "timings",
            "valid_action")


@dataclass
class CallRecord:
    """A call as the journal (and the proxy's memory) keeps it: a delta from an earlier call."""

    call_id: str
    session_id: str
    index: int
    agent_id: str
    parent_call_id: str | None
    break_reason: BreakReason | None
    new_from: int
    prompt_base: str | None
    """The call whose ``prompt_ids + completion_ids`` this prompt starts with."""
    prompt_keep: int
    prompt_tail: Sequence[int]
    request: JSON
    """The body as received, except that ``request[conv_key]`` holds only the items after the first
    ``conv_keep`` of ``conv_base``'s conversation."""
    conv_key: str | None = None
    conv_base: str | None = None
    conv_keep: int = 0
    obs_spans: tuple[tuple[int, int], ...] = ()
    obs_body_spans: tuple[tuple[int, int], ...] | None = None
    sampling: JSON = field(default_factory=dict)
    dialect: str = "openai"
    completion_ids: tuple[int, ...] = ()
    completion_logprobs: tuple[float, ...] = ()
    response: JSON = field(default_factory=dict)
    finish_reason: str = "stop"
    policy_version: int = 0
    timings: Timings = field(default_factory=Timings)
    valid_action: bool = True
    done: bool = False
    """Whether the outcome (completion) is known."""
    request_json: Any = None
    """``request`` already encoded (an ``orjson.Fragment``), when the proxy encoded it early."""
    delivered: bool = False
    replayed_from: str | None = None
    """A branch's replayed call: the recorded call whose completion it served again."""
    divergence: Divergence | None = None
    """Where a branch stopped matching its recorded calls (:class:`~agentgym.types.Divergence`)."""

    def intent_json(self) -> JSON:
        d: JSON = {"v": 2, "t": "call", "call_id": self.call_id, "session_id": self.session_id,
                   "index": self.index, "agent_id": self.agent_id, "parent_call_id": self.parent_call_id,
                   "break_reason": self.break_reason.value if self.break_reason else None,
                   "new_from": self.new_from, "prompt_base": self.prompt_base, "prompt_keep": self.prompt_keep,
                   "prompt_tail": _list(self.prompt_tail), "conv_key": self.conv_key, "conv_base": self.conv_base,
                   "conv_keep": self.conv_keep,
                   "request": self.request_json if self.request_json is not None else self.request, "obs_spans": self.obs_spans,
                   "obs_body_spans": self.obs_body_spans, "sampling": self.sampling, "dialect": self.dialect}
        if self.replayed_from is not None:  # only on branches: other records keep their size
            d["replayed_from"] = self.replayed_from
        if self.divergence is not None:
            d["divergence"] = self.divergence.value
        if self.done:
            d.update({k: v for k, v in self.outcome_json().items() if k not in ("v", "t")})
        return d

    def outcome_json(self) -> JSON:
        t = self.timings
        return {"v": 2, "t": "outcome", "call_id": self.call_id, "completion_ids": self.completion_ids,
                "completion_logprobs": self.completion_logprobs, "response": self.response,
                "finish_reason": self.finish_reason, "policy_version": self.policy_version,
                "timings": {"start": t.start, "first_token": t.first_token, "end": t.end, "queue_s": t.queue_s},
                "valid_action": self.valid_action}

    @classmethod
    def from_json(cls, d: JSON) -> CallRecord:
        rec = cls(call_id=d["call_id"], session_id=d["session_id"], index=int(d["index"]), agent_id=d["agent_id"],
                  parent_call_id=d.get("parent_call_id"),
                  break_reason=BreakReason(d["break_reason"]) if d.get("break_reason") else None,
                  new_from=int(d.get("new_from", 0)), prompt_base=d.get("prompt_base"),
                  prompt_keep=int(d.get("prompt_keep", 0)), prompt_tail=array("i", d["prompt_tail"]),
                  request=d.get("request") or {}, conv_key=d.get("conv_key"), conv_base=d.get("conv_base"),
                  conv_keep=int(d.get("conv_keep", 0)), obs_spans=tuple(tuple(s) for s in d.get("obs_spans", ())),
                  obs_body_spans=(tuple(tuple(s) for s in d["obs_body_spans"])
                                  if d.get("obs_body_spans") is not None else None),
                  sampling=d.get("sampling") or {}, dialect=d.get("dialect", "openai"),
                  replayed_from=d.get("replayed_from"),
                  divergence=Divergence(d["divergence"]) if d.get("divergence") else None)
        if "completion_ids" in d:
            rec.set_outcome(d)
        return rec

    def set_outcome(self, d: JSON) -> None:
        self.completion_ids = tuple(d["completion_ids"])
        self.completion_logprobs = tuple(d["completion_logprobs"])
        self.response = d.get("response") or {}
        self.finish_reason = d.get("finish_reason", "stop")
        self.policy_version = int(d.get("policy_version", 0))
        self.timings = Timings(**(d.get("timings") or {}))
        self.valid_action = bool(d.get("valid_action", True))
        self.done = True


def _list(xs: Sequence[int]) -> Any:
    """Ids for orjson: an int32 array as a zero-copy numpy view (encoded in C)."""
    if isinstance(xs, array) and xs.itemsize == 4:
        import numpy as np

        return np.frombuffer(xs, dtype=np.int32) if len(xs) else []
    return list(xs)


def materialize(records: Iterable[CallRecord | Call]) -> list[Call]:
    """Whole :class:`Call` s (exact full prompts and requests) from records in journal order.
    Records whose base is missing are skipped with a warning; records without an outcome are
    left out."""
    prompts: dict[str, array] = {}
    convs: dict[str, list[Any]] = {}
    out: list[Call] = []
    for r in records:
        if isinstance(r, Call):  # a version 1 line
            prompts[r.call_id] = array("i", r.prompt_ids + r.completion_ids)
            out.append(r)
            continue
        if r.prompt_base is not None and r.prompt_base not in prompts:
            log.warning("journal of %s: call %s extends %s, which is missing; skipped", r.session_id, r.call_id,
                        r.prompt_base)
            continue
        base = prompts[r.prompt_base] if r.prompt_base is not None else array("i")
        if r.prompt_keep > len(base):
            log.warning("journal of %s: call %s extends %s, whose completion is missing; skipped", r.session_id,
                        r.call_id, r.prompt_base)
            continue
        prompt = base[: r.prompt_keep] + (r.prompt_tail if isinstance(r.prompt_tail, array)
                                          else array("i", r.prompt_tail))
        request = r.request
        if r.conv_key is not None:
            head = convs.get(r.conv_base, []) if r.conv_base is not None else []
            conv = head[: r.conv_keep] + list(request.get(r.conv_key) or [])
            convs[r.call_id] = conv
            request = {**request, r.conv_key: conv}
        prompts[r.call_id] = prompt + array("i", r.completion_ids)
        if not r.done:
            continue
        out.append(Call(
            call_id=r.call_id, session_id=r.session_id, index=r.index, agent_id=r.agent_id,
            parent_call_id=r.parent_call_id, break_reason=r.break_reason, request=request, prompt_ids=tuple(prompt),
            completion_ids=r.completion_ids, completion_logprobs=r.completion_logprobs, obs_spans=r.obs_spans,
            obs_body_spans=r.obs_body_spans, new_from=r.new_from, response=r.response,
            finish_reason=r.finish_reason, policy_version=r.policy_version, timings=r.timings,
            delivered=r.delivered, dialect=r.dialect, valid_action=r.valid_action, sampling=r.sampling,
            replayed_from=r.replayed_from, divergence=r.divergence))
    return sorted(out, key=lambda c: c.index)


def _line(obj: JSON) -> bytes:
    try:
        return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE)
    except (orjson.JSONEncodeError, TypeError) as e:
        raise ProxyError(f"the call could not be journaled: {e}", status=500, code="journal_error") from e


class CallLog:
    """Append-only journal of calls, keyed by session; paths are confined to ``<root>/calls``."""

    def __init__(self, root: str | os.PathLike[str], fsync: bool = False) -> None:
        self.root = Path(root)
        self.dir = self.root / "calls"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self._writer = Writer(fsync)
        self._paths: dict[str, Path] = {}

    def path(self, session_id: str) -> Path:
        """The session's journal file. Raises :class:`ProxyError` for an unsafe id."""
        p = self._paths.get(session_id)
        if p is None:
            p = self.dir / f"{safe_id(session_id, 'session id')}.jsonl"
            if p.parent != self.dir:  # belt and braces: never outside the journal directory
                raise ProxyError(f"journal path for {session_id!r} escapes {self.dir}", code="invalid_id")
            if len(self._paths) > 65536:
                self._paths.clear()
            self._paths[session_id] = p
        return p

    def submit(self, session_id: str, obj: JSON) -> concurrent.futures.Future[None]:
        """Queue one record; the future resolves once it is written (and fsynced, if asked)."""
        return self._writer.submit(self.path(session_id), _line(obj))

    async def write(self, session_id: str, obj: JSON) -> None:
        """Write one record and wait until it is on disk (raises if it cannot be written)."""
        if not self.fsync:
            self._writer.write_now(self.path(session_id), _line(obj))
        else:
            await asyncio.wrap_future(self.submit(session_id, obj))

    def post(self, session_id: str, obj: JSON) -> None:
        """Write one record without waiting; a failure is logged (a lost ``delivered`` marker
        reads as undelivered)."""
        if self.fsync:
            self.submit(session_id, obj).add_done_callback(_log_failure)
            return
        try:
            self._writer.write_now(self.path(session_id), _line(obj))
        except Exception as e:
            log.warning("journal of %s: a record was lost (%s: %s)", session_id, type(e).__name__, e)

    def append(self, call: Call) -> None:
        """Write a whole call (not a delta) and wait for it."""
        rec = CallRecord(call_id=call.call_id, session_id=call.session_id, index=call.index,
                         agent_id=call.agent_id, parent_call_id=call.parent_call_id,
                         break_reason=call.break_reason, new_from=call.new_from, prompt_base=None, prompt_keep=0,
                         prompt_tail=call.prompt_ids, request=call.request, obs_spans=call.obs_spans,
                         obs_body_spans=call.obs_body_spans, sampling=call.sampling, dialect=call.dialect,
                         replayed_from=call.replayed_from, divergence=call.divergence)
        rec.set_outcome({k: getattr(call, k) for k in _OUTCOME} | {"timings": call.timings.__dict__})
        self.submit(call.session_id, rec.intent_json()).result()
        if call.delivered:
            self.submit(call.session_id, {"v": 2, "t": "delivered", "call_id": call.call_id}).result()

    def close(self, session_id: str) -> None:
        """Close the session's file (later writes reopen it)."""
        self._writer.close_file(self.path(session_id))

    def stop(self) -> None:
        """Flush and stop the writer thread (later writes start it again)."""
        self._writer.stop()

    def records(self, session_id: str) -> list[CallRecord | Call]:
        """The session's records in journal order, outcomes and deliveries merged in (what this
        process queued is written first)."""
        p = self.path(session_id)
        self._writer.sync()
        return read_journal(p)

    def read(self, session_id: str) -> list[Call]:
        """All calls of a session in arrival order, each whole; a torn last line is skipped."""
        return materialize(self.records(session_id))

    def sessions(self) -> list[str]:
        return sorted(p.stem for p in self.dir.glob("*.jsonl"))


def read_journal(path: str | os.PathLike[str]) -> list[CallRecord | Call]:
    """A session journal's records in journal order, outcomes and deliveries merged in; v1
    records (one whole call per line) read as they are; a torn or unreadable line is skipped
    with a warning. A missing file has no records."""
    p = Path(path)
    if not p.exists():
        return []
    by_id: dict[str, CallRecord] = {}
    out: list[CallRecord | Call] = []
    with open(p, "rb") as f:
        for n, line in enumerate(_lines(f), 1):
            try:
                d = orjson.loads(line)
                kind = d.get("t") if d.get("v") == 2 else "v1"
                if kind == "v1":
                    out.append(Call.from_json(d))
                elif kind == "call" and d["call_id"] not in by_id:
                    rec = CallRecord.from_json(d)
                    by_id[rec.call_id] = rec
                    out.append(rec)
                elif kind == "outcome" and d["call_id"] in by_id:
                    by_id[d["call_id"]].set_outcome(d)
                elif kind == "delivered" and d["call_id"] in by_id:
                    by_id[d["call_id"]].delivered = True
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                log.warning("%s:%d: skipping an unreadable record (%s)", p, n, type(e).__name__)
    return out


def read_calls(path: str | os.PathLike[str]) -> list[Call]:
    """A session journal's calls, each whole, in arrival order (:func:`read_journal`, materialised)."""
    return materialize(read_journal(path))


def _log_failure(fut: concurrent.futures.Future[None]) -> None:
    e = fut.exception()
    if e is not None:
        log.warning("journal: a record was lost (%s: %s)", type(e).__name__, e)


def _lines(f: Any) -> Iterator[bytes]:
    for line in f:
        if line.strip():
            yield line
