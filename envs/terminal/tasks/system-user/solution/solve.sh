#!/bin/bash
# Oracle for system-user.
set -euo pipefail
groupadd --gid 1600 web
useradd --uid 1500 --gid web --create-home --home-dir /home/deploy --shell /bin/bash deploy
mkdir -p /srv/www
chown deploy:web /srv/www
chmod 2775 /srv/www
