#!/usr/bin/env bash
# `make run`: the whole suite on embedded defaults. Uses DATABASE_URL when set, otherwise a private
# PostgreSQL cluster under .data/; keeps development keys (user-token key, service-token key, secrets KEK)
# in .data/dev.env so stored secrets stay readable across restarts; applies migrations; starts
# `serve --target=all --dev`, which prints the URL and a token.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
mkdir -p .data
devkey() { head -c 48 /dev/urandom | base64 | tr -d '=+/\n' | head -c 43; }
if [ ! -s .data/dev.env ]; then
  umask 077
  {
    echo "ALGA_AUTH_HS256_KEY=$(devkey)"
    echo "ALGA_SECRETS_KEK=$(head -c 32 /dev/urandom | base64)"
  } > .data/dev.env
fi
# The service-token key is a key of its own (never the user-token key); older dev.env files get one.
if ! grep -q '^ALGA_SERVICE_TOKEN_KEY=' .data/dev.env; then
  (umask 077; echo "ALGA_SERVICE_TOKEN_KEY=$(devkey)" >> .data/dev.env)
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
