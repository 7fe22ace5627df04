#!/bin/bash
# Verifier for leave-a-note: reward 1 when /app holds at least one non-empty regular file.
# ${AGENTGYM_ROOT:-} is empty in a container and in agentgym's local sandbox; local-unsafe sets it to its fake root.
ROOT="${AGENTGYM_ROOT:-}"
mkdir -p "$ROOT/logs/verifier"
found=$(find "$ROOT/app" -type f -size +0c -print -quit 2>/dev/null)
if [ -n "$found" ]; then
    echo "PASS: found a note: ${found#"$ROOT"}"
    echo 1 > "$ROOT/logs/verifier/reward.txt"
else
    echo "FAIL: no non-empty file under /app"
    echo 0 > "$ROOT/logs/verifier/reward.txt"
fi
