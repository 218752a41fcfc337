#!/usr/bin/env bash
# Starts (creating on first use) a private PostgreSQL cluster under .data/pg with the machine's PostgreSQL
# binaries, listening on a loopback TCP port only, and prints its connection URL. Idempotent and fast
# when the cluster is already running. As root, initdb/pg_ctl run as the postgres user (they refuse root).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
data="$root/.data/pg"
pgbin="${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)}"
[ -x "$pgbin/initdb" ] || { echo "devdb: PostgreSQL binaries not found (set PG_BIN or install postgresql)" >&2; exit 1; }

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

mkdir -p "$root/.data"
if [ ! -f "$data/PG_VERSION" ]; then
  mkdir -p "$data"
  if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$data"; chmod 700 "$data"; fi
  as_pg "$pgbin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
fi
port_file="$root/.data/pg.port"
if [ ! -s "$port_file" ]; then
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' > "$port_file"
fi
port="$(cat "$port_file")"
if ! as_pg "$pgbin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
  as_pg "$pgbin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 30 \
    -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=300" start >/dev/null
fi
echo "postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
