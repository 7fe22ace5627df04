#!/bin/bash
# Verifier for fix-python-script: pytest over test_outputs.py; reward 1 when every test passes.
ROOT="${AGENTGYM_ROOT:-}"
HERE="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$ROOT/logs/verifier" && chmod 755 "$ROOT/logs/verifier"   # root's alone: stats.py runs as nobody
if PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python3 -m pytest -q -p no:cacheprovider "$HERE/test_outputs.py"; then
    echo 1 > "$ROOT/logs/verifier/reward.txt"
else
    echo 0 > "$ROOT/logs/verifier/reward.txt"
fi
