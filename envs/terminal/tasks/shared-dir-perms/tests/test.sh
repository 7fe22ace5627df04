#!/bin/bash
# Verifier for shared-dir-perms: reward 1 when every check of check_perms.sh passes. The reward
# directory is root's alone (the checks run the agent's deploy.sh as alice); a hang scores 0.
HERE="$(cd "$(dirname "$0")" && pwd)"
mkdir -p /logs/verifier && chmod 755 /logs/verifier
if timeout 100 bash "$HERE/check_perms.sh"; then
    echo 1 > /logs/verifier/reward.txt
else
    echo 0 > /logs/verifier/reward.txt
fi
