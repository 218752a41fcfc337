#!/usr/bin/env bash
# `make run`: the whole suite on embedded defaults. Uses DATABASE_URL when set, otherwise a private
# PostgreSQL cluster under .data/; keeps development keys in .data/dev.env so stored secrets stay readable
# across restarts; applies migrations; starts `serve --target=all --dev`, which prints the URL and a token.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
mkdir -p .data
if [ ! -s .data/dev.env ]; then
  umask 077
  {
    echo "ALGA_AUTH_HS256_KEY=$(head -c 32 /dev/urandom | base64 | tr -d '=+/' | head -c 43)"
    echo "ALGA_SECRETS_KEK=$(head -c 32 /dev/urandom | base64)"
  } > .data/dev.env
fi
set -a
# shellcheck disable=SC1091
. .data/dev.env
set +a
export DATABASE_URL="${DATABASE_URL:-$(scripts/devdb.sh)}"
export ALGA_HTTP_ADDR="${ALGA_HTTP_ADDR:-127.0.0.1:8080}"
export ALGA_GRPC_ADDR="${ALGA_GRPC_ADDR:-127.0.0.1:9090}"
bin/alga-google migrate
exec bin/alga-google serve --target=all --dev "$@"
