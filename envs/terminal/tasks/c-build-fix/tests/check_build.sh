#!/bin/bash
# The checks of c-build-fix: rebuild a copy from clean with the image's compiler, then run
# inputs the agent has not seen. The Makefile and the program are the agent's code: they run as
# nobody. Exits 0 when every check passes.
fail=0
say() { echo "$1: $2"; [ "$1" = PASS ] || fail=1; }
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"; }
expect() {  # expect <input> <stdout>
    local got
    got=$(printf '%b' "$1" | as_nobody timeout 5 ./stats 2>/dev/null)
    [ "$got" = "$2" ] && say PASS "stats on '$1'" || say FAIL "stats on '$1' printed '$got', want '$2'"
}
reject() {  # reject <input>: exit 1 with a message on stderr
    local out err code
    out=$(printf '%b' "$1" | as_nobody timeout 5 ./stats 2>"$WORK/stats.err"); code=$?
    err=$(cat "$WORK/stats.err")
    [ "$code" = 1 ] && [ -n "$err" ] && say PASS "stats rejects '$1'" \
        || say FAIL "stats on '$1' exited $code, stdout '$out', stderr '$err' (want exit 1 and an error)"
}
if [ ! -d /app/project ]; then
    echo "FAIL: /app/project is missing"; exit 1
fi
WORK=$(mktemp -d)
cp -a /app/project "$WORK/project" && chown -R nobody:nogroup "$WORK" && chmod 755 "$WORK"
cd "$WORK/project"
as_nobody make clean >/dev/null 2>&1
rm -f stats src/*.o
if as_nobody timeout 60 make >"$WORK/make.log" 2>&1 && [ -x stats ]; then
    say PASS "make builds stats from clean"
else
    say FAIL "make builds stats from clean"; tail -20 "$WORK/make.log"
    exit 1
fi
[ -f stats ] && [ ! -L stats ] && [ "$(head -c 4 stats | od -An -c | tr -d ' ')" = '177ELF' ] && say PASS "stats is a compiled program" \
    || say FAIL "stats is a compiled program (ELF)"
expect "2.5\n4\n1.5\n3\n4.5\n" "n=5 mean=3.100 sd=1.068 min=1.5 max=4.5"
expect "-1.25 3.75\n10\n" "n=3 mean=4.167 sd=4.602 min=-1.25 max=10"
expect "1e2\t-50" "n=2 mean=25.000 sd=75.000 min=-50 max=100"
expect "7" "n=1 mean=7.000 sd=0.000 min=7 max=7"
expect "  0.1 0.2 0.3  \n\n" "n=3 mean=0.200 sd=0.082 min=0.1 max=0.3"
reject "3 x 4"
reject "1 2 3.5.6"
reject "12abc"
exit "$fail"
