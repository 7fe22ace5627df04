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
if [ ${#need[@]} -gt 0 ]; then
  echo "== apt-get install ${need[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

echo "== pip install -e .[dev] (torch pinned to the CPU build)"
python3 -m pip install -q -e '.[dev]' 2>&1 | grep -v -E "Running pip as the 'root' user|Location .* is ignored" || true
# mini-swe-agent on the host: the local-runtime harness tests run it directly.
python3 -m pip install -q 'mini-swe-agent==2.4.6' 'mcp==2.3.0' 2>&1 | grep -v -E "Running pip as the 'root' user|Location .* is ignored" || true

echo "== docker engine and base image"
python3 -m agentgym.runtime.setup

echo "== lint and types"
python3 -m ruff check agentgym envs harnesses trainers tests benchmarks
python3 -m mypy

echo "== tests"
python3 -m pytest -q -p no:cacheprovider "$@"
