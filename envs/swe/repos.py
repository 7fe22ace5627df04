"""The repositories SWE instances run in, and the image each one is built into.

One image per repository: Debian's python3 and pytest, git, and the repository twice — a
pristine bare copy at :data:`PRISTINE` (under ``/usr``, so a sealed verifier reads the task
image's copy, never one the agent changed) and a clone at :data:`TESTBED`, the agent's workdir,
which :meth:`~agentgym.envs.swe.SWEEnv.setup` checks out at the instance's ``base_commit``.

Built-in repositories (``repos/<name>/``) are built inside the image by :mod:`.buildrepo` from
their committed source trees, so the build context is plain source files and its content hash
(:func:`agentgym.runtime.images.context_hash`) only changes when they do. A user's repository is
a local git repository, copied into the context as a bare clone. Contexts are materialized under
``<cache>/swe/contexts/`` and images are tagged by content, so the backend's ``ensure_image``
builds each once.

>>> sorted(builtin_repos())
['agentgym/confparse', 'agentgym/spans', 'agentgym/textkit']
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from agentgym.errors import EnvError
from agentgym.paths import cache_dir
from agentgym.runtime.images import BASE_IMAGE, context_hash, slug

__all__ = ["PRISTINE", "REPOS_DIR", "TESTBED", "RepoImage", "builtin_context", "builtin_repos", "local_context"]

REPOS_DIR = Path(__file__).parent / "repos"
"""The built-in repositories: ``<name>/repo.json`` and ``<name>/commits/``."""
TESTBED = "/testbed"
"""Where the agent finds the repository (SWE-bench's convention)."""
PRISTINE = "/usr/local/share/agentgym-swe/repo.git"
"""The image's untouched bare copy of the repository (what the verifier checks out)."""
BUILDREPO = Path(__file__).parent / "buildrepo.py"
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")

_HEAD = f"""FROM {BASE_IMAGE}
# The same first layer as the terminal tasks (identical text: docker builds it once).
RUN apt-get update && apt-get install -y --no-install-recommends python3-pytest \\
    && rm -rf /var/lib/apt/lists/*
RUN apt-get update && apt-get install -y --no-install-recommends git patch \\
    && rm -rf /var/lib/apt/lists/*
"""
_TAIL = f"""RUN git clone -q {PRISTINE} {TESTBED} && git -C {TESTBED} remote remove origin
WORKDIR {TESTBED}
"""
BUILTIN_DOCKERFILE = _HEAD + f"""COPY buildrepo.py /tmp/agentgym-swe/buildrepo.py
COPY repo /tmp/agentgym-swe/repo
RUN python3 /tmp/agentgym-swe/buildrepo.py /tmp/agentgym-swe/repo {PRISTINE} --bare \\
    && rm -rf /tmp/agentgym-swe
""" + _TAIL
LOCAL_DOCKERFILE = _HEAD + f"COPY repo.git {PRISTINE}\n" + _TAIL


@dataclass(frozen=True)
class RepoImage:
    """The image of one repository: its tag and the build context it is built from."""

    repo: str
    image: str
    context: str


def builtin_repos() -> dict[str, Path]:
    """Built-in repository name (``owner/name``, as instances' ``repo`` field) -> its directory."""
    out: dict[str, Path] = {}
    for spec in sorted(REPOS_DIR.glob("*/repo.json")):
        out[json.loads(spec.read_text())["name"]] = spec.parent
    return out


def _contexts() -> Path:
    path = cache_dir() / "swe" / "contexts"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _publish(tmp: Path, repo: str, digest: str) -> RepoImage:
    """Move a filled-in context to its content-addressed place (another process may have won)."""
    final = _contexts() / f"{slug(repo.replace('/', '-'))}-{digest[:16]}"
    try:
        os.replace(tmp, final)
    except OSError:  # already there: same content by construction
        shutil.rmtree(tmp, ignore_errors=True)
    return RepoImage(repo=repo, image=f"agentgym/swe-{slug(repo.replace('/', '-'))}:{digest[:12]}", context=str(final))


def builtin_context(repo: str) -> RepoImage:
    """The image of built-in repository ``repo`` (its context materialized in the cache)."""
    repos = builtin_repos()
    if repo not in repos:
        raise EnvError(f"no built-in repository {repo!r}; built-in: {', '.join(sorted(repos))}")
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=_contexts()))
    shutil.copytree(repos[repo], tmp / "repo", ignore=_IGNORE)
    shutil.copy2(BUILDREPO, tmp / "buildrepo.py")
    (tmp / "Dockerfile").write_text(BUILTIN_DOCKERFILE)
    return _publish(tmp, repo, context_hash(tmp))


def _git(*args: str, cwd: Path | None = None) -> str:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tempfile.gettempdir(),
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0"}
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    except FileNotFoundError as e:
        raise EnvError("git is not installed on this host; it is needed to copy a local repository") from e
    if proc.returncode != 0:
        raise EnvError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def local_context(repo: str, path: str | os.PathLike[str]) -> RepoImage:
    """The image of ``repo`` from the local git repository at ``path`` (every branch and tag
    is copied; instances' ``base_commit`` must be among their commits). The copy is redone only
    when the repository's refs change."""
    source = Path(path).expanduser().resolve()
    if not source.exists():
        raise EnvError(f"repository {repo!r}: {source} does not exist")
    refs = _git("-C", str(source), "for-each-ref", "--format=%(objectname) %(refname)")
    head = _git("-C", str(source), "rev-parse", "HEAD").strip()
    # what the image will hold, not where it came from: the same history gives the same context
    key = hashlib.sha256(f"{head}\n{refs}\n{LOCAL_DOCKERFILE}".encode()).hexdigest()
    for existing in _contexts().glob(f"{slug(repo.replace('/', '-'))}-*"):
        marker = existing / "source.key"
        if marker.is_file() and marker.read_text() == key:
            digest = context_hash(existing)
            return RepoImage(repo=repo, image=f"agentgym/swe-{slug(repo.replace('/', '-'))}:{digest[:12]}",
                             context=str(existing))
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=_contexts()))
    _git("clone", "-q", "--bare", "--no-hardlinks", str(source), str(tmp / "repo.git"))
    _git("-C", str(tmp / "repo.git"), "remote", "remove", "origin")
    (tmp / "Dockerfile").write_text(LOCAL_DOCKERFILE)
    (tmp / "source.key").write_text(key)
    return _publish(tmp, repo, context_hash(tmp))
