"""Checks /app/report.csv against counts computed from /app/access.log.
AGENTGYM_ROOT is unset in a container and in agentgym's local sandbox (local-unsafe sets it to its fake root)."""

import collections
import hashlib
import os
import re
import sys
from pathlib import Path

APP = Path(os.environ.get("AGENTGYM_ROOT", "") + "/app")
LOG_SHA256 = sys.argv[1]
LINE = re.compile(r'^\S+ \S+ \S+ \[[^\]]+\] "[^"]*" (\d{3}) \S+$')


def main() -> int:
    log = APP / "access.log"
    if hashlib.sha256(log.read_bytes()).hexdigest() != LOG_SHA256:
        print("FAIL: access.log was modified")
        return 1
    counts = collections.Counter(LINE.match(line).group(1) for line in log.read_text().splitlines())
    rows = sorted(counts.items(), key=lambda kv: (-kv[1], int(kv[0])))
    expected = ["status,count"] + [f"{status},{n}" for status, n in rows]
    report = APP / "report.csv"
    if not report.is_file():
        print("FAIL: /app/report.csv does not exist")
        return 1
    got = report.read_text().strip("\n").split("\n")
    if got != expected:
        print("FAIL: report.csv differs.\nexpected:\n" + "\n".join(expected) + "\ngot:\n" + "\n".join(got))
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
