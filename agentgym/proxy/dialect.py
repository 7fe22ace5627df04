"""What every API dialect provides to the dialect-free pipeline, and the checks they share.

A dialect turns its wire format into a :class:`~agentgym.proxy.pipeline.Request` (canonical
messages in the OpenAI chat shape, tools, sampling) and a served call back into its wire
format: a JSON body, a stream of SSE events, or an error in its own shape. It honours every
field it accepts and refuses the rest with a 400 that names the field: a sampling parameter
silently dropped would make the recorded policy differ from the one the harness thinks it is
talking to.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from agentgym.errors import ProxyError
from agentgym.tokens.messages import Message

if TYPE_CHECKING:
    from agentgym.proxy.pipeline import Request, Served

__all__ = ["Dialect", "StreamWriter", "bad", "boolean", "integer", "number", "seed", "sse", "string"]

SEED_RANGE = (-(2**63), 2**64 - 1)


class StreamWriter(abc.ABC):
    """The SSE bytes of one streamed reply, produced as the engine samples."""

    @abc.abstractmethod
    def start(self) -> bytes:
        """Sent before the first token."""

    @abc.abstractmethod
    def delta(self, kind: str, text: str) -> bytes:
        """A ``"reasoning"`` or ``"content"`` text delta."""

    @abc.abstractmethod
    def finish(self, served: Served) -> bytes:
        """Tool calls, the stop reason, usage and the end of the stream."""

    @abc.abstractmethod
    def error(self, err: ProxyError) -> bytes:
        """An error after the stream started (the HTTP status is already 200)."""


class Dialect(abc.ABC):
    """One API's wire format. Implementations: :mod:`.openai`, :mod:`.responses`, :mod:`.anthropic`."""

    name: str = ""
    conv_key: str = "messages"
    """The body key of the conversation (a list the pipeline compares with earlier calls')."""

    @abc.abstractmethod
    def parse(self, body: Any, default_max_tokens: int) -> Request:
        """Validate a decoded body (everything but the conversation's items)."""

    @abc.abstractmethod
    def convert(self, items: list[Any], offset: int) -> list[Message]:
        """Canonical messages of conversation items (``offset``: index of ``items[0]`` in the
        whole conversation, for error messages). Items of one message are never split across
        calls: the pipeline converts whole requests or the items after an earlier request."""

    @abc.abstractmethod
    def reply(self, served: Served, req: Request) -> dict[str, Any]:
        """The non-streamed response body."""

    @abc.abstractmethod
    def stream(self, served_id: str, req: Request, prompt_tokens: int) -> StreamWriter:
        """A writer for a streamed reply."""

    @abc.abstractmethod
    def error_body(self, err: ProxyError) -> dict[str, Any]:
        """An error in this dialect's shape."""

    @abc.abstractmethod
    def context_error(self, tokens: int, limit: int) -> ProxyError:
        """The context-length error this dialect's clients recognise (and compact on)."""

    def error_in_stream(self, err: ProxyError) -> bool:
        """Whether a streamed request's ``err`` is sent inside a 200 event stream (where the
        dialect's clients look for it) instead of as an HTTP error."""
        return False


def sse(data: Any, event: str | None = None) -> bytes:
    head = b"event: " + event.encode() + b"\n" if event else b""
    return head + b"data: " + orjson.dumps(data) + b"\n\n"


def bad(message: str, param: str | None = None, code: str = "invalid_request_error", status: int = 400) -> ProxyError:
    return ProxyError(message, status=status, code=code, param=param)


def number(body: Mapping[str, Any], key: str, lo: float, hi: float, default: float) -> float:
    v = body.get(key)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise bad(f"'{key}' must be a number, got {orjson.dumps(v).decode()[:40]}", key)
    if not lo <= v <= hi:
        raise bad(f"'{key}' must be between {lo} and {hi}, got {v}", key)
    return float(v)


def integer(body: Mapping[str, Any], key: str, lo: int, hi: int) -> int | None:
    v = body.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise bad(f"'{key}' must be an integer", key)
    if not lo <= v <= hi:
        raise bad(f"'{key}' must be between {lo} and {hi}, got {v}", key)
    return v


def seed(body: Mapping[str, Any], key: str = "seed") -> int | None:
    """A seed every engine can take (64 bits)."""
    return integer(body, key, *SEED_RANGE)


def boolean(body: Mapping[str, Any], key: str, default: bool = False) -> bool:
    v = body.get(key)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise bad(f"'{key}' must be a boolean", key)
    return v


def string(body: Mapping[str, Any], key: str, default: str = "") -> str:
    v = body.get(key)
    if v is None:
        return default
    if not isinstance(v, str):
        raise bad(f"'{key}' must be a string", key)
    return v


def stops(body: Mapping[str, Any], key: str) -> tuple[str, ...]:
    stop = body.get(key)
    if stop is None:
        return ()
    if isinstance(stop, str):
        return (stop,) if stop else ()
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop) and len(stop) <= 16:
        return tuple(s for s in stop if s)
    raise bad(f"'{key}' must be a string or an array of up to 16 strings", key)


def function_tool(name: Any, description: Any, parameters: Any, where: str) -> dict[str, Any]:
    """A canonical (OpenAI chat) function tool, validated."""
    if not isinstance(name, str) or not name:
        raise bad(f"{where} needs a non-empty string 'name'", where)
    if description is not None and not isinstance(description, str):
        raise bad(f"{where}.description must be a string", where)
    if parameters is not None and not isinstance(parameters, dict):
        raise bad(f"{where} parameters must be a JSON schema object", where)
    fn: dict[str, Any] = {"name": name}
    if description is not None:
        fn["description"] = description
    if parameters is not None:
        fn["parameters"] = parameters
    return {"type": "function", "function": fn}
