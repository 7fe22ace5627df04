"""The base-image map, stand-in Dockerfiles and the curl/wget shim for uv's installer (no Docker)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from agentgym.errors import ConfigError
from agentgym.runtime.images import dockerfile_base_images
from agentgym.runtime.standins import (
    INSTALLER,
    SHIM,
    TOOLS_DIR,
    standin_dockerfile,
    standin_for,
)


@pytest.mark.parametrize(("image", "pattern"), [
    ("ubuntu:24.04", "ubuntu:24.04"), ("docker.io/library/ubuntu:24.04", "ubuntu:24.04"),
    ("python:3.12-slim", "python:3.*-slim*"), ("python:3.13-slim-bookworm", "python:3.*-slim*"),
    ("python:3.11", "python:3.*"), ("debian:bookworm-slim", "debian:bookworm*"),
    ("ghcr.io/laude-institute/t-bench/ubuntu-24-04:20250624", "ghcr.io/laude-institute/t-bench/ubuntu-24-04:*"),
    ("ghcr.io/astral-sh/uv:0.9.7", "ghcr.io/astral-sh/uv:*"),
])
def test_the_map_matches_the_images_real_tasks_start_from(image: str, pattern: str) -> None:
    standin = standin_for(image)
    assert standin is not None and standin.match == pattern and standin.note


def test_unknown_images_have_no_stand_in_and_the_map_is_configurable(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    assert standin_for("nvidia/cuda:12.4.0-runtime-ubuntu22.04") is None
    path = tmp_path / "map.toml"
    path.write_text('[[image]]\nmatch = "nvidia/cuda:*"\npackages = ["python3"]\nnote = "no GPU libraries"\n'
                    '[[image]]\nmatch = "ubuntu:24.04"\npackages = ["python3", "git"]\n')
    monkeypatch.setenv("AGENTGYM_BASE_IMAGES", str(path))
    assert standin_for("nvidia/cuda:12.4.0").note == "no GPU libraries"  # type: ignore[union-attr]
    assert standin_for("ubuntu:24.04").packages == ("python3", "git")  # type: ignore[union-attr]
    path.write_text("[[image]]\npackages = []\n")
    with pytest.raises(ConfigError, match="AGENTGYM_BASE_IMAGES"):
        standin_for("ubuntu:24.04")


def test_stand_in_dockerfiles() -> None:
    ubuntu = standin_dockerfile("ubuntu:24.04", standin_for("ubuntu:24.04"))  # type: ignore[arg-type]
    assert ubuntu.startswith("FROM agentgym/minbase:bookworm\n")
    assert "apt-get install -y --no-install-recommends python3 &&" in ubuntu
    assert f"COPY tools/ {TOOLS_DIR}/" in ubuntu and "/usr/local/bin/curl" in ubuntu
    python = standin_dockerfile("python:3.12-slim", standin_for("python:3.12-slim"))  # type: ignore[arg-type]
    assert "/usr/local/bin/python3.12" in python and "PIP_BREAK_SYSTEM_PACKAGES=1" in python
    uv = standin_dockerfile("ghcr.io/astral-sh/uv:0.9.7", standin_for("ghcr.io/astral-sh/uv:0.9.7"))  # type: ignore[arg-type]
    assert uv == "FROM scratch\nCOPY tools/bin/uv tools/bin/uvx /\n"
    assert dockerfile_base_images("FROM python:3.12-slim\nCOPY --from=ghcr.io/astral-sh/uv:0.9.7 /uv /bin/uv\n") == [
        "python:3.12-slim", "ghcr.io/astral-sh/uv:0.9.7"]


def _shim(tmp_path: Path, prog: str = "curl") -> Path:
    tools = tmp_path / "tools"
    (tools / "bin").mkdir(parents=True)
    for name in ("uv", "uvx"):
        (tools / "bin" / name).write_text(f"#!/bin/sh\necho {name}-from-image\n")
        (tools / "bin" / name).chmod(0o755)
    (tools / "uv-installer.sh").write_text(INSTALLER.replace("{tools}", str(tools)).replace("{version}", "0.9.7"))
    shim = tools / "bin" / prog
    # No real program behind it here: /nonexistent stands in for /usr/bin and /bin.
    shim.write_text(SHIM.replace("{prog}", prog).replace("{tools}", str(tools)).replace("{code}", "6")
                    .replace(f"/usr/bin/{prog} /bin/{prog}", f"/nonexistent/{prog}"))
    shim.chmod(0o755)
    return shim


def test_the_curl_shim_serves_uvs_installer_which_installs_the_images_uv(tmp_path: Path) -> None:
    shim = _shim(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin"}
    script = f'{shim} -LsSf https://astral.sh/uv/0.7.13/install.sh | sh && . "$HOME/.local/bin/env" && uvx'
    r = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("uvx-from-image") and "offline compatibility shim" in r.stderr
    assert (home / ".local" / "bin" / "uv").is_file()
    out = tmp_path / "installer.sh"
    r = subprocess.run([str(shim), "-fsSL", "-o", str(out), "https://astral.sh/uv/install.sh"], env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "UV_INSTALL_DIR" in out.read_text()


def test_the_shim_fails_loudly_for_anything_else_without_a_real_program(tmp_path: Path) -> None:
    r = subprocess.run([str(_shim(tmp_path)), "-fsSL", "https://example.com/x"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 6 and "curl is not installed in this image" in r.stderr and "example.com" in r.stderr
