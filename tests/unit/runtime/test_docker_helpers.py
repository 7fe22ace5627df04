"""Pure helpers of the Docker runtime (no engine needed)."""

from __future__ import annotations

import asyncio
import os
import pickle
from pathlib import Path

import pytest

from agentgym.errors import ConfigError, RuntimeError_
from agentgym.runtime import RuntimeSpec
from agentgym.runtime.docker import (
    LABEL,
    LABEL_PID,
    LABEL_RUN,
    DockerBackend,
    _kill_by_exec_id_script,
    _parse_oom_kills,
)
from agentgym.runtime.images import ImageBuildError, context_hash, dockerfile_base_images


def test_context_hash_tracks_content_names_modes_and_extra(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM agentgym/base:bookworm\n")
    (tmp_path / "app").mkdir()
    script = tmp_path / "app" / "run.sh"
    script.write_text("echo 1\n")
    h0 = context_hash(tmp_path)
    assert context_hash(tmp_path) == h0
    script.chmod(0o755)
    h1 = context_hash(tmp_path)
    script.write_text("echo 2\n")
    h2 = context_hash(tmp_path)
    script.rename(tmp_path / "app" / "run2.sh")
    h3 = context_hash(tmp_path)
    assert len({h0, h1, h2, h3}) == 4
    assert context_hash(tmp_path, ["base=sha256:1"]) != context_hash(tmp_path, ["base=sha256:2"])


def test_dockerfile_base_images_skips_stages_and_scratch() -> None:
    text = """
    FROM --platform=linux/amd64 agentgym/base:bookworm AS build
    RUN make
    from build as second
    FROM scratch
    FROM debian:bookworm-slim
    """
    assert dockerfile_base_images(text) == ["agentgym/base:bookworm", "debian:bookworm-slim"]


def test_parse_oom_kills_from_cgroup_v1_and_v2() -> None:
    assert _parse_oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n") == 3
    assert _parse_oom_kills("low 0\nhigh 0\nmax 5\noom 2\noom_kill 2\noom_group_kill 0\n") == 2
    assert _parse_oom_kills("") == 0


def test_kill_script_quotes_the_exec_id() -> None:
    script = _kill_by_exec_id_script("abc123")
    assert "AGENTGYM_EXEC_ID=abc123" in script and "kill -9" in script


def test_image_build_error_is_picklable_and_a_runtime_error() -> None:
    err = ImageBuildError("build failed at Step 2/3", step="Step 2/3 : RUN false", log="...")
    copy = pickle.loads(pickle.dumps(err))
    assert isinstance(copy, ImageBuildError) and isinstance(copy, RuntimeError_)
    assert copy.step == err.step and str(copy) == str(err)


def test_labels_identify_run_and_process() -> None:
    backend = DockerBackend(client=object(), run_id="r1")
    try:
        labels = backend.labels()
        assert labels[LABEL] == "1" and labels[LABEL_RUN] == "r1" and labels[LABEL_PID] == str(os.getpid())
    finally:
        backend.close()


def test_start_rejects_bridge_networks_and_missing_images() -> None:
    backend = DockerBackend(client=object())
    try:
        with pytest.raises(ConfigError, match="network must be one of"):
            asyncio.run(backend.start(RuntimeSpec(image="x", network="bridge")))
        with pytest.raises(ConfigError, match="image is required"):
            asyncio.run(backend.start(RuntimeSpec(image=None)))
    finally:
        backend.close()
