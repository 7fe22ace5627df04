#!/bin/bash
# Oracle for log-report: the status is field 9 of a Common Log Format line.
set -euo pipefail
APP="${AGENTGYM_ROOT:-}/app"
{
    echo "status,count"
    awk '{print $9}' "$APP/access.log" | sort | uniq -c | sort -k1,1nr -k2,2n | awk '{print $2 "," $1}'
} > "$APP/report.csv"
