"""DockerRuntime against a real engine: exec, timeouts, OOM, files, labels + cleanup, networks,
snapshots and image builds."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shlex
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from agentgym.errors import RuntimeError_
from agentgym.runtime import RuntimeFileNotFound, RuntimeSpec
from agentgym.runtime.docker import (
    LABEL,
    LABEL_HOST,
    LABEL_PID,
    LABEL_RUN,
    DockerBackend,
    DockerRuntime,
)
from agentgym.runtime.images import LABEL_CONTEXT_HASH, ImageBuildError

pytestmark = pytest.mark.docker
BASE = "agentgym/base:bookworm"
T = TypeVar("T")


def in_container(backend: DockerBackend, body: Callable[[DockerRuntime], Awaitable[T]], **spec: Any) -> T:
    async def main() -> T:
        rt = await backend.start(RuntimeSpec(**{"image": BASE, "memory": "256m", **spec}))
        try:
            return await body(rt)
        finally:
            await rt.stop()

    return asyncio.run(main())


def test_exec_separates_streams_and_honours_env_and_workdir(docker_backend: DockerBackend) -> None:
    async def body(rt: DockerRuntime) -> None:
        r = await rt.exec("echo out; echo err >&2; echo $A-$B; pwd; exit 7", env={"B": "exec"})
        assert (r.exit_code, r.stdout, r.stderr) == (7, "out\nspec-exec\n/app\n", "err\n")
        assert not r.timed_out and not r.oom_killed and not r.ok
        assert (await rt.exec("pwd", workdir="/tmp")).stdout == "/tmp\n"
        assert (await rt.exec("pwd", workdir="sub")).stdout == "/app/sub\n"  # created by docker

    in_container(docker_backend, body, env={"A": "spec"})


def test_timeout_kills_quickly_and_the_container_stays_usable(docker_backend: DockerBackend) -> None:
    async def body(rt: DockerRuntime) -> None:
        start = time.monotonic()
        r = await rt.exec("sleep 100", timeout=1)
        assert time.monotonic() - start < 5
        assert r.timed_out and not r.ok and not r.oom_killed
        # A process that left the process group is killed too (found by its exec id).
        r = await rt.exec("setsid sleep 200 & sleep 100", timeout=1)
        assert r.timed_out
        ps = await rt.exec("ps -eo args")
        assert "sleep 100" not in ps.stdout and "sleep 200" not in ps.stdout, ps.stdout
        assert (await rt.exec("echo alive", timeout=10)).stdout == "alive\n"

    in_container(docker_backend, body)


def test_cancelled_exec_kills_the_command(docker_backend: DockerBackend) -> None:
    async def body(rt: DockerRuntime) -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(rt.exec("sleep 300"), 1)
        ps = await rt.exec("ps -eo args")
        assert "sleep 300" not in ps.stdout, ps.stdout

    in_container(docker_backend, body)


def test_oom_is_flagged_and_the_container_survives(docker_backend: DockerBackend) -> None:
    async def body(rt: DockerRuntime) -> None:
        r = await rt.exec("python3 -c 'x = bytearray(512 * 1024 * 1024); print(len(x))'", timeout=60)
        assert r.oom_killed and r.exit_code == 137 and not r.timed_out
        ok = await rt.exec("python3 -c 'print(len(bytearray(8 * 1024 * 1024)))'", timeout=60)
        assert ok.ok and not ok.oom_killed and ok.stdout == f"{8 * 1024 * 1024}\n"
        plain_failure = await rt.exec("exit 3")
        assert plain_failure.exit_code == 3 and not plain_failure.oom_killed

    in_container(docker_backend, body, memory="64m")


def test_read_write_upload(docker_backend: DockerBackend, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "nested").mkdir(parents=True)
    (src / "run.sh").write_text("#!/bin/sh\necho ran\n")
    (src / "run.sh").chmod(0o755)
    (src / "nested" / "blob.bin").write_bytes(bytes(range(256)))

    async def body(rt: DockerRuntime) -> None:
        await rt.write_file("/deep/new/dir/file.txt", "héllo\n")
        await rt.write_file("rel.txt", b"\x00\x01", mode=0o600)
        assert await rt.read_file("/deep/new/dir/file.txt") == "héllo\n".encode()
        assert await rt.read_file("/app/rel.txt") == b"\x00\x01"
        assert (await rt.exec("stat -c %a /app/rel.txt")).stdout == "600\n"
        await rt.upload_dir(str(src), "/opt/up")
        assert (await rt.exec("/opt/up/run.sh")).stdout == "ran\n"
        assert await rt.read_file("/opt/up/nested/blob.bin") == bytes(range(256))
        with pytest.raises(RuntimeFileNotFound):
            await rt.read_file("/does/not/exist")
        with pytest.raises(RuntimeError_, match="directory"):
            await rt.read_file("/opt/up")

    in_container(docker_backend, body)


def test_containers_are_labelled_and_stop_is_idempotent(docker_backend: DockerBackend) -> None:
    import docker

    client = docker.from_env()

    async def main() -> None:
        rt = await docker_backend.start(RuntimeSpec(image=BASE, labels={"purpose": "test"}))
        labels = client.containers.get(rt.container_id).labels
        assert labels[LABEL] == "1" and labels[LABEL_RUN] == docker_backend.run_id
        assert labels[LABEL_PID].isdigit() and labels[LABEL_HOST] and labels["purpose"] == "test"
        assert rt.name in docker_backend.live_containers()
        await rt.stop()
        await rt.stop()
        with pytest.raises(docker.errors.NotFound):
            client.containers.get(rt.container_id)
        with pytest.raises(RuntimeError_):
            await rt.exec("true")

    asyncio.run(main())


def test_cleanup_removes_leftovers_of_dead_processes_only(docker_backend: DockerBackend) -> None:
    import docker

    client = docker.from_env()
    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = client.containers.run(
        BASE, entrypoint=["sleep", "infinity"], detach=True, network_mode="none",
        labels={**docker_backend.labels(), LABEL_PID: str(dead.pid), LABEL_RUN: "crashed-run"})

    async def main() -> None:
        rt = await docker_backend.start(RuntimeSpec(image=BASE))
        try:
            assert await docker_backend.cleanup() >= 1
            with pytest.raises(docker.errors.NotFound):
                client.containers.get(leftover.id)
            assert (await rt.exec("echo mine")).stdout == "mine\n"  # a live process's container stays
        finally:
            await rt.stop()

    try:
        asyncio.run(main())
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            leftover.remove(force=True)


@pytest.fixture
def host_server() -> Iterator[int]:
    """A TCP server on the host's 127.0.0.1 answering 'pong'."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
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


def probe_host(port: int) -> str:
    return (f"python3 -c \"import socket; s = socket.create_connection(('127.0.0.1', {port}), 3); "
            f"print(s.recv(4).decode())\"")


@pytest.mark.parametrize("network", ["host", "none"])
def test_network_host_reaches_the_host_and_none_does_not(docker_backend: DockerBackend, host_server: int,
                                                         network: str) -> None:
    probe = probe_host(host_server)

    async def body(rt: DockerRuntime) -> None:
        r = await rt.exec(probe, timeout=20)
        if network == "host":
            assert r.ok and r.stdout == "pong\n", r.stderr
        else:
            assert r.exit_code != 0 and ("refused" in r.stderr or "unreachable" in r.stderr), r.stderr
            assert (await rt.exec("ls /sys/class/net")).stdout.split() == ["lo"]

    in_container(docker_backend, body, network=network)


def test_network_proxy_reaches_the_proxy_through_the_forwarder_and_nothing_else(
        docker_backend: DockerBackend, host_server: int, tmp_path: Path) -> None:
    from agentgym.engines.scripted import ScriptedEngine
    from agentgym.models.tiny import train_tokenizer
    from agentgym.proxy.server import Proxy

    chat = ("import json, sys, urllib.request as u; r = u.Request(sys.argv[1] + '/chat/completions', "
            "json.dumps({'messages': [{'role': 'user', 'content': 'hi'}]}).encode(), "
            "{'Content-Type': 'application/json'}); print(json.load(u.urlopen(r))['choices'][0]['message']['content'])")
    outside = ("python3 -c \"import socket; socket.create_connection(('192.0.2.1', 80), 3)\"")  # TEST-NET-1

    async def main() -> None:
        proxy = Proxy(ScriptedEngine(train_tokenizer(), ["from the container"]), tmp_path / "journal")
        await proxy.start()
        try:
            sid = proxy.open_session()
            spec = RuntimeSpec(image=BASE, memory="256m", network="proxy", proxy=proxy.endpoint())
            async with await docker_backend.start(spec) as rt:
                base = proxy.base_url(sid)  # unchanged: http://127.0.0.1:<port>/s/<sid>/v1
                r = await rt.exec(f"python3 -c {shlex.quote(chat)} {base}", timeout=30)
                assert r.stdout == "from the container\n", r
                assert len(proxy.calls(sid)) == 1
                host = await rt.exec(probe_host(host_server), timeout=30)
                assert host.exit_code != 0 and "refused" in host.stderr, host
                out = await rt.exec(outside, timeout=30)
                assert out.exit_code != 0 and "unreachable" in out.stderr, out
                assert (await rt.exec("ls /sys/class/net")).stdout.split() == ["lo"]
                assert (await rt.exec("ls /run/agentgym")).stdout == "proxy.sock\n"  # not the journal
        finally:
            await proxy.stop()

    asyncio.run(main())


def test_a_proxy_that_does_not_answer_fails_the_start_and_leaves_no_container(
        docker_backend: DockerBackend, tmp_path: Path) -> None:
    from agentgym.runtime.base import ProxyEndpoint

    (tmp_path / "sock").mkdir()
    spec = RuntimeSpec(image=BASE, network="proxy", proxy=ProxyEndpoint(str(tmp_path / "sock" / "proxy.sock"), 8999))
    before = set(docker_backend.live_containers())
    start = time.monotonic()
    with pytest.raises(RuntimeError_, match="does not answer through the forwarder"):
        asyncio.run(docker_backend.start(spec))
    assert time.monotonic() - start < 30
    assert set(docker_backend.live_containers()) == before


def test_snapshot_starts_a_new_container_with_the_files(docker_backend: DockerBackend) -> None:
    import docker

    tag = f"agentgym-test/snapshot-{uuid.uuid4().hex[:8]}:v1"

    async def main() -> None:
        rt = await docker_backend.start(RuntimeSpec(image=BASE))
        try:
            await rt.write_file("/app/state.txt", "saved")
            assert await rt.snapshot(tag) == tag
        finally:
            await rt.stop()
        rt2 = await docker_backend.start(RuntimeSpec(image=tag))
        try:
            assert await rt2.read_file("/app/state.txt") == b"saved"
        finally:
            await rt2.stop()

    try:
        asyncio.run(main())
        labels = docker.from_env().images.get(tag).labels
        assert not labels.get(LABEL) and not labels.get(LABEL_PID)  # never looks like a leftover
    finally:
        docker.from_env().images.remove(tag, force=True)


def test_ensure_image_builds_once_rebuilds_on_change_and_names_the_failing_step(
        docker_backend: DockerBackend, tmp_path: Path) -> None:
    import docker

    client = docker.from_env()
    tag = f"agentgym-test/ensure-{uuid.uuid4().hex[:8]}:latest"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {BASE}\nCOPY msg.txt /msg.txt\n")
    (ctx / "msg.txt").write_text("one\n")

    async def main() -> None:
        assert await docker_backend.ensure_image(tag, str(ctx)) == tag
        first = client.images.get(tag)
        assert first.labels[LABEL_CONTEXT_HASH]
        start = time.monotonic()
        await docker_backend.ensure_image(tag, str(ctx))
        assert time.monotonic() - start < 2 and client.images.get(tag).id == first.id  # no rebuild
        (ctx / "msg.txt").write_text("two\n")
        await docker_backend.ensure_image(tag, str(ctx))
        assert client.images.get(tag).id != first.id
        rt = await docker_backend.start(RuntimeSpec(image=tag))
        try:
            assert await rt.read_file("/msg.txt") == b"two\n"
        finally:
            await rt.stop()

        client.images.remove(first.id, force=True)  # superseded: would be left dangling

        # A single failing RUN leaves no intermediate layer behind.
        (ctx / "Dockerfile").write_text(f"FROM {BASE}\nRUN echo doomed && exit 3\n")
        with pytest.raises(ImageBuildError) as info:
            await docker_backend.ensure_image(tag, str(ctx))
        # The legacy builder counts the LABEL step it appends, hence no fixed "2/2".
        assert re.search(r"failed at Step 2/\d+ : RUN echo doomed && exit 3", str(info.value)), str(info.value)
        assert info.value.step.endswith("RUN echo doomed && exit 3")
        assert "doomed" in info.value.log

        (ctx / "Dockerfile").write_text("FROM agentgym-test/no-such-base:1\n")
        with pytest.raises(RuntimeError_, match="not available locally"):
            await docker_backend.ensure_image(tag, str(ctx))
        with pytest.raises(RuntimeError_, match="not found"):
            await docker_backend.start(RuntimeSpec(image="agentgym-test/no-such-image:1"))

    try:
        asyncio.run(main())
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(tag, force=True)


def test_read_only_mounts_and_cpu_memory_limits(docker_backend: DockerBackend, tmp_path: Path) -> None:
    import docker

    (tmp_path / "shared.txt").write_text("from host")

    async def body(rt: DockerRuntime) -> None:
        assert (await rt.exec("cat /mnt/host/shared.txt")).stdout == "from host"
        denied = await rt.exec("touch /mnt/host/new")
        assert denied.exit_code != 0 and "Read-only" in denied.stderr
        host_config = docker.from_env().containers.get(rt.container_id).attrs["HostConfig"]
        assert host_config["NanoCpus"] == 500_000_000 and host_config["Memory"] == 128 * 1024 * 1024
        assert host_config["Init"] is True and host_config["NetworkMode"] == "none"

    in_container(docker_backend, body, mounts={str(tmp_path): "/mnt/host"}, cpus=0.5, memory="128m", network="none")
