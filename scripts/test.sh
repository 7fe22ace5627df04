#!/usr/bin/env bash
# The test command: installs everything the tests need on a fresh Debian machine (Python
# packages, Debian packages, the Docker engine, the base image), then runs the whole suite,
# Docker integration tests included. Idempotent: a second run skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v socat >/dev/null 2>&1 || need+=(socat)
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)  # the local runtime's sandbox
command -v tmux >/dev/null 2>&1 || need+=(tmux)  # agentgym/terminus-v0 on the local runtime
command -v chromium >/dev/null 2>&1 || need+=(chromium)  # the viewer's browser tests (Playwright drives it)
if [ ${#need[@]} -gt 0 ]; then
  echo "== apt-get install ${need[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

echo "== pip install -e .[dev] under requirements/constraints.txt (every version pinned; torch the CPU build)"
log=$(mktemp)
if ! python3 -m pip install -q -c requirements/constraints.txt -e '.[dev]' >"$log" 2>&1; then
  cat "$log"; echo "pip install failed"; exit 1
fi
grep -v -E "Running pip as the 'root' user|Location .* is ignored" "$log" || true
rm -f "$log"
# Harnesses (mini-swe-agent...) install from their own hash-checked locks (harnesses/locks/), into
# task images and into host virtualenvs that the tests build on first use: nothing here floats.

echo "== docker engine and base image"
python3 -m agentgym.provision

echo "== lint and types"
python3 -m ruff check agentgym envs harnesses trainers tests benchmarks
python3 -m mypy

echo "== tests"
python3 -m pytest -q -p no:cacheprovider "$@"
