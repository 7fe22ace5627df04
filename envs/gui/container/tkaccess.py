"""Accessibility for the Tk apps of the GUI suite (runs inside the container; standard library only).

A Tk app calls :func:`serve` once: from then on it answers on the Unix socket ``APP_SOCKET``,
from inside its own event loop (Tk is single-threaded), ``tree`` with its accessible tree:
one node per visible widget, in screen coordinates, as a JSON list::

    {"role": "button", "name": "Submit", "value": null, "bounds": [x, y, w, h],
     "states": ["focused"], "depth": 2}

Roles: ``window``, ``label``, ``button``, ``textbox`` (an Entry: ``value`` is its text),
``checkbox`` and ``radio`` (``checked`` in ``states``), ``list`` and its ``listitem`` nodes
(``selected``; ``offscreen`` items have ``bounds`` null). An app names a widget that shows no
text of its own (an Entry) with :func:`describe`; ``serve(state=...)`` adds a ``state``
command that answers the app's own state (for tests).

:func:`write_state` writes the app's state where the task's verifier reads it (atomically).
"""

from __future__ import annotations

import json
import os
import socket
import tkinter as tk
from collections.abc import Callable
from pathlib import Path
from typing import Any

APP_SOCKET = "/run/agentgym-gui/app.sock"
STATE_FILE = Path("/var/lib/agentgym-gui/state.json")
"""What the verifier reads: the app's state, written by the app on every change."""
ROLES = {"Tk": "window", "Toplevel": "window", "Label": "label", "Button": "button", "Entry": "textbox",
         "Spinbox": "textbox", "Checkbutton": "checkbox", "Radiobutton": "radio", "Listbox": "list",
         "Text": "textbox", "Message": "label"}
_NAMES: dict[str, str] = {}


def describe(widget: tk.Misc, name: str) -> None:
    """Give ``widget`` an accessible name (what a screen reader would say for it)."""
    _NAMES[str(widget)] = name


def write_state(state: dict[str, Any]) -> None:
    STATE_FILE.parent.mkdir(parents=True, exist_ok=True)
    tmp = STATE_FILE.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
    os.replace(tmp, STATE_FILE)


def _text(widget: tk.Misc) -> str | None:
    try:
        return str(widget.cget("text"))
    except tk.TclError:
        return None


def _checked(widget: tk.Misc, cls: str) -> bool:
    var = str(widget.cget("variable"))
    if not var:
        return False
    try:
        value = widget.getvar(var)
    except tk.TclError:
        return False
    want = widget.cget("onvalue") if cls == "Checkbutton" else widget.cget("value")
    return str(value) == str(want)


def tree(root: tk.Misc) -> list[dict[str, Any]]:
    """The accessible tree of ``root``'s visible widgets, depth-first, flattened."""
    nodes: list[dict[str, Any]] = []
    focus = root.focus_get() if isinstance(root, tk.Tk) else None

    def visit(w: tk.Misc, depth: int) -> None:
        if not w.winfo_viewable():
            return
        cls = w.winfo_class()
        role = ROLES.get(cls)
        child_depth = depth
        if role is not None:
            states = ["focused"] if focus is w else []
            value: Any = None
            name = _NAMES.get(str(w)) or _text(w) or ""
            if cls in ("Tk", "Toplevel"):
                name = _NAMES.get(str(w)) or w.winfo_toplevel().title()
            if isinstance(w, (tk.Entry, tk.Spinbox)):
                value = w.get()
            elif cls in ("Checkbutton", "Radiobutton") and _checked(w, cls):
                states.append("checked")
            if "state" in w.keys() and str(w.cget("state")) == "disabled":  # noqa: SIM118 - a Tk widget
                states.append("disabled")
            nodes.append({"role": role, "name": name, "value": value, "states": states, "depth": depth,
                          "bounds": [w.winfo_rootx(), w.winfo_rooty(), w.winfo_width(), w.winfo_height()]})
            child_depth = depth + 1
            if isinstance(w, tk.Listbox):
                selected = set(w.curselection())
                for i in range(w.size()):
                    box = w.bbox(i)
                    item_states = ["selected"] if i in selected else []
                    bounds = None
                    if box:
                        bounds = [w.winfo_rootx() + box[0], w.winfo_rooty() + box[1], w.winfo_width() - 2 * box[0], box[3]]
                    else:
                        item_states.append("offscreen")
                    nodes.append({"role": "listitem", "name": str(w.get(i)), "value": None, "states": item_states,
                                  "depth": depth + 1, "bounds": bounds})
        for child in w.winfo_children():
            visit(child, child_depth)

    visit(root, 0)
    return nodes


def serve(root: tk.Tk, state: Callable[[], Any] | None = None, path: str = APP_SOCKET) -> None:
    """Answer ``tree`` (and ``state``) on ``path`` from ``root``'s event loop."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if os.path.exists(path):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(8)
    listener.setblocking(False)

    def answer(_file: Any, _mask: int) -> None:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            return
        with conn:
            conn.settimeout(1.0)
            try:
                command = conn.recv(256).decode(errors="replace").strip()
                root.update_idletasks()  # geometry of what was just drawn
                if command == "tree":
                    reply: Any = tree(root)
                elif command == "state" and state is not None:
                    reply = state()
                else:
                    reply = {"error": f"unknown command {command!r}"}
                conn.sendall(json.dumps(reply).encode())
            except OSError:
                pass

    root.tk.createfilehandler(listener, tk.READABLE, answer)
    root._agentgym_listener = listener  # type: ignore[attr-defined]  # keep it alive


def setup_root(title: str, width: int = 800, height: int = 600, font_size: int = 13) -> tk.Tk:
    """A Tk root window filling the screen, with readable fonts and a cursor that does not blink
    (a blinking cursor makes two screenshots of the same state differ)."""
    root = tk.Tk(className="AgentgymApp")
    root.title(title)
    root.geometry(f"{width}x{height}+0+0")
    root.protocol("WM_DELETE_WINDOW", lambda: None)
    root.option_add("*insertOffTime", 0)
    root.option_add("*Font", f"{{DejaVu Sans}} {font_size}")

    def keep_mapped() -> None:
        # A window mapped while the window manager is still starting can be left unmapped (seen
        # once in about ten starts): map it again until it shows.
        if not root.winfo_viewable():
            root.deiconify()
            root.after(200, keep_mapped)

    root.after(300, keep_mapped)
    return root
