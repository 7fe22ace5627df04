"""What the proxy accepts before it does any work: ids, sizes, JSON shape.

Everything here is cheap and runs before rendering or tokenising, so a hostile or broken
request costs the proxy (and every other client on its event loop) next to nothing.

>>> safe_id("task-3.s0_ab12", "session id")
'task-3.s0_ab12'
>>> safe_id("../etc", "session id")
Traceback (most recent call last):
    ...
agentgym.errors.ProxyError: invalid session id '../etc': use 1-128 characters of A-Z a-z 0-9 . _ -, not starting with '.' or '-'
>>> parse_json(b'{"a": [1, 2]}')
{'a': [1, 2]}

Nesting: orjson refuses bodies nested deeper than 1024 levels; the journal's encoder takes 254,
and each call's record is encoded before anything is generated, so a deeper body is a 400 there
(:data:`MAX_JOURNAL_DEPTH`); tool-call arguments deeper than 64 levels are refused where they
are parsed (:data:`agentgym.tokens.messages.MAX_ARGUMENT_DEPTH`).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Any

import orjson

from agentgym.errors import ProxyError

__all__ = ["MAX_JOURNAL_DEPTH", "Limits", "decode_body", "parse_json", "safe_id"]

MAX_JOURNAL_DEPTH = 254
"""Nesting orjson encodes (deeper request bodies cannot be journaled, so they are refused)."""

_SAFE_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True)
class Limits:
    """Request limits, checked before any rendering or tokenising."""

    max_body_bytes: int = 32 * 1024 * 1024
    """Largest request body (after decompression); larger ones get a 413."""
    offload_chars: int = 2048
    """Text longer than this is tokenised on a worker thread, off the event loop."""
    offload_body_bytes: int = 1024 * 1024
    """Bodies larger than this are parsed and planned on a worker thread."""


def safe_id(value: str, what: str) -> str:
    """``value`` if it is a safe session or agent id (it names a journal file), else a 400."""
    if not isinstance(value, str) or not _SAFE_ID.fullmatch(value):
        shown = value[:64] if isinstance(value, str) else type(value).__name__
        raise ProxyError(f"invalid {what} {shown!r}: use 1-128 characters of A-Z a-z 0-9 . _ -, "
                         "not starting with '.' or '-'", code="invalid_id", param=what.replace(" ", "_"))
    return value


def parse_json(raw: bytes) -> Any:
    """Decode a request body. orjson refuses lone surrogates, invalid UTF-8, numbers that do not
    fit a double and nesting beyond 1024 levels, each with a 400 here."""
    if not raw:
        raise ProxyError("empty request body: send a JSON object", code="invalid_json")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise ProxyError(f"malformed JSON body: {e}", code="invalid_json") from None
    except RecursionError:
        raise ProxyError("malformed JSON body: nested too deeply", code="invalid_json") from None


def decode_body(raw: bytes, encoding: str, limit: int) -> bytes:
    """Undo ``Content-Encoding`` (gzip, deflate), never past ``limit`` decoded bytes."""
    for enc in reversed([e.strip().lower() for e in encoding.split(",") if e.strip()]):
        if enc == "identity":
            continue
        if enc not in ("gzip", "x-gzip", "deflate"):
            raise ProxyError(f"unsupported Content-Encoding {enc[:40]!r}: send identity, gzip or deflate",
                             code="invalid_body")
        tries = (16 + zlib.MAX_WBITS,) if enc != "deflate" else (zlib.MAX_WBITS, -zlib.MAX_WBITS)
        for wbits in tries:
            d = zlib.decompressobj(wbits)
            try:
                out = d.decompress(raw, limit + 1)
            except zlib.error:
                continue
            if len(out) > limit:
                raise ProxyError(f"request body is over the {limit}-byte limit once decompressed", status=413,
                                 code="request_too_large")
            if d.eof and not d.unused_data:
                raw = out
                break
        else:
            raise ProxyError(f"the request body does not decode as its Content-Encoding {enc!r} says",
                             code="invalid_body")
    return raw
_SSE = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
