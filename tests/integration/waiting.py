"""A harness that waits without calling the model, for tests that stop or kill a run while its
episodes are certainly still running (the tiny model can end an episode within a second)."""

from __future__ import annotations

import subprocess
from pathlib import Path

SPEC = """
id = "test/waits-v0"
description = "waits without calling the model"
dialect = "openai"

[launch]
command = "{command}"
"""


def waiting_harness(directory: Path, seconds: int) -> tuple[Path, str]:
    """A TOML harness spec in ``directory`` whose agent runs ``sleep <seconds>``; returns its path
    and that command line (give each test its own ``seconds``, so :func:`processes` finds only
    its own agents)."""
    command = f"sleep {seconds}"
    path = directory / f"waits-{seconds}.toml"
    path.write_text(SPEC.format(command=command))
    return path, command


def processes(pattern: str) -> list[int]:
    """Pids of the processes whose command line contains ``pattern``."""
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]
