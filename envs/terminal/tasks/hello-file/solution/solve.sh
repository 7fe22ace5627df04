#!/bin/bash
# Oracle for hello-file. ${AGENTGYM_ROOT:-} is empty in a container (agentgym's local-unsafe runtime
# sets it to its fake root so the same script runs without Docker).
set -euo pipefail
printf 'Hello, agentgym!\n' > "${AGENTGYM_ROOT:-}/app/hello.txt"
