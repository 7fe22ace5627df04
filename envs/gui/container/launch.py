"""Start a GUI task's desktop: Xvfb, the openbox window manager, and the app's services
(runs inside the container; standard library only).

``python3 launch.py`` stays in the foreground as their supervisor: each service of
``<app>/app.json`` (``{"services": [{"name": ..., "command": [...]}]}``) is started again
when it exits (a closed browser comes back; the app restores its state where it keeps it).
The task's ``setup`` starts it detached and waits with ``actiond.py --wait-ready``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
APP_DIR = Path(os.environ.get("AGENTGYM_GUI_APP", "/opt/agentgym-gui/apps/missing-AGENTGYM_GUI_APP"))
"""The task's app (the task sets ``AGENTGYM_GUI_APP``)."""
DISPLAY = os.environ.get("DISPLAY", ":0")
SCREEN = os.environ.get("AGENTGYM_GUI_SCREEN", "800x600")
RESPAWN_S = 0.5


def log(message: str) -> None:
    print(f"[launch {time.strftime('%H:%M:%S')}] {message}", flush=True)


def start_display() -> subprocess.Popen[bytes]:
    number = DISPLAY.split(":", 1)[1].split(".", 1)[0]
    sock = Path(f"/tmp/.X11-unix/X{number}")
    xvfb = subprocess.Popen(["Xvfb", DISPLAY, "-screen", "0", f"{SCREEN}x24", "-ac", "-nolisten", "tcp",
                             "-dpi", "96", "+extension", "XTEST"])
    deadline = time.monotonic() + 30
    while not sock.exists():
        if xvfb.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"Xvfb did not start (exit {xvfb.poll()})")
        time.sleep(0.05)
    return xvfb


def start_wm(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """openbox, once it manages the screen (a window mapped before that can stay unmapped)."""
    wm = subprocess.Popen(["openbox", "--config-file", str(HERE / "openbox.xml")], env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and wm.poll() is None:
        probe = subprocess.run(["xprop", "-root", "_NET_SUPPORTING_WM_CHECK"], env=env, capture_output=True, text=True)
        if "window id" in probe.stdout:
            break
        time.sleep(0.05)
    return wm


def main() -> int:
    config: dict[str, Any] = json.loads((APP_DIR / "app.json").read_text())
    env = {**os.environ, "DISPLAY": DISPLAY}
    xvfb = start_display()
    log(f"Xvfb on {DISPLAY} ({SCREEN})")
    wm = start_wm(env)
    services: dict[str, tuple[list[str], subprocess.Popen[bytes] | None]] = {
        s["name"]: (list(s["command"]), None) for s in config["services"]}
    while True:
        if xvfb.poll() is not None:
            log(f"Xvfb exited ({xvfb.returncode}); stopping")
            return 1
        if wm.poll() is not None:
            wm = start_wm(env)
        for name, (command, proc) in services.items():
            if proc is None or proc.poll() is not None:
                if proc is not None:
                    log(f"{name} exited ({proc.returncode}); starting it again")
                services[name] = (command, subprocess.Popen(command, env=env, cwd=str(APP_DIR)))
        time.sleep(RESPAWN_S)


if __name__ == "__main__":
    sys.exit(main())
