#!/bin/bash
# Oracle for shared-dir-perms: group devs, setgid directories, no access for others.
set -euo pipefail
groupadd devs
usermod -aG devs alice
usermod -aG devs bob
P=/srv/project
chgrp -R devs "$P"
find "$P" -type d -exec chmod 2770 {} +
find "$P" -type f -exec chmod 660 {} +
chmod 770 "$P"/bin/*
chmod 2750 "$P/secrets"
find "$P/secrets" -type f -exec chmod 640 {} +
