"""Checks for git-merge-conflict. The commit ids are fixed: the image builds the repository with
fixed identities and dates (environment/make_repo.sh)."""

import importlib.util
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = "/app/repo"
MAIN_TIP = "43cb91fa42db898a7a7d5121a4ad953a3c358740"
FEATURE_TIP = "f01a4cea7f2c953b414809f4f3cd2bfde9f3baa5"
ENTRIES = ["- Names are stripped of surrounding whitespace.", "- `greet(name, shout=True)` shouts."]
failures: list[str] = []


def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-c", f"safe.directory={REPO}", "-C", REPO, *args],
                          capture_output=True, text=True, timeout=30)


def check(ok: bool, what: str) -> None:
    print(("PASS: " if ok else "FAIL: ") + what)
    if not ok:
        failures.append(what)


def main() -> int:
    if not Path(REPO, ".git").is_dir():
        print(f"FAIL: {REPO} is not a git repository")
        return 1
    check(git("rev-parse", "-q", "--verify", "MERGE_HEAD").returncode != 0, "no merge is in progress")
    check(git("symbolic-ref", "--short", "HEAD").stdout.strip() == "main", "HEAD is on branch main")
    parents = git("rev-list", "--parents", "-n", "1", "HEAD").stdout.split()[1:]
    check(parents == [MAIN_TIP, FEATURE_TIP], f"HEAD is a merge of {MAIN_TIP[:7]} and {FEATURE_TIP[:7]} "
          f"(its parents: {' '.join(p[:7] for p in parents) or 'none'})")
    check(git("diff", "--quiet", "HEAD").returncode == 0, "no uncommitted changes to tracked files")
    check(git("diff", "--quiet", FEATURE_TIP, "HEAD", "--", "test_greet.py").returncode == 0,
          "test_greet.py from the feature is in the merge")
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
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp, "greet.py")
            path.write_text(source.stdout)
            try:
                spec = importlib.util.spec_from_file_location("greet_under_test", path)
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                check(module.greet("  Ann ") == "Hello, Ann!", "greet strips the name")
                check(module.greet(" Ann ", shout=True) == "HELLO, ANN!", "greet shouts a stripped name")
                check(module.greet("Bob", shout=False) == "Hello, Bob!", "greet(shout=False) does not shout")
            except Exception as e:
                check(False, f"the committed greet.py works ({type(e).__name__}: {e})")
            cli = subprocess.run([sys.executable, str(path), " Zoe ", "--shout"], capture_output=True, text=True,
                                 timeout=30)
            check(cli.stdout.strip() == "HELLO, ZOE!", "python3 greet.py ' Zoe ' --shout prints HELLO, ZOE!")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
