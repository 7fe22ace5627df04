#!/bin/bash
# Oracle for git-merge-conflict: write the resolved files, then conclude the merge.
set -euo pipefail
cd /app/repo
cat > greet.py <<'PY'
"""Greetings for the command line."""

import sys


def greet(name, shout=False):
    name = name.strip()
    message = "Hello, " + name + "!"
    return message.upper() if shout else message


if __name__ == "__main__":
    print(greet(sys.argv[1] if len(sys.argv) > 1 else "world", shout="--shout" in sys.argv))
PY
printf '# Changelog\n\n## Unreleased\n\n- Names are stripped of surrounding whitespace.\n- `greet(name, shout=True)` shouts.\n\n## 0.1.0\n\n- First release: `greet(name)`.\n' > CHANGELOG.md
git add greet.py CHANGELOG.md
git commit -q --no-edit
