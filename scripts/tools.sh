#!/usr/bin/env bash
# scripts/tools.sh — installs the tools the dashboard and operator tests drive, idempotently.
#
# Usage: scripts/tools.sh browser     Debian's chromium + chromium-driver (apt), for
#                                     e2e/tests/dashboard_browser.rs; prints chromedriver's path
#        scripts/tools.sh promtool    Prometheus's promtool, built from the Go module proxy into
#                                     $AGORA_CACHE_DIR/go/bin (~/.cache/agora); prints its path
#        scripts/tools.sh all         both
#
# promtool is built once (`go install`, Go >= 1.25 needed) and kept in the cache: a cold build
# takes about 20 minutes on a loaded 2-core machine (BENCHMARKS.md), later runs take none.
# Environment: AGORA_PROMTOOL_VERSION (Go module version of github.com/prometheus/prometheus,
# default v0.316.0 = Prometheus 3.16.0), AGORA_CACHE_DIR.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

PROMTOOL_VERSION="${AGORA_PROMTOOL_VERSION:-v0.316.0}"
GO_CACHE="$AGORA_CACHE_DIR/go"
PROMTOOL="$GO_CACHE/bin/promtool"
PROMTOOL_STAMP="$GO_CACHE/bin/promtool.version"

browser() {
  if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    apt_install chromium chromium-driver
  fi
  command -v chromedriver
}

promtool() {
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

case "${1:-}" in
  browser) browser ;;
  promtool) promtool ;;
  all)
    browser
    promtool
    ;;
  *) die "usage: $0 browser|promtool|all" ;;
esac
