"""Fixtures for integration tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    """The warm-started tiny model (built once into AGENTGYM_HOME, then reused)."""
    from agentgym.quickstart import tiny_model_path

    return tiny_model_path()
