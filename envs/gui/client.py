"""The host side of the GUI action server (``container/actiond.py``): one stream per episode.

:meth:`ActionClient.over_exec` starts the server with
:meth:`~agentgym.runtime.base.Runtime.attach_command` (``docker exec -i <container> python3
actiond.py --stdio``) and keeps that one process for the whole episode; each action is one JSON
line out and one JSON line plus a PNG back. :meth:`ActionClient.over_unix` speaks the same
framing to a server listening on a Unix socket in a directory mounted from the host (measured
by ``benchmarks/gui_latency.py``; the episode uses the exec stream, which needs no mount and
works wherever ``docker exec`` does).

>>> obs = Observation(png=b"", width=800, height=600, error=None, timing={}, tree=[
...     {"role": "button", "name": "Submit", "value": None, "states": [], "depth": 1, "bounds": [10, 20, 80, 30]},
...     {"role": "textbox", "name": "Email", "value": "a@b", "states": ["focused"], "depth": 1,
...      "bounds": [10, 60, 200, 28]}])
>>> print(obs.text())
  button "Submit" @ 10,20 80x30
  textbox "Email" = "a@b" [focused] @ 10,60 200x28
>>> center(obs.find("button", "Submit"))
(50, 35)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import numpy as np

from agentgym.errors import EnvError
from agentgym.runtime.base import Runtime

__all__ = ["ACTIOND", "ActionClient", "Observation", "center", "decode_png", "render_tree"]

ACTIOND = "/opt/agentgym-gui/actiond.py"
"""Where the action server is in every GUI image."""
REQUEST_TIMEOUT_S = 120.0
"""The longest an action may take (typing a long text, a slow settle) before the stream is
considered broken."""
STREAM_LIMIT = 64 * 1024 * 1024
PASSIVE = ("ping",)
"""Requests left out of the journal. Observations and waits stay in: replayed, they let the app
take the time it had in the episode (a page reloading while the agent waited)."""


def decode_png(data: bytes) -> np.ndarray:
    """An 8-bit RGB (or RGBA, dropped to RGB) PNG as a ``(height, width, 3)`` uint8 array: the
    action server's screenshots (filter types None, Sub and Up; others raise ``ValueError``)."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError("not a PNG")
    pos, idat, width, height, channels = 8, bytearray(), 0, 0, 3
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or color not in (2, 6) or interlace:
                raise ValueError(f"only 8-bit RGB/RGBA PNGs without interlacing (got depth {depth}, color {color})")
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
        pos += 12 + length
    stride = width * channels
    rows = np.frombuffer(zlib.decompress(bytes(idat)), dtype=np.uint8).reshape(height, stride + 1)
    filters, pixels = rows[:, 0], rows[:, 1:].copy()
    for y in np.flatnonzero(filters):
        filter_type = int(filters[y])
        if filter_type == 1:  # Sub: each byte adds the one a pixel to its left
            row = pixels[y].reshape(width, channels).astype(np.uint32)
            pixels[y] = (np.cumsum(row, axis=0) % 256).astype(np.uint8).reshape(-1)
        elif filter_type == 2:  # Up
            pixels[y] = pixels[y] + (pixels[y - 1] if y else 0)
        else:
            raise ValueError(f"PNG filter type {filter_type} is not supported here")
    return pixels.reshape(height, width, channels)[:, :, :3].copy()


def center(node: Mapping[str, Any]) -> tuple[int, int]:
    """The middle of a tree node's bounds (where to click it)."""
    bounds = node.get("bounds")
    if not bounds:
        raise EnvError(f"{node.get('role')} {node.get('name')!r} is not on screen (scroll it into view first)")
    x, y, w, h = bounds
    return int(x + w // 2), int(y + h // 2)


def render_tree(tree: Sequence[Mapping[str, Any]] | None) -> str:
    """The accessible tree as text, one node a line: ``role "name" = "value" [states] @ x,y wxh``."""
    lines = []
    for node in tree or []:
        line = "  " * int(node.get("depth", 0)) + f"{node.get('role')} {json.dumps(str(node.get('name', '')))}"
        if node.get("value") is not None:
            line += f" = {json.dumps(str(node['value']))}"
        if node.get("states"):
            line += f" [{', '.join(node['states'])}]"
        bounds = node.get("bounds")
        if bounds:
            line += " @ {},{} {}x{}".format(*bounds)
        lines.append(line)
    return "\n".join(lines)


@dataclass(frozen=True)
class Observation:
    """One reply of the action server: the screen after the action, and the app's tree."""

    png: bytes
    width: int
    height: int
    error: str | None
    """Why the action was not performed (a bad key name...), or ``None``."""
    timing: Mapping[str, float] = field(default_factory=dict)
    """Seconds inside the server: ``action_s``, ``settle_s``, ``encode_s``, ``tree_s``."""
    tree: Sequence[Mapping[str, Any]] = ()

    def pixels(self) -> np.ndarray:
        """The screenshot as a ``(height, width, 3)`` uint8 array."""
        return decode_png(self.png)

    def text(self) -> str:
        return render_tree(self.tree)

    def find(self, role: str | None = None, name: str | None = None, *, contains: str | None = None) -> dict[str, Any]:
        """The first tree node with this role and name (or a name containing ``contains``)."""
        for node in self.tree:
            if role is not None and node.get("role") != role:
                continue
            label = str(node.get("name", ""))
            if (name is None or label == name) and (contains is None or contains in label):
                return dict(node)
        raise EnvError(f"no {role or 'node'} {name or contains!r} in the app's tree:\n{self.text()[:3000]}")


class ActionClient:
    """Talks to the action server over one stream (see the module docstring)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 process: asyncio.subprocess.Process | None = None,
                 journal: list[dict[str, Any]] | None = None) -> None:
        self._reader = reader
        self._writer = writer
        self._process = process
        self._lock = asyncio.Lock()
        self.journal = journal
        """Where the actions this client performed are appended (in order), when given: what the
        GUI verifier replays (:meth:`agentgym.envs.gui.env.GuiEnv.evaluate`)."""

    @classmethod
    async def over_exec(cls, runtime: Runtime, journal: list[dict[str, Any]] | None = None) -> ActionClient:
        """Start the server in ``runtime`` on a stream of its own (one ``docker exec -i``);
        ``journal`` records its actions (see :attr:`journal`)."""
        try:
            command = runtime.attach_command(["python3", ACTIOND, "--stdio"])
        except NotImplementedError as e:
            raise EnvError(f"the action server needs a runtime that can attach a process: {e}") from e
        process = await asyncio.create_subprocess_exec(
            *command.argv, env=None if command.env is None else dict(command.env), cwd=command.cwd,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            limit=STREAM_LIMIT)
        assert process.stdin is not None and process.stdout is not None
        client = cls(process.stdout, process.stdin, process, journal=journal)
        await client.request({"action": "ping"})
        return client

    @classmethod
    async def over_unix(cls, path: str) -> ActionClient:
        """Connect to a server started with ``--unix PATH`` (``path`` as the host sees it)."""
        reader, writer = await asyncio.open_unix_connection(path, limit=STREAM_LIMIT)
        return cls(reader, writer)

    async def __aenter__(self) -> ActionClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def _broken(self, why: str) -> EnvError:
        detail = ""
        if self._process is not None and self._process.stderr is not None:
            with contextlib.suppress(asyncio.TimeoutError, OSError):
                detail = (await asyncio.wait_for(self._process.stderr.read(8192), 2)).decode(errors="replace")
        return EnvError(f"the GUI action server {why}" + (f": {detail.strip()[-2000:]}" if detail.strip() else ""))

    async def request(self, request: Mapping[str, Any], timeout: float = REQUEST_TIMEOUT_S) -> Observation:
        """Send one request (see ``actiond.py`` for the actions) and read its reply."""
        async with self._lock:
            try:
                self._writer.write(json.dumps(dict(request)).encode() + b"\n")
                await self._writer.drain()
                line = await asyncio.wait_for(self._reader.readline(), timeout)
                if not line:
                    raise await self._broken("closed its stream")
                header = json.loads(line)
                png = await asyncio.wait_for(self._reader.readexactly(int(header.get("png", 0))), timeout)
            except (ConnectionError, asyncio.IncompleteReadError) as e:
                raise await self._broken(f"stream broke ({e})") from e
            except asyncio.TimeoutError as e:
                raise await self._broken(f"did not answer within {timeout:g}s") from e
            except ValueError as e:
                raise await self._broken(f"sent something that is not a reply ({e})") from e
        if header.get("error") and header.get("error", "").startswith("bad request"):
            raise EnvError(f"the GUI action server refused {dict(request)}: {header['error']}")
        if self.journal is not None and request.get("action") not in PASSIVE:
            self.journal.append(dict(request))
        return Observation(png=png, width=int(header.get("width", 0)), height=int(header.get("height", 0)),
                           error=header.get("error"), timing=header.get("timing") or {}, tree=header.get("tree") or [])

    # -- the vocabulary ---------------------------------------------------------------------------
    async def observe(self) -> Observation:
        return await self.request({"action": "observe"})

    async def wait(self, seconds: float = 0.5) -> Observation:
        return await self.request({"action": "wait", "seconds": seconds})

    async def click(self, x: int, y: int, button: str = "left") -> Observation:
        return await self.request({"action": "click", "x": x, "y": y, "button": button})

    async def double_click(self, x: int, y: int, button: str = "left") -> Observation:
        return await self.request({"action": "double_click", "x": x, "y": y, "button": button})

    async def move(self, x: int, y: int) -> Observation:
        return await self.request({"action": "move", "x": x, "y": y})

    async def type(self, text: str) -> Observation:
        return await self.request({"action": "type", "text": text})

    async def key(self, keys: str) -> Observation:
        return await self.request({"action": "key", "keys": keys})

    async def scroll(self, x: int, y: int, amount: int, horizontal: bool = False) -> Observation:
        return await self.request({"action": "scroll", "x": x, "y": y, "amount": amount, "horizontal": horizontal})

    async def drag(self, x: int, y: int, x2: int, y2: int) -> Observation:
        return await self.request({"action": "drag", "x": x, "y": y, "x2": x2, "y2": y2})

    async def click_on(self, node: Mapping[str, Any], *, double: bool = False) -> Observation:
        """Click (or double-click) the middle of a tree node."""
        x, y = center(node)
        return await (self.double_click(x, y) if double else self.click(x, y))

    async def close(self) -> None:
        """Close the stream (the server exits at the end of its input). Idempotent."""
        with contextlib.suppress(Exception):
            self._writer.close()
        if self._process is not None:
            process, self._process = self._process, None
            try:
                await asyncio.wait_for(process.wait(), 5)
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
