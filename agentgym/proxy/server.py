"""The proxy: an OpenAI-compatible HTTP server that serves harnesses from the policy engine and
records every token.

Routes (``<sid>`` is a session opened with :meth:`Proxy.open_session`)::

    POST /s/<sid>/v1/chat/completions            main agent
    POST /s/<sid>/a/<agent>/v1/chat/completions  a named (sub-)agent of the same session
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
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from agentgym.engines.base import Engine
from agentgym.engines.routed import serving_agent
from agentgym.errors import ProxyError
from agentgym.observation import TargetsFn
from agentgym.proxy import openai as oa
from agentgym.proxy.calllog import CallLog
from agentgym.proxy.pipeline import PinnedSampling, Pipeline, Request, Served, Session
from agentgym.proxy.splice import SpliceIndex
from agentgym.runtime.base import ProxyEndpoint
from agentgym.tokens.render import ChatRenderer
from agentgym.types import Call

UNIX_PATH_MAX = 107
"""Longest Unix socket path (``sun_path`` holds 108 bytes with the terminating NUL)."""


class Proxy:
    """Serves one engine to many sessions; journals every call under ``journal_dir``.

    Args:
        engine: the policy engine (its tokenizer's chat template renders prompts).
        journal_dir: where the call journal lives (``<dir>/calls/<session>.jsonl``).
        default_max_tokens: completion budget when a request names none.
        pinned_sampling: temperature / top-p every call is sampled with, whatever the harness asks
            (training runs pin them); ``None`` honours each request.
        max_model_len: prompt + completion limit; longer requests get a 400
            ``context_length_exceeded``.
        allow_new_sessions: serve unknown session ids by opening them on first use (handy for
            pointing a harness at the proxy by hand); off by default so typos are 404s.
        unix_socket: also listen on this Unix socket path (``True``: ``<journal_dir>/sock/proxy.sock``;
            ``False``: TCP only). Sandboxes mount the socket's directory, so it should hold
            nothing else.
    """

    def __init__(self, engine: Engine, journal_dir: str | Path, *, host: str = "127.0.0.1", port: int = 0,
                 default_max_tokens: int = 512, max_model_len: int = 32768,
                 allow_new_sessions: bool = False, pinned_sampling: PinnedSampling | None = None,
                 unix_socket: bool | str | Path = True) -> None:
        self.engine = engine
        self.renderer = ChatRenderer(engine.tokenizer)
        self.journal = CallLog(journal_dir)
        self.host = host
        self.port = port
        self._unix_request = unix_socket
        self.unix_socket: Path | None = None
        """The Unix socket it listens on once started (``None`` before, or when off)."""
        self._tmp_socket_dir: Path | None = None
        self.default_max_tokens = default_max_tokens
        self.allow_new_sessions = allow_new_sessions
        self.pipeline = Pipeline(engine, self.renderer, self.journal, max_model_len, pinned_sampling)
        self.sessions: dict[str, Session] = {}
        self._runner: web.AppRunner | None = None

    @property
    def max_model_len(self) -> int:
        """Prompt + completion limit (longer requests get a 400 ``context_length_exceeded``)."""
        return self.pipeline.max_model_len

    @max_model_len.setter
    def max_model_len(self, value: int) -> None:
        self.pipeline.max_model_len = value

    # -- lifecycle ---------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[self._errors])
        app.router.add_get("/health", self._health)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/s/{sid}/v1/models", self._models)
        app.router.add_post("/s/{sid}/v1/chat/completions", self._chat)
        app.router.add_post("/s/{sid}/a/{agent}/v1/chat/completions", self._chat)
        app.router.add_post("/v1/chat/completions", self._no_session)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None, handler_cancellation=False)
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
                     targets: TargetsFn | None = None) -> str:
        """Open a session; ``targets`` narrows its observations to environment output (the
        harness's :meth:`~agentgym.harness.Harness.observation_targets`)."""
        sid = session_id or uuid.uuid4().hex[:16]
        if sid in self.sessions:
            raise ProxyError(f"session {sid!r} is already open", status=409, code="session_exists")
        self.sessions[sid] = Session(id=sid, index=SpliceIndex(self.renderer, targets=targets), metadata=metadata or {})
        return sid

    def close_session(self, session_id: str) -> list[Call]:
        """Forget a session's in-memory index (its journal stays); returns its calls."""
        s = self.sessions.pop(session_id, None)
        return list(s.calls) if s else self.journal.read(session_id)

    def calls(self, session_id: str) -> list[Call]:
        s = self.sessions.get(session_id)
        return sorted(s.calls, key=lambda c: c.index) if s else self.journal.read(session_id)

    def session_errors(self, session_id: str) -> list[str]:
        s = self.sessions.get(session_id)
        return list(s.errors) if s else []

    def base_url(self, session_id: str, agent: str | None = None, host: str | None = None) -> str:
        agent_part = f"/a/{agent}" if agent else ""
        return f"http://{host or self.host}:{self.port}/s/{session_id}{agent_part}/v1"

    # -- handlers ----------------------------------------------------------------------------
    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except ProxyError as e:
            return web.json_response(oa.error_body(e), status=e.status)
        except web.HTTPException as e:  # unknown routes, wrong methods: answer in the same dialect
            err = ProxyError(f"{request.method} {request.path}: {e.reason}", status=e.status,
                             code="not_found" if e.status == 404 else "invalid_request_error")
            return web.json_response(oa.error_body(err), status=e.status)

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "sessions": len(self.sessions)})

    async def _models(self, request: web.Request) -> web.Response:
        sid = request.match_info.get("sid")
        if sid is not None:
            self._session(sid)
        return web.json_response({"object": "list", "data": [
            {"id": self.engine.model_name, "object": "model", "created": 0, "owned_by": "agentgym"}]})

    async def _no_session(self, request: web.Request) -> web.Response:
        raise ProxyError("no session in the URL: point the harness at a session base URL "
                         "(http://HOST:PORT/s/<session>/v1), opened with Proxy.open_session()",
                         status=404, code="session_not_found")

    def _session(self, sid: str) -> Session:
        s = self.sessions.get(sid)
        if s is None:
            if self.allow_new_sessions:
                self.open_session(sid)
                return self.sessions[sid]
            raise ProxyError(f"unknown session {sid!r}: open it with Proxy.open_session() first, "
                             "or check the base URL the harness was given", status=404, code="session_not_found")
        return s

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        session = self._session(request.match_info["sid"])
        raw = await request.read()
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ProxyError(f"malformed JSON body: {e}", code="invalid_json") from None
        req = oa.parse_chat_request(body, self.default_max_tokens, self.max_model_len)
        agent = request.match_info.get("agent") or request.headers.get("X-AgentGym-Agent")
        with serving_agent(agent):  # an AgentRoutedEngine serves each agent role its own policy
            served = await self.pipeline.generate(session, req, agent)
        resp, delivered = await self._respond(request, req, served)
        self.pipeline.record(session, req, served, delivered, dialect="openai")
        return resp

    async def _respond(self, request: web.Request, req: Request, served: Served) -> tuple[web.StreamResponse, bool]:
        """Write the response in the OpenAI dialect; returns it and whether it reached the client."""
        gen, message, model = served.gen, served.message, req.model or self.engine.model_name
        usage = {"prompt_tokens": served.prompt_tokens, "completion_tokens": served.completion_tokens,
                 "total_tokens": served.prompt_tokens + served.completion_tokens}
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
                                  if req.stream else {"Content-Type": "application/json"})
        try:
            if req.stream:
                await resp.prepare(request)
                pieces = self.pipeline.content_pieces(gen.completion_ids, message.get("content") or "")
                for chunk in oa.stream_chunks(served.call_id, model, message, served.finish, pieces,
                                              usage if req.include_usage else None):
                    await resp.write(b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + b"\n\n")
                await resp.write(b"data: [DONE]\n\n")
                await resp.write_eof()
            else:
                logprobs = ([{"token": self.renderer.tokenizer.convert_ids_to_tokens(t), "logprob": p,
                              "top_logprobs": []} for t, p in zip(gen.completion_ids, gen.logprobs, strict=True)]
                            if req.logprobs else None)
                payload = json.dumps(oa.completion_body(served.call_id, model, message, served.finish,
                                                        served.prompt_tokens, served.completion_tokens, logprobs),
                                     ensure_ascii=False).encode()
                resp.content_length = len(payload)
                await resp.prepare(request)
                await resp.write(payload)
                await resp.write_eof()
        except (ConnectionError, RuntimeError):  # the client went away mid-response
            return resp, False
        return resp, True
