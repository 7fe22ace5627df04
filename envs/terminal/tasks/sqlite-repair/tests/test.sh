#!/bin/bash
# Verifier for sqlite-repair: reward 1 when the database and report match expected.json.
HERE="$(cd "$(dirname "$0")" && pwd)"
mkdir -p /logs/verifier
if timeout 45 python3 "$HERE/check_db.py" "$HERE/expected.json"; then   # a hang still scores 0
    echo 1 > /logs/verifier/reward.txt
else
    echo 0 > /logs/verifier/reward.txt
fi
