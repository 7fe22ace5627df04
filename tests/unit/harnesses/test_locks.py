"""Harness locks: every package pinned at one version with hashes, the ``.in`` pins honoured,
and the wheelhouse built from a lock installs exactly it (pip is stubbed)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

import agentgym.harnesses.wheelhouse as wh
from agentgym.errors import HarnessError
from agentgym.harnesses.locks import LOCK_DIR, harness_lock, uv_compile_command

LOCKS = sorted(p.stem for p in LOCK_DIR.glob("*.in"))


def test_every_lock_source_has_a_lock() -> None:
    assert "mini-swe-agent" in LOCKS
    for name in LOCKS:
        assert (LOCK_DIR / f"{name}.txt").is_file(), f"{name}.in has no lock: run the update command"


@pytest.mark.parametrize("name", LOCKS)
def test_every_requirement_is_pinned_with_hashes(name: str) -> None:
    text = (LOCK_DIR / f"{name}.txt").read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text.strip())
    assert len(entries) > 10
    for entry in entries:
        head = entry.splitlines()[0]
        assert re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*==\S+", head), f"not pinned: {head!r}"
        assert "--hash=sha256:" in entry, f"no hash: {head!r}"


@pytest.mark.parametrize("name", LOCKS)
def test_lock_honours_the_pins_of_its_source(name: str) -> None:
    lock = harness_lock(name)
    for line in lock.source.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        package, _, version = line.partition("==")
        assert version, f"{lock.source.name}: top-level requirement {line!r} must be pinned with =="
        assert lock.pinned(package) == version


def test_unknown_lock_names_the_known_ones() -> None:
    with pytest.raises(HarnessError, match=r"known locks: .*mini-swe-agent"):
        harness_lock("no-such-harness")


def test_update_command_is_a_universal_hashed_compile(tmp_path: Path) -> None:
    cmd = uv_compile_command(tmp_path / "x.in", tmp_path / "x.txt", uv="uv")
    assert cmd[:3] == ["uv", "pip", "compile"]
    assert "--universal" in cmd and "--generate-hashes" in cmd
    assert cmd[-2:] == ["-o", str(tmp_path / "x.txt")]


def test_wheelhouse_from_a_lock_downloads_hash_checked_and_keeps_the_lock(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    lock = harness_lock("mini-swe-agent")
    calls: list[list[str]] = []

    def fake_run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        (Path(cmd[cmd.index("--dest") + 1]) / "pkg-1.0-py3-none-any.whl").write_bytes(b"wheel")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(wh.subprocess, "run", fake_run)
    house = wh.ensure_wheelhouse(lock=lock, cache_dir=tmp_path)
    assert wh.ensure_wheelhouse(lock=lock, cache_dir=tmp_path) == house and len(calls) == 1
    joined = " ".join(calls[0])
    assert f"--require-hashes --no-deps -r {lock.path}" in joined
    assert (house / wh.LOCK_NAME).read_text() == lock.text
    # a different lock content is a different wheelhouse
    other = tmp_path / "other.txt"
    other.write_text(lock.text + "\n# changed\n")
    from agentgym.harnesses.locks import HarnessLock

    assert wh.wheelhouse_key([], lock=HarnessLock("mini-swe-agent", other)) != wh.wheelhouse_key([], lock=lock)


def test_npm_locks_are_listed_with_their_pins(capsys: pytest.CaptureFixture[str]) -> None:
    from agentgym.harnesses.locks import main, npm_lock_packages, npm_locks

    assert {"claude-code", "codex", "qwen-code"} <= set(npm_locks())
    assert npm_lock_packages("qwen-code")["node_modules/@qwen-code/qwen-code"] == "0.24.4"
    assert main(["list", "qwen-code", "mini-swe-agent"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("qwen-code") and "@qwen-code/qwen-code@0.24.4, npm" in out[0]
    assert out[1].startswith("mini-swe-agent") and "mini-swe-agent.txt" in out[1]


def test_npm_update_resolves_metadata_only_from_a_fresh_directory(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    import agentgym.harnesses.locks as locks

    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "package.json").write_text('{"dependencies": {"a": "1.0.0"}}')
    (tmp_path / "x" / "package-lock.json").write_text('{"old": true}')
    seen: list[tuple[list[str], list[str]]] = []

    def fake_run(cmd: list[str], cwd: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        seen.append((cmd, sorted(p.name for p in Path(cwd).iterdir())))
        (Path(cwd) / "package-lock.json").write_text('{"new": true}')
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(locks.subprocess, "run", fake_run)
    monkeypatch.setattr(locks.shutil, "which", lambda name: "/usr/bin/npm")
    path = locks.update_npm_lock("x", lock_dir=tmp_path)
    [(cmd, files)] = seen
    assert cmd[:3] == ["/usr/bin/npm", "install", "--package-lock-only"] and "--ignore-scripts" in cmd
    assert files == ["package.json"]  # the old lock does not steer the resolution
    assert path.read_text() == '{"new": true}'
