"""Build a task repository's git history from its committed source trees.

Standard library only: the same file runs on the host (tests, the instance generator) and inside
the repository's image build (``python3 buildrepo.py ...``), and both must give the same commit
hashes, which the instances' ``base_commit`` fields name.

A repository directory holds ``repo.json`` and one directory per commit under ``commits/``::

    {"name": "agentgym/textkit",
     "author": {"name": "Ada Park", "email": "ada@textkit.invalid"},
     "commits": [{"tree": "01-initial", "date": "2024-01-08T10:14:00Z",
                  "message": "Initial commit", "inline": {".gitignore": "*.pyc\\n"}}, ...]}

Each commit's directory is an overlay: the files it adds or changes on top of the previous
commit's tree. ``delete`` lists paths a commit removes; ``inline`` gives small files by content
(dot files, which package-data globs skip); ``author`` overrides the repository's author. Dates
are fixed for author and committer, every file is mode 0644, and no user or system git
configuration is read, so the hashes are the same on every machine.

>>> import json, tempfile
>>> root = Path(tempfile.mkdtemp())
>>> (root / "commits" / "01").mkdir(parents=True)
>>> _ = (root / "commits" / "01" / "hello.py").write_text("print('hi')\\n")
>>> _ = (root / "repo.json").write_text(json.dumps({"name": "demo/hello",
...     "author": {"name": "A", "email": "a@example.invalid"},
...     "commits": [{"tree": "01", "date": "2024-01-01T00:00:00Z", "message": "Add hello"}]}))
>>> build(root, root / "out")
['00da802ef2bcefb646d1ff6c5cedfeb9835538c5']
>>> shutil.rmtree(root)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

__all__ = ["GIT_ENV", "build", "commit_ids", "git"]

GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
    "LC_ALL": "C",
    "TZ": "UTC",
}
"""Read no user or system git configuration (signing, hooks paths, default branch...)."""
SKIP = ("__pycache__", ".pytest_cache")


def git(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run git with :data:`GIT_ENV`; its stdout, or ``RuntimeError`` with its stderr."""
    full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tempfile.gettempdir(), **GIT_ENV, **(env or {})}
    proc = subprocess.run(["git", *args], cwd=cwd, env=full, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def _raw_date(iso: str) -> str:
    when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return f"{int(when.timestamp())} +0000"


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(0o644)


def build(src: Path | str, dest: Path | str, *, bare: bool = False) -> list[str]:
    """Build the repository described by ``src/repo.json`` at ``dest`` (a work tree on branch
    ``main`` at the last commit, or a bare repository); returns the commit hashes, oldest first."""
    src, dest = Path(src), Path(dest)
    spec = json.loads((src / "repo.json").read_text())
    if dest.exists():
        raise FileExistsError(f"{dest} already exists")
    work = Path(tempfile.mkdtemp(prefix="buildrepo-")) / "work" if bare else dest
    work.mkdir(parents=True)
    try:
        git("init", "-q", "-b", "main", str(work))
        hashes: list[str] = []
        for commit in spec["commits"]:
            tree = src / "commits" / commit["tree"]
            if not tree.is_dir():
                raise FileNotFoundError(f"{src / 'repo.json'}: commit tree {tree} does not exist")
            for path in sorted(tree.rglob("*")):
                rel = path.relative_to(tree)
                if path.is_file() and not any(part in SKIP for part in rel.parts) and path.suffix != ".pyc":
                    _write(work / rel, path.read_bytes())
            for rel_name, content in sorted((commit.get("inline") or {}).items()):
                _write(work / rel_name, content.encode())
            for rel_name in commit.get("delete") or []:
                (work / rel_name).unlink()
            author = {**spec["author"], **(commit.get("author") or {})}
            date = _raw_date(commit["date"])
            env = {"GIT_AUTHOR_NAME": author["name"], "GIT_AUTHOR_EMAIL": author["email"], "GIT_AUTHOR_DATE": date,
                   "GIT_COMMITTER_NAME": author["name"], "GIT_COMMITTER_EMAIL": author["email"],
                   "GIT_COMMITTER_DATE": date}
            git("add", "-A", cwd=work, env=env)
            git("commit", "-q", "--no-verify", "-m", commit["message"], cwd=work, env=env)
            hashes.append(git("rev-parse", "HEAD", cwd=work).strip())
        if bare:
            git("clone", "-q", "--bare", "--no-hardlinks", str(work), str(dest))
            git("remote", "remove", "origin", cwd=dest)
        return hashes
    finally:
        if bare:
            shutil.rmtree(work.parent, ignore_errors=True)


def commit_ids(src: Path | str) -> list[str]:
    """The ``tree`` names of the commits in ``src/repo.json``, oldest first."""
    return [c["tree"] for c in json.loads((Path(src) / "repo.json").read_text())["commits"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src", help="the repository directory (repo.json, commits/)")
    parser.add_argument("dest", help="where to build it (must not exist)")
    parser.add_argument("--bare", action="store_true", help="build a bare repository")
    parser.add_argument("--expect", default="", help="comma-separated commit hashes the build must give")
    args = parser.parse_args(argv)
    hashes = build(args.src, args.dest, bare=args.bare)
    expected = [h for h in args.expect.split(",") if h]
    if expected and expected != hashes:
        print(f"buildrepo: {args.src} gave commits {hashes}, expected {expected}", file=sys.stderr)
        return 1
    print("\n".join(hashes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
