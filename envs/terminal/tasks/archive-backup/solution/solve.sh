#!/bin/bash
# Oracle for archive-backup: find | tar with NUL-separated names (one has a space); the zip is
# unpacked with Python's zipfile so the script also runs where unzip is not installed.
set -euo pipefail
cd "${AGENTGYM_ROOT:-}/app"
find data -type f \( -name '*.txt' -o -name '*.md' \) -print0 | tar --null -czf backup.tar.gz -T -
python3 -m zipfile -e incoming.zip incoming/
