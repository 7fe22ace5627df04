#!/bin/bash
# Oracle for organize-files: the first name (byte order) of each content wins; the others go.
set -euo pipefail
APP="${AGENTGYM_ROOT:-}/app"
export LC_ALL=C
mkdir -p "$APP/sorted"
declare -A seen=()
# "<name>\t<path>" sorted by name, so the first file of each content is the one to keep.
while IFS=$'\t' read -r name path; do
    sum=$(sha256sum "$path" | cut -d' ' -f1)
    if [ -n "${seen[$sum]:-}" ]; then
        rm -f "$path"
        continue
    fi
    seen[$sum]=1
    bare="${name#.}"
    if [[ "$bare" == *.* ]]; then ext="${bare##*.}"; ext="${ext,,}"; else ext=other; fi
    mkdir -p "$APP/sorted/$ext"
    mv "$path" "$APP/sorted/$ext/$name"
done < <(find "$APP/inbox" -type f -printf '%f\t%p\n' | sort -t $'\t' -k1,1)
find "$APP/inbox" -mindepth 1 -type d -empty -delete
