#!/usr/bin/env bash
# scripts/postgres.sh — a private PostgreSQL cluster for Agora's tests and development.
#
# Usage: scripts/postgres.sh start|stop|restart|status|url|psql [ARGS...]|reset
#
#   start    install PostgreSQL (apt) if missing, initdb once, start, wait for pg_isready.
#            A no-op when already running.
#   stop     fast shutdown; a no-op when not running.
#   status   exit 0 when running and accepting connections, 3 otherwise.
#   url      print the connection URL (postgres://postgres@127.0.0.1:55432/postgres).
#   psql     run psql against the cluster.
#   reset    stop and delete the cluster's data (the next start re-creates it).
#   sweep    drop the tests' leftover databases (agora_test_*) that no session is using.
#
# Environment: AGORA_STATE_DIR (default ~/.cache/agora; the cluster lives in pg-test/ there),
# AGORA_PG_PORT (default 55432), AGORA_PG_BIN (a PostgreSQL bin dir, default: newest found
# under /usr/lib/postgresql/*/bin), AGORA_PG_NAME (the cluster's directory, default pg-test:
# another name makes another cluster), AGORA_PG_TLS_DIR (a directory of scripts/tls.sh: the
# cluster then accepts TLS connections only, with that server certificate).
#
# Listens on 127.0.0.1 only, trust auth, superuser "postgres", fsync on (benchmarks compare
# against it), max_connections=300, shared_buffers=256MB. initdb/postgres refuse to run as
# root, so when root they run as the "postgres" system user (created if absent).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

PG_HOST=127.0.0.1
PG_PORT="${AGORA_PG_PORT:-55432}"
PG_DIR="$AGORA_STATE_DIR/${AGORA_PG_NAME:-pg-test}"
PG_TLS_DIR="${AGORA_PG_TLS_DIR:-}"
PG_DATA="$PG_DIR/data"
PG_LOG="$PG_DIR/postgres.log"
PG_URL="postgres://postgres@$PG_HOST:$PG_PORT/postgres"
PG_LOCK="$AGORA_STATE_DIR/locks/postgres-${AGORA_PG_NAME:-pg-test}.lock"
PG_OS_USER=postgres
PG_BIN=""

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
  exit 2
}

# The bin dir to use: $AGORA_PG_BIN, else the version the data dir was created with, else the
# newest installed.
find_pg_bin() {
  if [[ -n "${AGORA_PG_BIN:-}" ]]; then
    [[ -x "$AGORA_PG_BIN/postgres" ]] || die "AGORA_PG_BIN=$AGORA_PG_BIN has no postgres binary"
    printf '%s\n' "$AGORA_PG_BIN"
    return 0
  fi
  if [[ -f "$PG_DATA/PG_VERSION" ]]; then
    local wanted
    wanted="/usr/lib/postgresql/$(cat "$PG_DATA/PG_VERSION")/bin"
    if [[ -x "$wanted/postgres" ]]; then
      printf '%s\n' "$wanted"
      return 0
    fi
  fi
  local dir
  dir="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -type d -name bin 2>/dev/null | sort -V | tail -n 1)"
  if [[ -n "$dir" && -x "$dir/initdb" && -x "$dir/postgres" ]]; then
    printf '%s\n' "$dir"
  fi
}

ensure_postgres_installed() {
  PG_BIN="$(find_pg_bin)"
  if [[ -z "$PG_BIN" ]]; then
    info "PostgreSQL not found under /usr/lib/postgresql/*/bin: installing it from Debian"
    # Don't let the package create and start its own "main" cluster on port 5432.
    if is_root; then
      mkdir -p /etc/postgresql-common/createcluster.d
      printf 'create_main_cluster = false\n' >/etc/postgresql-common/createcluster.d/agora.conf
    fi
    apt_install postgresql
    PG_BIN="$(find_pg_bin)"
    [[ -n "$PG_BIN" ]] || die "PostgreSQL still not found after apt-get install postgresql"
  fi
  if [[ -f "$PG_DATA/PG_VERSION" && "$PG_BIN" != *"/$(cat "$PG_DATA/PG_VERSION")/bin" && -z "${AGORA_PG_BIN:-}" ]]; then
    die "$PG_DATA was created by PostgreSQL $(cat "$PG_DATA/PG_VERSION"), which is not installed; run '$0 reset' to re-create it"
  fi
}

ensure_os_user() {
  is_root || return 0
  if ! id -u "$PG_OS_USER" >/dev/null 2>&1; then
    info "creating system user $PG_OS_USER"
    useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash "$PG_OS_USER"
  fi
}

# Run a PostgreSQL binary as the cluster's owner (the postgres user when we are root).
as_owner() {
  if is_root; then
    (cd / && runuser -u "$PG_OS_USER" -- "$@")
  else
    "$@"
  fi
}

# When root, the postgres user must be able to traverse every parent of $PG_DIR (e.g. /root is
# 0700). Grant search (x) permission only, to that user (ACL) where possible.
grant_traverse() {
  is_root || return 0
  local path="" part parts
  IFS='/' read -r -a parts <<<"${PG_DIR#/}"
  for part in "${parts[@]:0:${#parts[@]}-1}"; do
    path="$path/$part"
    if ! runuser -u "$PG_OS_USER" -- test -x "$path" 2>/dev/null; then
      if ! command -v setfacl >/dev/null 2>&1; then
        (apt_install acl) || true
      fi
      if command -v setfacl >/dev/null 2>&1 && setfacl -m "u:$PG_OS_USER:--x" "$path"; then
        info "granted $PG_OS_USER search permission on $path (ACL)"
      else
        chmod o+x "$path"
        info "granted others search permission on $path (chmod o+x)"
      fi
    fi
  done
}

prepare_dirs() {
  ensure_os_user
  mkdir -p "$PG_DIR"
  if is_root; then
    chown "$PG_OS_USER:" "$PG_DIR"
    [[ -e "$PG_LOG" ]] && chown "$PG_OS_USER:" "$PG_LOG"
    grant_traverse
  fi
  chmod 0750 "$PG_DIR"
}

init_cluster() {
  [[ -f "$PG_DATA/PG_VERSION" ]] && return 0
  info "initdb $PG_DATA ($PG_BIN)"
  local common=(-D "$PG_DATA" -U postgres --auth=trust --encoding=UTF8)
  if ! as_owner "$PG_BIN/initdb" "${common[@]}" --locale=C.UTF-8 >"$PG_DIR/initdb.log" 2>&1; then
    warn "initdb with locale C.UTF-8 failed (see $PG_DIR/initdb.log); retrying with --no-locale"
    rm -rf "$PG_DATA"
    as_owner "$PG_BIN/initdb" "${common[@]}" --no-locale >"$PG_DIR/initdb.log" 2>&1 ||
      die "initdb failed; see $PG_DIR/initdb.log"
  fi
  # Our settings live in agora.conf (rewritten on every start), included last.
  printf "\n# Agora test settings (scripts/postgres.sh)\ninclude_if_exists = 'agora.conf'\n" |
    as_owner tee -a "$PG_DATA/postgresql.conf" >/dev/null
}

write_config() {
  as_owner tee "$PG_DATA/agora.conf" >/dev/null <<EOF
# Managed by scripts/postgres.sh: rewritten on every start; edit the script, not this file.
listen_addresses = '$PG_HOST'
port = $PG_PORT
unix_socket_directories = ''
max_connections = 300
shared_buffers = 256MB
# Durability stays on: benchmarks compare against this cluster.
fsync = on
synchronous_commit = on
full_page_writes = on
# After an unclean stop, sync the file system once instead of fsyncing every file of
# every database one by one (minutes with many test databases).
recovery_init_sync_method = syncfs
timezone = 'UTC'
log_timezone = 'UTC'
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
EOF
  if [[ -n "$PG_TLS_DIR" ]]; then
    # TLS only: the server's certificate and key, copied where the server user owns them.
    local owner=()
    is_root && owner=(-o "$PG_OS_USER")
    install "${owner[@]}" -m 0644 "$PG_TLS_DIR/server.crt" "$PG_DIR/server.crt"
    install "${owner[@]}" -m 0600 "$PG_TLS_DIR/server.key" "$PG_DIR/server.key"
    as_owner tee -a "$PG_DATA/agora.conf" >/dev/null <<EOF
ssl = on
ssl_cert_file = '$PG_DIR/server.crt'
ssl_key_file = '$PG_DIR/server.key'
EOF
    as_owner tee "$PG_DATA/pg_hba.conf" >/dev/null <<'EOF'
# Managed by scripts/postgres.sh: local TCP over TLS only, trust.
# TYPE     DATABASE  USER  ADDRESS        METHOD
hostssl    all       all   127.0.0.1/32   trust
hostnossl  all       all   127.0.0.1/32   reject
EOF
    return 0
  fi
  as_owner tee "$PG_DATA/pg_hba.conf" >/dev/null <<'EOF'
# Managed by scripts/postgres.sh: local TCP only, trust.
# TYPE  DATABASE     USER  ADDRESS        METHOD
host    all          all   127.0.0.1/32   trust
host    all          all   ::1/128        trust
host    replication  all   127.0.0.1/32   trust
EOF
}

# Drops leftover test databases: a test that ended abnormally leaves its database behind,
# and thousands of them make a crash recovery and every CREATE DATABASE slow. A database
# in use is skipped (DROP DATABASE refuses it).
do_sweep() {
  local dropped=0 name
  while read -r name; do
    [[ -n "$name" ]] || continue
    if "$PG_BIN/psql" -q -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres \
      -c "DROP DATABASE IF EXISTS \"$name\"" >/dev/null 2>&1; then
      dropped=$((dropped + 1))
    fi
  done < <("$PG_BIN/psql" -At -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres \
    -c "SELECT datname FROM pg_database WHERE datname LIKE 'agora\_test\_%'
          AND datname NOT IN (SELECT datname FROM pg_stat_activity WHERE datname IS NOT NULL)")
  info "dropped $dropped leftover test databases"
}

# 0 when the postmaster of $PG_DATA is alive.
server_running() {
  [[ -f "$PG_DATA/PG_VERSION" ]] || return 1
  as_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1
}

accepting() {
  "$PG_BIN/pg_isready" -q -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres
}

do_start() {
  ensure_postgres_installed
  prepare_dirs
  init_cluster
  if server_running; then
    wait_until 60 "PostgreSQL on $PG_HOST:$PG_PORT to accept connections" accepting ||
      die "PostgreSQL ($PG_DATA) runs but does not accept connections on $PG_HOST:$PG_PORT; see $PG_LOG, or '$0 stop' then '$0 start'"
    info "already running: $PG_URL"
    return 0
  fi
  if port_open "$PG_HOST" "$PG_PORT"; then
    die "port $PG_HOST:$PG_PORT is taken by another process; set AGORA_PG_PORT or free it"
  fi
  write_config
  info "starting PostgreSQL ($PG_BIN) on $PG_HOST:$PG_PORT, data in $PG_DATA, log in $PG_LOG"
  if ! (close_extra_fds && as_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 120 start >/dev/null); then
    tail -n 30 "$PG_LOG" >&2 || true
    die "PostgreSQL failed to start; see $PG_LOG"
  fi
  wait_until 60 "PostgreSQL on $PG_HOST:$PG_PORT to accept connections" accepting ||
    die "PostgreSQL started but does not accept connections; see $PG_LOG"
  info "running: $PG_URL"
}

do_stop() {
  PG_BIN="$(find_pg_bin)"
  if [[ -z "$PG_BIN" ]] || ! server_running; then
    info "not running"
    return 0
  fi
  info "stopping PostgreSQL ($PG_DATA)"
  as_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 120 stop >/dev/null ||
    die "PostgreSQL did not stop; see $PG_LOG"
  info "stopped"
}

do_status() {
  PG_BIN="$(find_pg_bin)"
  if [[ -n "$PG_BIN" ]] && server_running && accepting; then
    echo "postgres: running, $PG_URL (data $PG_DATA, log $PG_LOG)"
    return 0
  fi
  echo "postgres: stopped (data $PG_DATA)"
  return 3
}

do_reset() {
  do_stop
  info "deleting $PG_DIR"
  rm -rf "$PG_DIR"
}

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
  start) with_lock "$PG_LOCK" do_start ;;
  stop) with_lock "$PG_LOCK" do_stop ;;
  restart) with_lock "$PG_LOCK" do_stop && with_lock "$PG_LOCK" do_start ;;
  status) do_status ;;
  url) echo "$PG_URL" ;;
  psql)
    PG_BIN="$(find_pg_bin)"
    exec "${PG_BIN:+$PG_BIN/}psql" "$PG_URL" "$@"
    ;;
  reset) with_lock "$PG_LOCK" do_reset ;;
  sweep)
    PG_BIN="$(find_pg_bin)"
    do_sweep
    ;;
  *) usage ;;
esac
