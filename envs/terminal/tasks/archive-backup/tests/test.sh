#!/bin/bash
# Verifier for archive-backup: reward 1 when the backup and the unpacked release are exact.
ROOT="${AGENTGYM_ROOT:-}"
HERE="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$ROOT/logs/verifier"
if timeout 45 python3 "$HERE/check_archives.py"; then   # a hang (a FIFO, /dev/zero) still scores 0
    echo 1 > "$ROOT/logs/verifier/reward.txt"
else
    echo 0 > "$ROOT/logs/verifier/reward.txt"
fi
