"""The proxy: an OpenAI-compatible HTTP server that serves harnesses from the policy engine and
records every token.

Routes (``<sid>`` is a session opened with :meth:`Proxy.open_session`)::

    POST /s/<sid>/v1/chat/completions            main agent
    POST /s/<sid>/a/<agent>/v1/chat/completions  a named (sub-)agent of the same session
    GET  /s/<sid>/v1/models    GET /v1/models    GET /health

Example (a harness only needs the base URL)::

    proxy = Proxy(engine, journal_dir="runs/demo")
    await proxy.start()
    sid = proxy.open_session()
    base_url = proxy.base_url(sid)      # http://127.0.0.1:<port>/s/<sid>/v1
    ...                                 # run the harness with OPENAI_BASE_URL=base_url
    calls = proxy.calls(sid)            # -> agentgym.reconstruct.reconstruct(calls)
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from agentgym.engines.base import Engine, Generation
from agentgym.errors import AgentGymError, ProxyError
from agentgym.proxy import openai as oa
from agentgym.proxy.calllog import CallLog
from agentgym.proxy.splice import SpliceIndex
from agentgym.tokens.render import ChatRenderer
from agentgym.tokens.toolcalls import parse_hermes
from agentgym.types import Call, Timings


@dataclass
class Session:
    id: str
    index: SpliceIndex
    metadata: Mapping[str, Any] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    next_index: int = 0
    errors: list[str] = field(default_factory=list)
    """Engine failures seen while serving this session (the rollout records them)."""


class Proxy:
    """Serves one engine to many sessions; journals every call under ``journal_dir``.

    Args:
        engine: the policy engine (its tokenizer's chat template renders prompts).
        journal_dir: where the call journal lives (``<dir>/calls/<session>.jsonl``).
        default_max_tokens: completion budget when a request names none.
        max_model_len: prompt + completion limit; longer requests get a 400
            ``context_length_exceeded``.
        allow_new_sessions: serve unknown session ids by opening them on first use (handy for
            pointing a harness at the proxy by hand); off by default so typos are 404s.
    """

    def __init__(self, engine: Engine, journal_dir: str | Path, *, host: str = "127.0.0.1", port: int = 0,
                 default_max_tokens: int = 512, max_model_len: int = 32768,
                 allow_new_sessions: bool = False) -> None:
        self.engine = engine
        self.renderer = ChatRenderer(engine.tokenizer)
        self.journal = CallLog(journal_dir)
        self.host = host
        self.port = port
        self.default_max_tokens = default_max_tokens
        self.max_model_len = max_model_len
        self.allow_new_sessions = allow_new_sessions
        self.sessions: dict[str, Session] = {}
        self._runner: web.AppRunner | None = None

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

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Proxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- sessions ----------------------------------------------------------------------------
    def open_session(self, session_id: str | None = None, metadata: Mapping[str, Any] | None = None) -> str:
        sid = session_id or uuid.uuid4().hex[:16]
        if sid in self.sessions:
            raise ProxyError(f"session {sid!r} is already open", status=409, code="session_exists")
        self.sessions[sid] = Session(id=sid, index=SpliceIndex(self.renderer), metadata=metadata or {})
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
        t_start = time.time()
        session = self._session(request.match_info["sid"])
        raw = await request.read()
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ProxyError(f"malformed JSON body: {e}", code="invalid_json") from None
        req = oa.parse_chat_request(body, self.default_max_tokens, self.max_model_len)
        agent = request.match_info.get("agent") or request.headers.get("X-AgentGym-Agent")
        plan = session.index.plan(req.messages, req.tools, req.tool_choice, agent)
        if len(plan.prompt_ids) + 1 > self.max_model_len:
            # OpenAI's wording: clients (litellm, hence mini-swe-agent) stop instead of retrying on it.
            raise ProxyError(f"This model's maximum context length is {self.max_model_len} tokens. However, "
                             f"your messages resulted in {len(plan.prompt_ids)} tokens.",
                             code="context_length_exceeded", param="messages")
        sampling = req.sampling
        room = self.max_model_len - len(plan.prompt_ids)
        if sampling.max_tokens > room:
            sampling = dataclasses.replace(sampling, max_tokens=room)
        index = session.next_index
        session.next_index += 1
        call_id = f"{session.id}-{index:04d}"
        try:
            gen: Generation = await self.engine.generate(plan.prompt_ids, sampling)
        except AgentGymError as e:
            session.errors.append(f"{type(e).__name__}: {e}")
            raise ProxyError(f"the engine failed: {e}", status=500, code="engine_error") from e
        except Exception as e:  # an engine bug must not take the proxy down
            session.errors.append(f"{type(e).__name__}: {e}")
            raise ProxyError(f"the engine failed: {type(e).__name__}: {e}", status=500, code="engine_error") from e
        t_gen = time.time()

        text = self.renderer.decode(gen.completion_ids)
        if gen.finish_reason == "stop":
            for s in sampling.stop:
                if s and s in text:
                    text = text[: text.index(s)]
        parsed = parse_hermes(text, f"{session.id[:8]}{index}", tools_offered=bool(req.tools))
        message: dict[str, Any] = {"role": "assistant", "content": parsed.content}
        if parsed.tool_calls:
            message["tool_calls"] = parsed.tool_calls
        reason = oa.finish_reason(gen.finish_reason, bool(parsed.tool_calls))
        model = req.model or self.engine.model_name
        lp = ([{"token": self.renderer.tokenizer.convert_ids_to_tokens(t), "logprob": p, "top_logprobs": []}
               for t, p in zip(gen.completion_ids, gen.logprobs, strict=True)] if req.logprobs else None)
        resp, delivered = await self._respond(request, req, call_id, model, message, reason, gen,
                                              len(plan.prompt_ids), lp)
        call = Call(
            call_id=call_id, session_id=session.id, index=index, agent_id=plan.agent_id,
            parent_call_id=plan.parent_call_id, break_reason=plan.break_reason, request=body,
            prompt_ids=plan.prompt_ids, completion_ids=gen.completion_ids,
            completion_logprobs=gen.logprobs, obs_spans=plan.obs_spans, new_from=plan.new_from,
            response=message, finish_reason=reason, policy_version=gen.policy_version,
            timings=Timings(start=t_start, first_token=t_gen, end=time.time(), queue_s=gen.queue_s),
            delivered=delivered, valid_action=parsed.valid)
        session.calls.append(call)
        session.index.add(call, req.messages, message, req.tools, req.tool_choice, prompt_text=plan.prompt_text)
        self.journal.append(call)
        return resp

    async def _respond(self, request: web.Request, req: oa.ChatRequest, call_id: str, model: str,
                       message: dict[str, Any], reason: str, gen: Generation, n_prompt: int,
                       logprobs: list[dict[str, Any]] | None) -> tuple[web.StreamResponse, bool]:
        """Write the response; returns it and whether it reached the client."""
        usage = {"prompt_tokens": n_prompt, "completion_tokens": len(gen.completion_ids),
                 "total_tokens": n_prompt + len(gen.completion_ids)}
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
                                  if req.stream else {"Content-Type": "application/json"})
        try:
            if req.stream:
                await resp.prepare(request)
                pieces = self._content_pieces(gen.completion_ids, message.get("content") or "")
                for chunk in oa.stream_chunks(call_id, model, message, reason, pieces,
                                              usage if req.include_usage else None):
                    await resp.write(b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + b"\n\n")
                await resp.write(b"data: [DONE]\n\n")
                await resp.write_eof()
            else:
                payload = json.dumps(oa.completion_body(call_id, model, message, reason, n_prompt,
                                                        len(gen.completion_ids), logprobs),
                                     ensure_ascii=False).encode()
                resp.content_length = len(payload)
                await resp.prepare(request)
                await resp.write(payload)
                await resp.write_eof()
        except (ConnectionError, RuntimeError):  # the client went away mid-response
            return resp, False
        return resp, True

    def _content_pieces(self, ids: tuple[int, ...], content: str) -> list[str]:
        """Per-token text deltas of the content part, for streaming."""
        pieces: list[str] = []
        prev = ""
        for i in range(1, len(ids) + 1):
            cur = self.renderer.tokenizer.decode(ids[:i], skip_special_tokens=False)
            if len(cur) >= len(content):
                pieces.append(content[len(prev):])
                break
            if cur.startswith(prev) and not cur.endswith("\ufffd"):
                pieces.append(cur[len(prev):])
                prev = cur
        else:
            pieces.append(content[len(prev):])
        return [p for p in pieces if p] if "".join(pieces) == content else [content]

