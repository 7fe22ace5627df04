"""Where agentgym keeps what it builds once and reuses: models, wheelhouses, harness venvs.

One root, ``$AGENTGYM_CACHE_DIR``, else ``$XDG_CACHE_HOME/agentgym``, else ``~/.cache/agentgym``.

>>> import os
>>> os.environ["AGENTGYM_CACHE_DIR"] = "/tmp/agentgym-doc-cache"
>>> str(cache_dir())
'/tmp/agentgym-doc-cache'
>>> del os.environ["AGENTGYM_CACHE_DIR"]
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path:
    """The cache root (not created here)."""
    if env := os.environ.get("AGENTGYM_CACHE_DIR"):
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "agentgym"
