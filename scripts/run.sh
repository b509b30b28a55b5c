#!/usr/bin/env bash
# scripts/run.sh — run Agora locally: PostgreSQL (scripts/postgres.sh) and the command API.
#
# Usage: scripts/run.sh [extra command-api arguments]
#
# 1. Starts the local PostgreSQL (idempotent; installs it from Debian when missing, as does
#    a C toolchain) and creates the database "agora" if missing.
# 2. Builds (release) and prints a ready-to-use admin token, signed with AGORA_JWT_SECRET.
# 3. Runs `cargo run --release -p command-api` in the foreground (Ctrl-C stops it) with
#    DATABASE_URL=postgres://postgres@127.0.0.1:55432/agora, COMMAND_API_ADDR (default
#    127.0.0.1:8080) and AGORA_JWT_SECRET (default: a random secret made once and kept in
#    .agora/jwt-secret; the command API refuses the development secret, which only
#    `agora dev` accepts). It prints `export AGORA_JWT_SECRET=...` so that `mint-token` and
#    `agora token` sign with it. The command API applies the migrations at start.
#
# Environment: DATABASE_URL, COMMAND_API_ADDR, AGORA_JWT_SECRET and RUST_LOG override the
# defaults; CARGO_TARGET_DIR is honoured; see scripts/postgres.sh for the server.
# This is the interim run command; `agora dev` will replace it with the whole stack.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$REPO_ROOT"

if [[ -d "${HOME:-/root}/.cargo/bin" && ":$PATH:" != *":${HOME:-/root}/.cargo/bin:"* ]]; then
  PATH="${HOME:-/root}/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust with rustup (https://rustup.rs)"
# librdkafka (through the event store's relay) is built from source: it needs a C toolchain.
if ! command -v cc >/dev/null 2>&1 || ! command -v make >/dev/null 2>&1; then
  apt_install build-essential pkg-config
fi

scripts/postgres.sh start >&2
admin_url="$(scripts/postgres.sh url)"
if [[ -z "${DATABASE_URL:-}" ]]; then
  DATABASE_URL="${admin_url%/*}/agora"
  exists="$(scripts/postgres.sh psql -At -c "SELECT 1 FROM pg_database WHERE datname = 'agora'")"
  if [[ "$exists" != 1 ]]; then
    info "creating database agora"
    scripts/postgres.sh psql -q -c "CREATE DATABASE agora" >/dev/null
  fi
fi
export DATABASE_URL
export COMMAND_API_ADDR="${COMMAND_API_ADDR:-127.0.0.1:8080}"
if [[ -z "${AGORA_JWT_SECRET:-}" ]]; then
  secret_file="$REPO_ROOT/.agora/jwt-secret"
  if [[ ! -s "$secret_file" ]]; then
    mkdir -p "$(dirname "$secret_file")"
    (umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$secret_file")
  fi
  AGORA_JWT_SECRET="$(cat "$secret_file")"
fi
export AGORA_JWT_SECRET
export RUST_LOG="${RUST_LOG:-info}"

info "building (release)"
# Two invocations, so that command-api is built with exactly the features `cargo run` below
# selects (building it together with bench would unify features and build it twice).
cargo build --release --quiet -p command-api
cargo build --release --quiet -p bench --bin mint-token
target_dir="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
token="$("$target_dir/release/mint-token" --sub admin --role admin --ttl 86400)"

cat >&2 <<EOF

  DATABASE_URL=$DATABASE_URL
  COMMAND_API_ADDR=$COMMAND_API_ADDR
  An admin token (24 h; mint others with: cargo run -q --release -p bench --bin mint-token -- --sub alice --role customer):

export AGORA_JWT_SECRET=$AGORA_JWT_SECRET
export TOKEN=$token

EOF

exec cargo run --release --quiet -p command-api -- "$@"
