"""Wheelhouse cache: keys, the pip command, atomic creation, failures (pip is stubbed)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

import agentgym.harnesses.wheelhouse as wh
from agentgym.errors import HarnessError
from agentgym.paths import cache_dir


def test_key_ignores_requirement_order_but_not_target() -> None:
    a = wh.wheelhouse_key(["a==1", "b==2"])
    assert a == wh.wheelhouse_key(["b==2", "a==1"])
    assert a != wh.wheelhouse_key(["a==1", "b==2"], python_version="3.12")
    assert a != wh.wheelhouse_key(["a==1"])


def test_pip_command_targets_cp311_manylinux() -> None:
    cmd = wh.pip_download_command(["mini-swe-agent==2.4.6"], "/d")
    assert cmd[1:4] == ["-m", "pip", "download"]
    assert "--only-binary=:all:" in cmd
    joined = " ".join(cmd)
    assert "--python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none" in joined
    platforms = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--platform"]
    assert {"manylinux_2_36_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64"} <= set(platforms)
    assert not any("2_37" in p or "aarch64" in p for p in platforms)
    assert cmd[-1] == "mini-swe-agent==2.4.6"


def test_cache_root_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AGENTGYM_CACHE_DIR", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("AGENTGYM_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "x" / "agentgym"


def test_ensure_downloads_once_then_hits_the_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def fake_run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        dest = Path(cmd[cmd.index("--dest") + 1])
        (dest / "pkg-1.0-py3-none-any.whl").write_bytes(b"wheel")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(wh.subprocess, "run", fake_run)
    first = wh.ensure_wheelhouse(["pkg==1.0"], cache_dir=tmp_path)
    second = wh.ensure_wheelhouse(["pkg==1.0"], cache_dir=tmp_path)
    assert first == second == tmp_path / wh.wheelhouse_key(["pkg==1.0"])
    assert len(calls) == 1
    assert [p.name for p in wh.wheel_files(first)] == ["pkg-1.0-py3-none-any.whl"]
    assert (first / wh.COMPLETE_MARKER).is_file()
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temp dirs left


def test_failed_download_raises_and_leaves_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def fake_run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found for nope")

    monkeypatch.setattr(wh.subprocess, "run", fake_run)
    with pytest.raises(HarnessError, match="No matching distribution"):
        wh.ensure_wheelhouse(["nope"], cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(HarnessError):
        wh.ensure_wheelhouse([], cache_dir=tmp_path)
