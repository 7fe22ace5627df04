"""Fixtures for integration tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    """The warm-started tiny model (built once into the cache, then reused)."""
    from agentgym.models.tiny import tiny_model_path

    return tiny_model_path()
