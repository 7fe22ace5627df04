#!/bin/bash
# Verifier for log-report: reward 1 when /app/report.csv matches the log's status counts.
ROOT="${AGENTGYM_ROOT:-}"
HERE="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$ROOT/logs/verifier"
if python3 "$HERE/check_report.py" 9f9f88d5a08c19b1f6322b243abef3738dc6151317761b1832cb58fbdb8e65ce; then
    echo 1 > "$ROOT/logs/verifier/reward.txt"
else
    echo 0 > "$ROOT/logs/verifier/reward.txt"
fi
