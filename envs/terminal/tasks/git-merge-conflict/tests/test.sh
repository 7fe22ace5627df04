#!/bin/bash
# Verifier for git-merge-conflict: reward 1 when main's HEAD is the right merge commit and its
# tree holds both sides' changes. The reward directory is root's alone: git (whose repository
# config and attributes are the agent's) and the merged code run as nobody.
HERE="$(cd "$(dirname "$0")" && pwd)"
mkdir -p /logs/verifier && chmod 755 /logs/verifier
if timeout 100 python3 "$HERE/check_merge.py"; then   # a hang still scores 0
    echo 1 > /logs/verifier/reward.txt
else
    echo 0 > /logs/verifier/reward.txt
fi
