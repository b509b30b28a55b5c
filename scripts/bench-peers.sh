#!/usr/bin/env bash
# scripts/bench-peers.sh — "Command path vs peers" of BENCHMARKS.md: Agora's write path side by
# side with its peers on the same PostgreSQL, in interleaved rounds; the command API's
# stream-length curve; its memory while it touches a million streams.
#
# Usage: scripts/bench-peers.sh [--peers] [--curve] [--memory] [--all]
#                               [--clients N] [--seconds S] [--rounds R] [--only LIST]
#                               [--curve-lengths L,L,..] [--curve-restocks N]
#                               [--memory-streams N] [--memory-every N] [--memory-max-seconds S]
#                               [--cache-mb MB] [--no-build]
#
#   --peers       the peer rounds (the default when none of --peers/--curve/--memory is given)
#   --curve       restock p50/p99 through the real command-api binary on products whose
#                 streams already hold each of --curve-lengths events (default
#                 10,1000,10000,100000), --curve-restocks (default 200) sequential restocks each
#   --memory      command-api's VmRSS/VmHWM while it restocks each of --memory-streams
#                 (default 1000000) freshly created products once (8 HTTP callers), sampled every
#                 --memory-every (default 50000) restocks, stopping after --memory-max-seconds
#                 (default 900); command-api runs with AGORA_STATE_CACHE_MB=--cache-mb (64)
#   --all         all three
#   --clients N   concurrent clients of every contender (default 8)
#   --seconds S   measured seconds per contender and round (default 10; in-process contenders
#                 and wrk get 1 s of warm-up before)
#   --rounds R    rounds (default 1); each round runs every contender once, in this order:
#   --only LIST   comma-separated subset of the contenders:
#                   raw-insert        pgbench, one single-row INSERT per transaction
#                   raw-insert10      pgbench, one 10-row INSERT per transaction (rows/s is
#                                     10x its transactions/s)
#                   message-db        Message DB 1.3.1: get_stream_messages, then
#                                     write_message(..., expected_version)
#                   message-db-known  Message DB: write_message at the version it remembers
#                   cqrs-es           cqrs-es 0.5 + postgres-es 0.5: CqrsFramework::execute
#                   agora-append      Agora: EventStore::append at a known version
#                   agora-append-grouped  the same through group commit
#                   agora-command     Agora's command path in-process as the command API runs
#                                     it (aggregate cache, decide, append; group commit)
#                   agora-command-solo    the same with one commit per command
#                   agora-http        the command-api binary over HTTP, driven by wrk
#   --no-build    use the release binaries already built
#
# Every contender gets its own fresh scratch database on the one server (dropped after its
# run) and the same --clients and --seconds; each client owns its streams (1,024 pre-created
# products split between the clients), so no two clients ever race. Every run prints one JSON
# line (kept in the output); the report at the end gives every round's figures, the medians,
# the ratios to raw INSERT and to the peers, and DESIGN.md's budgets.
#
# Installs what it needs, idempotently: wrk (Debian) when missing; Message DB's SQL from npm
# (`npm pack @eventide/message-db@1.3.1`) into $AGORA_CACHE_DIR/message-db (default
# ~/.cache/agora), outside the repository. Starts PostgreSQL with scripts/postgres.sh.
# Environment: CARGO_TARGET_DIR is honoured; see scripts/postgres.sh for the server.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$REPO_ROOT"

all_contenders=(raw-insert raw-insert10 message-db message-db-known cqrs-es agora-append agora-append-grouped agora-command agora-command-solo agora-http)
clients=8
seconds=10
rounds=1
only=""
do_peers=0
do_curve=0
do_memory=0
build=1
curve_lengths=10,1000,10000,100000
curve_restocks=200
memory_streams=1000000
memory_every=50000
memory_max_seconds=900
cache_mb=64
while (($#)); do
  case "$1" in
    --peers) do_peers=1; shift ;;
    --curve) do_curve=1; shift ;;
    --memory) do_memory=1; shift ;;
    --all) do_peers=1; do_curve=1; do_memory=1; shift ;;
    --clients) clients="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --curve-lengths) curve_lengths="$2"; shift 2 ;;
    --curve-restocks) curve_restocks="$2"; shift 2 ;;
    --memory-streams) memory_streams="$2"; shift 2 ;;
    --memory-every) memory_every="$2"; shift 2 ;;
    --memory-max-seconds) memory_max_seconds="$2"; shift 2 ;;
    --cache-mb) cache_mb="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
for n in "$clients" "$seconds" "$rounds" "$curve_restocks" "$memory_streams" "$memory_every" "$memory_max_seconds" "$cache_mb"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "numeric options take positive integers (got '$n')"
done
[[ "$curve_lengths" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die "--curve-lengths takes positive integers, comma-separated"
((do_peers || do_curve || do_memory)) || do_peers=1
contenders=("${all_contenders[@]}")
if [[ -n "$only" ]]; then
  IFS=, read -r -a contenders <<<"$only"
  for c in "${contenders[@]}"; do
    [[ " ${all_contenders[*]} " == *" $c "* ]] || die "--only: unknown contender '$c' (known: ${all_contenders[*]})"
  done
fi
wants() { ((do_peers)) && [[ " ${contenders[*]} " == *" $1 "* ]]; }
threads=$((clients < 2 ? clients : 2))

if [[ -d "${HOME:-/root}/.cargo/bin" && ":$PATH:" != *":${HOME:-/root}/.cargo/bin:"* ]]; then
  PATH="${HOME:-/root}/.cargo/bin:$PATH"
fi

# --- tools ------------------------------------------------------------------------------
pg_bin_dir="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -type d -name bin 2>/dev/null | sort -V | tail -n 1)"
tool() { command -v "$1" 2>/dev/null || echo "$pg_bin_dir/$1"; }
psql_bin="$(tool psql)"
pgbench="$(tool pgbench)"
[[ -x "$psql_bin" ]] || die "psql not found (it ships with the postgresql-client package)"
if wants raw-insert; then
  [[ -x "$pgbench" ]] || die "pgbench not found (it ships with the postgresql-client package)"
fi
if wants agora-http && ! command -v wrk >/dev/null 2>&1; then
  apt_install wrk
fi

message_db_version=1.3.1
message_db_dir="$AGORA_CACHE_DIR/message-db/$message_db_version"
# The package's own version (its database/VERSION.txt says 1.3.0 in 1.3.1: the SQL did not
# change).
message_db_fetched() {
  grep -q "\"version\": \"$message_db_version\"" "$message_db_dir/package/package.json" 2>/dev/null &&
    [[ -f "$message_db_dir/package/database/functions/write-message.sql" ]]
}
fetch_message_db() {
  message_db_fetched && return 0
  command -v npm >/dev/null 2>&1 || apt_install npm
  info "fetching @eventide/message-db@$message_db_version into $message_db_dir"
  rm -rf "$message_db_dir"
  mkdir -p "$message_db_dir"
  (cd "$message_db_dir" && npm pack --silent "@eventide/message-db@$message_db_version" >/dev/null)
  tar -xzf "$message_db_dir/eventide-message-db-$message_db_version.tgz" -C "$message_db_dir"
  message_db_fetched || die "the npm package is not @eventide/message-db $message_db_version with its SQL"
}
if wants message-db || wants message-db-known; then
  fetch_message_db
fi

scripts/postgres.sh start >&2
admin_url="$(scripts/postgres.sh url)"

target_dir="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
peers_bench="$target_dir/release/peers-bench"
mint_token="$target_dir/release/mint-token"
command_api="$target_dir/release/command-api"
if ((build)); then
  info "building peers-bench, mint-token and command-api (release)"
  cargo build --release --quiet -p bench --bin peers-bench --bin mint-token
  if wants agora-http || ((do_curve || do_memory)); then
    cargo build --release --quiet -p command-api --bin command-api
  fi
fi
for binary in "$peers_bench" "$mint_token"; do
  [[ -x "$binary" ]] || die "$binary is missing; run without --no-build"
done

work="$(mktemp -d)"
results="$work/results.jsonl"
: >"$results"
scratch_dbs=()
api_pid=""
cleanup() {
  stop_api
  for db in "${scratch_dbs[@]}"; do
    "$psql_bin" -q "$admin_url" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

# new_db NAME — creates an empty scratch database agora_peers_NAME_<pid> and sets db_url
# to its URL (not in a subshell: cleanup drops what is left of scratch_dbs).
new_db() {
  local db="agora_peers_${1//-/_}_$$"
  PGOPTIONS='-c client_min_messages=warning' "$psql_bin" -q -v ON_ERROR_STOP=1 "$admin_url" \
    -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
  scratch_dbs+=("$db")
  db_url="${admin_url%/*}/$db"
}
drop_db() {
  "$psql_bin" -q "$admin_url" -c "DROP DATABASE IF EXISTS ${1##*/} WITH (FORCE)" >/dev/null
}

# install_message_db URL — Message DB's install.sh, step by step: the role (cluster-wide,
# in the admin database), then in URL's database the schema, pgcrypto, the table, the types
# and functions, the indexes, the views and the privileges, in install*.sh's order.
install_message_db() {
  local url="$1" db="$message_db_dir/package/database" file
  local run=("$psql_bin" -q -v ON_ERROR_STOP=1)
  PGOPTIONS='-c client_min_messages=warning' "${run[@]}" "$admin_url" -f "$db/roles/message-store.sql" >/dev/null
  for file in schema/message-store.sql extensions/pgcrypto.sql tables/messages.sql \
    types/message.sql \
    functions/message-store-version.sql functions/hash-64.sql functions/acquire-lock.sql \
    functions/category.sql functions/is-category.sql functions/id.sql functions/cardinal-id.sql \
    functions/stream-version.sql functions/write-message.sql functions/get-stream-messages.sql \
    functions/get-category-messages.sql functions/get-last-stream-message.sql \
    indexes/messages-id.sql indexes/messages-stream.sql indexes/messages-category.sql \
    views/stream-summary.sql views/type-summary.sql views/stream-type-summary.sql \
    views/type-stream-summary.sql views/category-type-summary.sql views/type-category-summary.sql \
    privileges/schema.sql privileges/table.sql privileges/sequence.sql \
    privileges/functions.sql privileges/views.sql; do
    PGOPTIONS='-c client_min_messages=warning' "${run[@]}" "$url" -f "$db/$file" >/dev/null
  done
}

# start_api URL — starts the release command-api on URL's database at a free port; sets
# api_pid and api_url. Waits until it listens (it migrates before it binds).
jwt_secret="peers-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
export AGORA_JWT_SECRET="$jwt_secret"
# One benchmark subject drives the API far past any fair share.
export AGORA_RATE_LIMIT_PER_SUBJECT=0
api_log_n=0
start_api() {
  [[ -x "$command_api" ]] || die "$command_api is missing; run without --no-build"
  local port=18380
  while port_open 127.0.0.1 "$port"; do port=$((port + 1)); done
  api_log_n=$((api_log_n + 1))
  DATABASE_URL="$1" COMMAND_API_ADDR="127.0.0.1:$port" AGORA_STATE_CACHE_MB="$cache_mb" \
    RUST_LOG="${RUST_LOG:-warn}" "$command_api" >"$work/command-api-$api_log_n.log" 2>&1 &
  api_pid=$!
  api_url="http://127.0.0.1:$port"
  if ! wait_until 60 "command-api on port $port" port_open 127.0.0.1 "$port"; then
    tail -n 20 "$work/command-api-$api_log_n.log" >&2
    die "command-api did not start"
  fi
}
stop_api() {
  if [[ -n "$api_pid" ]]; then
    kill "$api_pid" 2>/dev/null || true
    wait "$api_pid" 2>/dev/null || true
    api_pid=""
  fi
}
# cpu_of PID — the CPU seconds (user + system) the process has used.
cpu_of() {
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$1/stat"
}

# emit LINE — keeps a result line and shows it.
emit() {
  echo "$1" >>"$results"
  echo "$1"
}

# --- the contenders ---------------------------------------------------------------------
# run_raw_insert ROUND [ROWS]: pgbench committing one INSERT of ROWS rows (default 1) per
# transaction; contender raw-insert, or raw-insert10 for 10 rows (a group commit's shape).
run_raw_insert() {
  local round="$1" rows="${2:-1}" url out tps name=raw-insert values
  ((rows > 1)) && name="raw-insert$rows"
  new_db "$name"
  url="$db_url"
  "$psql_bin" -q -v ON_ERROR_STOP=1 "$url" -c "CREATE TABLE raw (id bigserial PRIMARY KEY, payload jsonb)" >/dev/null
  values="$(printf "('{\"quantity\": 1}'),%.0s" $(seq 1 "$rows"))"
  printf '%s\n' "INSERT INTO raw (payload) VALUES ${values%,};" >"$work/raw1.sql"
  rm -f "$work"/pgbench_log*
  out="$("$pgbench" -n -c "$clients" -j "$threads" -T "$seconds" -l --log-prefix="$work/pgbench_log" -f "$work/raw1.sql" "$url" 2>&1)" ||
    die "pgbench failed: $out"
  tps="$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out" | tail -n 1)"
  # Per-transaction log: the third field is the latency in microseconds.
  local latency
  latency="$(cat "$work"/pgbench_log* | awk '{ print $3 }' | sort -n | awk '
    { v[NR] = $1; sum += $1 }
    END {
      if (NR == 0) { print "0 0 0 0"; exit }
      i50 = int(NR * 0.50); if (i50 < NR * 0.50) i50++; if (i50 < 1) i50 = 1
      i99 = int(NR * 0.99); if (i99 < NR * 0.99) i99++; if (i99 < 1) i99 = 1
      printf "%.3f %.3f %.3f %.3f", v[i50] / 1000, v[i99] / 1000, sum / NR / 1000, v[NR] / 1000
    }')"
  read -r p50 p99 mean max <<<"$latency"
  drop_db "$url"
  emit "{\"bench\":\"peers\",\"round\":$round,\"contender\":\"$name\",\"clients\":$clients,\"seconds\":$seconds,\"commands_per_sec\":$tps,\"rows_per_transaction\":$rows,\"latency_ms\":{\"p50\":$p50,\"p99\":$p99,\"mean\":$mean,\"max\":$max}}"
}

run_in_process() {
  local round="$1" contender="$2" url line
  new_db "$contender"
  url="$db_url"
  case "$contender" in
    message-db | message-db-known) install_message_db "$url" ;;
  esac
  line="$("$peers_bench" run --contender "$contender" --database-url "$url" \
    --clients "$clients" --seconds "$seconds" --round "$round" --json)" ||
    die "peers-bench run --contender $contender failed"
  drop_db "$url"
  emit "$line"
}

run_http() {
  local round="$1" url token cpu_before cpu_after wrk_out wrk_cpu line
  new_db agora-http
  url="$db_url"
  start_api "$url"
  "$peers_bench" create-products --database-url "$url" --count 1024 --out "$work/ids.txt"
  token="$("$mint_token" --secret "$jwt_secret" --sub peers-bench --role admin)"
  local env=(env AGORA_IDS_FILE="$work/ids.txt" AGORA_TOKEN="$token" AGORA_WRK_THREADS="$threads")
  local wrk_args=(-t "$threads" -c "$clients" --latency -s scripts/lib/restock.lua "$api_url")
  "${env[@]}" wrk -d 1s "${wrk_args[@]}" >/dev/null 2>&1 || die "wrk (warm-up) failed"
  cpu_before="$(cpu_of "$api_pid")"
  # bash's `time` reports the CPU wrk itself used (it shares the cores with everything).
  local TIMEFORMAT='%U %S'
  { time "${env[@]}" wrk -d "${seconds}s" "${wrk_args[@]}" >"$work/wrk.out" 2>&1; } 2>"$work/wrk.time" ||
    die "wrk failed: $(cat "$work/wrk.out")"
  cpu_after="$(cpu_of "$api_pid")"
  stop_api
  drop_db "$url"
  wrk_out="$(grep '^{"requests"' "$work/wrk.out" | tail -n 1)"
  [[ -n "$wrk_out" ]] || die "wrk printed no summary: $(cat "$work/wrk.out")"
  wrk_cpu="$(awk '{ printf "%.2f", $1 + $2 }' "$work/wrk.time")"
  line="$(awk -v round="$round" -v clients="$clients" -v wrk_cpu="$wrk_cpu" \
    -v server_cpu="$(awk -v a="$cpu_before" -v b="$cpu_after" 'BEGIN { printf "%.2f", b - a }')" '
    function field(name,   m) { if (match($0, "\"" name "\":[0-9.]+")) { m = substr($0, RSTART, RLENGTH); sub(/.*:/, "", m); return m + 0 } return 0 }
    {
      requests = field("requests"); duration = field("duration_us") / 1e6; non2xx = field("status")
      socket = field("connect") + field("read") + field("write") + field("timeout")
      ok = requests - non2xx - socket
      printf "{\"bench\":\"peers\",\"round\":%d,\"contender\":\"agora-http\",\"clients\":%d,\"seconds\":%.3f,\"commands\":%d,\"non_2xx\":%d,\"socket_errors\":%d,\"commands_per_sec\":%.1f,\"latency_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"mean\":%.3f,\"max\":%.3f},\"wrk_cpu_seconds\":%s,\"server_cpu_seconds\":%s}\n",
        round, clients, duration, ok, non2xx, socket, ok / duration,
        field("p50") / 1000, field("p99") / 1000, field("mean") / 1000, field("max") / 1000, wrk_cpu, server_cpu
    }' <<<"$wrk_out")"
  emit "$line"
}

# --- the run --------------------------------------------------------------------------
pg_facts="$("$psql_bin" -At "$admin_url" -c "SELECT current_setting('server_version') || ', fsync=' || current_setting('fsync') || ', synchronous_commit=' || current_setting('synchronous_commit') || ', wal_sync_method=' || current_setting('wal_sync_method') || ', shared_buffers=' || current_setting('shared_buffers') || ', max_connections=' || current_setting('max_connections')")"
cpu_model="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
mem_total="$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)"
load_before="$(cut -d' ' -f1 /proc/loadavg)"
echo "== machine: nproc=$(nproc) ($cpu_model), $mem_total RAM, $(uname -sr)"
echo "== PostgreSQL $pg_facts"
echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== git: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' (dirty)') on $(git rev-parse --abbrev-ref HEAD 2>/dev/null || echo '?')"
if ((do_peers)); then
  echo "== peers: ${contenders[*]}; $clients clients, ${seconds} s per run, $rounds interleaved round(s)"
fi
echo

if ((do_peers)); then
  for round in $(seq 1 "$rounds"); do
    for contender in "${contenders[@]}"; do
      info "round $round/$rounds: $contender"
      case "$contender" in
        raw-insert) run_raw_insert "$round" ;;
        raw-insert10) run_raw_insert "$round" 10 ;;
        agora-http) run_http "$round" ;;
        *) run_in_process "$round" "$contender" ;;
      esac
    done
  done
fi

# with_api NAME CMD... — runs CMD against a command-api on a fresh database (db_url,
# api_url and api_pid are set for it) and keeps the JSON lines it prints.
with_api() {
  local name="$1"
  shift
  new_db "$name"
  start_api "$db_url"
  "$@" | while IFS= read -r line; do emit "$line"; done
  stop_api
  drop_db "$db_url"
}
curve() {
  "$peers_bench" curve --database-url "$db_url" --api "$api_url" --lengths "$curve_lengths" \
    --restocks "$curve_restocks" --json
}
memory() {
  "$peers_bench" memory --database-url "$db_url" --api "$api_url" --pid "$api_pid" \
    --streams "$memory_streams" --every "$memory_every" --clients "$clients" \
    --max-seconds "$memory_max_seconds" --cache-mb "$cache_mb" --json
}
if ((do_curve)); then
  info "curve: stream lengths $curve_lengths, $curve_restocks sequential restocks each"
  with_api curve curve
fi
if ((do_memory)); then
  info "memory: $memory_streams streams, AGORA_STATE_CACHE_MB=$cache_mb, at most ${memory_max_seconds} s of restocks"
  with_api memory memory
fi

load_after="$(cut -d' ' -f1 /proc/loadavg)"
echo
"$peers_bench" summary --results "$results" --load "$load_before-$load_after"
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
