from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny checkpoint with random weights: outputs are noise, but exactly reproducible."""
    from agentgym.models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-engine"), seed=0)


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Iterator[Any]:
    import asyncio

    from agentgym.engines.embedded import EmbeddedEngine

    eng = EmbeddedEngine(tiny_model_dir, max_batch_size=8, gather_window_s=0.05)
    yield eng
    asyncio.run(eng.aclose())
