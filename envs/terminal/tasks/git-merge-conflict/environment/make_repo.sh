#!/bin/bash
# Builds /app/repo: main and feature/shout diverge from one commit, and a merge of the feature
# into main stops with conflicts. Fixed identities and dates make every commit id reproducible.
set -euo pipefail
export GIT_AUTHOR_NAME="Dana Dev" GIT_AUTHOR_EMAIL="dana@example.com"
export GIT_COMMITTER_NAME="Dana Dev" GIT_COMMITTER_EMAIL="dana@example.com"
commit() {  # commit <date> <message>
    GIT_AUTHOR_DATE="$1" GIT_COMMITTER_DATE="$1" git commit -q -m "$2"
}
mkdir -p /app/repo && cd /app/repo
git init -q -b main
git config user.name "Dana Dev" && git config user.email "dana@example.com"

cat > greet.py <<'PY'
"""Greetings for the command line."""

import sys


def greet(name):
    return "Hello, " + name + "!"


if __name__ == "__main__":
    print(greet(sys.argv[1] if len(sys.argv) > 1 else "world"))
PY
printf '# Changelog\n\n## 0.1.0\n\n- First release: `greet(name)`.\n' > CHANGELOG.md
printf '__pycache__/\n' > .gitignore
git add -A && commit "2024-01-10T09:00:00+00:00" "Initial greeter"

git checkout -q -b feature/shout
cat > greet.py <<'PY'
"""Greetings for the command line."""

import sys


def greet(name, shout=False):
    message = "Hello, " + name + "!"
    return message.upper() if shout else message


if __name__ == "__main__":
    print(greet(sys.argv[1] if len(sys.argv) > 1 else "world", shout="--shout" in sys.argv))
PY
cat > test_greet.py <<'PY'
from greet import greet


def test_shout():
    assert greet("Ann", shout=True) == "HELLO, ANN!"
PY
printf '# Changelog\n\n## Unreleased\n\n- `greet(name, shout=True)` shouts.\n\n## 0.1.0\n\n- First release: `greet(name)`.\n' > CHANGELOG.md
git add -A && commit "2024-01-12T14:30:00+00:00" "Add a shout option"

git checkout -q main
cat > greet.py <<'PY'
"""Greetings for the command line."""

import sys


def greet(name):
    name = name.strip()
    return "Hello, " + name + "!"


if __name__ == "__main__":
    print(greet(sys.argv[1] if len(sys.argv) > 1 else "world"))
PY
printf '# Changelog\n\n## Unreleased\n\n- Names are stripped of surrounding whitespace.\n\n## 0.1.0\n\n- First release: `greet(name)`.\n' > CHANGELOG.md
git add -A && commit "2024-01-13T11:15:00+00:00" "Strip whitespace around names"

# The merge that stopped: conflicts in greet.py and CHANGELOG.md.
if git merge --no-ff feature/shout >/dev/null 2>&1; then
    echo "make_repo.sh: expected the merge to conflict" >&2
    exit 1
fi
git rev-parse main feature/shout
