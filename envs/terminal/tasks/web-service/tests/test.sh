#!/bin/bash
# Verifier for web-service: nothing of the agent's runs here (a fresh container over its
# files), so start the service with its own sitectl, probe it, stop it. sitectl runs as
# www-data and the reward directory is root's alone, so the agent's code cannot touch the
# reward; tini reaps the stopped server (this container has no init), so `kill -0` sees it gone.
HERE="$(cd "$(dirname "$0")" && pwd)"
mkdir -p /logs/verifier && chmod 755 /logs/verifier
if timeout 150 tini -s -- bash "$HERE/check_service.sh"; then
    echo 1 > /logs/verifier/reward.txt
else
    echo 0 > /logs/verifier/reward.txt
fi
pkill -9 -u www-data 2>/dev/null || true
