#!/usr/bin/env bash
# scripts/test.sh — THE test command of Agora (CI runs it through .ci/run).
#
# Usage: scripts/test.sh [extra `cargo test` arguments, e.g. -- --nocapture]
#
# 1. Installs what is missing: PostgreSQL (apt, via scripts/postgres.sh), Java/Maven and the
#    Kafka jars (via scripts/kafka.sh), a C toolchain (apt; rdkafka builds librdkafka), the
#    rustfmt/clippy components (rustup), OpenSSL (librdkafka's TLS/SASL), and
#    (scripts/tools.sh) Chromium + chromedriver (apt) for the dashboard's browser test and
#    promtool (Debian's prometheus package; built from the Go module proxy only when apt
#    cannot install it) for deploy/.
# 2. Starts PostgreSQL (and a second, TLS-only cluster), Kafka (with a SASL_SSL listener),
#    an OpenID provider (Ory Hydra, built once from the Go module proxy by scripts/hydra.sh),
#    a payment provider (localstripe, a Stripe-compatible server from PyPI, by
#    scripts/payments.sh), the fault tests' PostgreSQL cluster and toxiproxy
#    (scripts/faults.sh) (idempotent; they stay running afterwards) and exports
#    AGORA_TEST_DATABASE_URL, AGORA_TEST_TLS_DATABASE_URL, AGORA_TEST_TLS_DIR,
#    AGORA_TEST_KAFKA_BROKERS, AGORA_TEST_OIDC_ISSUER, AGORA_TEST_OIDC_ADMIN and
#    AGORA_TEST_STRIPE_API_BASE for the tests.
# 3. Runs cargo fmt --check, cargo clippy -D warnings and cargo test on the whole workspace,
#    then schemathesis against both APIs (scripts/fuzz.sh) and a 3-minute soak
#    (scripts/soak.sh).
#    Every check runs even when an earlier one failed; the exit code is non-zero if any did.
#
# Environment: see scripts/postgres.sh, scripts/kafka.sh, scripts/hydra.sh and
# scripts/payments.sh (AGORA_STATE_DIR, ports, ...);
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
# librdkafka's TLS and SASL link the system OpenSSL; the test scripts make certificates with
# the openssl program and talk HTTPS with curl.
if ! pkg-config --exists openssl 2>/dev/null || ! command -v openssl >/dev/null 2>&1 ||
  ! command -v curl >/dev/null 2>&1; then
  apt_install libssl-dev pkg-config openssl curl
fi
info "$(cargo --version); $(cargo fmt --version); $(cargo clippy --version)"

# --- services --------------------------------------------------------------------------------
section "Services (PostgreSQL, Kafka, Hydra, localstripe)"
services_started=$SECONDS
scripts/postgres.sh start
scripts/postgres.sh sweep
# A second cluster that accepts TLS connections only (test certificates by scripts/tls.sh).
AGORA_TEST_TLS_DIR="$(scripts/tls.sh dir)"
AGORA_PG_NAME=pg-tls AGORA_PG_PORT=55433 AGORA_PG_TLS_DIR="$AGORA_TEST_TLS_DIR" scripts/postgres.sh start
AGORA_TEST_TLS_DATABASE_URL="postgres://postgres@localhost:55433/postgres"
scripts/kafka.sh start
scripts/hydra.sh start
scripts/payments.sh start
# The fault tests' own cluster (they kill it) and the TCP fault proxy (built once).
scripts/faults.sh pg-start >/dev/null
scripts/faults.sh toxiproxy >/dev/null
AGORA_TEST_DATABASE_URL="$(scripts/postgres.sh url)"
AGORA_TEST_KAFKA_BROKERS="$(scripts/kafka.sh bootstrap)"
AGORA_TEST_OIDC_ISSUER="$(scripts/hydra.sh issuer)"
AGORA_TEST_OIDC_ADMIN="$(scripts/hydra.sh admin)"
AGORA_TEST_STRIPE_API_BASE="$(scripts/payments.sh url)"
export AGORA_TEST_DATABASE_URL AGORA_TEST_KAFKA_BROKERS AGORA_TEST_TLS_DIR AGORA_TEST_TLS_DATABASE_URL
export AGORA_TEST_OIDC_ISSUER AGORA_TEST_OIDC_ADMIN AGORA_TEST_STRIPE_API_BASE
info "AGORA_TEST_DATABASE_URL=$AGORA_TEST_DATABASE_URL"
info "AGORA_TEST_KAFKA_BROKERS=$AGORA_TEST_KAFKA_BROKERS"
info "AGORA_TEST_OIDC_ISSUER=$AGORA_TEST_OIDC_ISSUER (admin $AGORA_TEST_OIDC_ADMIN)"
info "AGORA_TEST_STRIPE_API_BASE=$AGORA_TEST_STRIPE_API_BASE"
info "services ready in $((SECONDS - services_started)) s"

# --- tools the dashboard and operator tests drive -------------------------------------------
section "Tools (Chromium + chromedriver, promtool, aiosmtpd)"
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
  failed+=("install promtool")
fi
if AGORA_TEST_SMTP_PYTHON="$(scripts/tools.sh smtp)"; then
  export AGORA_TEST_SMTP_PYTHON
  info "AGORA_TEST_SMTP_PYTHON=$AGORA_TEST_SMTP_PYTHON"
else
  failed+=("install aiosmtpd")
fi
info "tools ready in $((SECONDS - tools_started)) s"

# --- checks ----------------------------------------------------------------------------------
step "cargo fmt" cargo fmt --all -- --check
step "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings
step "cargo test" cargo test --workspace --no-fail-fast "$@"
step "schemathesis (both APIs, every role)" scripts/fuzz.sh
# A short soak of the services as processes: fails on a leak or a failed request, not on speed.
step "soak (3 minutes, leak check)" scripts/soak.sh --minutes 3 --profile debug

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
