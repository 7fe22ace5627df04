#!/bin/bash
# Verifier for organize-files: reward 1 when /app/sorted holds exactly the expected files.
ROOT="${AGENTGYM_ROOT:-}"
HERE="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$ROOT/logs/verifier"
if timeout 45 python3 "$HERE/check_sorted.py"; then   # a hang (a FIFO, /dev/zero) still scores 0
    echo 1 > "$ROOT/logs/verifier/reward.txt"
else
    echo 0 > "$ROOT/logs/verifier/reward.txt"
fi
