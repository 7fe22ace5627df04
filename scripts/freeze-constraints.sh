#!/usr/bin/env bash
# Re-pin the test environment: install the package with its dev extras into a fresh virtualenv
# (today's versions within pyproject's ranges) and write every installed version to
# requirements/constraints.txt, which scripts/test.sh installs under. Review the diff, run the
# tests, commit. Harness closures have their own locks (python3 -m agentgym.harnesses.locks).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(mktemp -d)/venv
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -e '.[dev]'
{
  echo "# Every package of the test environment at the version CI tests with (scripts/freeze-constraints.sh)."
  echo "# torch is the CPU build that lies on this machine's disk (MACHINE.md)."
  "$venv/bin/pip" freeze --exclude-editable --disable-pip-version-check | sed 's/+cpu$//' | sort -f
} > requirements/constraints.txt
rm -rf "$(dirname "$venv")"
echo "wrote requirements/constraints.txt ($(grep -c '==' requirements/constraints.txt) pins)"
