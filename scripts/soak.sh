#!/usr/bin/env bash
# scripts/soak.sh — Agora's soak run: the command API (with the relay), a projector fed
# through Kafka and the query API as real processes, under the mixed shop workload (create,
# restock, place, pay, ship, cancel, reads, audit export), reported per window: throughput,
# p99 per route, RSS and open files of every process, follower lag, time to visibility, open
# database connections. Fails on a leak (RSS or connections growing steadily across the
# windows after the warm-up) or on any 5xx or lost request; never on absolute speed.
#
# Usage: scripts/soak.sh [--minutes N] [--window SECONDS] [--profile debug|release] [soak args]
#
#   --minutes N     how long (default 3)
#   --window S      seconds per reported window (default 20)
#   --profile P     build profile of the services and the driver (default release; the test
#                   command uses debug, which it has built already)
# Further arguments go to the driver (bench/src/bin/soak.rs: --commands-per-second,
# --reads-per-second, --keep). Starts PostgreSQL and Kafka with scripts/postgres.sh and
# scripts/kafka.sh (idempotent). The services' logs go to $AGORA_STATE_DIR/soak/.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$REPO_ROOT"

minutes=3
window=20
profile=release
extra=()
while (($#)); do
  case "$1" in
    --minutes) minutes="$2"; shift 2 ;;
    --window) window="$2"; shift 2 ;;
    --profile) profile="$2"; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) extra+=("$1"); shift ;;
  esac
done
[[ "$profile" == debug || "$profile" == release ]] || die "--profile is debug or release"

scripts/postgres.sh start
scripts/kafka.sh start
AGORA_TEST_DATABASE_URL="${AGORA_TEST_DATABASE_URL:-$(scripts/postgres.sh url)}"
AGORA_TEST_KAFKA_BROKERS="${AGORA_TEST_KAFKA_BROKERS:-$(scripts/kafka.sh bootstrap)}"
export AGORA_TEST_DATABASE_URL AGORA_TEST_KAFKA_BROKERS

build=(cargo build -p command-api -p projector -p query-api -p bench --bin command-api --bin projector --bin query-api --bin soak)
[[ "$profile" == release ]] && build+=(--release)
info "building ($profile): ${build[*]}"
"${build[@]}"
target_dir="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
[[ "$target_dir" == /* ]] || target_dir="$REPO_ROOT/$target_dir"
bin_dir="$target_dir/$profile"

log_dir="$AGORA_STATE_DIR/soak"
mkdir -p "$log_dir"
info "soak for $minutes min in windows of $window s; logs in $log_dir"
"$bin_dir/soak" --minutes "$minutes" --window "$window" --bin-dir "$bin_dir" \
  --log-dir "$log_dir" "${extra[@]}"
