"""Checks for rotate-logs, each in a fresh directory. AGENTGYM_ROOT is unset in a container
(agentgym's LocalRuntime sets it to its fake root).

As root (the sealed verifier container) the agent's script runs as ``nobody`` on a copy, in
directories ``nobody`` owns: it cannot touch the verifier or its reward."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

SCRIPT = Path(os.environ.get("AGENTGYM_ROOT", "") + "/app/rotate.sh")
def _can_drop_to_nobody() -> bool:
    """Root that may chown (a container); not a sandbox's capability-less root (agentgym's local
    runtime, where the verifier's own protections apply instead)."""
    if os.geteuid() != 0:
        return False
    with tempfile.NamedTemporaryFile() as probe:
        try:
            os.chown(probe.name, 65534, 65534)
        except OSError:
            return False
    return True


NOBODY = 65534 if _can_drop_to_nobody() else None


@pytest.fixture
def tmp_path():
    """A fresh directory the script's user can reach (pytest's own is root's alone)."""
    base = Path(tempfile.mkdtemp(prefix="rotate-"))
    yield base / "work"
    shutil.rmtree(base, ignore_errors=True)


def rotate(*args: str) -> subprocess.CompletedProcess:
    assert os.access(SCRIPT, os.X_OK), "/app/rotate.sh is missing or not executable"
    work = Path(args[0]).parent
    while work.name != "work":
        work = work.parent
    script = work.parent / "bin" / "rotate.sh"
    script.parent.mkdir(exist_ok=True)
    shutil.copyfile(SCRIPT, script)
    script.chmod(0o755)
    user = {}
    if NOBODY is not None:
        for path in [work.parent, *work.parent.rglob("*")]:
            os.chown(path, NOBODY, NOBODY)
        user = {"user": NOBODY, "group": NOBODY, "extra_groups": []}
    try:
        return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=5,
                              stdin=subprocess.DEVNULL, cwd=str(work.parent), **user)
    except subprocess.TimeoutExpired:
        pytest.fail("rotate.sh did not finish within 5 s")


def make(d: Path, files: dict) -> None:
    d.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (d / name).write_text(text)


def state(d: Path) -> dict:
    return {p.name: p.read_text() if p.is_file() and not p.is_symlink() else "<not a regular file>"
            for p in sorted(d.iterdir())}


def test_default_keeps_three(tmp_path):
    make(tmp_path, {"app.log": "a", "app.log.1": "b", "app.log.2": "c", "app.log.3": "d"})
    r = rotate(str(tmp_path / "app.log"))
    assert r.returncode == 0, r.stderr
    assert state(tmp_path) == {"app.log": "", "app.log.1": "a", "app.log.2": "b", "app.log.3": "c"}


def test_keep_argument_and_gaps(tmp_path):
    make(tmp_path, {"web.log": "now", "web.log.2": "two", "web.log.5": "five", "web.log.6": "six"})
    r = rotate(str(tmp_path / "web.log"), "5")
    assert r.returncode == 0, r.stderr
    assert state(tmp_path) == {"web.log": "", "web.log.1": "now", "web.log.3": "two"}


def test_numbers_past_nine_are_ordered_numerically(tmp_path):
    files = {"x.log": "0"} | {f"x.log.{n}": str(n) for n in range(1, 12)}
    make(tmp_path, files)
    r = rotate(str(tmp_path / "x.log"), "12")
    assert r.returncode == 0, r.stderr
    assert state(tmp_path) == {"x.log": ""} | {f"x.log.{n}": str(n - 1) for n in range(1, 13)}


def test_keep_one(tmp_path):
    make(tmp_path, {"a.log": "new", "a.log.1": "old"})
    assert rotate(str(tmp_path / "a.log"), "1").returncode == 0
    assert state(tmp_path) == {"a.log": "", "a.log.1": "new"}


def test_other_files_are_not_touched(tmp_path):
    others = {"app.log.bak": "bak", "app.log.old.1": "o", "other.log.1": "x", "app.log1": "y", "app.log.gz": "z"}
    make(tmp_path, {"app.log": "cur", **others})
    assert rotate(str(tmp_path / "app.log")).returncode == 0
    assert state(tmp_path) == {"app.log": "", "app.log.1": "cur", **others}


def test_paths_with_spaces(tmp_path):
    d = tmp_path / "my logs"
    make(d, {"my app.log": "1", "my app.log.1": "2"})
    r = rotate(str(d / "my app.log"))
    assert r.returncode == 0, r.stderr
    assert state(d) == {"my app.log": "", "my app.log.1": "1", "my app.log.2": "2"}


def test_missing_file_is_an_error_that_changes_nothing(tmp_path):
    make(tmp_path, {"app.log.1": "b"})
    r = rotate(str(tmp_path / "app.log"))
    assert r.returncode == 1
    assert "app.log" in r.stderr
    assert state(tmp_path) == {"app.log.1": "b"}


@pytest.mark.parametrize("keep", ["0", "-2", "abc", "1.5", "3x"])
def test_bad_keep_is_a_usage_error_that_changes_nothing(tmp_path, keep):
    make(tmp_path, {"app.log": "a", "app.log.1": "b"})
    r = rotate(str(tmp_path / "app.log"), keep)
    assert r.returncode == 2
    assert r.stderr.strip()
    assert state(tmp_path) == {"app.log": "a", "app.log.1": "b"}
