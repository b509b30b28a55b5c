#!/usr/bin/env bash
# scripts/tools.sh — installs the tools the dashboard and operator tests drive, idempotently.
#
# Usage: scripts/tools.sh browser     Debian's chromium + chromium-driver (apt), for
#                                     e2e/tests/dashboard_browser.rs; prints chromedriver's path
#        scripts/tools.sh promtool    Prometheus's promtool, for e2e/tests/operators.rs; prints
#                                     its path
#        scripts/tools.sh smtp        aiosmtpd (PyPI, pinned) in a virtualenv, the SMTP server
#                                     the email tests start; prints that virtualenv's python
#        scripts/tools.sh all         all three
#
# promtool: the one on PATH when there is one; else Debian's `prometheus` package (apt,
# Prometheus 2.42, /usr/bin/promtool; a 19 MB download, 10 s to install). The package would
# also run a Prometheus server where the init system lets postinst start one: the script
# stops and disables it (the tests need only promtool). Only when apt cannot install it is
# promtool built from the Go module proxy (`go install`, Go >= 1.25 needed) into
# $AGORA_CACHE_DIR/go/bin (~/.cache/agora) and kept there: that cold build takes 5 to 20
# minutes (docs/TESTING.md), later runs take none.
# Environment: AGORA_PROMTOOL_VERSION (for that fallback: Go module version of
# github.com/prometheus/prometheus, default v0.316.0 = Prometheus 3.16.0), AGORA_CACHE_DIR.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

PROMTOOL_VERSION="${AGORA_PROMTOOL_VERSION:-v0.316.0}"
GO_CACHE="$AGORA_CACHE_DIR/go"
PROMTOOL="$GO_CACHE/bin/promtool"
PROMTOOL_STAMP="$GO_CACHE/bin/promtool.version"
AIOSMTPD_VERSION=1.4.6
SMTP_VENV="$AGORA_CACHE_DIR/aiosmtpd-$AIOSMTPD_VERSION"

browser() {
  if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    apt_install chromium chromium-driver
  fi
  command -v chromedriver
}

# as_root CMD... — run CMD as root (directly, or via sudo when available).
as_root() {
  if is_root; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    return 1
  fi
}

# apt_candidate PKG — the version apt would install (empty when apt knows none).
apt_candidate() {
  local version
  version="$(apt-cache policy "$1" 2>/dev/null | awk '$1 == "Candidate:" { print $2 }')"
  [[ "$version" == "(none)" ]] || printf '%s\n' "$version"
}

# stop_packaged_prometheus PIDS_BEFORE — stop and disable a Prometheus server the package's
# postinst started (a process named prometheus that was not running before the install).
stop_packaged_prometheus() {
  local before=" $1 " pid new_pids=()
  for pid in $(pgrep -x prometheus || true); do
    [[ "$before" == *" $pid "* ]] || new_pids+=("$pid")
  done
  if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
    # Enabled by postinst even when it did not start: keep it from starting at boot.
    as_root systemctl disable --now prometheus.service >/dev/null 2>&1 || true
  elif ((${#new_pids[@]})) && command -v update-rc.d >/dev/null 2>&1; then
    as_root update-rc.d prometheus disable >/dev/null 2>&1 || true
  fi
  ((${#new_pids[@]})) || return 0
  warn "installing Debian's prometheus started a Prometheus server (pid ${new_pids[*]}); stopping it"
  if command -v invoke-rc.d >/dev/null 2>&1; then
    as_root invoke-rc.d --force prometheus stop >/dev/null 2>&1 || true
  fi
  local deadline=$((SECONDS + 20)) alive signal=TERM
  while :; do
    alive=()
    for pid in "${new_pids[@]}"; do
      kill -0 "$pid" 2>/dev/null && alive+=("$pid")
    done
    ((${#alive[@]})) || return 0
    if [[ "$signal" == TERM ]]; then
      as_root kill -TERM "${alive[@]}" 2>/dev/null || true
      signal=KILL
    elif ((SECONDS >= deadline)); then
      warn "Prometheus (pid ${alive[*]}) did not stop within 20 s; killing it"
      as_root kill -KILL "${alive[@]}" 2>/dev/null || true
      return 0
    fi
    sleep 0.25
  done
}

# Debian's prometheus package (it ships /usr/bin/promtool); fails when apt cannot install it.
promtool_from_apt() {
  command -v apt-get >/dev/null 2>&1 || return 1
  if [[ -z "$(apt_candidate prometheus)" ]]; then
    # An empty package cache (a fresh image): fetch the lists once, then look again.
    info "apt-get update (apt knows no prometheus package yet)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || return 1
    _agora_apt_updated=1 # apt_install (lib/common.sh) need not update again
    [[ -n "$(apt_candidate prometheus)" ]] || {
      warn "apt has no prometheus package"
      return 1
    }
  fi
  local before started=$SECONDS
  before="$(pgrep -x prometheus | tr '\n' ' ' || true)"
  # In a subshell: apt_install exits (die) when it cannot install, and the caller falls back.
  (apt_install prometheus) || return 1
  stop_packaged_prometheus "$before"
  [[ -x /usr/bin/promtool ]] || {
    warn "Debian's prometheus installed no /usr/bin/promtool"
    return 1
  }
  info "installed Debian's prometheus $(apt_candidate prometheus) in $((SECONDS - started)) s"
}

# Built from the Go module proxy into the cache (the fallback; once per version).
promtool_from_go() {
  if [[ -x "$PROMTOOL" && "$(cat "$PROMTOOL_STAMP" 2>/dev/null)" == "$PROMTOOL_VERSION" ]]; then
    printf '%s\n' "$PROMTOOL"
    return 0
  fi
  local go_bin
  go_bin="$(command -v go || true)"
  [[ -z "$go_bin" && -x /usr/local/go/bin/go ]] && go_bin=/usr/local/go/bin/go
  [[ -n "$go_bin" ]] || die "promtool is built with Go (>= 1.25): install Go, then rerun"
  mkdir -p "$GO_CACHE"
  local started=$SECONDS
  info "building promtool $PROMTOOL_VERSION into $GO_CACHE/bin (once; cached afterwards)"
  GOPATH="$GO_CACHE" GOFLAGS=-modcacherw GOBIN="$GO_CACHE/bin" \
    "$go_bin" install "github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION" >&2
  printf '%s\n' "$PROMTOOL_VERSION" >"$PROMTOOL_STAMP"
  info "promtool built in $((SECONDS - started)) s"
  printf '%s\n' "$PROMTOOL"
}

# The first of: promtool on PATH, Debian's package, a Go build (see the top of this file).
promtool_install() {
  local found
  # type -P: a program on PATH (command -v would name the function promtool).
  if found="$(type -P promtool)"; then
    printf '%s\n' "$found"
    return 0
  fi
  if promtool_from_apt; then
    type -P promtool || printf '%s\n' /usr/bin/promtool
    return 0
  fi
  warn "Debian's prometheus package could not be installed; building promtool with Go instead"
  promtool_from_go
}

promtool() {
  local found
  if found="$(type -P promtool)"; then
    printf '%s\n' "$found"
    return 0
  fi
  # One install at a time (concurrent test runs would race for apt's lock).
  with_lock "$AGORA_STATE_DIR/locks/promtool.lock" promtool_install
}

# aiosmtpd in a virtualenv keyed by the pin (a complete install is reused).
smtp_install() {
  if [[ -x "$SMTP_VENV/bin/python" && "$(cat "$SMTP_VENV/.agora-installed" 2>/dev/null)" == "$AIOSMTPD_VERSION" ]]; then
    return 0
  fi
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
    apt_install python3-venv
  fi
  info "installing aiosmtpd $AIOSMTPD_VERSION into $SMTP_VENV"
  rm -rf "$SMTP_VENV"
  python3 -m venv "$SMTP_VENV"
  "$SMTP_VENV/bin/pip" install -q "aiosmtpd==$AIOSMTPD_VERSION" >&2 ||
    die "installing aiosmtpd $AIOSMTPD_VERSION from PyPI failed"
  "$SMTP_VENV/bin/python" -c 'import aiosmtpd.controller, aiosmtpd.handlers' ||
    die "aiosmtpd was installed into $SMTP_VENV but does not import"
  printf '%s\n' "$AIOSMTPD_VERSION" >"$SMTP_VENV/.agora-installed"
}

smtp() {
  with_lock "$AGORA_STATE_DIR/locks/aiosmtpd.lock" smtp_install
  printf '%s\n' "$SMTP_VENV/bin/python"
}

case "${1:-}" in
  browser) browser ;;
  promtool) promtool ;;
  smtp) smtp ;;
  all)
    browser
    promtool
    smtp
    ;;
  *) die "usage: $0 browser|promtool|smtp|all" ;;
esac
