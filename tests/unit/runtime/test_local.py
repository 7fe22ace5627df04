"""LocalRuntime: exec, timeouts, files, snapshots, cleanup (no Docker needed), in the bubblewrap
sandbox (the default) and without isolation (``local-unsafe``). What the sandbox keeps out is
in ``test_local_isolation.py``."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from agentgym.errors import ConfigError, RuntimeError_
from agentgym.runtime import RuntimeFileNotFound, RuntimeSpec, get_backend
from agentgym.runtime.local import LocalBackend, LocalRuntime

T = TypeVar("T")


def run_local(tmp_path: Path, body: Callable[[LocalRuntime], Awaitable[T]], spec: RuntimeSpec | None = None,
              isolation: str = "bubblewrap") -> T:
    async def main() -> T:
        rt = await LocalBackend(tmp_root=str(tmp_path), isolation=isolation).start(spec or RuntimeSpec())
        try:
            return await body(rt)
        finally:
            await rt.stop()

    return asyncio.run(main())


def host_processes_with(marker: str) -> list[str]:
    """Command lines of live host processes that mention ``marker``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in text:
            found.append(text)
    return found


def test_exec_captures_stdout_stderr_and_exit_code_in_the_task_workdir(tmp_path: Path) -> None:
    async def body(rt: LocalRuntime) -> None:
        r = await rt.exec("echo out; echo err >&2; pwd; echo $HOME; exit 3")
        assert (r.exit_code, r.stderr, r.timed_out, r.ok) == (3, "err\n", False, False)
        assert r.stdout.splitlines() == ["out", "/app", "/root"]
        assert rt.workdir == "/app" and rt.backend == "local" and rt.isolation == "bubblewrap"

    run_local(tmp_path, body)


def test_env_spec_env_and_path_survive_the_login_shell_and_agentgym_root_is_unset(tmp_path: Path) -> None:
    async def body(rt: LocalRuntime) -> None:
        r = await rt.exec('echo "$A $B ${AGENTGYM_ROOT-unset}"; python3 -c "print(6 * 7)"', env={"B": "exec"})
        assert r.stdout.splitlines() == ["spec exec unset", "42"], r.stderr

    run_local(tmp_path, body, RuntimeSpec(env={"A": "spec", "B": "overridden"}))


def test_task_paths_are_the_same_for_commands_and_the_file_api(tmp_path: Path) -> None:
    async def body(rt: LocalRuntime) -> None:
        await rt.write_file("/app/a.txt", "A")
        await rt.write_file("b.txt", b"B")  # relative to the workdir
        await rt.write_file("/logs/verifier/reward.txt", "1")
        assert (rt.root / "app" / "a.txt").read_text() == "A"
        assert (await rt.exec("cat /app/a.txt b.txt /logs/verifier/reward.txt")).stdout == "AB1"
        assert rt.process_path("/app/x") == "/app/x" and rt.rewrite("cat /app/x") == "cat /app/x"
        assert rt.host_path("/app/../../../etc/passwd") == rt.root / "etc" / "passwd"
        assert await rt.read_file("/app/b.txt") == b"B"
        with pytest.raises(RuntimeFileNotFound) as info:
            await rt.read_file("/app/missing")
        assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, RuntimeError_)
        # What the command writes, the file API reads (and the other way round), between execs.
        assert (await rt.exec("echo made > /tests/t.txt && mkdir -p /output/x")).ok
        assert await rt.read_file("/tests/t.txt") == b"made\n"

    run_local(tmp_path, body)


def test_a_file_written_outside_the_task_dirs_shows_at_its_path(tmp_path: Path) -> None:
    async def body(rt: LocalRuntime) -> None:
        # /opt exists on the host: the sandbox merges the host's /opt (read-only) with this file.
        await rt.write_file("/opt/agentgym-test/run.sh", "echo ran\n", mode=0o755)
        r = await rt.exec("/opt/agentgym-test/run.sh && ls /opt | grep -c . && ls /usr/bin/env")
        assert r.ok and r.stdout.startswith("ran\n") and r.stdout.endswith("/usr/bin/env\n"), r.stderr
        assert int(r.stdout.splitlines()[1]) == len(os.listdir("/opt")) + (not os.path.exists("/opt/agentgym-test"))
        assert not (await rt.exec("touch /opt/other")).ok  # the host's part stays read-only

    run_local(tmp_path, body)


def test_workdir_argument_and_custom_spec_workdir(tmp_path: Path) -> None:
    async def body(rt: LocalRuntime) -> None:
        assert (await rt.exec("pwd; touch here")).stdout.strip() == "/srv/work"
        assert (rt.root / "srv" / "work" / "here").exists()
        assert (await rt.exec("pwd", workdir="/tmp2")).stdout.strip() == "/tmp2"
        assert (await rt.exec("pwd", workdir="sub/deeper")).stdout.strip() == "/srv/work/sub/deeper"

    run_local(tmp_path, body, RuntimeSpec(workdir="/srv/work"))


def test_timeout_kills_everything_the_command_started(tmp_path: Path) -> None:
    marker = f"{uuid.uuid4().int % 10**6 + 1000}"

    async def body(rt: LocalRuntime) -> None:
        start = time.monotonic()
        r = await rt.exec(f"setsid sleep {marker}.1 & nohup sleep {marker}.2 >/dev/null 2>&1 & sleep 100", timeout=1)
        assert time.monotonic() - start < 5
        assert r.timed_out and r.exit_code == 137 and not r.ok
        for _ in range(50):
            if not host_processes_with(marker):
                break
            await asyncio.sleep(0.05)
        assert host_processes_with(marker) == [], "a child of a timed-out command survived"
        assert (await rt.exec("echo still usable")).stdout == "still usable\n"

    run_local(tmp_path, body)


def test_cancelling_exec_kills_the_command(tmp_path: Path) -> None:
    marker = f"{uuid.uuid4().int % 10**6 + 1000}"

    async def body(rt: LocalRuntime) -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(rt.exec(f"exec sleep {marker}"), 1)
        for _ in range(50):
            if not host_processes_with(f"sleep {marker}"):
                break
            await asyncio.sleep(0.05)
        assert host_processes_with(f"sleep {marker}") == []

    run_local(tmp_path, body)


def test_upload_dir_keeps_modes_and_merges(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "run.sh").write_text("echo ran\n")
    (src / "run.sh").chmod(0o755)
    (src / "sub" / "data.txt").write_text("x")
    (src / "link").symlink_to("sub/data.txt")

    async def body(rt: LocalRuntime) -> None:
        await rt.write_file("/tests/keep.txt", "k")
        await rt.upload_dir(str(src), "/tests")
        r = await rt.exec("/tests/run.sh && cat /tests/sub/data.txt /tests/keep.txt /tests/link")
        assert r.stdout == "ran\nxkx", r.stderr
        with pytest.raises(RuntimeError_):
            await rt.upload_dir(str(tmp_path / "nope"), "/x")

    (tmp_path / "rt").mkdir()
    run_local(tmp_path / "rt", body)


def test_snapshot_round_trip_and_stop_is_idempotent(tmp_path: Path) -> None:
    async def main() -> None:
        backend = LocalBackend(tmp_root=str(tmp_path))
        rt = await backend.start(RuntimeSpec())
        await rt.write_file("state.txt", "v1")
        assert (await rt.exec("mkfifo /tmp/fifo && echo v2 > /root/home.txt")).ok  # a pipe is left out
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
            assert (await rt2.exec("cat ~/home.txt")).stdout == "v2\n"
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
    with pytest.raises(ConfigError):
        LocalBackend(isolation="chroot")
    with pytest.raises(ConfigError, match=r"needs RuntimeSpec\.proxy"):
        RuntimeSpec(network="proxy")
    with pytest.raises(ConfigError):
        get_backend("podman")


def test_backend_names_say_which_isolation() -> None:
    sandboxed, unsafe = get_backend("local"), get_backend("local-unsafe")
    assert isinstance(sandboxed, LocalBackend) and isinstance(unsafe, LocalBackend)
    assert (sandboxed.name, sandboxed.isolation) == ("local", "bubblewrap")
    assert (unsafe.name, unsafe.isolation) == ("local-unsafe", "none")
    assert "bubblewrap" in sandboxed.describe_isolation() and "WITHOUT isolation" in unsafe.describe_isolation()


def test_without_bubblewrap_the_runtime_refuses_to_start_and_says_what_to_do(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_root=str(tmp_path), bwrap="/nonexistent/bwrap")
    with pytest.raises(RuntimeError_) as info:
        asyncio.run(backend.start(RuntimeSpec()))
    assert "apt-get install bubblewrap" in str(info.value) and "local-unsafe" in str(info.value)
    assert list(tmp_path.iterdir()) == []  # nothing was created


# -- without isolation (local-unsafe): today's textual path mapping ---------------------------------
def test_unsafe_commands_run_on_the_host_in_the_fake_root(tmp_path: Path) -> None:
    async def body(rt: LocalRuntime) -> None:
        r = await rt.exec('pwd; echo "$HOME $AGENTGYM_ROOT"; command -v python3')
        cwd, env, python = r.stdout.splitlines()
        assert cwd == str(rt.root / "app") and env == f"{rt.root / 'root'} {rt.root}"
        assert python == shutil.which("python3")
        assert rt.process_path("/app/x") == str(rt.root / "app" / "x") and rt.isolation == "none"
        await rt.write_file("/logs/verifier/reward.txt", "1")
        assert (await rt.exec("cat /logs/verifier/reward.txt")).stdout == "1"

    run_local(tmp_path, body, isolation="none")


def test_unsafe_command_rewrite_maps_known_roots_even_before_they_exist(tmp_path: Path) -> None:
    async def body(rt: LocalRuntime) -> None:
        root = str(rt.root)
        assert rt.rewrite("rm -rf /tests /logs/x") == f"rm -rf {root}/tests {root}/logs/x"
        assert rt.rewrite('cat "/app/x"; ls /usr/bin /tmp a/app http://h/app /applications') == (
            f'cat "{root}/app/x"; ls /usr/bin /tmp a/app http://h/app /applications')
        (rt.root / "agentgym-test-data").mkdir()  # a directory the host lacks
        assert rt.rewrite("ls /agentgym-test-data") == f"ls {root}/agentgym-test-data"
        (rt.root / "usr" / "local" / "bin").mkdir(parents=True)  # one the host has: stays the host's
        assert rt.rewrite("/usr/bin/env; ls /root") == "/usr/bin/env; ls /root"

    run_local(tmp_path, body, isolation="none")


def test_unsafe_timeout_kills_the_process_group(tmp_path: Path) -> None:
    marker = f"{uuid.uuid4().int % 10**6 + 1000}"

    async def body(rt: LocalRuntime) -> None:
        r = await rt.exec(f"sleep {marker} & sleep 100", timeout=1)
        assert r.timed_out and r.exit_code == 137
        for _ in range(50):
            if not host_processes_with(f"sleep {marker}"):
                break
            await asyncio.sleep(0.05)
        assert host_processes_with(f"sleep {marker}") == []

    run_local(tmp_path, body, isolation="none")


def test_a_sandbox_that_cannot_be_set_up_is_a_runtime_error_not_an_exit_code(tmp_path: Path) -> None:
    from agentgym.runtime.base import ProxyEndpoint

    (tmp_path / "sock").mkdir()
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock" / "proxy.sock"))

    async def body(rt: LocalRuntime) -> None:
        assert rt.sandbox is not None
        rt.sandbox.python = "/nonexistent/python3"  # the forwarder cannot start
        with pytest.raises(RuntimeError_, match="the proxy forwarder did not start"):
            await rt.exec("true", timeout=30)
        real_argv = rt.sandbox.argv
        rt.sandbox.argv = lambda *a, **k: [*real_argv(*a, **k)[:1], "--bind", "/nonexistent", "/x",  # type: ignore[method-assign]
                                           *real_argv(*a, **k)[1:]]
        with pytest.raises(RuntimeError_, match=r"bubblewrap could not set up the sandbox.*nonexistent"):
            await rt.exec("true", timeout=30)

    try:
        run_local(tmp_path, body, RuntimeSpec(network="proxy", proxy=ProxyEndpoint(sock.getsockname(), 8000)))
    finally:
        sock.close()


# -- local-unsafe: no pid namespace, so what a command leaves is found by session and by id ----
DETACH = "setsid sleep {m}.1 >/dev/null 2>&1 & (nohup sleep {m}.2 >/dev/null 2>&1 &); disown -a; echo started"


def wait_gone(marker: str) -> list[str]:
    for _ in range(100):
        if not host_processes_with(marker):
            break
        time.sleep(0.05)
    return host_processes_with(marker)


def test_unsafe_timeout_kills_children_that_left_the_session(tmp_path: Path) -> None:
    marker = f"{uuid.uuid4().int % 10**6 + 1000}"

    async def body(rt: LocalRuntime) -> None:
        r = await rt.exec(f"setsid sleep {marker}.1 & nohup sleep {marker}.2 >/dev/null 2>&1 & sleep 100", timeout=1)
        assert r.timed_out
        assert wait_gone(marker) == []

    run_local(tmp_path, body, isolation="none")


def test_unsafe_stop_kills_setsid_daemons_of_finished_commands(tmp_path: Path) -> None:
    marker = f"{uuid.uuid4().int % 10**6 + 1000}"

    async def body(rt: LocalRuntime) -> None:
        r = await rt.exec(DETACH.format(m=marker), timeout=30)
        assert r.ok and r.stdout == "started\n"
        await asyncio.sleep(0.2)
        assert len(host_processes_with(marker)) == 2  # without isolation they outlive the command...
        await rt.stop()
        assert wait_gone(marker) == []  # ...but not the runtime

    run_local(tmp_path, body, isolation="none")


@pytest.mark.parametrize("isolation", ["none", "bubblewrap"])
def test_closing_the_backend_kills_what_its_live_runtimes_run(tmp_path: Path, isolation: str) -> None:
    marker = f"{uuid.uuid4().int % 10**6 + 1000}"

    async def main() -> None:
        backend = LocalBackend(tmp_root=str(tmp_path), isolation=isolation)
        rt = await backend.start(RuntimeSpec())
        running = asyncio.ensure_future(rt.exec(f"{DETACH.format(m=marker)}; sleep {marker}.3", timeout=60))
        for _ in range(100):
            if host_processes_with(f"{marker}.3"):
                break
            await asyncio.sleep(0.05)
        assert host_processes_with(f"{marker}.3")
        backend.close()  # what a stopping run does (synchronously, from a signal's aftermath)
        assert wait_gone(marker) == []
        assert not rt.root.exists()
        result = await running
        assert result.exit_code != 0

    asyncio.run(main())
