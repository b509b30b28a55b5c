#!/usr/bin/env bash
# scripts/faults.sh — real faults for Agora's fault tests (e2e/tests/faults_*.rs) and by hand.
#
# Usage: scripts/faults.sh pg-start     start (initdb once) a private PostgreSQL cluster for
#                                       crashing, pg-faults on 127.0.0.1:55434; prints its URL
#        scripts/faults.sh pg-kill      SIGKILL that cluster's postmaster, then wait until its
#                                       orphaned backends are gone (so it can start again)
#        scripts/faults.sh pg-stop      stop that cluster (fast shutdown)
#        scripts/faults.sh kafka-kill   SIGKILL the test Kafka broker of scripts/kafka.sh and
#                                       wait until it is gone (`scripts/kafka.sh start` brings
#                                       it back: KRaft recovers its log)
#        scripts/faults.sh toxiproxy    build (once, Go module proxy, cached) and start
#                                       Shopify's toxiproxy, a TCP fault proxy; prints its API URL
#
# The crash cluster is never the shared test cluster of scripts/postgres.sh: killing that
# one would fail every other test. Environment: AGORA_FAULTS_PG_PORT (55434),
# AGORA_TOXIPROXY_PORT (API, 58474), AGORA_TOXIPROXY_VERSION (v2.12.0), AGORA_STATE_DIR,
# AGORA_CACHE_DIR.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

FAULTS_PG_NAME=pg-faults
FAULTS_PG_PORT="${AGORA_FAULTS_PG_PORT:-55434}"
TOXIPROXY_PORT="${AGORA_TOXIPROXY_PORT:-58474}"
TOXIPROXY_VERSION="${AGORA_TOXIPROXY_VERSION:-v2.12.0}"
GO_CACHE="$AGORA_CACHE_DIR/go"
TOXIPROXY_BIN="$GO_CACHE/bin/toxiproxy-server-$TOXIPROXY_VERSION"
TOXIPROXY_STATE="$AGORA_STATE_DIR/toxiproxy"

postgres_script() {
  AGORA_PG_NAME="$FAULTS_PG_NAME" AGORA_PG_PORT="$FAULTS_PG_PORT" "$REPO_ROOT/scripts/postgres.sh" "$@"
}

# wait_gone SECONDS PID... — 0 once none of the processes is alive.
wait_gone() {
  local deadline=$((SECONDS + $1)) pid alive
  shift
  while ((SECONDS < deadline)); do
    alive=0
    for pid in "$@"; do
      kill -0 "$pid" 2>/dev/null && alive=1
    done
    ((alive == 0)) && return 0
    sleep 0.1
  done
  return 1
}

pg_start() {
  # After a SIGKILL the old backends may take a moment to notice; the start then fails on
  # "shared memory block is still in use", so try again for a while.
  local deadline=$((SECONDS + 60))
  until postgres_script start >&2; do
    ((SECONDS < deadline)) || die "the crash cluster did not start; see $AGORA_STATE_DIR/$FAULTS_PG_NAME/postgres.log"
    sleep 0.5
  done
  postgres_script url
}

pg_kill() {
  local pid_file="$AGORA_STATE_DIR/$FAULTS_PG_NAME/data/postmaster.pid" pid children
  pid="$(head -n 1 "$pid_file" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || die "the crash cluster is not running"
  mapfile -t children < <(pgrep -P "$pid" || true)
  kill -KILL "$pid"
  wait_gone 30 "$pid" "${children[@]}" || die "PostgreSQL's processes outlived the postmaster by 30 s"
  info "killed the postmaster $pid (and its ${#children[@]} processes are gone)"
}

kafka_kill() {
  local pid_file="$AGORA_STATE_DIR/kafka-test/kafka.pid" pid
  pid="$(cat "$pid_file" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || die "the test Kafka broker is not running"
  kill -KILL "$pid"
  wait_gone 30 "$pid" || die "the Kafka broker $pid did not die"
  info "killed the Kafka broker $pid"
}

toxiproxy_bin() {
  if [[ -x "$TOXIPROXY_BIN" ]]; then
    return 0
  fi
  local go_bin started=$SECONDS
  go_bin="$(command -v go || true)"
  [[ -z "$go_bin" && -x /usr/local/go/bin/go ]] && go_bin=/usr/local/go/bin/go
  [[ -n "$go_bin" ]] || die "toxiproxy is built with Go: install Go, then rerun"
  mkdir -p "$GO_CACHE/bin" "$GO_CACHE/toxiproxy-build"
  info "building toxiproxy $TOXIPROXY_VERSION (once; cached in $GO_CACHE/bin)"
  GOPATH="$GO_CACHE" GOFLAGS=-modcacherw GOBIN="$GO_CACHE/toxiproxy-build" \
    "$go_bin" install "github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION" >&2
  mv "$GO_CACHE/toxiproxy-build/server" "$TOXIPROXY_BIN"
  info "toxiproxy built in $((SECONDS - started)) s"
}

toxiproxy_up() {
  curl -fsS "http://127.0.0.1:$TOXIPROXY_PORT/version" >/dev/null 2>&1
}

toxiproxy() {
  toxiproxy_bin
  mkdir -p "$TOXIPROXY_STATE"
  if ! toxiproxy_up; then
    if port_open 127.0.0.1 "$TOXIPROXY_PORT"; then
      die "port 127.0.0.1:$TOXIPROXY_PORT is taken by another process; set AGORA_TOXIPROXY_PORT"
    fi
    info "starting toxiproxy on 127.0.0.1:$TOXIPROXY_PORT; log in $TOXIPROXY_STATE/toxiproxy.log"
    (close_extra_fds && nohup "$TOXIPROXY_BIN" -host 127.0.0.1 -port "$TOXIPROXY_PORT" \
      >"$TOXIPROXY_STATE/toxiproxy.log" 2>&1 &)
    wait_until 30 "toxiproxy's API on 127.0.0.1:$TOXIPROXY_PORT" toxiproxy_up ||
      die "toxiproxy did not start; see $TOXIPROXY_STATE/toxiproxy.log"
  fi
  printf 'http://127.0.0.1:%s\n' "$TOXIPROXY_PORT"
}

case "${1:-}" in
  pg-start) pg_start ;;
  pg-kill) pg_kill ;;
  pg-stop) postgres_script stop ;;
  kafka-kill) kafka_kill ;;
  toxiproxy) toxiproxy ;;
  *) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
