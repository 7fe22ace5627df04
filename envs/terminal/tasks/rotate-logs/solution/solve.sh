#!/bin/bash
# Oracle for rotate-logs: numbers are walked from high to low, numerically (not by glob order).
set -euo pipefail
cat > "${AGENTGYM_ROOT:-}/app/rotate.sh" <<'SH'
#!/bin/bash
set -euo pipefail
usage() { echo "usage: rotate.sh FILE [KEEP]  (KEEP: a positive integer, default 3)" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
file="$1"
keep="${2:-3}"
[[ "$keep" =~ ^[0-9]+$ ]] && [ "$((10#$keep))" -ge 1 ] || usage
keep=$((10#$keep))
if [ ! -f "$file" ]; then
    echo "rotate.sh: $file: no such file" >&2
    exit 1
fi
highest=0
for f in "$file".*; do
    n="${f##*.}"
    [ -f "$f" ] && [[ "$n" =~ ^[1-9][0-9]*$ ]] && [ "$n" -gt "$highest" ] && highest="$n"
done
for ((n = highest; n >= 1; n--)); do
    [ -f "$file.$n" ] || continue
    if [ "$n" -ge "$keep" ]; then rm -f "$file.$n"; else mv "$file.$n" "$file.$((n + 1))"; fi
done
mv "$file" "$file.1"
: > "$file"
SH
chmod +x "${AGENTGYM_ROOT:-}/app/rotate.sh"
