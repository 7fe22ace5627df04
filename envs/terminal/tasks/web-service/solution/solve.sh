#!/bin/bash
# Oracle for web-service: an init-style script around python3 -m http.server.
set -euo pipefail
printf 'ok\n' > /srv/site/healthz
cat > /app/sitectl <<'SH'
#!/bin/bash
PIDFILE=/run/site/site.pid
PORT=8088
running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }
case "${1:-}" in
    start)
        if running; then echo "already running (pid $(cat "$PIDFILE"))"; exit 0; fi
        nohup python3 -m http.server "$PORT" --bind 127.0.0.1 --directory /srv/site \
            >>/run/site/site.log 2>&1 </dev/null &
        echo $! > "$PIDFILE"
        for _ in $(seq 50); do
            curl -fs -o /dev/null "http://127.0.0.1:$PORT/healthz" && { echo "started"; exit 0; }
            sleep 0.2
        done
        echo "the server did not answer on port $PORT" >&2
        exit 1 ;;
    status)
        if running; then echo running; exit 0; else echo stopped; exit 3; fi ;;
    stop)
        if running; then
            pid=$(cat "$PIDFILE")
            kill "$pid"
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
        rm -f "$PIDFILE"
        echo stopped
        exit 0 ;;
    *)
        echo "usage: sitectl start|stop|status" >&2
        exit 2 ;;
esac
SH
chmod 755 /app/sitectl
runuser -u www-data -- /app/sitectl start
curl -fsS http://127.0.0.1:8088/healthz
