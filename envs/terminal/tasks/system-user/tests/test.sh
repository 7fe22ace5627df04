#!/bin/bash
# Verifier for system-user: every check must pass for reward 1.
mkdir -p /logs/verifier
fail=0
check() {  # check <description> <command...>
    local what="$1"; shift
    if "$@" >/dev/null 2>&1; then echo "PASS: $what"; else echo "FAIL: $what"; fail=1; fi
}
check "group web has GID 1600" test "$(getent group web | cut -d: -f3)" = 1600
check "user deploy has UID 1500" test "$(getent passwd deploy | cut -d: -f3)" = 1500
check "deploy's primary group is web" test "$(getent passwd deploy | cut -d: -f4)" = 1600
check "deploy's home is /home/deploy" test "$(getent passwd deploy | cut -d: -f6)" = /home/deploy
check "deploy's shell is /bin/bash" test "$(getent passwd deploy | cut -d: -f7)" = /bin/bash
check "/home/deploy exists, owned by deploy" test "$(stat -c %U /home/deploy)" = deploy
check "/srv/www owned by deploy:web" test "$(stat -c %U:%G /srv/www)" = deploy:web
check "/srv/www has mode 2775" test "$(stat -c %a /srv/www)" = 2775
if [ "$fail" = 0 ]; then echo 1 > /logs/verifier/reward.txt; else echo 0 > /logs/verifier/reward.txt; fi
