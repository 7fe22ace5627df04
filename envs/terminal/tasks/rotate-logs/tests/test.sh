#!/bin/bash
# Verifier for rotate-logs: pytest over test_rotate.py (scenarios the agent has not seen).
ROOT="${AGENTGYM_ROOT:-}"
HERE="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$ROOT/logs/verifier" && chmod 755 "$ROOT/logs/verifier"   # root's alone: the script runs as nobody
if PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 timeout 100 python3 -m pytest -q -p no:cacheprovider "$HERE/test_rotate.py"; then
    echo 1 > "$ROOT/logs/verifier/reward.txt"
else
    echo 0 > "$ROOT/logs/verifier/reward.txt"
fi
