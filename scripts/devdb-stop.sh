#!/usr/bin/env bash
# Stops the private PostgreSQL cluster started by devdb.sh.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
pgbin="${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)}"
[ -f "$root/.data/pg/PG_VERSION" ] || exit 0
if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$pgbin/pg_ctl" -D "$root/.data/pg" stop -m fast; else "$pgbin/pg_ctl" -D "$root/.data/pg" stop -m fast; fi
