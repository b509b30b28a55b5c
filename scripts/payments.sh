#!/usr/bin/env bash
# scripts/payments.sh — a private payment provider for Agora's tests: localstripe (PyPI,
# pinned), a stateful Stripe-compatible server (PaymentIntents, refunds, events, signed
# webhooks) on a fixed loopback port. Nothing is mocked in the tests; this is the provider.
#
# Usage: scripts/payments.sh start|stop|restart|status|url|env
#
#   start    install localstripe on first use (a virtualenv in $AGORA_CACHE_DIR, reinstalled
#            only when the pin changes), then start it from scratch (an empty store: no old
#            state is loaded) and wait until an authenticated GET answers. A no-op when
#            already running and answering.
#   stop     stop it (SIGTERM; SIGKILL after 20 s) and wait for the exit. Its store (and
#            every registered webhook) is in memory only: it is gone afterwards.
#   status   exit 0 when running and answering, 3 otherwise.
#   url      print the API base: http://127.0.0.1:58420
#   env      print the variable the tests read (AGORA_TEST_STRIPE_API_BASE).
#
# Any key of the form sk_test_... authenticates (HTTP basic user or bearer token); webhooks
# are registered at runtime with POST /_config/webhooks/{id} (form fields url, secret,
# events[]) and are delivered once, about a second after the event, signed with
# `Stripe-Signature: t=...,v1=...`.
#
# localstripe's own `localstripe --port N --from-scratch` listens on [::] (every interface)
# and pickles its whole store to the fixed file /tmp/localstripe.pickle (one for every
# instance on the machine) on every change: a create+confirm took 20 ms after 250 intents
# and 350 ms after 1,500, against 4 and 19 ms without the file. This script runs the same
# server (localstripe.server.app) through a few lines of Python instead: on 127.0.0.1 only
# (IPv4, works also where IPv6 is off), from scratch (no state file is loaded) and with
# the store in memory only (none is written): like Hydra's, it lasts until `stop`.
#
# Environment: AGORA_STATE_DIR (state in localstripe-test/ there: log, pid file, launcher),
# AGORA_CACHE_DIR (virtualenv in localstripe-<version>/), AGORA_STRIPE_PORT (58420),
# AGORA_STRIPE_START_TIMEOUT (seconds, 60).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

LOCALSTRIPE_VERSION=1.15.10
HOST=127.0.0.1
PORT="${AGORA_STRIPE_PORT:-58420}"
URL="http://$HOST:$PORT"
START_TIMEOUT="${AGORA_STRIPE_START_TIMEOUT:-60}"
# Any sk_test_ key is accepted; this one only marks the script's own probes.
PROBE_KEY=sk_test_agora

VENV="$AGORA_CACHE_DIR/localstripe-$LOCALSTRIPE_VERSION"
VENV_STAMP="$VENV/.agora-installed"
STATE="$AGORA_STATE_DIR/localstripe-test"
LOG_FILE="$STATE/localstripe.log"
PID_FILE="$STATE/localstripe.pid"
LAUNCHER_FILE="$STATE/localstripe-agora.py"
LOCK="$AGORA_STATE_DIR/locks/localstripe.lock"

# What `localstripe --from-scratch` does (localstripe/server.py, start()), except: bound to
# 127.0.0.1 instead of [::], and the store is never written to /tmp/localstripe.pickle.
# Written to $LAUNCHER_FILE on every start; argv: port.
# shellcheck disable=SC2016 # Python, not shell
LAUNCHER='
import logging, socket, sys
from aiohttp import web
from localstripe import resources, server

# From scratch, in memory only: nothing loaded, nothing written.
assert callable(resources.Store.try_load_from_disk) and callable(resources.Store.dump_to_disk)
resources.Store.try_load_from_disk = lambda self: None
resources.Store.dump_to_disk = lambda self: None

sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", int(sys.argv[1])))

logger = logging.getLogger("aiohttp.access")
logger.setLevel(logging.DEBUG)
logger.addHandler(logging.StreamHandler())
web.run_app(server.app, sock=sock, access_log=logger, print=lambda *a: print(*a, flush=True))
'

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
  exit 2
}

# The virtualenv, keyed by the pin: a new pin installs anew, a complete install is reused.
ensure_installed() {
  [[ -x "$VENV/bin/python" && "$(cat "$VENV_STAMP" 2>/dev/null)" == "$LOCALSTRIPE_VERSION" ]] && return 0
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
    apt_install python3-venv
  fi
  info "installing localstripe $LOCALSTRIPE_VERSION into $VENV"
  local started=$SECONDS
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "localstripe==$LOCALSTRIPE_VERSION" >&2 ||
    die "installing localstripe $LOCALSTRIPE_VERSION from PyPI failed"
  "$VENV/bin/python" -c 'import localstripe.server' ||
    die "localstripe $LOCALSTRIPE_VERSION was installed into $VENV but does not import"
  printf '%s\n' "$LOCALSTRIPE_VERSION" >"$VENV_STAMP"
  info "installed localstripe in $((SECONDS - started)) s"
}

localstripe_pid() {
  local pid
  pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r "/proc/$pid/cmdline" ]]; then
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$VENV/bin/python -u $LAUNCHER_FILE" || return 1
  fi
  printf '%s\n' "$pid"
}

# An authenticated GET without side effects (GET /v1/balance would store a Balance and a
# balance.available event on its first call, which then shows in GET /v1/events).
ready() {
  curl -fsS -o /dev/null -u "$PROBE_KEY:" "$URL/v1/events?limit=1" 2>/dev/null
}

do_start() {
  command -v curl >/dev/null 2>&1 || apt_install curl ca-certificates
  ensure_installed
  if localstripe_pid >/dev/null; then
    wait_until "$START_TIMEOUT" "localstripe to answer" ready ||
      die "localstripe runs but does not answer; see $LOG_FILE"
    info "already running (pid $(localstripe_pid)): $URL"
    return 0
  fi
  rm -f "$PID_FILE"
  if port_open "$HOST" "$PORT"; then
    die "port $PORT on $HOST is taken by another process; set AGORA_STRIPE_PORT or free it"
  fi
  mkdir -p "$STATE"
  printf '%s' "$LAUNCHER" >"$LAUNCHER_FILE"
  info "starting localstripe $LOCALSTRIPE_VERSION on $URL; log in $LOG_FILE"
  local started=$SECONDS
  # shellcheck disable=SC2016 # $$ is for the inner bash
  (
    close_extra_fds
    cd "$STATE"
    exec setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
      "$VENV/bin/python" -u "$LAUNCHER_FILE" "$PORT" >>"$LOG_FILE" 2>&1 </dev/null
  ) &
  local deadline=$((SECONDS + START_TIMEOUT))
  until ready; do
    if ! localstripe_pid >/dev/null && ((SECONDS - started > 2)); then
      tail -n 40 "$LOG_FILE" >&2 || true
      die "localstripe exited during startup; see $LOG_FILE"
    fi
    ((SECONDS < deadline)) || die "localstripe did not answer within $START_TIMEOUT s; see $LOG_FILE"
    sleep 0.25
  done
  info "localstripe ready in $((SECONDS - started)) s (pid $(localstripe_pid))"
}

do_stop() {
  local pid
  pid="$(localstripe_pid)" || {
    info "not running"
    rm -f "$PID_FILE"
    return 0
  }
  info "stopping localstripe (pid $pid)"
  terminate localstripe "$pid"
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
    if localstripe_pid >/dev/null && ready; then
      info "running (pid $(localstripe_pid)): $URL"
    else
      info "not running"
      exit 3
    fi
    ;;
  url) printf '%s\n' "$URL" ;;
  env) echo "export AGORA_TEST_STRIPE_API_BASE=$URL" ;;
  *) usage ;;
esac
