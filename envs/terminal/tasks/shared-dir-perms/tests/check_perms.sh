#!/bin/bash
# The checks of shared-dir-perms: what alice, bob and mallory can actually do (run as each of
# them with setpriv), group membership and unchanged contents. Exits 0 when every check passes.
P=/srv/project
fail=0
check() {  # check <description> <command...>
    local what="$1"; shift
    if "$@" >/dev/null 2>&1; then echo "PASS: $what"; else echo "FAIL: $what"; fail=1; fi
}
refuse() {  # refuse <description> <command...>: the command must fail
    local what="$1"; shift
    if "$@" >/dev/null 2>&1; then echo "FAIL: $what"; fail=1; else echo "PASS: $what"; fi
}
as() {  # as <user> <shell command>: run with the user's ids and groups from /etc/group
    local user="$1"; shift
    id "$user" >/dev/null 2>&1 || return 1
    (cd / && setpriv --reuid "$user" --regid "$user" --init-groups -- /bin/sh -c "umask 022; $1")
}
members=$(getent group devs | cut -d: -f4 | tr ',' '\n')
check "group devs exists" getent group devs
check "alice is in devs" grep -qx alice <<<"$members"
check "bob is in devs" grep -qx bob <<<"$members"
refuse "mallory is not in devs" grep -qx mallory <<<"$members"
check "/srv/project belongs to group devs" test "$(stat -c %G $P)" = devs
check "every file and directory belongs to group devs" test -z "$(find $P ! -group devs -print -quit)"
check "others can neither read nor write anything" test -z "$(find $P -perm /o=rw -print -quit)"
check "contents unchanged" sha256sum --quiet -c - <<'SUMS'
14f6ac6c0674bf4b954304f81fc0496c247e61295afa3a9401388f09dd326bc4  /srv/project/README.md
8743a299171ccd57bb60f9287d2bf23f2ab7a4d287d65e521b57bba42278f620  /srv/project/docs/design.md
9cd91aa6dcf186372eae54415810a2279c79e10d49d9eb0f63004b099974b6aa  /srv/project/docs/minutes.txt
920eabb76eb8b51bd5e2578ab959d352b2003f430287c3cf6519d78313874470  /srv/project/bin/deploy.sh
1c0eaf05dd3e3fc35393148dc6e11eaabb6cd8500c74a092bdca85fc6939b7ef  /srv/project/secrets/api.key
SUMS
check "alice can read a file" as alice "cat $P/docs/design.md"
check "bob can append to a file" as bob "echo '- checked' >> $P/README.md"
check "alice can create a file in docs" as alice "touch $P/docs/alice-was-here"
check "a file alice creates belongs to devs" test "$(stat -c %G $P/docs/alice-was-here 2>/dev/null)" = devs
check "bob can create a directory at the top" as bob "mkdir $P/bob-dir && touch $P/bob-dir/f"
check "a directory bob creates belongs to devs and passes it on" \
    test "$(stat -c %G $P/bob-dir/f 2>/dev/null)" = devs
check "bob can delete alice's file" as bob "rm -f $P/docs/alice-was-here && test ! -e $P/docs/alice-was-here"
check "alice can run bin/deploy.sh" as alice "cd $P && ./bin/deploy.sh"
check "alice can list secrets" as alice "ls $P/secrets"
check "alice can read secrets/api.key" as alice "cat $P/secrets/api.key"
refuse "alice cannot change secrets/api.key" as alice "echo x >> $P/secrets/api.key"
refuse "alice cannot create files in secrets" as alice "touch $P/secrets/new"
refuse "bob cannot delete secrets/api.key" as bob "rm -f $P/secrets/api.key; test ! -e $P/secrets/api.key"
refuse "mallory cannot list /srv/project" as mallory "ls $P"
refuse "mallory cannot read README.md" as mallory "cat $P/README.md"
refuse "mallory cannot read docs/design.md" as mallory "cat $P/docs/design.md"
refuse "mallory cannot read secrets/api.key" as mallory "cat $P/secrets/api.key"
exit "$fail"
