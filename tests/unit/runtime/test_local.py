"""LocalRuntime: path mapping, exec, timeouts, files, snapshots, cleanup (no Docker needed)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from agentgym.errors import ConfigError, RuntimeError_
from agentgym.runtime import RuntimeFileNotFound, RuntimeSpec, get_backend
from agentgym.runtime.local import LocalBackend, LocalRuntime, pid_alive

T = TypeVar("T")


def run_local(tmp_path: Path, body: Callable[[LocalRuntime], Awaitable[T]], spec: RuntimeSpec | None = None) -> T:
    async def main() -> T:
        rt = await LocalBackend(tmp_root=str(tmp_path)).start(spec or RuntimeSpec())
        try:
            return await body(rt)
        finally:
            await rt.stop()

    return asyncio.run(main())


def test_exec_captures_stdout_stderr_and_exit_code_in_the_mapped_workdir(tmp_path: Path) -> None:
    async def body(rt: LocalRuntime) -> None:
        r = await rt.exec("echo out; echo err >&2; pwd; echo $HOME; exit 3")
        assert (r.exit_code, r.stderr, r.timed_out, r.ok) == (3, "err\n", False, False)
        assert r.stdout.splitlines() == ["out", str(rt.root / "app"), str(rt.root / "root")]
        assert rt.workdir == "/app" and rt.backend == "local"

    run_local(tmp_path, body)


def test_env_spec_env_and_host_path_survive_the_login_shell(tmp_path: Path) -> None:
    async def body(rt: LocalRuntime) -> None:
        r = await rt.exec('echo "$A $B $AGENTGYM_ROOT"; command -v python3', env={"B": "exec"})
        a_b_root, python = r.stdout.splitlines()
        assert a_b_root == f"spec exec {rt.root}"
        assert python == shutil.which("python3")

    run_local(tmp_path, body, RuntimeSpec(env={"A": "spec", "B": "overridden"}))


def test_absolute_paths_map_into_the_fake_root(tmp_path: Path) -> None:
    async def body(rt: LocalRuntime) -> None:
        await rt.write_file("/app/a.txt", "A")
        await rt.write_file("b.txt", b"B")  # relative to the workdir
        await rt.write_file("/logs/verifier/reward.txt", "1")
        assert (rt.root / "app" / "a.txt").read_text() == "A"
        assert (await rt.exec("cat /app/a.txt /app/b.txt /logs/verifier/reward.txt")).stdout == "AB1"
        assert rt.host_path("/app/../../../etc/passwd") == rt.root / "etc" / "passwd"
        assert await rt.read_file("/app/b.txt") == b"B"
        with pytest.raises(RuntimeFileNotFound) as info:
            await rt.read_file("/app/missing")
        assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, RuntimeError_)

    run_local(tmp_path, body)


def test_command_rewrite_maps_known_roots_even_before_they_exist(tmp_path: Path) -> None:
    async def body(rt: LocalRuntime) -> None:
        root = str(rt.root)
        assert rt.rewrite("rm -rf /tests /logs/x") == f"rm -rf {root}/tests {root}/logs/x"
        assert rt.rewrite('cat "/app/x"; ls /usr/bin /tmp a/app http://h/app /applications') == (
            f'cat "{root}/app/x"; ls /usr/bin /tmp a/app http://h/app /applications')
        (rt.root / "agentgym-test-data").mkdir()  # a directory the host lacks
        assert rt.rewrite("ls /agentgym-test-data") == f"ls {root}/agentgym-test-data"
        (rt.root / "usr" / "local" / "bin").mkdir(parents=True)  # one the host has: stays the host's
        assert rt.rewrite("/usr/bin/env; ls /root") == "/usr/bin/env; ls /root"

    run_local(tmp_path, body)


def test_workdir_argument_and_custom_spec_workdir(tmp_path: Path) -> None:
    async def body(rt: LocalRuntime) -> None:
        assert (await rt.exec("pwd")).stdout.strip() == str(rt.root / "srv" / "work")
        assert (await rt.exec("pwd", workdir="/tmp2")).stdout.strip() == str(rt.root / "tmp2")

    run_local(tmp_path, body, RuntimeSpec(workdir="/srv/work"))


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "bg.pid"

    async def body(rt: LocalRuntime) -> None:
        start = time.monotonic()
        r = await rt.exec(f"sleep 100 & echo $! > {pid_file}; sleep 100", timeout=1)
        assert time.monotonic() - start < 5
        assert r.timed_out and r.exit_code == 137 and not r.ok
        bg = int(pid_file.read_text())
        for _ in range(50):
            if not pid_alive(bg):
                break
            await asyncio.sleep(0.05)
        assert not pid_alive(bg), "the background child of a timed-out command survived"
        assert (await rt.exec("echo still usable")).stdout == "still usable\n"

    run_local(tmp_path, body)


def test_cancelling_exec_kills_the_command(tmp_path: Path) -> None:
    pid_file = tmp_path / "c.pid"

    async def body(rt: LocalRuntime) -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(rt.exec(f"echo $$ > {pid_file}; exec sleep 100"), 1)
        await asyncio.sleep(0.2)
        assert not pid_alive(int(pid_file.read_text()))

    run_local(tmp_path, body)


def test_upload_dir_keeps_modes_and_merges(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "run.sh").write_text("echo ran\n")
    (src / "run.sh").chmod(0o755)
    (src / "sub" / "data.txt").write_text("x")

    async def body(rt: LocalRuntime) -> None:
        await rt.write_file("/tests/keep.txt", "k")
        await rt.upload_dir(str(src), "/tests")
        r = await rt.exec("/tests/run.sh && cat /tests/sub/data.txt /tests/keep.txt")
        assert r.stdout == "ran\nxk"
        with pytest.raises(RuntimeError_):
            await rt.upload_dir(str(tmp_path / "nope"), "/x")

    (tmp_path / "rt").mkdir()
    run_local(tmp_path / "rt", body)


def test_snapshot_round_trip_and_stop_is_idempotent(tmp_path: Path) -> None:
    async def main() -> None:
        backend = LocalBackend(tmp_root=str(tmp_path))
        rt = await backend.start(RuntimeSpec())
        await rt.write_file("state.txt", "v1")
        image = await rt.snapshot(f"test-{os.getpid()}")
        assert image.startswith("dir:")
        await rt.stop()
        await rt.stop()
        assert not rt.root.exists()
        with pytest.raises(RuntimeError_):
            await rt.exec("true")
        rt2 = await backend.start(RuntimeSpec(image=image))
        try:
            assert await rt2.read_file("/app/state.txt") == b"v1"
        finally:
            await rt2.stop()
            shutil.rmtree(image.removeprefix("dir:"))

    asyncio.run(main())


def test_cleanup_removes_dirs_of_dead_owners_only(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()

    async def main() -> None:
        backend = LocalBackend(tmp_root=str(tmp_path))
        live = await backend.start(RuntimeSpec())
        leftover = tmp_path / "agentgym-local-leftover"
        (leftover / "fs").mkdir(parents=True)
        (leftover / "owner.json").write_text(json.dumps({"pid": dead.pid, "start": ""}))
        assert await backend.cleanup() == 1
        assert not leftover.exists() and live.root.exists()
        await live.stop()

    asyncio.run(main())


def test_bad_arguments() -> None:
    async def main() -> None:
        with pytest.raises(ConfigError):
            await LocalBackend().start(RuntimeSpec(workdir="relative"))
        rt = await LocalBackend().start(RuntimeSpec())
        try:
            with pytest.raises(ConfigError):
                await rt.exec("true", timeout=0)
        finally:
            await rt.stop()

    asyncio.run(main())
    assert get_backend("local").name == "local"
    with pytest.raises(ConfigError):
        get_backend("podman")
