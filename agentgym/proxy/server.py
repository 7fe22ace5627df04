"""The proxy: an HTTP server that serves harnesses from the policy engine in their own API dialect
and records every token.

Routes (``<sid>`` is a session opened with :meth:`Proxy.open_session`; every ``/s/<sid>/...``
route also exists as ``/s/<sid>/a/<agent>/...`` for a named sub-agent, or send the header
``X-AgentGym-Agent``)::

    POST /s/<sid>/v1/chat/completions          OpenAI Chat Completions
    POST /s/<sid>/v1/responses                 OpenAI Responses (Codex CLI)
    POST /s/<sid>/v1/messages                  Anthropic Messages (Claude Code)
    POST /s/<sid>/v1/messages/count_tokens     Anthropic token counting
    GET  /s/<sid>/v1/models    GET /v1/models    GET /health

It listens on TCP (``host:port``) and, by default, on a Unix socket in a directory of its own
(``<journal_dir>/sock/proxy.sock``, or a short temporary directory when that path is too long
for a socket): the same app on both. Sandboxes without a network reach it through that socket
(:meth:`Proxy.endpoint`, ``RuntimeSpec(network="proxy", proxy=...)``).

Example (a harness only needs the base URL)::

    proxy = Proxy(engine, journal_dir="runs/demo")
    await proxy.start()
    sid = proxy.open_session()
    base_url = proxy.base_url(sid)      # http://127.0.0.1:<port>/s/<sid>/v1
    ...                                 # run the harness with OPENAI_BASE_URL=base_url
    calls = proxy.calls(sid)            # -> agentgym.reconstruct.reconstruct(calls)

See ``docs/proxy.md`` for dialects, streaming, limits, errors, weight updates and the journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from agentgym.engines.base import Engine
from agentgym.engines.routed import serving_agent
from agentgym.errors import ProxyError
from agentgym.observation import TargetsFn
from agentgym.proxy.anthropic import Messages
from agentgym.proxy.calllog import CallLog, materialize
from agentgym.proxy.dialect import Dialect
from agentgym.proxy.limits import Limits, decode_body, parse_json, safe_id
from agentgym.proxy.openai import ChatCompletions
from agentgym.proxy.pipeline import Pending, PinnedSampling, Pipeline, Session
from agentgym.proxy.replay import Replay
from agentgym.proxy.responses import Responses
from agentgym.runtime.base import ProxyEndpoint
from agentgym.tokens.render import ChatRenderer
from agentgym.types import Call

log = logging.getLogger(__name__)

UNIX_PATH_MAX = 107
"""Longest Unix socket path (``sun_path`` holds 108 bytes with the terminating NUL)."""

CHAT, RESPONSES, MESSAGES = ChatCompletions(), Responses(), Messages()
_SSE = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


class OneWrite(web.StreamResponse):
    """Headers go out with the body, in one send (as aiohttp's own ``web.Response`` does), while
    a failed write still tells the handler the reply was not delivered."""

    _send_headers_immediately = False


class Proxy:
    """Serves one engine to many sessions; journals every call under ``journal_dir``.

    Args:
        engine: the policy engine (its tokenizer's chat template renders prompts).
        journal_dir: where the call journal lives (``<dir>/calls/<session>.jsonl``).
        default_max_tokens: completion budget when a request names none.
        pinned_sampling: temperature / top-p every call is sampled with, whatever the harness asks
            (training runs pin them); ``None`` honours each request.
        max_model_len: prompt + completion limit (default: the engine's); longer requests get
            each dialect's context-length error.
        allow_new_sessions: serve unknown session ids by opening them on first use (handy for
            pointing a harness at the proxy by hand); off by default so typos are 404s.
        limits: request size limits (:class:`~agentgym.proxy.limits.Limits`).
        on_update: while :meth:`update_weights` runs, ``"hold"`` new requests until it is done,
            or ``"reject"`` them with a 429 and ``Retry-After``.
        fsync: fsync the journal (in batches) before acknowledging a call; without it a record
            survives a crash of the process but not of the machine.
        unix_socket: also listen on this Unix socket path (``True``: ``<journal_dir>/sock/proxy.sock``;
            ``False``: TCP only). Sandboxes mount the socket's directory, so it should hold
            nothing else.
        freeze_gc: at start, move every object that exists then (the libraries, a loaded model)
            out of the cyclic garbage collector's reach (:func:`gc.freeze`), so its full
            collections walk only what the proxy allocates since: they otherwise stall every
            client for tens of milliseconds.
        seed: give every call that carries no seed of its own one derived from this seed, the
            session, the (sub-)agent and the call's number (:func:`~agentgym.proxy.pipeline.call_seed`):
            a seeded run draws the same tokens however its episodes interleave or wherever they run.
    """

    def __init__(self, engine: Engine, journal_dir: str | Path, *, host: str = "127.0.0.1", port: int = 0,
                 default_max_tokens: int = 512, max_model_len: int | None = None,
                 allow_new_sessions: bool = False, pinned_sampling: PinnedSampling | None = None,
                 limits: Limits | None = None, on_update: str = "hold", retry_after_s: float = 2.0,
                 fsync: bool = False, freeze_gc: bool = True, unix_socket: bool | str | Path = True,
                 seed: int | None = None) -> None:
        if on_update not in ("hold", "reject"):
            raise ProxyError(f"on_update={on_update!r}: use 'hold' or 'reject'", status=500, code="server_error")
        self.engine = engine
        self.renderer = ChatRenderer(engine.tokenizer)
        self.journal = CallLog(journal_dir, fsync=fsync)
        self.host = host
        self.port = port
        self._unix_request = unix_socket
        self.unix_socket: Path | None = None
        """The Unix socket it listens on once started (``None`` before, or when off)."""
        self._tmp_socket_dir: Path | None = None
        self.default_max_tokens = default_max_tokens
        self.allow_new_sessions = allow_new_sessions
        self.limits = limits or Limits()
        self.on_update = on_update
        self.retry_after_s = retry_after_s
        self.freeze_gc = freeze_gc
        self._asked_len = max_model_len
        self.pipeline = Pipeline(engine, self.renderer, self.journal, max_model_len or 32768, pinned_sampling,
                                 self.limits, seed=seed)
        self.sessions: dict[str, Session] = {}
        self._runner: web.AppRunner | None = None
        self._open = asyncio.Event()
        self._open.set()
        self._inflight = 0
        self._drained = asyncio.Event()
        self._drained.set()

    @property
    def max_model_len(self) -> int:
        """Prompt + completion limit (longer requests get a context-length error)."""
        return self.pipeline.max_model_len

    @max_model_len.setter
    def max_model_len(self, value: int) -> None:
        self.pipeline.max_model_len = value

    # -- lifecycle ---------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.limits.max_body_bytes, middlewares=[self._errors])
        app.router.add_get("/health", self._health)
        app.router.add_get("/v1/models", self._models)
        for prefix in ("/s/{sid}", "/s/{sid}/a/{agent}"):
            app.router.add_get(prefix + "/v1/models", self._models)
            app.router.add_post(prefix + "/v1/chat/completions", self._chat)
            app.router.add_post(prefix + "/v1/responses", self._responses)
            app.router.add_post(prefix + "/v1/messages", self._messages)
            app.router.add_post(prefix + "/v1/messages/count_tokens", self._count_tokens)
        for path in ("/v1/chat/completions", "/v1/responses", "/v1/messages"):
            app.router.add_post(path, self._no_session)
        return app

    async def start(self) -> None:
        engine_len = await self.engine.context_length()
        if engine_len:
            self.pipeline.max_model_len = min(self._asked_len or engine_len, engine_len)
        # auto_decompress=False: bodies are decoded by _body(), with the size limit on the decoded
        # bytes and a 400 in the dialect for one that does not decode (aiohttp's own decoding fails
        # inside its parser, and again while draining a body left unread, resetting the connection).
        self._runner = web.AppRunner(self.app(), access_log=None, handler_cancellation=False, auto_decompress=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        sockets = getattr(site._server, "sockets", None)
        if self.port == 0 and sockets:
            self.port = sockets[0].getsockname()[1]
        if self._unix_request is not False:
            path = self._socket_path()
            path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # a stale socket of an earlier run in the same directory
            await web.UnixSite(self._runner, str(path)).start()
            # Sandboxes may run their commands as another user than ours.
            path.chmod(0o666)
            self.unix_socket = path

    def _socket_path(self) -> Path:
        if self._unix_request is not True:
            return Path(str(self._unix_request))
        path = (self.journal.root / "sock" / "proxy.sock").absolute()
        if len(os.fsencode(path)) <= UNIX_PATH_MAX:
            return path
        self._tmp_socket_dir = Path(tempfile.mkdtemp(prefix="agentgym-proxy-"))
        self._tmp_socket_dir.chmod(0o755)
        return self._tmp_socket_dir / "proxy.sock"
        if self.freeze_gc:
            gc.collect()
            gc.freeze()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.unix_socket is not None:
            with contextlib.suppress(OSError):
                self.unix_socket.unlink()
            self.unix_socket = None
        if self._tmp_socket_dir is not None:
            shutil.rmtree(self._tmp_socket_dir, ignore_errors=True)
            self._tmp_socket_dir = None
        await asyncio.get_running_loop().run_in_executor(None, self.journal.stop)

    def endpoint(self) -> ProxyEndpoint:
        """Where a ``network="proxy"`` sandbox reaches this proxy (after :meth:`start`): its Unix
        socket, seen inside on 127.0.0.1 at this proxy's port, so :meth:`base_url` works there."""
        if self.unix_socket is None:
            raise ProxyError("the proxy has no Unix socket: start() it (with unix_socket enabled) first",
                             status=500, code="no_unix_socket")
        return ProxyEndpoint(socket=str(self.unix_socket), port=self.port, hide=(str(self.journal.root.absolute()),))

    async def __aenter__(self) -> Proxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- sessions ----------------------------------------------------------------------------
    def open_session(self, session_id: str | None = None, metadata: Mapping[str, Any] | None = None,
                     targets: TargetsFn | None = None, replay: Sequence[Call] | None = None) -> str:
        """Open a session; ``targets`` narrows its observations to environment output (the
        harness's :meth:`~agentgym.harness.Harness.observation_targets`). ``replay``: recorded
        calls (another session's, in order) that answer this session's first requests instead of
        the engine, while the requests match them (a branch; :mod:`agentgym.proxy.replay`)."""
        sid = safe_id(session_id, "session id") if session_id is not None else uuid.uuid4().hex[:16]
        if sid in self.sessions:
            raise ProxyError(f"session {sid!r} is already open", status=409, code="session_exists")
        self.sessions[sid] = Session(id=sid, metadata=metadata or {}, targets=targets,
                                     replay=Replay(list(replay)) if replay else None)
        return sid

    def close_session(self, session_id: str) -> list[Call]:
        """Forget a session's in-memory index (its journal stays); returns its calls."""
        s = self.sessions.pop(session_id, None)
        if s is None:
            return self.journal.read(session_id)
        self.journal.close(session_id)
        return materialize(s.records)

    def calls(self, session_id: str) -> list[Call]:
        s = self.sessions.get(session_id)
        return materialize(s.records) if s else self.journal.read(session_id)

    def session_errors(self, session_id: str) -> list[str]:
        s = self.sessions.get(session_id)
        return list(s.errors) if s else []

    def context_overflow(self, session_id: str) -> bool:
        """Whether the session's last request was refused for its length, with nothing served since."""
        s = self.sessions.get(session_id)
        return bool(s and s.context_overflow)

    def base_url(self, session_id: str, agent: str | None = None, host: str | None = None) -> str:
        agent_part = f"/a/{agent}" if agent else ""
        return f"http://{host or self.host}:{self.port}/s/{session_id}{agent_part}/v1"

    # -- weight updates ----------------------------------------------------------------------
    async def update_weights(self, state_dict: dict[str, Any], version: int) -> None:
        """Push new weights into the engine between calls: new requests wait (or get a 429,
        see ``on_update``), calls in flight finish on the old weights, then the engine updates."""
        self._open.clear()
        try:
            await self._drained.wait()
            await self.engine.update_weights(state_dict, version)
        finally:
            self._open.set()

    async def _admit(self) -> None:
        while not self._open.is_set():
            if self.on_update == "reject":
                raise ProxyError("the policy's weights are being updated; retry shortly", status=429,
                                 code="updating_weights")
            await self._open.wait()
        self._inflight += 1
        self._drained.clear()

    def _leave(self) -> None:
        self._inflight -= 1
        if self._inflight == 0:
            self._drained.set()

    # -- handlers ----------------------------------------------------------------------------
    @staticmethod
    def _dialect_of(path: str) -> Dialect:
        if "/messages" in path:
            return MESSAGES
        return RESPONSES if path.endswith("/responses") else CHAT

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        dialect = self._dialect_of(request.path)
        try:
            return await handler(request)
        except ProxyError as e:
            err = e
        except web.HTTPException as e:  # unknown routes, wrong methods, bodies too large
            err = ProxyError(f"{request.method} {request.path[:200]}: {e.reason}", status=e.status,
                             code="not_found" if e.status == 404 else "invalid_request_error")
        except Exception as e:  # a bug: answer in dialect, keep serving
            log.exception("proxy error on %s", request.path)
            err = ProxyError(f"internal error: {type(e).__name__}: {e}", status=500, code="server_error")
        headers = {"Retry-After": f"{self.retry_after_s:g}"} if err.status == 429 else None
        return web.json_response(dialect.error_body(err), status=err.status, headers=headers,
                                 dumps=lambda o: orjson.dumps(o).decode())

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "sessions": len(self.sessions)})

    async def _models(self, request: web.Request) -> web.Response:
        sid = request.match_info.get("sid")
        if sid is not None:
            self._session(sid)
        return web.json_response({"object": "list", "data": [
            {"id": self.engine.model_name, "object": "model", "created": 0, "owned_by": "agentgym",
             "max_model_len": self.max_model_len}]})

    async def _no_session(self, request: web.Request) -> web.Response:
        raise ProxyError("no session in the URL: point the harness at a session base URL "
                         "(http://HOST:PORT/s/<session>/v1), opened with Proxy.open_session()",
                         status=404, code="session_not_found")

    def _session(self, sid: str) -> Session:
        sid = safe_id(sid, "session id")
        s = self.sessions.get(sid)
        if s is None:
            if self.allow_new_sessions:
                self.open_session(sid)
                return self.sessions[sid]
            raise ProxyError(f"unknown session {sid!r}: open it with Proxy.open_session() first, "
                             "or check the base URL the harness was given", status=404, code="session_not_found")
        return s

    async def _body(self, request: web.Request) -> Any:
        """The decoded JSON body, its size checked before it is read."""
        limit = self.limits.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise ProxyError(f"request body of {request.content_length} bytes is over the {limit}-byte limit",
                             status=413, code="request_too_large")
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise ProxyError(f"request body is over the {limit}-byte limit", status=413,
                             code="request_too_large") from None
        raw = decode_body(raw, request.headers.get("Content-Encoding", ""), limit)
        if len(raw) > self.limits.offload_body_bytes:
            return await asyncio.get_running_loop().run_in_executor(self.pipeline.executor, parse_json, raw)
        return parse_json(raw)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, CHAT)

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, RESPONSES)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, MESSAGES)

    def _agent(self, request: web.Request) -> str | None:
        agent = request.match_info.get("agent") or request.headers.get("X-AgentGym-Agent")
        return safe_id(agent, "agent id") if agent is not None else None

    async def _count_tokens(self, request: web.Request) -> web.Response:
        self._session(request.match_info["sid"])
        self._agent(request)
        body = await self._body(request)
        req = MESSAGES.parse({**body, "max_tokens": 1} if isinstance(body, dict) else body,
                             self.default_max_tokens, counting=True)
        n = await self.pipeline.count_tokens(req, MESSAGES)
        return web.json_response({"input_tokens": n})

    async def _serve(self, request: web.Request, dialect: Dialect) -> web.StreamResponse:
        session = self._session(request.match_info["sid"])
        agent = self._agent(request)
        body = await self._body(request)
        req = dialect.parse(body, self.default_max_tokens)
        await self._admit()
        try:
            with serving_agent(agent):  # an AgentRoutedEngine serves each agent role its own policy
                try:
                    p = await self.pipeline.prepare(session, req, agent, dialect)
                except ProxyError as e:
                    if req.stream and dialect.error_in_stream(e):
                        return await self._stream_error(request, dialect, req, e)
                    raise
                if req.stream:
                    return await self._stream(request, dialect, p)
                served = await self.pipeline.generate(p)
            payload = orjson.dumps(dialect.reply(served, req))
            await self.pipeline.journal_outcome(p, intent_written=False)  # never a 200 for a call not on disk
        finally:
            self._leave()
        resp = OneWrite(headers={"Content-Type": "application/json"})
        resp.content_length = len(payload)
        try:
            await resp.prepare(request)
            await resp.write(payload)
            await resp.write_eof()
        except (ConnectionError, RuntimeError):  # the client went away mid-response
            return resp
        self.pipeline.delivered(p)
        return resp

    async def _stream_error(self, request: web.Request, dialect: Dialect, req: Any, err: ProxyError) -> web.StreamResponse:
        writer = dialect.stream(uuid.uuid4().hex[:12], req, 0)
        resp = web.StreamResponse(headers=_SSE)
        try:
            await resp.prepare(request)
            await resp.write(writer.start() + writer.error(err))
            await resp.write_eof()
        except (ConnectionError, RuntimeError):
            pass
        return resp

    async def _stream(self, request: web.Request, dialect: Dialect, p: Pending) -> web.StreamResponse:
        await self.pipeline.journal_intent(p)  # before the 200 goes out
        writer = dialect.stream(p.record.call_id, p.req, len(p.plan.prompt_ids))
        resp = web.StreamResponse(headers=_SSE)
        deltas = self.pipeline.stream(p)
        try:
            await resp.prepare(request)
            await resp.write(writer.start())
            try:
                async for kind, text in deltas:
                    await resp.write(writer.delta(kind, text))
                assert p.served is not None
                await self.pipeline.journal_outcome(p, intent_written=True)
            except ProxyError as e:  # the engine or the journal failed after the 200
                self.pipeline.abandon(p)
                await resp.write(writer.error(e))
                await resp.write_eof()
                return resp
            await resp.write(writer.finish(p.served))
            await resp.write_eof()
        except (ConnectionError, RuntimeError):  # the client went away mid-stream
            await deltas.aclose()  # type: ignore[attr-defined]
            self.pipeline.abandon(p)
            return resp
        self.pipeline.delivered(p)
        return resp
