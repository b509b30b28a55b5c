#!/usr/bin/env bash
# scripts/test.sh — THE test command of Agora (CI runs it through .ci/run).
#
# Usage: scripts/test.sh [extra `cargo test` arguments, e.g. -- --nocapture]
#
# 1. Installs what is missing: PostgreSQL (apt, via scripts/postgres.sh), Java/Maven and the
#    Kafka jars (via scripts/kafka.sh), a C toolchain (apt; rdkafka builds librdkafka), the
#    rustfmt/clippy components (rustup), and (scripts/tools.sh) Chromium + chromedriver (apt)
#    for the dashboard's browser test and promtool (Go module proxy, cached) for deploy/.
# 2. Starts PostgreSQL and Kafka (idempotent; they stay running afterwards) and exports
#    AGORA_TEST_DATABASE_URL and AGORA_TEST_KAFKA_BROKERS for the tests.
# 3. Runs cargo fmt --check, cargo clippy -D warnings and cargo test on the whole workspace.
#    Every check runs even when an earlier one failed; the exit code is non-zero if any did.
#
# Environment: see scripts/postgres.sh and scripts/kafka.sh (AGORA_STATE_DIR, ports, ...);
# CARGO_TARGET_DIR is honoured as usual.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$REPO_ROOT"

run_started=$SECONDS
failed=()
passed=()

section() {
  printf '\n==================== %s ====================\n' "$*" >&2
}

# step NAME CMD... — run one check, record its outcome, never abort the run.
step() {
  local name="$1" started=$SECONDS rc=0
  shift
  section "$name"
  printf '$ %s\n' "$*" >&2
  "$@" || rc=$?
  if ((rc == 0)); then
    passed+=("$name ($((SECONDS - started)) s)")
    printf -- '---- %s: OK in %d s\n' "$name" "$((SECONDS - started))" >&2
  else
    failed+=("$name (exit $rc, $((SECONDS - started)) s)")
    printf -- '---- %s: FAILED (exit %d) in %d s\n' "$name" "$rc" "$((SECONDS - started))" >&2
  fi
}

# --- prerequisites ---------------------------------------------------------------------------
section "Prerequisites"
if [[ -d "${HOME:-/root}/.cargo/bin" && ":$PATH:" != *":${HOME:-/root}/.cargo/bin:"* ]]; then
  PATH="${HOME:-/root}/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust with rustup (https://rustup.rs)"
for component in rustfmt clippy; do
  probe=fmt
  [[ "$component" == clippy ]] && probe=clippy
  if ! cargo "$probe" --version >/dev/null 2>&1; then
    command -v rustup >/dev/null 2>&1 || die "cargo $probe is missing and rustup is not available"
    info "installing the $component component"
    rustup component add "$component"
  fi
done
if ! command -v cc >/dev/null 2>&1 || ! command -v make >/dev/null 2>&1; then
  apt_install build-essential pkg-config
fi
info "$(cargo --version); $(cargo fmt --version); $(cargo clippy --version)"

# --- services --------------------------------------------------------------------------------
section "Services (PostgreSQL, Kafka)"
services_started=$SECONDS
scripts/postgres.sh start
scripts/kafka.sh start
AGORA_TEST_DATABASE_URL="$(scripts/postgres.sh url)"
AGORA_TEST_KAFKA_BROKERS="$(scripts/kafka.sh bootstrap)"
export AGORA_TEST_DATABASE_URL AGORA_TEST_KAFKA_BROKERS
info "AGORA_TEST_DATABASE_URL=$AGORA_TEST_DATABASE_URL"
info "AGORA_TEST_KAFKA_BROKERS=$AGORA_TEST_KAFKA_BROKERS"
info "services ready in $((SECONDS - services_started)) s"

# --- tools the dashboard and operator tests drive -------------------------------------------
section "Tools (Chromium + chromedriver, promtool)"
tools_started=$SECONDS
# A tool that cannot be installed fails the tests that need it (they never skip); the
# install failure is reported in the summary too.
if AGORA_CHROMEDRIVER="$(scripts/tools.sh browser)"; then
  export AGORA_CHROMEDRIVER
  info "AGORA_CHROMEDRIVER=$AGORA_CHROMEDRIVER"
else
  failed+=("install Chromium and chromedriver")
fi
if AGORA_PROMTOOL="$(scripts/tools.sh promtool)"; then
  export AGORA_PROMTOOL
  info "AGORA_PROMTOOL=$AGORA_PROMTOOL"
else
  failed+=("build promtool")
fi
info "tools ready in $((SECONDS - tools_started)) s"

# --- checks ----------------------------------------------------------------------------------
step "cargo fmt" cargo fmt --all -- --check
step "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings
step "cargo test" cargo test --workspace --no-fail-fast "$@"
# Python checks (e.g. a docs/verify_chain.py test dir) will be added here when they exist.

# --- summary ---------------------------------------------------------------------------------
section "Summary ($((SECONDS - run_started)) s)"
for item in "${passed[@]}"; do
  printf '  ok      %s\n' "$item" >&2
done
for item in "${failed[@]}"; do
  printf '  FAILED  %s\n' "$item" >&2
done
if ((${#failed[@]})); then
  printf '\n%d check(s) failed.\n' "${#failed[@]}" >&2
  exit 1
fi
printf '\nAll checks passed.\n' >&2
