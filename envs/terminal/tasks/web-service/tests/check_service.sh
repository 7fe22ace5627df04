#!/bin/bash
# The checks of web-service; exits 0 when all pass. sitectl runs as www-data, its output goes to
# a file (a server it leaves behind does not hold the verifier's output open).
CTL=/app/sitectl
PIDFILE=/run/site/site.pid
URL=http://127.0.0.1:8088
OUT=$(mktemp)
chmod 666 "$OUT"
fail=0
say() { echo "$1: $2"; [ "$1" = PASS ] || fail=1; }
ctl() { setpriv --reuid=www-data --regid=www-data --init-groups -- timeout 12 "$CTL" "$@" >"$OUT" 2>&1 </dev/null; }
get() { curl -fsS --max-time 3 "$URL/$1" 2>/dev/null; }
up() { for _ in $(seq 30); do get healthz >/dev/null && return 0; sleep 0.1; done; return 1; }

if [ ! -x "$CTL" ]; then echo "FAIL: $CTL is missing or not executable"; exit 1; fi
[ "$(cat /srv/site/healthz 2>/dev/null | tr -d '[:space:]')" = ok ] && say PASS "/srv/site/healthz says ok" \
    || say FAIL "/srv/site/healthz says ok"
rm -f "$PIDFILE"   # the episode's server is gone with its container; start from scratch
ctl status; code=$?
[ "$code" = 3 ] && grep -qx stopped "$OUT" && say PASS "status: stopped, exit 3 before start" \
    || say FAIL "status before start printed '$(head -c 200 "$OUT")' and exited $code (want stopped, 3)"
get healthz >/dev/null && { echo "FAIL: something already answers on port 8088"; exit 1; }

ctl start; code=$?
[ "$code" = 0 ] && say PASS "start exits 0" || say FAIL "start exited $code: $(head -c 300 "$OUT")"
up && [ "$(get healthz | tr -d '[:space:]')" = ok ] && say PASS "GET /healthz answers ok" \
    || say FAIL "GET /healthz answers ok"
get "" | grep -q "All systems nominal" && say PASS "GET / serves /srv/site/index.html" \
    || say FAIL "GET / serves /srv/site/index.html"
pid=$(cat "$PIDFILE" 2>/dev/null)
[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && say PASS "$PIDFILE holds the live server's pid" \
    || say FAIL "$PIDFILE holds the live server's pid"
ctl status; code=$?
[ "$code" = 0 ] && grep -qx running "$OUT" && say PASS "status: running, exit 0" \
    || say FAIL "status while running printed '$(head -c 200 "$OUT")' and exited $code"
ctl start; code=$?
[ "$code" = 0 ] && [ "$(cat "$PIDFILE" 2>/dev/null)" = "$pid" ] && [ "$(pgrep -fc 'http.server|8088')" -le 1 ] \
    && say PASS "a second start exits 0 and starts nothing" || say FAIL "a second start exits 0 and starts nothing"

ctl stop; code=$?
[ "$code" = 0 ] && say PASS "stop exits 0" || say FAIL "stop exited $code: $(head -c 300 "$OUT")"
get healthz >/dev/null && say FAIL "the server is gone after stop" || say PASS "the server is gone after stop"
[ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null && say PASS "the server process has exited" \
    || say FAIL "the server process has exited"
[ ! -e "$PIDFILE" ] && say PASS "$PIDFILE is removed" || say FAIL "$PIDFILE is removed"
ctl status; code=$?
[ "$code" = 3 ] && grep -qx stopped "$OUT" && say PASS "status after stop: stopped, exit 3" \
    || say FAIL "status after stop printed '$(head -c 200 "$OUT")' and exited $code"
ctl stop; code=$?
[ "$code" = 0 ] && say PASS "stop when stopped exits 0" || say FAIL "stop when stopped exited $code"
exit "$fail"
