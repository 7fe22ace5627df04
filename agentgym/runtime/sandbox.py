"""The bubblewrap sandbox of the local runtime: the ``bwrap`` command line of one command.

Each command runs in a fresh ``bwrap`` invocation over the runtime's *fake root* (a directory
on the host that plays the container's ``/``)::

    bwrap --unshare-all [--share-net] --unshare-user --disable-userns --die-with-parent
          --new-session --cap-drop ALL
          --ro-bind /usr /usr --symlink usr/bin /bin ...     every top-level entry of the host,
                                                            read-only, but /proc /dev /run /tmp
                                                            /root and the task directories
          --bind <root>/app /app --bind <root>/tmp /tmp ...  the fake root's entries, writable
          --tmpfs /var --ro-bind /var/cache /var/cache ...  directories holding a hidden path
          --dev /dev --proc /proc --tmpfs /run
          [--ro-bind <host path> /run/agentgym-host/N]      what must stay visible in hidden dirs
          [--ro-bind <socket dir> /run/agentgym
           --ro-bind forward.py /run/agentgym-forward.py]   network="proxy"
          --remount-ro /  -- bash -c <wrapper> ...

The sandbox's ``/`` is a fresh tmpfs, read-only once the mounts are made: writing outside the
fake root's directories fails. Where the fake root and the host both have a directory (a task
file written to ``/opt/x`` when the host has ``/opt``), that directory is *merged*: a tmpfs
holding the host's entries read-only and the fake root's entries writable. The sandbox never
sees the fake root itself, only its entries, so nothing it does can change what a later
``bwrap`` mounts where (mount points are only ever made in fresh tmpfs directories).

Some host paths are hidden (left out of the merge of their parent): the user's home, the
container engines' state (``/var/lib/docker``: its mounts come and go, and a recursive bind
that meets one mid-change fails), and what the caller names (the runtime's own temp root, the
proxy's journal: other episodes' files).

Host paths that the sandbox needs but that live in a hidden directory (the agentgym cache with
the harness virtualenvs, the Python running agentgym, the directories on ``PATH`` and pyenv's
root, when they are under ``/root``) are mounted read-only under ``/run/agentgym-host/`` and
reached through a symlink at their own path, so absolute paths (virtualenv shebangs) keep
working; under a hidden home they are mounted at their own path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

from agentgym.runtime.base import FORWARDER_MOUNT, FORWARDER_SCRIPT, PROXY_MOUNT, ProxyEndpoint
from agentgym.runtime.rootfs import RootFS

__all__ = ["Bubblewrap", "bubblewrap_problem"]

NAMESPACES = ("--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
              "--cap-drop", "ALL")
"""Every namespace (user, mount, pid, network, ipc, uts, cgroup), no capabilities, no nested user
namespaces, killed with its parent, no controlling terminal."""
PROVIDED = frozenset({"/proc", "/dev", "/run"})
"""Top-level host paths the sandbox gets fresh instead (procfs of its pid namespace, a minimal
/dev, an empty /run: the host's /run holds the Docker socket)."""
HIDDEN = ("/var/lib/docker", "/var/lib/containerd")
"""Host paths no sandbox sees (besides the user's home and what the caller adds)."""
HOST_LINKS = "/run/agentgym-host"
"""Where hidden host paths that must stay visible are mounted (reached through symlinks)."""
SETUP_FAILED = 125
"""Exit status of a command whose sandbox could not be set up (workdir, forwarder)."""
FORWARDER_FAILED = "agentgym: the proxy forwarder did not start in the sandbox"

_WRAPPER = r'''
printf started >&"$4"; eval "exec $4>&-"
cd -- "$1" 2>/dev/null || { mkdir -p -- "$1" && cd -- "$1"; } || exit 125
if [ -n "$3" ]; then
  exec 3< <(exec "$3" -I -S "${@:5}" --ready </dev/null 2>/dev/null)
  IFS= read -r -t 10 agentgym_forwarder <&3
  exec 3<&-
  if [ "$agentgym_forwarder" != ready ]; then
    echo "@FORWARDER_FAILED@" >&2
    exit 125
  fi
fi
exec bash -lc "$2"
'''.replace("@FORWARDER_FAILED@", FORWARDER_FAILED)
"""Runs inside the sandbox: reports that it started (on fd $4), enters the workdir (creating it),
starts the forwarder when there is one ($3: its python; ${@:5}: its script and arguments) and
waits until it listens, then runs the command ($2) in a login shell."""


def bubblewrap_problem(bwrap: str = "bwrap") -> str | None:
    """Why ``bwrap`` cannot sandbox commands on this machine, or ``None`` when it can (it runs a
    sandbox with the runtime's namespaces once)."""
    exe = shutil.which(bwrap)
    if exe is None:
        return f"bubblewrap ({bwrap}) is not installed"
    try:
        proc = subprocess.run([exe, *NAMESPACES, "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "true"],
                              capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{exe} does not run: {e}"
    if proc.returncode != 0:
        return f"{exe} cannot create its namespaces here: {proc.stderr.strip() or f'exit {proc.returncode}'}"
    return None


def _hidden_home() -> str | None:
    home = os.path.abspath(os.path.expanduser("~"))
    return None if home in ("/", "/root") or not os.path.isdir(home) else home


def _needed_host_paths() -> list[str]:
    """What the sandbox must see of the host even when it lies in a hidden directory: the Python
    running agentgym (its venv and base install), the agentgym cache (harness virtualenvs) and
    the base installs those virtualenvs run on, the directories on ``PATH`` (the host's
    programs are the sandbox's), and pyenv's root when its shims are on ``PATH``."""
    from agentgym.paths import cache_dir

    paths = [sys.prefix, sys.base_prefix, str(cache_dir())]
    for cfg in cache_dir().glob("venvs/*/pyvenv.cfg"):
        try:
            lines = cfg.read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            key, _, value = line.partition("=")
            if key.strip() == "home" and value.strip():
                paths.append(str(Path(value.strip()).parent))
    entries = [p for p in os.environ.get("PATH", "").split(os.pathsep) if os.path.isabs(p)]
    paths += entries
    pyenv = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    if any(_under(p, pyenv) for p in entries):
        paths.append(pyenv)
    return [os.path.abspath(p) for p in paths]


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


class Bubblewrap:
    """How :class:`~agentgym.runtime.local.LocalRuntime` builds a ``bwrap`` command line.

    Args:
        private: task paths whose host directories are never shown: the fake root's own
            directories replace them (``/app /tests /logs /solution /output /tmp /root`` and the
            workdir).
        hide: more host paths the sandbox must not see.
        bwrap: the executable.
        python: interpreter for the forwarder inside (any Python 3.8+ the sandbox can see).
    """

    def __init__(self, private: Iterable[str], hide: Iterable[str] = (), bwrap: str = "bwrap",
                 python: str | None = None) -> None:
        self.private = frozenset(str(PurePosixPath(p)) for p in private)
        self.bwrap = shutil.which(bwrap) or bwrap
        self.python = python or os.path.realpath(sys.executable)
        hidden = {os.path.abspath(h) for h in (*HIDDEN, *hide, _hidden_home() or "/") if h}
        self.hidden = frozenset(h for h in hidden if h != "/" and not any(_under(h, p) for p in self.private))
        self.links, self.mounts = self._plan_needed(_needed_host_paths())

    def _plan_needed(self, paths: Sequence[str]) -> tuple[dict[str, str], list[str]]:
        """(path -> its mount under HOST_LINKS) for needed paths in private dirs, and needed paths
        in hidden dirs (mounted at their own path on the tmpfs that hides them)."""
        links: dict[str, str] = {}
        mounts: list[str] = []
        for path in sorted(set(paths), key=len):
            if not os.path.exists(path) or any(_under(path, done) for done in (*links, *mounts)):
                continue
            if any(_under(path, p) for p in self.private):
                links[path] = f"{HOST_LINKS}/{len(links)}"
            elif any(_under(path, h) for h in self.hidden):
                mounts.append(path)
        return links, mounts

    def inside(self, path: str) -> str:
        """Where host ``path`` is in the sandbox: under its mount in /run/agentgym-host when it
        lies in a linked directory (a fresh mount each command: nothing the sandbox did to the
        symlinks in its home matters), else at its own path."""
        for host, target in self.links.items():
            if _under(path, host):
                return target + path[len(host):]
        return path

    def prepare(self, fs: RootFS) -> None:
        """Create the private directories and the symlinks to needed host paths in the fake root
        (never following a symlink the sandbox left there; a command that removed one gets it
        back with the next command)."""
        for path in sorted(self.private, key=len):
            fs.make_dirs(path, mode=0o1777 if path == "/tmp" else 0o755)
        for path, target in self.links.items():
            fs.symlink_once(path, target)

    def argv(self, fs: RootFS, command: Sequence[str], *, network: str, proxy: ProxyEndpoint | None,
             new_session: bool = True) -> list[str]:
        """The full ``bwrap`` argv that runs ``command`` in this runtime's sandbox. Without
        ``new_session`` the sandbox keeps the caller's controlling terminal (an interactive shell
        on a pty of the caller's: its Ctrl-C and job control need it; the terminal is the
        caller's own pty, not the user's, so what the sandbox could inject into it with
        ``TIOCSTI`` lands in its own input)."""
        args = [self.bwrap, *(n for n in NAMESPACES if new_session or n != "--new-session")]
        if network == "host":
            args.append("--share-net")
        read_only = ["/"]
        self._merge(fs, PurePosixPath("/"), args, read_only)
        args += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/run"]
        for path in self.mounts:
            args += ["--ro-bind", path, path]
        for path, target in self.links.items():
            args += ["--ro-bind", path, target]
        if network == "proxy" and proxy is not None:
            args += ["--ro-bind", str(Path(proxy.socket).parent), PROXY_MOUNT,
                     "--ro-bind", str(FORWARDER_SCRIPT), FORWARDER_MOUNT]
        for path in reversed(read_only):
            args += ["--remount-ro", path]
        return [*args, "--", *command]

    def wrap(self, workdir: str, script: str, status_fd: int, proxy: ProxyEndpoint | None,
             login: bool = True) -> list[str]:
        """The command run inside: the wrapper that enters ``workdir``, starts the forwarder for
        ``proxy`` (if any), then runs ``script`` with ``bash -lc`` (``bash -c`` without ``login``)."""
        forwarder = [FORWARDER_MOUNT, *proxy.forwarder_args()] if proxy is not None else []
        wrapper = _WRAPPER if login else _WRAPPER.replace('exec bash -lc "$2"', 'exec bash -c "$2"')
        return ["bash", "-c", wrapper, "agentgym-sandbox", workdir, script,
                self.inside(self.python) if proxy is not None else "", str(status_fd), *forwarder]

    def _merge(self, fs: RootFS, path: PurePosixPath, args: list[str], read_only: list[str]) -> None:
        """Mounts for the children of ``path``, a fresh tmpfs in the sandbox: the host's
        entries read-only (but hidden ones), the fake root's writable (merging directories
        both have, and host directories that hold a hidden path)."""
        host = {n: e for n, e in _entries(str(path)).items() if str(path / n) not in self.hidden}
        fake = _entries(str(fs.host(path)))
        for name in sorted(set(host) | set(fake)):
            child = path / name
            where = str(child)
            if where in PROVIDED:
                continue
            if name not in fake:  # the host's, read-only (unless a private path hides it)
                if where in self.private:
                    continue
                if host[name].is_symlink():
                    args += ["--symlink", os.readlink(where), where]
                elif _is_dir(host[name]) and any(_under(h, where) for h in self.hidden):
                    args += ["--tmpfs", where]
                    read_only.append(where)
                    self._merge(fs, child, args, read_only)
                else:
                    args += ["--ro-bind", where, where]
            elif where in self.private or not _is_dir(host.get(name)) or not _is_dir(fake[name]):
                source = fs.host(child)  # the fake root's own, writable (a symlink stays a symlink)
                if fake[name].is_symlink():
                    args += ["--symlink", os.readlink(source), where]
                else:
                    args += ["--bind", str(source), where]
            else:  # a directory on both sides: merge
                args += ["--tmpfs", where]
                read_only.append(where)
                self._merge(fs, child, args, read_only)


def _entries(path: str) -> dict[str, os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return {e.name: e for e in it}
    except (FileNotFoundError, NotADirectoryError):
        return {}


def _is_dir(entry: os.DirEntry[str] | None) -> bool:
    return entry is not None and entry.is_dir(follow_symlinks=False)
