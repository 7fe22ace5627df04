#!/bin/bash
# Verifier for hello-file: reward 1 when /app/hello.txt is exactly "Hello, agentgym!\n".
# ${AGENTGYM_ROOT:-} is empty in a container and in agentgym's local sandbox; local-unsafe sets it to its fake root.
ROOT="${AGENTGYM_ROOT:-}"
mkdir -p "$ROOT/logs/verifier"
if printf 'Hello, agentgym!\n' | cmp -s - "$ROOT/app/hello.txt"; then
    echo "PASS: /app/hello.txt has the expected content"
    echo 1 > "$ROOT/logs/verifier/reward.txt"
else
    echo "FAIL: /app/hello.txt is missing or differs"
    echo 0 > "$ROOT/logs/verifier/reward.txt"
fi
