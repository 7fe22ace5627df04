#!/bin/bash
# Verifier for web-service: nothing of the agent's runs here (a fresh container over its
# files), so start the service with its own sitectl, probe it, stop it. tini reaps the server
# once stopped (this container has no init), so `kill -0` sees it gone.
HERE="$(cd "$(dirname "$0")" && pwd)"
mkdir -p /logs/verifier
if tini -s -- bash "$HERE/check_service.sh"; then
    echo 1 > /logs/verifier/reward.txt
else
    echo 0 > /logs/verifier/reward.txt
fi
pkill -f 'http.server' 2>/dev/null || true
