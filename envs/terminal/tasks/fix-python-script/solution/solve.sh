#!/bin/bash
# Oracle for fix-python-script: skip blank and comment lines, true division, max().
set -euo pipefail
cat > "${AGENTGYM_ROOT:-}/app/stats.py" <<'PY'
"""Print count, mean and max of the integers in a file (default: numbers.txt beside this script)."""

import sys
from pathlib import Path


def read_numbers(path):
    numbers = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        numbers.append(int(line))
    return numbers


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("numbers.txt")
    numbers = read_numbers(path)
    mean = sum(numbers) / len(numbers)
    print(f"count={len(numbers)} mean={mean:.2f} max={max(numbers)}")


if __name__ == "__main__":
    main()
PY
