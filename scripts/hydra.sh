#!/usr/bin/env bash
# scripts/hydra.sh — a private Ory Hydra (an OpenID provider) for Agora's tests: it issues JWT
# access tokens (RS256, keys in its JWKS) to client-credentials clients the tests create.
#
# Usage: scripts/hydra.sh start|stop|restart|status|issuer|admin|env
#
#   start    build Hydra on first use (Go module proxy, pinned in scripts/hydra/go.mod;
#            the binary is cached outside the repo), then start it with an in-memory store
#            (DSN=memory: clients and keys last until it stops) and JWT access tokens, and
#            wait until both its ports answer. A no-op when already running.
#   stop     stop it (SIGTERM; SIGKILL after 20 s) and wait for the exit.
#   status   exit 0 when running and ready, 3 otherwise.
#   issuer   print the issuer URL (the public port): http://127.0.0.1:54444
#   admin    print the admin API URL: http://127.0.0.1:54445
#   env      print the variables the tests read (AGORA_TEST_OIDC_ISSUER, AGORA_TEST_OIDC_ADMIN).
#
# Environment: AGORA_STATE_DIR (state in hydra-test/ there: config, log, pid file),
# AGORA_CACHE_DIR (binary in hydra-<pin>/), AGORA_HYDRA_PUBLIC_PORT (54444),
# AGORA_HYDRA_ADMIN_PORT (54445), AGORA_HYDRA_START_TIMEOUT (seconds, 60).
#
# Needs Go (installed from Debian when missing; a newer toolchain comes from the Go module
# proxy when go.mod asks for it) and a C compiler (the in-memory store is SQLite, cgo).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

HOST=127.0.0.1
PUBLIC_PORT="${AGORA_HYDRA_PUBLIC_PORT:-54444}"
ADMIN_PORT="${AGORA_HYDRA_ADMIN_PORT:-54445}"
ISSUER="http://$HOST:$PUBLIC_PORT"
ADMIN="http://$HOST:$ADMIN_PORT"
START_TIMEOUT="${AGORA_HYDRA_START_TIMEOUT:-60}"

MODULE_DIR="$REPO_ROOT/scripts/hydra"
STATE="$AGORA_STATE_DIR/hydra-test"
CONFIG="$STATE/hydra.yml"
LOG_FILE="$STATE/hydra.log"
PID_FILE="$STATE/hydra.pid"
LOCK="$AGORA_STATE_DIR/locks/hydra.lock"

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
  exit 2
}

# The cached binary, keyed by the pin (go.mod and go.sum), so a new pin builds anew.
binary_path() {
  local pin
  pin="$(cat "$MODULE_DIR/go.mod" "$MODULE_DIR/go.sum" | sha256sum | cut -c1-12)"
  printf '%s/hydra-%s/hydra\n' "$AGORA_CACHE_DIR" "$pin"
}

ensure_binary() {
  local binary
  binary="$(binary_path)"
  [[ -x "$binary" ]] && return 0
  command -v go >/dev/null 2>&1 || apt_install golang-go ca-certificates
  command -v cc >/dev/null 2>&1 || apt_install build-essential
  info "building Ory Hydra (pinned in scripts/hydra/go.mod) into $binary; the first build takes minutes"
  local started=$SECONDS dir
  dir="$(dirname "$binary")"
  mkdir -p "$dir"
  # The sqlite tag gives the in-memory store (DSN=memory), as in Hydra's own release builds.
  (cd "$MODULE_DIR" && CGO_ENABLED=1 go build -tags sqlite,sqlite_omit_load_extension \
    -o "$binary.tmp" github.com/ory/hydra/v2) >&2 || die "building Hydra failed"
  mv "$binary.tmp" "$binary"
  info "built Hydra in $((SECONDS - started)) s"
}

write_config() {
  mkdir -p "$STATE"
  local system_secret
  system_secret="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
  (
    umask 077
    cat >"$CONFIG" <<EOF
# Managed by scripts/hydra.sh: rewritten on every start; edit the script, not this file.
dsn: memory
serve:
  public: { host: $HOST, port: $PUBLIC_PORT }
  admin: { host: $HOST, port: $ADMIN_PORT }
urls:
  self:
    issuer: $ISSUER
strategies:
  access_token: jwt
  scope: exact
secrets:
  system: ["$system_secret"]
log:
  level: warn
  leak_sensitive_values: false
EOF
  )
}

hydra_pid() {
  local pid binary
  pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  binary="$(binary_path)"
  if [[ -r "/proc/$pid/cmdline" ]]; then
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$binary serve all" || return 1
  fi
  printf '%s\n' "$pid"
}

ready() {
  curl -fsS -o /dev/null "$ADMIN/health/ready" 2>/dev/null &&
    curl -fsS -o /dev/null "$ISSUER/.well-known/openid-configuration" 2>/dev/null
}

do_start() {
  command -v curl >/dev/null 2>&1 || apt_install curl ca-certificates
  ensure_binary
  if hydra_pid >/dev/null; then
    wait_until "$START_TIMEOUT" "Hydra to be ready" ready || die "Hydra runs but is not ready; see $LOG_FILE"
    info "already running (pid $(hydra_pid)): issuer $ISSUER, admin $ADMIN"
    return 0
  fi
  rm -f "$PID_FILE"
  if port_open "$HOST" "$PUBLIC_PORT" || port_open "$HOST" "$ADMIN_PORT"; then
    die "port $PUBLIC_PORT or $ADMIN_PORT on $HOST is taken by another process; set AGORA_HYDRA_PUBLIC_PORT/AGORA_HYDRA_ADMIN_PORT or free it"
  fi
  write_config
  info "starting Hydra: issuer $ISSUER, admin $ADMIN; log in $LOG_FILE"
  local binary started=$SECONDS
  binary="$(binary_path)"
  # --dev: the issuer is plain http on loopback (tests only).
  # shellcheck disable=SC2016 # $$ is for the inner bash
  (
    close_extra_fds
    cd "$STATE"
    exec setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
      "$binary" serve all --dev --sqa-opt-out --config "$CONFIG" >>"$LOG_FILE" 2>&1 </dev/null
  ) &
  local deadline=$((SECONDS + START_TIMEOUT))
  until ready; do
    if ! hydra_pid >/dev/null && ((SECONDS - started > 2)); then
      tail -n 40 "$LOG_FILE" >&2 || true
      die "Hydra exited during startup; see $LOG_FILE"
    fi
    ((SECONDS < deadline)) || die "Hydra was not ready within $START_TIMEOUT s; see $LOG_FILE"
    sleep 0.25
  done
  info "Hydra ready in $((SECONDS - started)) s (pid $(hydra_pid))"
}

do_stop() {
  local pid
  pid="$(hydra_pid)" || {
    info "not running"
    rm -f "$PID_FILE"
    return 0
  }
  info "stopping Hydra (pid $pid)"
  terminate Hydra "$pid"
  rm -f "$PID_FILE"
}

case "${1:-}" in
  start) with_lock "$LOCK" do_start ;;
  stop) with_lock "$LOCK" do_stop ;;
  restart)
    with_lock "$LOCK" do_stop
    with_lock "$LOCK" do_start
    ;;
  status)
    if hydra_pid >/dev/null && ready; then
      info "running (pid $(hydra_pid)): issuer $ISSUER, admin $ADMIN"
    else
      info "not running"
      exit 3
    fi
    ;;
  issuer) printf '%s\n' "$ISSUER" ;;
  admin) printf '%s\n' "$ADMIN" ;;
  env)
    echo "export AGORA_TEST_OIDC_ISSUER=$ISSUER"
    echo "export AGORA_TEST_OIDC_ADMIN=$ADMIN"
    ;;
  *) usage ;;
esac
