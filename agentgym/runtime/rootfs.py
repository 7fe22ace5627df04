"""The files of a sandboxed local runtime, read and written from the host without leaving it.

The fake root's directories are writable from inside the sandbox, so they may hold symlinks
that a sandboxed command made (``/app/out -> /etc/passwd``). The host-side file API follows
them *as the sandbox would see them, within the fake root*: every path is resolved one
component at a time with ``O_NOFOLLOW`` and directory file descriptors, an absolute symlink
restarts at the fake root and ``..`` never climbs above it. So writing ``/app/out`` writes
``<root>/etc/passwd``, never the host's ``/etc/passwd``, and a symlink swapped in while a
write is under way cannot redirect it.

>>> import tempfile
>>> fs = RootFS(tempfile.mkdtemp())
>>> fs.write("/app/x.txt", b"hi", 0o644)
>>> fs.read("/app/x.txt")
b'hi'
>>> os.symlink("/etc/hostname", fs.host("/app/link"))
>>> fs.write("/app/link", b"mine", 0o644)      # lands in the fake root's /etc
>>> fs.read("/etc/hostname")
b'mine'
>>> import shutil; shutil.rmtree(fs.root)
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path, PurePosixPath

__all__ = ["RootFS"]

MAX_LINKS = 40
"""Symlinks followed in one lookup before giving up (the kernel's limit)."""
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _parts(path: str | PurePosixPath) -> list[str]:
    return [p for p in str(path).split("/") if p not in ("", ".")]


class RootFS:
    """A directory that plays ``/``; paths are absolute task paths (``/app/x``)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def host(self, path: str | PurePosixPath) -> Path:
        """Where ``path`` lies on the host, lexically (no symlink is followed; ``..`` stays inside)."""
        parts: list[str] = []
        for part in _parts(path):
            if part == "..":
                if parts:
                    parts.pop()
            else:
                parts.append(part)
        return self.root.joinpath(*parts)

    # -- lookups ---------------------------------------------------------------------------------
    def _lookup(self, parts: list[str], *, create: bool, follow: bool = True) -> tuple[int, str]:
        """(fd of the directory holding the last component, that component's name) after
        resolving every symlink on the way inside the root. ``create`` makes missing
        directories; with ``follow=False`` a symlink on the way raises ``ELOOP``."""
        stack = [os.open(self.root, _DIR)]
        todo = list(parts)
        links = 0
        try:
            while True:
                while todo and todo[0] == "..":
                    todo.pop(0)
                    if len(stack) > 1:
                        os.close(stack.pop())
                if not todo:
                    raise IsADirectoryError(errno.EISDIR, "the root itself", str(self.root))
                if len(todo) == 1:
                    return stack.pop(), todo[0]
                name = todo.pop(0)
                try:
                    stack.append(os.open(name, _DIR, dir_fd=stack[-1]))
                    continue
                except FileNotFoundError:
                    if not create:
                        raise
                    with contextlib.suppress(FileExistsError):  # made meanwhile: look again
                        os.mkdir(name, 0o755, dir_fd=stack[-1])
                    todo.insert(0, name)
                    continue
                except OSError as e:
                    if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    target = _readlink(name, stack[-1])
                    if target is None or not follow:
                        raise
                links += 1
                if links > MAX_LINKS:
                    raise OSError(errno.ELOOP, "too many levels of symbolic links", "/".join(parts))
                if target.startswith("/"):
                    for fd in stack[1:]:
                        os.close(fd)
                    del stack[1:]
                todo[:0] = _parts(target)
        finally:
            for fd in stack:
                os.close(fd)

    def _final(self, path: str | PurePosixPath, flags: int, mode: int = 0o644, *, create: bool = False) -> int:
        """Open ``path`` (following a final symlink inside the root)."""
        parts = _parts(path)
        for _ in range(MAX_LINKS):
            dir_fd, name = self._lookup(parts, create=create)
            try:
                try:
                    return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
                except OSError as e:
                    if e.errno not in (errno.ELOOP, errno.EMLINK):
                        raise
                    target = _readlink(name, dir_fd)
                    if target is None:
                        raise
                    parts = _parts(target) if target.startswith("/") else [*parts[:-1], *_parts(target)]
            finally:
                os.close(dir_fd)
        raise OSError(errno.ELOOP, "too many levels of symbolic links", str(path))

    # -- file API --------------------------------------------------------------------------------
    def read(self, path: str | PurePosixPath) -> bytes:
        fd = self._final(path, os.O_RDONLY)
        with os.fdopen(fd, "rb") as f:
            if stat.S_ISDIR(os.fstat(f.fileno()).st_mode):
                raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
            return f.read()

    def write(self, path: str | PurePosixPath, data: bytes, mode: int) -> None:
        """Write a file (parents created), with permission bits ``mode``."""
        fd = self._final(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode, create=True)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            os.fchmod(f.fileno(), mode)

    def make_dirs(self, path: str | PurePosixPath, mode: int = 0o755) -> None:
        """Create ``path`` and its parents, following no symlink (a symlink on the way, left by
        the sandbox, makes this a no-op: it is the sandbox's own business)."""
        parts = _parts(path)
        if not parts:
            return
        try:
            dir_fd, name = self._lookup(parts, create=True, follow=False)
        except OSError:
            return
        try:
            os.mkdir(name, mode, dir_fd=dir_fd)
            made = os.open(name, _DIR, dir_fd=dir_fd)
            try:
                os.fchmod(made, mode)  # whatever the umask
            finally:
                os.close(made)
        except OSError:
            pass
        finally:
            os.close(dir_fd)

    def symlink_once(self, path: str | PurePosixPath, target: str) -> None:
        """Make the symlink ``path -> target`` unless something is already there."""
        try:
            dir_fd, name = self._lookup(_parts(path), create=True, follow=False)
        except OSError:
            return
        try:
            os.symlink(target, name, dir_fd=dir_fd)
        except FileExistsError:
            pass
        finally:
            os.close(dir_fd)

    def upload(self, src: str | os.PathLike[str], dst: str | PurePosixPath) -> None:
        """Copy the contents of host directory ``src`` into ``dst`` (merged), keeping modes and
        modification times; symlinks are copied as symlinks."""
        source = Path(src)
        self.make_dirs_following(dst)
        for dirpath, dirnames, filenames in os.walk(source):
            rel = Path(dirpath).relative_to(source)
            target = PurePosixPath(str(dst)) / rel.as_posix()
            for name in [*dirnames, *filenames]:
                item = Path(dirpath) / name
                info = item.lstat()
                if stat.S_ISLNK(info.st_mode):
                    self._replace_with_symlink(target / name, os.readlink(item))
                elif stat.S_ISDIR(info.st_mode):
                    self.make_dirs_following(target / name)
                elif stat.S_ISREG(info.st_mode):
                    self.write(target / name, item.read_bytes(), stat.S_IMODE(info.st_mode))
                    self._set_mtime(target / name, info)
            dirnames[:] = [d for d in dirnames if not (Path(dirpath) / d).is_symlink()]

    def make_dirs_following(self, path: str | PurePosixPath) -> None:
        """``mkdir -p`` as the sandbox would do it (symlinks followed inside the root)."""
        parts = [*_parts(path), "."]  # look up the directory itself as a parent
        dir_fd, _ = self._lookup(parts, create=True)
        os.close(dir_fd)

    def _replace_with_symlink(self, path: PurePosixPath, target: str) -> None:
        dir_fd, name = self._lookup(_parts(path), create=True)
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=dir_fd)
            os.symlink(target, name, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)

    def _set_mtime(self, path: PurePosixPath, info: os.stat_result) -> None:
        fd = self._final(path, os.O_RDONLY)
        try:
            os.utime(fd, ns=(info.st_atime_ns, info.st_mtime_ns))
        finally:
            os.close(fd)


def _readlink(name: str, dir_fd: int) -> str | None:
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except OSError:
        return None
