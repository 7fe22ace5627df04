"""What the command line prints: quiet by default, ``-v`` for detail.

Quiet means: agentgym's own warnings and errors, one line each (no tracebacks); nothing from
libraries below an error (no weight-loading progress bars, no deprecation or future warnings,
no aiohttp access logs). ``-v`` adds agentgym's progress notes, library warnings and
tracebacks; ``-vv`` debug messages.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Any

__all__ = ["configure_output"]

_QUIET_ENV = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",   # huggingface_hub, and transformers' weight-loading bars
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "TOKENIZERS_PARALLELISM": "false",     # the fork warning of the tokenizers library
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TQDM_DISABLE": "1",
}


class _OneLine(logging.Formatter):
    """``warning: message`` (``agentgym.x: message`` for other levels with -v); tracebacks only
    when verbose."""

    def __init__(self, verbose: int) -> None:
        super().__init__()
        self.verbose = verbose

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        prefix = record.levelname.lower()
        if self.verbose:
            prefix += f" [{record.name}]"
            if record.exc_info:
                msg += "\n" + self.formatException(record.exc_info)
        else:
            msg = msg.splitlines()[0] if msg else msg
        return f"{prefix}: {msg}"


class _Stderr(logging.StreamHandler[Any]):
    """Writes to the *current* ``sys.stderr``, so a rich progress bar that redirects it keeps
    its lines below ours."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_output(verbose: int = 0) -> None:
    """Set up logging and warnings for a command (``verbose``: the count of ``-v``)."""
    if not verbose:
        for k, v in _QUIET_ENV.items():
            os.environ.setdefault(k, v)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=PendingDeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"(?!agentgym)")
        warnings.filterwarnings("ignore", category=ResourceWarning)
    handler = _Stderr()
    handler.setFormatter(_OneLine(verbose))
    root = logging.getLogger()
    for h in list(root.handlers):
        if isinstance(h, _Stderr):
            root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(logging.WARNING if verbose else logging.ERROR)
    logging.getLogger("agentgym").setLevel(logging.DEBUG if verbose > 1 else logging.INFO if verbose
                                           else logging.WARNING)
    # The proxy's HTTP server logs a full traceback per failed request: its failures reach the
    # trajectory (and the summary) already.
    logging.getLogger("aiohttp").setLevel(logging.WARNING if verbose else logging.CRITICAL)
    if not verbose and "transformers" in sys.modules:  # else its environment variables do it
        try:
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()
        except Exception:  # a transformers without these: its environment variables still apply
            pass
