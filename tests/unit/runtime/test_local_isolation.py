"""What the local runtime's bubblewrap sandbox keeps out: writes to the host, the host's /tmp and
home, the host's network (but the proxy), processes outliving their command, and the file API
being led out of the fake root by the sandbox's symlinks. Real bwrap, no Docker."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from agentgym.engines.scripted import ScriptedEngine
from agentgym.proxy.server import Proxy
from agentgym.runtime import RuntimeSpec
from agentgym.runtime.local import LocalBackend, LocalRuntime
from tests.unit.runtime.test_local import host_processes_with

T = TypeVar("T")


def sandboxed(tmp_path: Path, body: Callable[[LocalRuntime], Awaitable[T]], **spec: object) -> T:
    async def main() -> T:
        async with await LocalBackend(tmp_root=str(tmp_path)).start(RuntimeSpec(**spec)) as rt:  # type: ignore[arg-type]
            assert isinstance(rt, LocalRuntime)
            return await body(rt)

    return asyncio.run(main())


@pytest.fixture
def host_file() -> Iterator[Path]:
    """A file on the host, outside the runtime, where the sandbox can see it (/var/tmp)."""
    path = Path("/var/tmp") / f"agentgym-test-{uuid.uuid4().hex}"
    path.write_text("host\n")
    yield path
    path.unlink(missing_ok=True)


@pytest.fixture
def host_listener() -> Iterator[int]:
    """A TCP server on the host's 127.0.0.1 that answers 'pong'."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(b"pong")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield srv.getsockname()[1]
    stop.set()
    thread.join()
    srv.close()


def connect(port: int) -> str:
    return (f"python3 -c \"import socket; s = socket.create_connection(('127.0.0.1', {port}), 3); "
            f"print(s.recv(4).decode())\"")


def test_writing_outside_the_task_dirs_fails_and_the_host_is_untouched(tmp_path: Path, host_file: Path) -> None:
    async def body(rt: LocalRuntime) -> None:
        assert (await rt.exec(f"cat {host_file}")).stdout == "host\n"  # the host is readable
        for attempt in (f"echo sandbox > {host_file}", f"echo more >> {host_file}", f"rm -f {host_file}",
                        f"mv {host_file} /app/", "touch /etc/agentgym-test", "mkdir /agentgym-test",
                        "touch /usr/bin/agentgym-test", f"touch {Path.cwd()}/agentgym-test"):
            r = await rt.exec(attempt)
            assert r.exit_code != 0 and "Read-only file system" in r.stderr, (attempt, r)
        assert (await rt.exec("echo ok > /app/f && echo ok > /tmp/f && echo ok > ~/f && echo ok > /output/f")).ok

    sandboxed(tmp_path, body)
    assert host_file.read_text() == "host\n"
    assert not Path("/etc/agentgym-test").exists() and not Path("/agentgym-test").exists()


def test_tmp_is_private_to_the_runtime(tmp_path: Path) -> None:
    name = f"agentgym-test-{uuid.uuid4().hex}"
    on_host = Path("/tmp") / f"{name}-host"
    on_host.write_text("host")
    try:
        async def body(rt: LocalRuntime) -> None:
            assert (await rt.exec(f"echo sandbox > /tmp/{name}; test -e {on_host} || echo unseen")).stdout == "unseen\n"
            assert await rt.read_file(f"/tmp/{name}") == b"sandbox\n"
            assert (await rt.exec(f"cat /tmp/{name}")).stdout == "sandbox\n"  # it persists between commands

        sandboxed(tmp_path, body)
        assert not (Path("/tmp") / name).exists()
    finally:
        on_host.unlink()


def test_home_is_the_runtime_s_own_not_the_user_s(tmp_path: Path) -> None:
    marker = Path.home() / f".agentgym-test-{uuid.uuid4().hex}"
    marker.write_text("secret")
    try:
        async def body(rt: LocalRuntime) -> None:
            r = await rt.exec(f'echo "$HOME"; test -e "$HOME/{marker.name}" || echo unseen; '
                              f'test -e {marker} || echo unseen; echo mine > ~/.profile-test')
            assert r.stdout.splitlines() == ["/root", "unseen", "unseen"], r
            assert await rt.read_file("/root/.profile-test") == b"mine\n"

        sandboxed(tmp_path, body)
        assert not (Path.home() / ".profile-test").exists()
    finally:
        marker.unlink()


def test_the_host_run_dir_and_its_docker_socket_are_hidden(tmp_path: Path) -> None:
    async def body(rt: LocalRuntime) -> None:
        r = await rt.exec("ls -A /run; test -e /run/docker.sock || echo no-docker-socket")
        assert r.stdout.split() == ["agentgym-host", "no-docker-socket"] or r.stdout.split() == ["no-docker-socket"]

    sandboxed(tmp_path, body)


def test_no_capabilities_no_user_namespaces_own_pid_namespace(tmp_path: Path) -> None:
    async def body(rt: LocalRuntime) -> None:
        r = await rt.exec("grep CapEff /proc/self/status; ls /proc | grep -c '^[0-9]'; "
                          "mount -o remount,rw /usr 2>/dev/null || echo no-remount; "
                          "unshare -U true 2>/dev/null || echo no-userns")
        caps, pids, remount, userns = r.stdout.splitlines()
        assert caps.split() == ["CapEff:", "0000000000000000"]
        assert int(pids) < 10  # only the sandbox's processes, not the host's
        assert (remount, userns) == ("no-remount", "no-userns")

    sandboxed(tmp_path, body)


@pytest.mark.parametrize("network", ["none", "host"])
def test_host_tcp_ports_are_out_of_reach_unless_the_host_network_is_asked_for(
        tmp_path: Path, host_listener: int, network: str) -> None:
    async def body(rt: LocalRuntime) -> None:
        r = await rt.exec(connect(host_listener), timeout=30)
        if network == "host":
            assert r.ok and r.stdout == "pong\n", r.stderr
        else:
            assert r.exit_code != 0 and "refused" in r.stderr, r
            devices = (await rt.exec("tail -n +3 /proc/net/dev | cut -d: -f1")).stdout.split()
            assert devices == ["lo"]  # its own network namespace: loopback only

    sandboxed(tmp_path, body, network=network)


def test_network_proxy_reaches_the_proxy_and_nothing_else(tmp_path: Path, host_listener: int) -> None:
    from agentgym.models.tiny import train_tokenizer

    async def main() -> None:
        proxy = Proxy(ScriptedEngine(train_tokenizer(), ["from the sandbox"]), tmp_path / "journal")
        await proxy.start()
        try:
            sid = proxy.open_session()
            backend = LocalBackend(tmp_root=str(tmp_path))
            async with await backend.start(RuntimeSpec(network="proxy", proxy=proxy.endpoint())) as rt:
                base = proxy.base_url(sid)  # unchanged: http://127.0.0.1:<port>/s/<sid>/v1
                models = await rt.exec(f"curl -sf {base}/models", timeout=30)
                assert models.ok and json.loads(models.stdout)["data"][0]["id"] == "scripted", models
                chat = ("python3 -c \"import json, urllib.request as u; r = u.Request('" + base +
                        "/chat/completions', json.dumps({'messages': [{'role': 'user', 'content': 'hi'}]}).encode(), "
                        "{'Content-Type': 'application/json'}); "
                        "print(json.load(u.urlopen(r))['choices'][0]['message']['content'])\"")
                r = await rt.exec(chat, timeout=30)
                assert r.stdout == "from the sandbox\n", r
                assert len(proxy.calls(sid)) == 1
                other = await rt.exec(connect(host_listener), timeout=30)
                assert other.exit_code != 0 and "refused" in other.stderr, other
                # Nothing of the journal is mounted: only the socket's own directory.
                assert (await rt.exec("ls /run/agentgym")).stdout == "proxy.sock\n"
        finally:
            await proxy.stop()

    asyncio.run(main())


def test_a_detached_child_does_not_outlive_its_command(tmp_path: Path) -> None:
    marker = f"{uuid.uuid4().int % 10**6 + 1000}"

    async def body(rt: LocalRuntime) -> None:
        r = await rt.exec(f"setsid sleep {marker}.1 >/dev/null 2>&1 & "
                          f"(nohup sleep {marker}.2 >/dev/null 2>&1 &); disown -a; echo started", timeout=30)
        assert r.ok and r.stdout == "started\n" and r.duration_s < 10
        await asyncio.sleep(0.2)
        assert host_processes_with(marker) == []

    sandboxed(tmp_path, body)


def test_the_file_api_follows_the_sandbox_s_symlinks_only_inside_the_fake_root(tmp_path: Path, host_file: Path) -> None:
    async def body(rt: LocalRuntime) -> None:
        assert (await rt.exec(f"ln -s {host_file} /app/link && ln -s {host_file.parent} /app/dir && "
                              "ln -s ../../../../../../.. /app/up")).ok
        await rt.write_file("/app/link", "through the link")
        await rt.write_file("/app/up/escaped.txt", "x")
        src = tmp_path / "upload"
        src.mkdir()
        (src / host_file.name).write_text("uploaded")
        await rt.upload_dir(str(src), "/app/dir")
        # They all landed in the fake root, where the links point *inside* it.
        assert (rt.root / host_file.relative_to("/")).read_text() == "uploaded"
        assert (rt.root / "escaped.txt").read_text() == "x"

    sandboxed(tmp_path, body)
    assert host_file.read_text() == "host\n"


def test_concurrent_commands_of_one_runtime_share_its_files(tmp_path: Path) -> None:
    async def body(rt: LocalRuntime) -> None:
        results = await asyncio.gather(*(rt.exec(f"echo {i} > /tmp/{i}; sleep 0.3; cat /tmp/*", timeout=30)
                                         for i in range(3)))
        assert all(r.ok for r in results)
        assert sorted(results[-1].stdout.split()) == ["0", "1", "2"]

    sandboxed(tmp_path, body)



def test_host_tools_kept_visible_in_the_home_survive_the_agent_clearing_it(tmp_path: Path) -> None:
    from agentgym.models.tiny import train_tokenizer

    async def main() -> None:
        proxy = Proxy(ScriptedEngine(train_tokenizer(), ["x"]), tmp_path / "journal")
        await proxy.start()
        try:
            backend = LocalBackend(tmp_root=str(tmp_path))
            async with await backend.start(RuntimeSpec(network="proxy", proxy=proxy.endpoint())) as rt:
                # The agent wipes its home, symlinks to the host's tools included...
                assert (await rt.exec("rm -rf ~/.[!.]* ~/*; ls -A ~ | wc -l", timeout=30)).stdout == "0\n"
                # ...the forwarder does not depend on them, and the next command has them back.
                r = await rt.exec(f"curl -sf {proxy.base_url(proxy.open_session())}/models >/dev/null && echo ok; "
                                  "ls -A ~", timeout=30)
                assert r.stdout.splitlines()[0] == "ok", r
                linked = {Path(p).relative_to("/root").parts[0] for p in rt.sandbox.links if p.startswith("/root/")}
                assert set(r.stdout.splitlines()[1:]) == linked
        finally:
            await proxy.stop()

    asyncio.run(main())
