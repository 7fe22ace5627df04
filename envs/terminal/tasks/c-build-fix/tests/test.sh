#!/bin/bash
# Verifier for c-build-fix: reward 1 when every check of check_build.sh passes. The reward
# directory is root's alone (the checks run the agent's Makefile and program as nobody); a hang
# scores 0.
HERE="$(cd "$(dirname "$0")" && pwd)"
mkdir -p /logs/verifier && chmod 755 /logs/verifier
if timeout 150 bash "$HERE/check_build.sh"; then
    echo 1 > /logs/verifier/reward.txt
else
    echo 0 > /logs/verifier/reward.txt
fi
