"""Regenerate the built-in instances (``data/instances.jsonl``) from their sources.

A developer's tool::

    python -m agentgym.envs.swe.generate            # rewrite data/instances.jsonl
    python -m agentgym.envs.swe.generate --check    # exit 1 if the file is out of date

Each ``instances/<instance_id>/`` holds ``instance.json`` (``repo``, ``base``: the base commit's
tree name in the repository's ``repo.json``, ``version``, ``created_at``, ``hints_text``),
``problem_statement.md``, and two overlays on the base commit's tree: ``gold/`` (the fixed source
files) and ``test/`` (the test files with the fix's tests added). The generator builds the
repositories (:mod:`.buildrepo`), turns the overlays into ``patch`` and ``test_patch`` with
``git diff``, and validates each instance the way SWE-bench does: it runs the repository's
tests with the test patch alone, then with both patches, reads the logs with swebench's
``parse_log_pytest``, and takes FAIL_TO_PASS (fail, then pass) and PASS_TO_PASS (pass both
times). It refuses an instance that has no FAIL_TO_PASS, whose gold patch leaves a test
failing, whose fix already appears in its repository's history, or whose test ids the parser
cuts (parametrized ids with whitespace: give them ``ids=``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentgym.envs.swe.buildrepo import build, commit_ids, git
from agentgym.envs.swe.env import BUILTIN_INSTANCES
from agentgym.envs.swe.repos import builtin_repos

__all__ = ["INSTANCES_DIR", "BuiltRepo", "build_all", "diff_overlay", "instance_row", "main", "run_tests"]

INSTANCES_DIR = Path(__file__).parent / "instances"
"""The instances' sources (see the module docstring)."""
TEST_ARGS = ["-m", "pytest", "--no-header", "-rA", "--tb=no", "-p", "no:cacheprovider"]


@dataclass(frozen=True)
class BuiltRepo:
    """A built-in repository built on this host: its work tree and commit hash per tree name."""

    path: Path
    commits: Mapping[str, str]
    versions: Mapping[str, str]


def build_all(dest: Path) -> dict[str, BuiltRepo]:
    """Build every built-in repository under ``dest``."""
    out = {}
    for name, src in builtin_repos().items():
        hashes = build(src, dest / src.name)
        spec = json.loads((src / "repo.json").read_text())
        out[name] = BuiltRepo(path=dest / src.name, commits=dict(zip(commit_ids(src), hashes, strict=True)),
                              versions=dict(spec.get("versions") or {}))
    return out


def _reset(repo: Path, commit: str) -> None:
    git("checkout", "-q", "-f", commit, cwd=repo)
    git("clean", "-qfdx", cwd=repo)


def _overlay(repo: Path, overlay: Path) -> None:
    for path in sorted(overlay.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            target = repo / path.relative_to(overlay)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)


def diff_overlay(repo: Path, commit: str, overlays: list[Path]) -> str:
    """The diff from ``commit`` to ``commit`` + ``overlays`` (new files included)."""
    _reset(repo, commit)
    for overlay in overlays:
        _overlay(repo, overlay)
    git("add", "-A", cwd=repo)
    patch = git("diff", "--cached", "--no-color", commit, cwd=repo)
    git("reset", "-q", cwd=repo)
    _reset(repo, commit)
    return patch


def _apply(repo: Path, patch: str) -> None:
    if patch:
        subprocess.run(["git", "apply", "-"], cwd=repo, input=patch, text=True, check=True)


def run_tests(repo: Path) -> dict[str, str]:
    """The repository's whole test suite run here: test id -> status (swebench's parser)."""
    from swebench.harness.log_parsers import PARSER_REGISTRY

    proc = subprocess.run([sys.executable, *TEST_ARGS], cwd=repo, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}, timeout=300)
    statuses: dict[str, str] = PARSER_REGISTRY["parse_log_pytest"](proc.stdout, None)
    return statuses


def instance_row(source: Path, repos: Mapping[str, BuiltRepo], *, validate: bool = True) -> dict[str, Any]:
    """The SWE-bench row of the instance whose sources are in ``source``; without ``validate``
    the test lists are left empty (no tests run)."""
    meta = json.loads((source / "instance.json").read_text())
    built = repos[meta["repo"]]
    base = built.commits[meta["base"]]
    patch = diff_overlay(built.path, base, [source / "gold"])
    test_patch = diff_overlay(built.path, base, [source / "test"])
    fail_to_pass: list[str] = []
    pass_to_pass: list[str] = []
    if validate:
        _reset(built.path, base)
        _apply(built.path, test_patch)
        before = run_tests(built.path)
        _apply(built.path, patch)
        after = run_tests(built.path)
        _reset(built.path, base)
        cut = sorted(t for t in after if t.count("[") > t.count("]"))
        if cut:  # pytest ids with whitespace: the log parser splits on it (swebench issue #290)
            raise SystemExit(f"{source.name}: test ids cut at whitespace, give their parametrization ids: {cut}")
        broken = sorted(t for t, s in after.items() if s not in ("PASSED", "XFAIL", "SKIPPED"))
        if broken:
            raise SystemExit(f"{source.name}: the gold patch leaves tests failing: {broken}")
        fail_to_pass = sorted(t for t, s in after.items() if s == "PASSED" and before.get(t) != "PASSED")
        pass_to_pass = sorted(t for t, s in after.items() if s == "PASSED" and before.get(t) == "PASSED")
        if not fail_to_pass:
            raise SystemExit(f"{source.name}: no test fails before the gold patch")
        for commit in built.commits.values():
            _reset(built.path, commit)
            check = subprocess.run(["git", "apply", "--check", "-R", "-"], cwd=built.path, input=patch,
                                   text=True, capture_output=True)
            if check.returncode == 0:
                raise SystemExit(f"{source.name}: commit {commit} already holds the fix")
        _reset(built.path, base)
    return {
        "repo": meta["repo"], "instance_id": source.name, "base_commit": base, "patch": patch,
        "test_patch": test_patch, "problem_statement": (source / "problem_statement.md").read_text(),
        "hints_text": meta.get("hints_text", ""), "created_at": meta["created_at"], "version": meta["version"],
        "FAIL_TO_PASS": json.dumps(fail_to_pass), "PASS_TO_PASS": json.dumps(pass_to_pass),
        "environment_setup_commit": built.commits[built.versions[meta["version"]]],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agentgym.envs.swe.generate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check that the file is up to date")
    parser.add_argument("--out", default=str(BUILTIN_INSTANCES), help="where to write the JSONL file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="agentgym-swe-gen-") as tmp:
        repos = build_all(Path(tmp))
        rows = [instance_row(d, repos) for d in sorted(INSTANCES_DIR.iterdir()) if (d / "instance.json").is_file()]
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    out = Path(args.out)
    if args.check:
        current = out.read_text() if out.is_file() else ""
        print(f"{out}: {'up to date' if current == text else 'OUT OF DATE'} ({len(rows)} instances)")
        return 0 if current == text else 1
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    for row in rows:
        print(f"{row['instance_id']}: {len(json.loads(row['FAIL_TO_PASS']))} FAIL_TO_PASS, "
              f"{len(json.loads(row['PASS_TO_PASS']))} PASS_TO_PASS")
    print(f"wrote {out} ({len(rows)} instances)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
