#!/bin/bash
# Verifier for c-build-fix: rebuild from clean with the image's compiler, then run inputs the
# agent has not seen. Every check must pass.
mkdir -p /logs/verifier
fail=0
say() { echo "$1: $2"; [ "$1" = PASS ] || fail=1; }
expect() {  # expect <input> <stdout>
    local got
    got=$(printf '%b' "$1" | timeout 10 ./stats 2>/dev/null)
    [ "$got" = "$2" ] && say PASS "stats on '$1'" || say FAIL "stats on '$1' printed '$got', want '$2'"
}
reject() {  # reject <input>: exit 1 with a message on stderr, nothing on stdout
    local out err code
    out=$(printf '%b' "$1" | timeout 10 ./stats 2>/tmp/stats.err); code=$?
    err=$(cat /tmp/stats.err)
    [ "$code" = 1 ] && [ -n "$err" ] && say PASS "stats rejects '$1'" \
        || say FAIL "stats on '$1' exited $code, stdout '$out', stderr '$err' (want exit 1 and an error)"
}
cd /app/project 2>/dev/null || { echo "FAIL: /app/project is missing"; echo 0 > /logs/verifier/reward.txt; exit 0; }
make clean >/dev/null 2>&1
rm -f stats src/*.o
if timeout 60 make >/tmp/make.log 2>&1 && [ -x stats ]; then
    say PASS "make builds stats from clean"
else
    say FAIL "make builds stats from clean"; tail -20 /tmp/make.log
    echo 0 > /logs/verifier/reward.txt
    exit 0
fi
[ "$(head -c 4 stats | od -An -c | tr -d ' ')" = '177ELF' ] && say PASS "stats is a compiled program" \
    || say FAIL "stats is a compiled program (ELF)"
expect "2.5\n4\n1.5\n3\n4.5\n" "n=5 mean=3.100 sd=1.068 min=1.5 max=4.5"
expect "-1.25 3.75\n10\n" "n=3 mean=4.167 sd=4.602 min=-1.25 max=10"
expect "1e2\t-50" "n=2 mean=25.000 sd=75.000 min=-50 max=100"
expect "7" "n=1 mean=7.000 sd=0.000 min=7 max=7"
expect "  0.1 0.2 0.3  \n\n" "n=3 mean=0.200 sd=0.082 min=0.1 max=0.3"
reject "3 x 4"
reject "1 2 3.5.6"
reject "12abc"
if [ "$fail" = 0 ]; then echo 1 > /logs/verifier/reward.txt; else echo 0 > /logs/verifier/reward.txt; fi
