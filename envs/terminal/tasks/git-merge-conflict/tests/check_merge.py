"""Checks for git-merge-conflict. The commit ids are fixed: the image builds the repository with
fixed identities and dates (environment/make_repo.sh).

Everything the agent controls runs as ``nobody`` in a subprocess: git (a repository's config can
name programs to run: fsmonitor, clean filters, diff drivers) and the merged ``greet.py``, whose
behaviour is judged by its output on names drawn at random here, never by the exit status."""

import os
import random
import re
import string
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = "/app/repo"
MAIN_TIP = "43cb91fa42db898a7a7d5121a4ad953a3c358740"
FEATURE_TIP = "f01a4cea7f2c953b414809f4f3cd2bfde9f3baa5"
ENTRIES = ["- Names are stripped of surrounding whitespace.", "- `greet(name, shout=True)` shouts."]
NOBODY = 65534
failures: list[str] = []


def unprivileged() -> dict:
    return {"user": NOBODY, "group": NOBODY, "extra_groups": []} if os.geteuid() == 0 else {}


def run(argv: list, cwd: str = "/") -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent", "GIT_CONFIG_NOSYSTEM": "1"}
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=15, cwd=cwd, env=env,
                              stdin=subprocess.DEVNULL, **unprivileged())
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 124, "", "timed out")


def git(*args: str) -> subprocess.CompletedProcess:
    return run(["git", "-c", "safe.directory=*", "-c", "core.fsmonitor=false", "-C", REPO, *args])


def check(ok: bool, what: str) -> None:
    print(("PASS: " if ok else "FAIL: ") + what)
    if not ok:
        failures.append(what)


def behaviour(source: str) -> None:
    """Call the committed greet() on random names in a separate, unprivileged process."""
    rng = random.SystemRandom()
    names = ["".join(rng.choice(string.ascii_letters) for _ in range(8)) for _ in range(3)]
    cases = [(f"  {names[0]} ", False, f"Hello, {names[0]}!"), (f" {names[1]}\t", True, f"HELLO, {names[1].upper()}!"),
             (names[2], False, f"Hello, {names[2]}!")]
    probe = ("import sys\nsys.path.insert(0, sys.argv[1])\nfrom greet import greet\n"
             "for name, shout in ((sys.argv[2], False), (sys.argv[3], True), (sys.argv[4], False)):\n"
             "    print('greet=' + repr(greet(name, shout=shout)))\n")
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)
        Path(tmp, "greet.py").write_text(source)
        Path(tmp, "greet.py").chmod(0o644)
        out = run([sys.executable, "-c", probe, tmp, *(c[0] for c in cases)], cwd=tmp)
        lines = [line for line in out.stdout.splitlines() if line.startswith("greet=")]
        want = ["greet=" + repr(c[2]) for c in cases]
        check(lines == want, "greet() strips the name and shouts when asked" +
              ("" if lines == want else f" (want {want}, got {lines}, stderr {out.stderr[-300:]!r})"))
        cli = run([sys.executable, str(Path(tmp, "greet.py")), f" {names[0]} ", "--shout"], cwd=tmp)
        check(cli.stdout.strip() == f"HELLO, {names[0].upper()}!",
              "python3 greet.py ' NAME ' --shout prints HELLO, NAME!")


def main() -> int:
    if not Path(REPO, ".git").is_dir():
        print(f"FAIL: {REPO} is not a git repository")
        return 1
    check(git("rev-parse", "-q", "--verify", "MERGE_HEAD").returncode == 1, "no merge is in progress")
    check(git("symbolic-ref", "--short", "HEAD").stdout.strip() == "main", "HEAD is on branch main")
    parents = git("rev-list", "--parents", "-n", "1", "HEAD").stdout.split()[1:]
    check(parents == [MAIN_TIP, FEATURE_TIP], f"HEAD is a merge of {MAIN_TIP[:7]} and {FEATURE_TIP[:7]} "
          f"(its parents: {' '.join(p[:7] for p in parents) or 'none'})")
    check(git("diff", "--quiet", "--no-ext-diff", "--no-textconv", "HEAD").returncode == 0,
          "no uncommitted changes to tracked files")
    check(git("diff", "--quiet", "--no-ext-diff", "--no-textconv", FEATURE_TIP, "HEAD", "--",
              "test_greet.py").returncode == 0, "test_greet.py from the feature is in the merge")
    markers = git("grep", "-n", "-E", "^(<<<<<<<|>>>>>>>|=======)", "HEAD")
    check(markers.returncode == 1 and not markers.stdout, "no conflict markers in the committed files")
    changelog = git("show", "HEAD:CHANGELOG.md").stdout
    unreleased = re.search(r"^## Unreleased\n(.*?)(?=^## )", changelog, re.M | re.S)
    check(bool(unreleased) and all(e in unreleased.group(1).splitlines() for e in ENTRIES),
          "CHANGELOG.md has both entries under ## Unreleased")
    check("## 0.1.0\n\n- First release: `greet(name)`." in changelog, "CHANGELOG.md keeps the 0.1.0 section")
    source = git("show", "HEAD:greet.py")
    if source.returncode != 0:
        check(False, "greet.py is committed")
    else:
        behaviour(source.stdout)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
