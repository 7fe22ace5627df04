"""Provision this host: get a Docker engine and the base image ready on a Debian machine.
Idempotent. This changes the machine (apt-get, dockerd), so it sits at the top of the stack,
beside the CLI, and the runtime library never calls it.

``agentgym setup`` (or ``python3 -m agentgym.provision``) runs both steps (CI calls it):

1. :func:`ensure_docker` installs ``docker.io`` (with ``socat`` and ``debootstrap``) via apt-get
   when ``dockerd`` is missing, and starts ``dockerd --bridge=none --iptables=false
   --ip-masq=false`` when the engine does not answer (log in ``/tmp/dockerd.log``). Containers
   then use ``--network host`` or ``none``; no bridge network is ever created.
2. :func:`ensure_base_image` builds ``agentgym/base:bookworm`` from Debian packages with
   ``debootstrap --variant=minbase`` and ``docker import`` when it is missing (no registry pull).

Each step prints what it does.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from agentgym.errors import RuntimeError_
from agentgym.runtime.docker import docker_available
from agentgym.runtime.images import BASE_IMAGE
from agentgym.runtime.standins import build_rootfs_image

BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates", "procps")
DOCKERD_ARGS = ("--bridge=none", "--iptables=false", "--ip-masq=false")
DOCKER_SOCKET = "/var/run/docker.sock"


def _say(msg: str) -> None:
    print(f"[agentgym.setup] {msg}", flush=True)


def _apt_install(packages: list[str]) -> None:
    if not shutil.which("apt-get"):
        raise RuntimeError_(f"cannot install {', '.join(packages)}: this is not a Debian-like system "
                            "(no apt-get); install them by hand")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _say(f"apt-get install {' '.join(packages)}")
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", *packages]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError_(f"`{' '.join(cmd)}` failed ({proc.returncode}):\n{proc.stderr[-2000:]}")


def ensure_docker(install: bool = True, log_path: str = "/tmp/dockerd.log", wait_s: float = 60.0) -> None:
    """Make sure a Docker engine answers: install it (``install=True``, Debian) and start
    ``dockerd`` as MACHINE.md prescribes when needed. Raises :class:`RuntimeError_` otherwise."""
    if docker_available():
        _say("docker engine is running")
        return
    if not shutil.which("dockerd"):
        if not install:
            raise RuntimeError_("dockerd is not installed; run `python3 -m agentgym.provision` "
                                "(installs docker.io) or install Docker by hand")
        _apt_install(["docker.io", "socat", "debootstrap"])
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise RuntimeError_("dockerd is still missing after installing docker.io")
    _say(f"starting dockerd {' '.join(DOCKERD_ARGS)} (log: {log_path})")
    with open(log_path, "ab") as log:
        subprocess.Popen([dockerd, *DOCKERD_ARGS], stdout=log, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if Path(DOCKER_SOCKET).exists() and docker_available():
            _say("docker engine is up")
            return
        time.sleep(0.5)
    tail = Path(log_path).read_text(errors="replace")[-2000:] if Path(log_path).exists() else ""
    raise RuntimeError_(f"dockerd did not answer within {wait_s:.0f}s; see {log_path}:\n{tail}")


def _image_exists(tag: str) -> bool:
    import docker
    import docker.errors

    client = docker.from_env()
    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False
    finally:
        client.close()


def ensure_base_image(tag: str = BASE_IMAGE, suite: str = "bookworm", install: bool = True,
                      mirror: str | None = None) -> str:
    """Build ``tag`` with ``debootstrap --variant=minbase --include=<BASE_PACKAGES> <suite>`` and
    ``docker import`` when it is missing; returns ``tag``. Needs root and a Debian mirror."""
    if _image_exists(tag):
        _say(f"{tag} is present")
        return tag
    if not shutil.which("debootstrap"):
        if not install:
            raise RuntimeError_("debootstrap is not installed (apt-get install debootstrap)")
        _apt_install(["debootstrap"])
    t0 = time.monotonic()
    build_rootfs_image(tag, suite, include=BASE_PACKAGES, mirror=mirror, on_status=_say)
    _say(f"{tag} built in {time.monotonic() - t0:.0f}s")
    return tag


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m agentgym.provision", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-install", action="store_true", help="never run apt-get")
    parser.add_argument("--skip-base-image", action="store_true", help=f"do not build {BASE_IMAGE}")
    args = parser.parse_args(argv)
    try:
        ensure_docker(install=not args.no_install)
        if not args.skip_base_image:
            ensure_base_image(install=not args.no_install)
    except RuntimeError_ as e:
        print(f"[agentgym.setup] error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
