"""A scripted OpenAI-compatible chat-completions server for harness tests.

It listens on 127.0.0.1 (a free port) in a background thread, records every request (path,
headers, JSON body, and the response it got) and answers from a script of canned replies; once the script is used up it
repeats ``default`` (or answers 500 when there is none). A request with ``"stream": true`` gets
the same reply as server-sent events (``chat.completion.chunk`` objects, then ``[DONE]``).

>>> with FakeOpenAI([tool_call("echo hi"), text("done")]) as srv:   # doctest: +SKIP
...     run_agent(base_url=srv.base_url)
...     srv.requests[1]["body"]["messages"][-1]["role"]
'tool'
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web

Reply = dict[str, Any]
"""``{"message": {...}, "finish_reason": ...}`` or ``{"status": 500, "error": "..."}``."""

_ids = itertools.count(1)


def tool_call(command: str, *, content: str | None = "Running a command.", call_id: str | None = None,
              name: str = "bash", arguments: str | None = None) -> Reply:
    """A reply with one ``bash`` tool call (``arguments`` overrides the JSON arguments text)."""
    cid = call_id or f"call_{next(_ids)}"
    args = arguments if arguments is not None else json.dumps({"command": command})
    message: dict[str, Any] = {"role": "assistant", "content": content,
                               "tool_calls": [{"id": cid, "type": "function",
                                               "function": {"name": name, "arguments": args}}]}
    return {"message": message, "finish_reason": "tool_calls"}


def text(content: str) -> Reply:
    """A reply with no tool call."""
    return {"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}


def error(status: int, message: str = "scripted error") -> Reply:
    return {"status": status, "error": message}


class FakeOpenAI:
    """Scripted server; use as a context manager. ``base_url`` ends in ``/v1``."""

    def __init__(self, script: Sequence[Reply | Callable[[dict[str, Any]], Reply]] = (), *,
                 default: Reply | Callable[[dict[str, Any]], Reply] | None = None,
                 prefix: str = "/s/test-session/v1", host: str = "127.0.0.1", chunk_chars: int = 16) -> None:
        self.script = list(script)
        self.chunk_chars = chunk_chars
        """Characters of content per streamed chunk (``"stream": true`` requests get SSE)."""
        self.default = default
        self.prefix = prefix
        self.host = host
        self.port = 0
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}{self.prefix}"

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [r["body"] for r in self.requests]

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = {"_unparsed": raw.decode("utf-8", "replace")}
        with self._lock:
            index = len(self.requests)
            self.requests.append({"method": request.method, "path": request.path,
                                  "headers": dict(request.headers), "body": body})
            step = self.script[index] if index < len(self.script) else self.default
        status = 200
        payload: dict[str, Any]
        if step is None:
            status, payload = 500, {"error": {"message": "fake server: script exhausted", "type": "server_error"}}
        else:
            reply = step(body or {}) if callable(step) else step
            if "status" in reply:
                status = int(reply["status"])
                payload = {"error": {"message": reply.get("error", ""), "type": "invalid_request_error",
                                     "code": None, "param": None}}
            else:
                payload = {
                    "id": f"chatcmpl-fake-{index}", "object": "chat.completion", "created": 1700000000,
                    "model": (body or {}).get("model", "fake"),
                    "choices": [{"index": 0, "message": reply["message"],
                                 "finish_reason": reply.get("finish_reason", "stop"), "logprobs": None}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                }
        with self._lock:
            self.requests[index]["response"] = {"status": status, "body": payload}
        if status == 200 and isinstance(body, dict) and body.get("stream"):
            return await self._stream(request, payload, bool((body.get("stream_options") or {}).get("include_usage")))
        return web.json_response(payload, status=status)

    async def _stream(self, request: web.Request, payload: dict[str, Any], include_usage: bool) -> web.StreamResponse:
        """The same reply as server-sent events, the way OpenAI streams chat completions: a role
        chunk, the content in pieces of ``chunk_chars``, each tool call (name, then arguments),
        a finish chunk, a usage chunk when asked, ``[DONE]``."""
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        choice = payload["choices"][0]
        message = choice["message"]
        head = {k: payload[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}

        async def send(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> None:
            chunk = {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
                     **extra}
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())

        await send({"role": "assistant", "content": ""})
        content = message.get("content") or ""
        for i in range(0, len(content), self.chunk_chars):
            await send({"content": content[i:i + self.chunk_chars]})
        for n, call in enumerate(message.get("tool_calls") or []):
            await send({"tool_calls": [{"index": n, "id": call["id"], "type": "function",
                                        "function": {"name": call["function"]["name"], "arguments": ""}}]})
            await send({"tool_calls": [{"index": n, "function": {"arguments": call["function"]["arguments"]}}]})
        await send({}, choice["finish_reason"])
        if include_usage:
            await resp.write(f"data: {json.dumps({**head, 'choices': [], 'usage': payload['usage']})}\n\n".encode())
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    def start(self) -> FakeOpenAI:
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_route("*", "/{tail:.*}", self._handle)
            runner = web.AppRunner(app, access_log=None)
            try:
                loop.run_until_complete(runner.setup())
                site = web.TCPSite(runner, self.host, 0)
                loop.run_until_complete(site.start())
                server: Any = site._server
                self.port = server.sockets[0].getsockname()[1]
                self._runner = runner
            except BaseException as e:  # reported to the starting thread
                failure.append(e)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, name="fake-openai", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
