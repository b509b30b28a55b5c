#!/usr/bin/env bash
# scripts/bench-read.sh — the read-side benchmarks of BENCHMARKS.md: projector catch-up and
# rebuild, command accepted -> visible, the APIs' HTTP rates, and the audit export, each
# printed next to its DESIGN.md budget.
#
# Usage: scripts/bench-read.sh [--events N] [--rounds R] [--seconds S] [--only LIST]
#                              [--no-kafka] [--no-wrk] [--no-build]
#
#   --events N    events the projector and audit benchmarks fill their store with (100000)
#   --rounds R    rounds of the projector catch-up (batch 1000, then 5000), of the latency
#                 benchmark (each: without Kafka, then through Kafka, for each way of
#                 observing) and of the HTTP benchmark (default 1: about 3 minutes in all;
#                 2: about 6)
#   --seconds S   recorded seconds of each latency run at 1,000 commands/s (default 15)
#   --only LIST   comma-separated subset of: projector,latency,http,audit (default: all)
#   --no-kafka    skip everything that needs Kafka (relay, Kafka-source projector, latency
#                 through Kafka); Kafka is then not started either
#   --no-wrk      do not cross-check the HTTP rates with wrk (default: when wrk is on PATH;
#                 `apt-get install -y wrk` on Debian)
#   --no-build    use the already built release binaries
#
# Starts PostgreSQL (scripts/postgres.sh, fsync on) and Kafka (scripts/kafka.sh), builds
# the bench crate and the agora CLI in release mode, then runs, in this order:
#   projector-bench --events N --rounds R            (fill, read_log reference, catch-up
#                                                     from the log at batch 1000 and 5000,
#                                                     rebuild of each projection, relay,
#                                                     Kafka-source catch-up)
#   latency-bench [--kafka] --observe sql|api --seconds S
#                                                    (R rounds of: row polled in SQL without,
#                                                     then with Kafka; then GET ?min_version
#                                                     on the query API without, then with)
#   http-bench --rounds R [--wrk /usr/bin/wrk]       (query API GETs, command API restocks
#                                                     closed loop and paced at 1,000/s, then
#                                                     the same GETs and restocks from wrk)
#   audit-bench --events N --agora target/release/agora
# and prints every budget line of their outputs as one table. Every binary creates its own
# scratch database on the test server and drops it at the end. Their outputs (stdout) and
# the services' logs (stderr) are kept in a temporary directory whose path is printed.
# Environment: CARGO_TARGET_DIR is honoured (use /work/target-bench on the shared machine);
# RUST_LOG (default warn,deadpool=error) is passed to the binaries; AGORA_TEST_DATABASE_URL
# and AGORA_TEST_KAFKA_BROKERS point them elsewhere.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$REPO_ROOT"

events=100000
rounds=1
seconds=15
only="projector,latency,http,audit"
kafka=1
use_wrk=1
build=1
while (($#)); do
  case "$1" in
    --events) events="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --no-kafka) kafka=0; shift ;;
    --no-wrk) use_wrk=0; shift ;;
    --no-build) build=0; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
[[ "$events" =~ ^[1-9][0-9]*$ && "$rounds" =~ ^[1-9][0-9]*$ && "$seconds" =~ ^[1-9][0-9]*$ ]] ||
  die "--events, --rounds and --seconds take positive integers"
wants() { [[ ",$only," == *",$1,"* ]]; }
for part in ${only//,/ }; do
  case "$part" in
    projector | latency | http | audit) ;;
    *) die "--only: unknown part $part (projector, latency, http, audit)" ;;
  esac
done

if [[ -d "${HOME:-/root}/.cargo/bin" && ":$PATH:" != *":${HOME:-/root}/.cargo/bin:"* ]]; then
  PATH="${HOME:-/root}/.cargo/bin:$PATH"
fi
export RUST_LOG="${RUST_LOG:-warn,deadpool=error}"

scripts/postgres.sh start >&2
export AGORA_TEST_DATABASE_URL="${AGORA_TEST_DATABASE_URL:-$(scripts/postgres.sh url)}"
if ((kafka)) && { wants projector || wants latency; }; then
  scripts/kafka.sh start >&2
  export AGORA_TEST_KAFKA_BROKERS="${AGORA_TEST_KAFKA_BROKERS:-$(scripts/kafka.sh bootstrap)}"
fi

target_dir="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
bin="$target_dir/release"
if ((build)); then
  info "building the bench binaries and the agora CLI (release)"
  cargo build --release --quiet -p bench -p agora
fi
for b in projector-bench latency-bench http-bench audit-bench agora; do
  [[ -x "$bin/$b" ]] || die "$bin/$b is missing; run without --no-build"
done
wrk_args=()
if ((use_wrk)) && command -v wrk >/dev/null 2>&1; then
  wrk_args=(--wrk "$(command -v wrk)")
fi

work="$(mktemp -d -t agora-bench-read.XXXXXX)"
started=$SECONDS
echo "== bench-read: outputs in $work"
echo "== git: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (dirty)')"
echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

# run NAME CMD... — runs a benchmark, shows its output and keeps it in $work/NAME.out.
failed=()
outputs=()
run() {
  local name="$1"
  shift
  outputs+=("$work/$name.out")
  info "$name: $*"
  if ! "$@" 2>"$work/$name.err" | tee "$work/$name.out"; then
    failed+=("$name")
    warn "$name failed (output in $work/$name.out, logs in $work/$name.err)"
    tail -n 5 "$work/$name.err" >&2
  elif [[ -s "$work/$name.err" ]]; then
    info "$name logged $(wc -l <"$work/$name.err") line(s) to $work/$name.err (services' warnings; teardown drops the database under them)"
  fi
  echo
}

if wants projector; then
  projector_args=(--events "$events" --rounds "$rounds")
  ((kafka)) || projector_args+=(--no-kafka)
  run projector "$bin/projector-bench" "${projector_args[@]}"
fi
if wants latency; then
  for round in $(seq 1 "$rounds"); do
    for observe in sql api; do
      run "latency-log-$observe-$round" "$bin/latency-bench" --observe "$observe" --seconds "$seconds"
      if ((kafka)); then
        run "latency-kafka-$observe-$round" "$bin/latency-bench" --kafka --observe "$observe" --seconds "$seconds"
      fi
    done
  done
fi
if wants http; then
  run http "$bin/http-bench" --rounds "$rounds" "${wrk_args[@]}"
fi
if wants audit; then
  run audit "$bin/audit-bench" --events "$events" --agora "$bin/agora"
fi

echo "== summary ($((SECONDS - started)) s; load average after: $(cut -d' ' -f1-3 /proc/loadavg))"
{
  printf '%s\t%s\t%s\t%s\t%s\n' "what" "measured" "budget" "verdict" "load (1 min)"
  cat "${outputs[@]}" 2>/dev/null | sed -n 's/^budget | //p' | awk -F' [|] ' '{ printf "%s\t%s\t%s\t%s\t%s\n", $1, $2, $3, $4, $5 }'
} | column -t -s $'\t'
if ((${#failed[@]})); then
  warn "failed: ${failed[*]}"
  exit 1
fi
