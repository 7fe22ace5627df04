"""The fruit shop's web server (runs inside the container; standard library only).

Serves ``index.html`` on http://127.0.0.1:8000/, keeps the page's state: ``POST /state`` with
``{"state": ..., "tree": [...]}`` (the page posts after every change) writes the state to the
state file (what the verifier reads) and keeps the accessible tree, which it answers on the app
socket (``tree``, like the Tk apps); ``GET /state`` gives the state back, so a reloaded or
restarted browser shows the same cart.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
STATE_FILE = Path("/var/lib/agentgym-gui/state.json")
APP_SOCKET = "/run/agentgym-gui/app.sock"
PORT = 8000
latest: dict[str, Any] = {"tree": [], "state": None}
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def reply(self, code: int, body: bytes, kind: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path in ("/", "/index.html"):
            self.reply(200, (HERE / "index.html").read_bytes(), "text/html; charset=utf-8")
        elif self.path == "/state":
            with lock:
                self.reply(200, json.dumps(latest["state"]).encode(), "application/json")
        else:
            self.reply(404, b"not found", "text/plain")

    def do_POST(self) -> None:
        if self.path != "/state":
            self.reply(404, b"not found", "text/plain")
            return
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            state, tree = body["state"], body["tree"]
        except (ValueError, KeyError, TypeError):
            self.reply(400, b"bad state", "text/plain")
            return
        with lock:
            latest.update(state=state, tree=tree)
            STATE_FILE.parent.mkdir(parents=True, exist_ok=True)
            tmp = STATE_FILE.with_suffix(".tmp")
            tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
            os.replace(tmp, STATE_FILE)
        self.reply(204, b"", "text/plain")


def answer_tree() -> None:
    Path(APP_SOCKET).parent.mkdir(parents=True, exist_ok=True)
    if os.path.exists(APP_SOCKET):
        os.unlink(APP_SOCKET)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(APP_SOCKET)
    listener.listen(8)
    while True:
        conn, _ = listener.accept()
        with conn:
            try:
                command = conn.recv(256).decode(errors="replace").strip()
                with lock:
                    reply = latest.get(command, {"error": f"unknown command {command!r}"})
                    conn.sendall(json.dumps(reply).encode())
            except OSError:
                pass


def main() -> None:
    if STATE_FILE.is_file():  # a restarted server keeps the cart
        latest["state"] = json.loads(STATE_FILE.read_text())
    threading.Thread(target=answer_tree, daemon=True).start()
    ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()


if __name__ == "__main__":
    main()
