#!/bin/bash
# Oracle for leave-a-note.
set -euo pipefail
echo "The build is green; see README for the next steps." > "${AGENTGYM_ROOT:-}/app/NOTE.txt"
