"""What a verifier can trust after an agent had root in its container.

The agent may have replaced anything it could write: interpreters and tools in ``/usr``, the
dynamic loader's configuration (``/etc/ld.so.preload``, ``ld.so.cache``), ``/etc/alternatives``
symlinks, Python's ``sitecustomize`` under ``/etc/python3*``, the root symlinks ``/bin`` or
``/lib64``; it may have left processes running to rewrite the reward file, or planted one.
:meth:`agentgym.runtime.docker.DockerRuntime.seal` therefore verifies in a *fresh* container
started from a snapshot of the agent's files, with the **task image's own copies** of those
system paths mounted read-only over the agent's (exported once per image into the cache by
:func:`trusted_mounts`), and records what it saw (:func:`tamper_evidence`).

>>> sorted(classify_change("/usr/bin/python3", 0))
['system-path: modified /usr/bin/python3']
>>> classify_change("/app/out.txt", 1)
[]
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tarfile
import tempfile
import threading
from pathlib import Path
from typing import Any

from agentgym.errors import RuntimeError_

__all__ = ["SYSTEM_PATH", "TRUSTED_ETC", "TRUSTED_ROOTS", "classify_change", "deduplicate", "read_tree",
           "tamper_evidence", "trusted_mounts"]

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""The verifier's ``PATH``: system directories only (all of them under the trusted ``/usr``)."""
TRUSTED_ROOTS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
"""Taken from the task image: directories are mounted as they were; a root symlink such as
``/bin -> usr/bin`` gets its target mounted in its place (undoing a replaced symlink)."""
TRUSTED_ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives")
"""``/etc`` entries restored from the task image (plus every ``/etc/python3*``)."""
_KINDS = {0: "modified", 1: "added", 2: "deleted"}
ENGINE_INIT = "/sbin/docker-init"
_WATCHED = (*TRUSTED_ROOTS, "/etc/ld.so", "/etc/alternatives", "/etc/python3")
_LOCK = threading.Lock()


def classify_change(path: str, kind: int, reward_dir: str = "/logs/verifier") -> list[str]:
    """Evidence lines for one ``docker diff`` entry (``kind`` 0/1/2: modified/added/deleted)."""
    what = _KINDS.get(kind, str(kind))
    if any(path == w or path.startswith(w + "/") or (w.endswith(("ld.so", "python3")) and path.startswith(w))
           for w in _WATCHED):
        return [f"system-path: {what} {path}"]
    if path == reward_dir or path.startswith(reward_dir + "/"):
        return [f"reward-file: {what} {path} (before the verifier ran)"]
    return []


def tamper_evidence(api: Any, container_id: str, reward_dir: str = "/logs/verifier", limit: int = 50) -> list[str]:
    """What the agent's container shows once the harness has exited: processes still running
    (read by the Docker engine on the host, not by the container's own ``ps``) and changes to
    system paths or to the verifier's reward directory (``docker diff``)."""
    evidence: list[str] = []
    with contextlib.suppress(Exception):
        top = api.top(container_id, ps_args="-eo pid,ppid,args")
        titles = top.get("Titles") or []
        idx = titles.index("COMMAND") if "COMMAND" in titles else len(titles) - 1
        for proc in top.get("Processes") or []:
            args = proc[idx] if idx < len(proc) else " ".join(proc)
            if args.startswith(("/sbin/docker-init", "docker-init", "/dev/init", "sleep infinity")):
                continue
            evidence.append(f"process: still running after the agent finished: {args[:200]}")
    changes: list[str] = []
    with contextlib.suppress(Exception):
        entries = [(str(e["Path"]), int(e["Kind"])) for e in api.diff(container_id) or []]
        paths = [p for p, _ in entries]
        for path, kind in entries:
            if path.endswith(ENGINE_INIT):
                continue  # the engine's own init, mounted when the container started
            if kind == 0 and any(other.startswith(path + "/") for other in paths):
                continue  # a directory listed as modified because something below it changed
            changes.extend(classify_change(path, kind, reward_dir))
    evidence.extend(changes[:limit])
    if len(changes) > limit:
        evidence.append(f"system-path: ... and {len(changes) - limit} more changes")
    return evidence


def _archive(api: Any, container: str, path: str) -> tarfile.TarFile | None:
    import docker.errors

    try:
        stream, _ = api.get_archive(container, path)
    except docker.errors.NotFound:
        return None
    buf = tempfile.TemporaryFile()  # noqa: SIM115 - closed with the TarFile that reads it
    for chunk in stream:
        buf.write(chunk)
    buf.seek(0)
    return tarfile.open(fileobj=buf)


def _extract(tar: tarfile.TarFile, dest: Path, members: list[tarfile.TarInfo] | None = None) -> None:
    if hasattr(tarfile, "data_filter"):  # our own image's files: owners, modes and links kept
        tar.extractall(dest, members=members, filter="fully_trusted")
    else:  # pragma: no cover - Python < 3.11.4
        tar.extractall(dest, members=members)


def trusted_mounts(api: Any, image: str, cache_root: Path) -> dict[str, str]:
    """Host path -> container path (read-only) for the trusted copies of ``image``'s system
    paths, exported on first use into ``cache_root/<image id>/`` (a few seconds, once)."""
    image_id = str(api.inspect_image(image)["Id"]).split(":")[-1][:16]
    root = Path(cache_root) / image_id
    done = root / ".complete"
    with _LOCK:
        if not done.is_file():
            shutil.rmtree(root, ignore_errors=True)
            _export(api, image, root)
            deduplicate(root / "fs", Path(cache_root) / "objects")
            done.write_text(image)
    mounts: dict[str, str] = {str(root / "fs" / name): f"/{name}" for name in sorted(os.listdir(root / "fs"))}
    for link in sorted((root / "links").iterdir()):
        target = root / "fs" / link.read_text().strip().lstrip("/")
        if target.is_dir():  # /bin -> usr/bin: the trusted usr/bin stands at /bin too
            mounts.setdefault(str(target), f"/{link.name}")
    mounts.update({str(entry): f"/etc/{entry.name}" for entry in sorted((root / "etc").iterdir())})
    mounts[str(root / "empty")] = "/etc/ld.so.preload"
    return mounts


def _export(api: Any, image: str, root: Path) -> None:
    for d in ("fs", "links", "etc"):
        (root / d).mkdir(parents=True)
    (root / "empty").write_text("")
    container = api.create_container(image, command=["true"], entrypoint=[], network_disabled=True)["Id"]
    try:
        for path in TRUSTED_ROOTS:
            tar = _archive(api, container, path)
            if tar is None:
                continue
            with tar:
                members = tar.getmembers()
                if members and members[0].issym():
                    (root / "links" / path.lstrip("/")).write_text(members[0].linkname)
                elif members:
                    _extract(tar, root / "fs")
        etc = _archive(api, container, "/etc")
        if etc is not None:
            with etc, tempfile.TemporaryDirectory() as tmp:
                keep = [m for m in etc.getmembers()
                        if len(parts := m.name.split("/")) > 1 and (parts[1] in TRUSTED_ETC or parts[1].startswith("python3"))]
                _extract(etc, Path(tmp), keep)
                for entry in Path(tmp, "etc").iterdir() if Path(tmp, "etc").is_dir() else []:
                    shutil.move(str(entry), root / "etc" / entry.name)
    except Exception as e:
        raise RuntimeError_(f"cannot export the trusted system paths of {image}: {e}") from e
    finally:
        with contextlib.suppress(Exception):
            api.remove_container(container, force=True)


def deduplicate(tree: Path, store: Path) -> int:
    """Replace each regular file under ``tree`` by a hard link into ``store``, keyed by content,
    mode and owner, so task images that share a base (most of ``/usr``) share one copy on disk.
    Returns the bytes saved."""
    import hashlib

    saved = 0
    for path in tree.rglob("*"):
        try:
            st = path.lstat()
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
            continue
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        key = f"{digest.hexdigest()}-{stat.S_IMODE(st.st_mode):o}-{st.st_uid}-{st.st_gid}"
        target = store / key[:2] / key
        try:
            if target.exists():
                tmp = path.with_name(f".{path.name}.dedup")
                os.link(target, tmp)
                os.replace(tmp, path)
                saved += st.st_size
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(path, target)
        except OSError:
            continue  # another filesystem, or a race: keep the file as it is
    return saved


def read_tree(root: Path) -> dict[str, bytes]:
    """Every regular file under ``root`` (relative posix path -> bytes), for reward directories."""
    out: dict[str, bytes] = {}
    for p in sorted(root.rglob("*")) if root.is_dir() else []:
        if p.is_file() and not p.is_symlink():
            out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out
