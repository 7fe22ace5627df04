"""The GUI action server: runs inside a GUI task's container (standard library only).

One request performs one computer-use action with ``xdotool``, waits until the screen is still,
and answers with a PNG screenshot and the application's accessible tree, so an action plus a
screenshot costs one round trip from the host instead of several ``docker exec`` calls.

Transports (the same framing on both):

- ``--stdio``: requests on stdin, replies on stdout (the host keeps one ``docker exec -i``
  stream open for a whole episode);
- ``--unix PATH``: a Unix socket (for a directory mounted from the host), one client at a time.

Framing: a request is one JSON line, ``{"action": "click", "x": 10, "y": 20}``; a reply is one
JSON line ``{"ok": true, "error": null, "png": <bytes>, "width": w, "height": h, "tree": [...],
"timing": {...}}`` followed by exactly ``png`` bytes of PNG image (0 when no screenshot was asked
for).

Actions (``x``/``y`` are screen pixels; ``button`` is ``left``, ``middle`` or ``right``):

=================  ===========================================================================
``observe``        nothing; just the screenshot and tree
``wait``           ``seconds`` (default 0.5, at most 10), then the screenshot and tree
``click``          ``x``, ``y``, ``button`` (default ``left``)
``double_click``   ``x``, ``y``, ``button``
``move``           ``x``, ``y`` (hover)
``type``           ``text`` (typed as keystrokes; ``\\n`` is Return)
``key``            ``keys``: xdotool key names separated by spaces, ``ctrl+a Delete``; common
                   aliases (``enter``, ``esc``, ``backspace``, ``pagedown``...) are accepted
``scroll``         ``x``, ``y``, ``amount`` (wheel clicks; positive scrolls down, negative up),
                   ``horizontal`` (bool)
``drag``           ``x``, ``y`` to ``x2``, ``y2`` with the left button held
``ping``           answers ``{"ok": true}`` (no screenshot)
=================  ===========================================================================

Every request may say ``"screenshot": false`` or ``"tree": false`` to skip either.

The screenshot is read from the X server directly (``GetImage`` on the root window over the X11
Unix socket), then PNG-encoded with zlib: no process per screenshot. The app's accessible tree
comes from the app itself, which answers ``tree`` on the Unix socket :data:`APP_SOCKET`.

``--wait-ready SECONDS`` waits until the display answers, the app's tree is non-empty and the
screen is still, then exits 0 (or 1, with the reason on stderr).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any, BinaryIO

APP_DIR = Path(os.environ.get("AGENTGYM_GUI_APP", "/opt/agentgym-gui/apps/missing-AGENTGYM_GUI_APP"))
"""The task's app (the task sets ``AGENTGYM_GUI_APP``)."""
APP_SOCKET = "/run/agentgym-gui/app.sock"
"""Where the app answers ``tree`` (its accessible widget tree, JSON)."""
DISPLAY = os.environ.get("DISPLAY", ":0")

KEY_ALIASES = {
    "enter": "Return", "return": "Return", "esc": "Escape", "escape": "Escape", "backspace": "BackSpace",
    "del": "Delete", "delete": "Delete", "tab": "Tab", "space": "space", "up": "Up", "down": "Down",
    "left": "Left", "right": "Right", "pageup": "Prior", "pagedown": "Next", "pgup": "Prior", "pgdn": "Next",
    "home": "Home", "end": "End", "insert": "Insert", "control": "ctrl", "ctrl": "ctrl", "alt": "alt",
    "shift": "shift", "super": "super", "cmd": "super", "meta": "super", "win": "super",
}
MODIFIERS = ("ctrl", "alt", "shift", "super")
BUTTONS = {"left": 1, "middle": 2, "right": 3}
SETTLE = {"min_s": 0.03, "interval_s": 0.03, "max_s": 1.5}
"""Waiting for the screen to be still after an action (an app may override it in app.json)."""


# -- X11: just enough of the protocol to read the root window's pixels ---------------------------
def _pad4(n: int) -> int:
    return (n + 3) & ~3


class X11Screen:
    """A connection to the X server that reads the root window (ZPixmap ``GetImage``)."""

    def __init__(self, display: str = DISPLAY) -> None:
        number = display.split(":", 1)[1].split(".", 1)[0]
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(f"/tmp/.X11-unix/X{number}")
        # Byte order 'l' (little endian), protocol 11.0, no authorization (Xvfb runs with -ac).
        self.sock.sendall(struct.pack("<BxHHHHxx", ord("l"), 11, 0, 0, 0))
        head = self._recv(8)
        data = self._recv(struct.unpack("<H", head[6:8])[0] * 4)
        if head[0] != 1:
            raise OSError(f"X server refused the connection: {data[: head[1]].decode(errors='replace')}")
        vendor_len, _, _, n_formats, image_order = struct.unpack("<HHBBB", data[16:23])
        off = 32 + _pad4(vendor_len)
        bpp_of = {}
        for _ in range(n_formats):
            depth, bpp = struct.unpack("<BB", data[off:off + 2])
            bpp_of[depth] = bpp
            off += 8
        (self.root, _, _, _, _, self.width, self.height, _, _, _, _, root_visual, _, _, self.depth,
         n_depths) = struct.unpack("<IIIIIHHHHHHIBBBB", data[off:off + 40])
        off += 40
        red_mask = 0
        for _ in range(n_depths):
            _, n_visuals = struct.unpack("<BxH4x", data[off:off + 8])
            off += 8
            for _ in range(n_visuals):
                visual_id, _, _, _, red, _, _ = struct.unpack("<IBBHIII4x", data[off:off + 24])
                if visual_id == root_visual:
                    red_mask = red
                off += 24
        if self.depth != 24 or bpp_of.get(24) != 32 or image_order != 0 or red_mask != 0xFF0000:
            raise OSError(f"unsupported X visual (depth {self.depth}, {bpp_of.get(24)} bits per pixel, "
                          f"byte order {image_order}, red mask {red_mask:#x}); start Xvfb with -screen 0 WxHx24")

    def _recv(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(min(n - len(buf), 1 << 20))
            if not chunk:
                raise OSError("the X server closed the connection")
            buf += chunk
        return bytes(buf)

    def capture(self) -> bytes:
        """The root window as BGRX bytes (4 per pixel, rows top to bottom)."""
        self.sock.sendall(struct.pack("<BBHIhhHHI", 73, 2, 5, self.root, 0, 0, self.width, self.height, 0xFFFFFFFF))
        while True:
            head = self._recv(32)
            if head[0] == 1:
                return self._recv(struct.unpack("<I", head[4:8])[0] * 4)
            if head[0] == 0:
                raise OSError(f"GetImage failed: X error code {head[1]}")
            # An event sent to every client (MappingNotify when xdotool remaps a key to type a
            # character); a GenericEvent (35) carries more bytes.
            if head[0] & 0x7F == 35:
                self._recv(struct.unpack("<I", head[4:8])[0] * 4)

    def close(self) -> None:
        self.sock.close()


def encode_png(bgrx: bytes, width: int, height: int, level: int = 1) -> bytes:
    """An RGB PNG of BGRX pixels (every row with filter type 0, which the host's decoder expects)."""
    rgb = bytearray(width * height * 3)
    rgb[0::3] = bgrx[2::4]
    rgb[1::3] = bgrx[1::4]
    rgb[2::3] = bgrx[0::4]
    stride = width * 3
    raw = b"".join(b"\x00" + rgb[y * stride:(y + 1) * stride] for y in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, level)) + chunk(b"IEND", b""))


# -- the app's accessible tree ------------------------------------------------------------------
def query_app(command: str = "tree", timeout: float = 2.0) -> Any:
    """Ask the app (:data:`APP_SOCKET`); ``None`` when it does not answer."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(APP_SOCKET)
            s.sendall(command.encode() + b"\n")
            chunks = []
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        return json.loads(b"".join(chunks) or b"null")
    except (OSError, ValueError):
        return None


# -- actions ------------------------------------------------------------------------------------
class ActionError(Exception):
    """An action that could not be performed (a bad key name, missing coordinates...)."""


def normalize_key(combo: str) -> str:
    """``Ctrl+Enter`` -> ``ctrl+Return``: aliases resolved, modifiers lower-case."""
    parts = [p for p in combo.split("+") if p]
    if not parts:
        raise ActionError(f"empty key {combo!r}")
    out = []
    for part in parts:
        alias = KEY_ALIASES.get(part.lower())
        if alias:
            out.append(alias)
        elif len(part) in (2, 3) and part[0] in "fF" and part[1:].isdigit():
            out.append("F" + part[1:])
        else:
            out.append(part)
    return "+".join(out)


def deny_key(combo: str, denied: set[str]) -> bool:
    parts = combo.lower().split("+")
    mods = sorted(p for p in parts[:-1] if p in MODIFIERS)
    return "+".join([*mods, parts[-1]]) in denied


def _int(request: dict[str, Any], name: str, low: int, high: int) -> int:
    if name not in request:
        raise ActionError(f"{request.get('action')!r} needs {name!r}")
    try:
        value = int(request[name])
    except (TypeError, ValueError) as e:
        raise ActionError(f"{name} must be an integer, got {request[name]!r}") from e
    return min(max(value, low), high)


class Server:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.screen = X11Screen()
        self.settle_cfg = {**SETTLE, **config.get("settle", {})}
        self.denied = {k.lower() for k in config.get("deny_keys", [])}
        self.type_delay_ms = int(config.get("type_delay_ms", 8))

    def xdotool(self, *args: str) -> None:
        proc = subprocess.run(["xdotool", *args], capture_output=True, text=True, timeout=60)
        problem = (proc.stderr.strip() or f"exit {proc.returncode}") if proc.returncode else ""
        if not problem and proc.stderr.strip() and "No such key name" in proc.stderr:
            problem = proc.stderr.strip()
        if problem:
            raise ActionError(f"xdotool {args[0]}: {problem}")

    def point(self, request: dict[str, Any], x: str = "x", y: str = "y") -> tuple[str, str]:
        return (str(_int(request, x, 0, self.screen.width - 1)), str(_int(request, y, 0, self.screen.height - 1)))

    def perform(self, request: dict[str, Any]) -> None:
        action = request.get("action")
        button = str(BUTTONS.get(str(request.get("button", "left")), 0))
        if button == "0":
            raise ActionError(f"button must be one of {', '.join(BUTTONS)}, got {request.get('button')!r}")
        if action == "observe":
            return
        if action == "wait":
            seconds = request.get("seconds", 0.5)
            if not isinstance(seconds, (int, float)) or not 0 <= seconds <= 10:
                raise ActionError(f"'wait' takes 'seconds' between 0 and 10, got {seconds!r}")
            time.sleep(seconds)
            return
        if action == "click":
            self.xdotool("mousemove", *self.point(request), "click", button)
        elif action == "double_click":
            self.xdotool("mousemove", *self.point(request), "click", "--repeat", "2", "--delay", "80", button)
        elif action == "move":
            self.xdotool("mousemove", *self.point(request))
        elif action == "type":
            text = request.get("text")
            if not isinstance(text, str):
                raise ActionError("'type' needs 'text' (a string)")
            # Newlines and tabs as the keys Return and Tab (xdotool types a newline as Linefeed,
            # which a text field inserts as a character).
            for part in re.split(r"(\n|\t)", text.replace("\r\n", "\n")):
                if part in ("\n", "\t"):
                    self.xdotool("key", "Return" if part == "\n" else "Tab")
                elif part:
                    self.xdotool("type", "--delay", str(self.type_delay_ms), "--", part)
        elif action == "key":
            keys = request.get("keys", request.get("text"))
            if not isinstance(keys, str) or not keys.split():
                raise ActionError("'key' needs 'keys', e.g. 'ctrl+a' or 'Return'")
            combos = [normalize_key(k) for k in keys.split()]
            refused = [c for c in combos if deny_key(c, self.denied)]
            if refused:
                raise ActionError(f"key {', '.join(refused)} is not allowed in this app")
            self.xdotool("key", "--delay", "30", "--", *combos)
        elif action == "scroll":
            amount = _int(request, "amount", -100, 100) if "amount" in request else 3
            horizontal = bool(request.get("horizontal"))
            wheel = ("7" if amount > 0 else "6") if horizontal else ("5" if amount > 0 else "4")
            if amount:
                self.xdotool("mousemove", *self.point(request), "click", "--repeat", str(abs(amount)),
                             "--delay", "30", wheel)
        elif action == "drag":
            x1, y1 = self.point(request)
            x2, y2 = self.point(request, "x2", "y2")
            mx, my = str((int(x1) + int(x2)) // 2), str((int(y1) + int(y2)) // 2)
            # Intermediate moves with pauses: toolkits start a drag on motion events, not on jumps.
            self.xdotool("mousemove", x1, y1, "mousedown", "1", "sleep", "0.05", "mousemove", mx, my, "sleep", "0.05",
                         "mousemove", x2, y2, "sleep", "0.05", "mouseup", "1")
        else:
            raise ActionError(f"unknown action {action!r}; actions: observe, wait, click, double_click, move, "
                              "type, key, scroll, drag, ping")

    def settle(self) -> bytes:
        """Wait until two captures in a row are equal (or ``max_s``), return the last one."""
        cfg = self.settle_cfg
        deadline = time.monotonic() + cfg["max_s"]
        time.sleep(cfg["min_s"])
        frame = self.screen.capture()
        while time.monotonic() < deadline:
            time.sleep(cfg["interval_s"])
            again = self.screen.capture()
            if again == frame:
                break
            frame = again
        return frame

    def handle(self, request: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        if request.get("action") == "ping":
            return {"ok": True, "error": None, "png": 0}, b""
        t0 = time.monotonic()
        error = None
        try:
            self.perform(request)
        except ActionError as e:
            error = str(e)
        except subprocess.TimeoutExpired:
            error = "the action timed out"
        t1 = time.monotonic()
        png = b""
        timing: dict[str, float] = {"action_s": t1 - t0}
        if request.get("screenshot", True):
            frame = self.settle()
            t2 = time.monotonic()
            png = encode_png(frame, self.screen.width, self.screen.height)
            timing.update(settle_s=t2 - t1, encode_s=time.monotonic() - t2)
        tree = None
        if request.get("tree", True):
            t3 = time.monotonic()
            tree = query_app("tree")
            timing["tree_s"] = time.monotonic() - t3
        header = {"ok": error is None, "error": error, "png": len(png), "width": self.screen.width,
                  "height": self.screen.height, "tree": tree, "timing": timing}
        return header, png


def serve(server: Server, rfile: BinaryIO, wfile: BinaryIO) -> None:
    for line in iter(rfile.readline, b""):
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("a request is a JSON object")
            header, png = server.handle(request)
        except ValueError as e:
            header, png = {"ok": False, "error": f"bad request: {e}", "png": 0}, b""
        wfile.write(json.dumps(header).encode() + b"\n" + png)
        wfile.flush()


def wait_ready(seconds: float) -> int:
    deadline = time.monotonic() + seconds
    why = "the X display does not answer"
    while time.monotonic() < deadline:
        try:
            screen = X11Screen()
        except OSError as e:
            why = f"the X display does not answer: {e}"
            time.sleep(0.1)
            continue
        try:
            while time.monotonic() < deadline:
                tree = query_app("tree")
                if tree:
                    server = Server(load_config())
                    server.settle()
                    server.screen.close()
                    return 0
                why = "the app does not answer on its socket" if tree is None else "the app's tree is empty"
                time.sleep(0.1)
        finally:
            screen.close()
    print(f"agentgym GUI not ready after {seconds:g}s: {why}", file=sys.stderr)
    return 1


def load_config() -> dict[str, Any]:
    path = APP_DIR / "app.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--stdio", action="store_true", help="serve requests on stdin/stdout")
    mode.add_argument("--unix", metavar="PATH", help="serve requests on a Unix socket")
    mode.add_argument("--wait-ready", type=float, metavar="SECONDS", help="wait until the app is up, then exit")
    args = parser.parse_args(argv)
    if args.wait_ready is not None:
        return wait_ready(args.wait_ready)
    server = Server(load_config())
    if args.stdio:
        serve(server, sys.stdin.buffer, sys.stdout.buffer)
        return 0
    path = Path(args.unix)
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    path.chmod(0o666)  # the host's client may be another user
    listener.listen(1)
    while True:
        conn, _ = listener.accept()
        with conn, conn.makefile("rb") as rfile, conn.makefile("wb") as wfile, \
                contextlib.suppress(BrokenPipeError, ConnectionResetError):
            serve(server, rfile, wfile)


if __name__ == "__main__":
    sys.exit(main())
