#!/usr/bin/env bash
# scripts/bench-append.sh — the append benchmark of BENCHMARKS.md: commands/s through the
# event store (bench crate's append-bench, no HTTP) next to pgbench's raw INSERT commit rate,
# measured in the same run on the same server.
#
# Usage: scripts/bench-append.sh [--clients N] [--seconds S] [--rounds R] [--diagnose]
#                                [--no-build]
#
#   --clients N   concurrent clients for pgbench (-c) and append-bench (default 8)
#   --seconds S   measured seconds per run (default 10)
#   --rounds R    repeat the whole set R times, interleaved, and report the median (default 1)
#   --diagnose    also run: pgbench inserting one row into the real events table (the
#                 eventstore migrations applied to a scratch database agora_bench_shape;
#                 with and without its NOTIFY trigger where the migrations still have one);
#                 append-bench with no follower wake-ups (--no-notify), with idempotency
#                 records, and on a new stream per command
#   --no-build    use the already built release append-bench
#
# Per round, in this order: pgbench single-row INSERT; append-bench 1 event/command;
# pgbench one 10-row INSERT per transaction; append-bench 10 events/command; append-bench
# 1 event/command with --load-each (as the command API does). The budget (DESIGN.md): the
# append path commits at least half the raw single-row INSERT rate, so the ratio must be
# >= 0.5.
#
# Starts PostgreSQL with scripts/postgres.sh (fsync on). pgbench runs against a scratch
# database agora_bench_raw (re-created each run, dropped at the end); append-bench creates
# and drops its own scratch database per run. pgbench -j is min(2, clients).
# Environment: CARGO_TARGET_DIR is honoured; see scripts/postgres.sh for the server.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$REPO_ROOT"

clients=8
seconds=10
rounds=1
diagnose=0
build=1
while (($#)); do
  case "$1" in
    --clients) clients="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --diagnose) diagnose=1; shift ;;
    --no-build) build=0; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
[[ "$clients" =~ ^[1-9][0-9]*$ && "$seconds" =~ ^[1-9][0-9]*$ && "$rounds" =~ ^[1-9][0-9]*$ ]] ||
  die "--clients, --seconds and --rounds take positive integers"
threads=$((clients < 2 ? clients : 2))

if [[ -d "${HOME:-/root}/.cargo/bin" && ":$PATH:" != *":${HOME:-/root}/.cargo/bin:"* ]]; then
  PATH="${HOME:-/root}/.cargo/bin:$PATH"
fi

scripts/postgres.sh start >&2
admin_url="$(scripts/postgres.sh url)"
raw_db=agora_bench_raw
raw_url="${admin_url%/*}/$raw_db"

pg_bin_dir="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -type d -name bin 2>/dev/null | sort -V | tail -n 1)"
pgbench="$(command -v pgbench || true)"
[[ -n "$pgbench" ]] || pgbench="$pg_bin_dir/pgbench"
[[ -x "$pgbench" ]] || die "pgbench not found (it ships with the postgresql-client package)"
psql_bin="$(command -v psql || true)"
[[ -n "$psql_bin" ]] || psql_bin="$pg_bin_dir/psql"

target_dir="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
append_bench="$target_dir/release/append-bench"
if ((build)); then
  info "building append-bench (release)"
  cargo build --release --quiet -p bench --bin append-bench
fi
[[ -x "$append_bench" ]] || die "$append_bench is missing; run without --no-build"

work="$(mktemp -d)"
cleanup() {
  for db in "$raw_db" "${shape_db:-}"; do
    [[ -n "$db" ]] && "$psql_bin" -q "$admin_url" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
  done
  true
  rm -rf "$work"
}
trap cleanup EXIT

"$psql_bin" -q -v ON_ERROR_STOP=1 "$admin_url" \
  -c "DROP DATABASE IF EXISTS $raw_db WITH (FORCE)" -c "CREATE DATABASE $raw_db" >/dev/null
"$psql_bin" -q -v ON_ERROR_STOP=1 "$raw_url" \
  -c "CREATE TABLE raw (id bigserial PRIMARY KEY, payload jsonb)" >/dev/null

printf '%s\n' "INSERT INTO raw (payload) VALUES ('{\"quantity\": 1}');" >"$work/raw1.sql"
{
  printf 'INSERT INTO raw (payload) VALUES '
  for i in $(seq 1 10); do
    printf "('{\"quantity\": 1}')"
    ((i < 10)) && printf ', '
  done
  printf ';\n'
} >"$work/raw10.sql"

shape_db=agora_bench_shape
shape_url="${admin_url%/*}/$shape_db"
if ((diagnose)); then
  "$psql_bin" -q -v ON_ERROR_STOP=1 "$admin_url" \
    -c "DROP DATABASE IF EXISTS $shape_db WITH (FORCE)" -c "CREATE DATABASE $shape_db" >/dev/null
  for migration in eventstore/migrations/V*.sql; do
    "$psql_bin" -q -v ON_ERROR_STOP=1 "$shape_url" -f "$migration" >/dev/null
  done
  # One event as the append statement writes it, minus the client: uuids, hash and
  # metadata made by the server.
  cat >"$work/shape1.sql" <<'SQL'
INSERT INTO events (event_id, stream_type, stream_id, version, event_type, schema_version, payload, metadata, occurred_at, prev_hash, hash) VALUES (gen_random_uuid(), 'product', gen_random_uuid(), 1, 'StockAdded', 1, '{"quantity": 1}', jsonb_build_object('actor', 'append-bench', 'causation_id', null, 'command_id', gen_random_uuid(), 'correlation_id', gen_random_uuid()), now(), '\x0000000000000000000000000000000000000000000000000000000000000000', sha256(gen_random_uuid()::text::bytea));
SQL
fi
has_notify_trigger() {
  [[ "$("$psql_bin" -At "$shape_url" -c "SELECT count(*) FROM pg_trigger WHERE tgname = 'events_appended'")" != 0 ]]
}
set_notify_trigger() {
  if has_notify_trigger; then
    "$psql_bin" -q "$shape_url" -c "ALTER TABLE events $1 TRIGGER events_appended" >/dev/null
  fi
}

# Machine facts.
pg_facts="$("$psql_bin" -At "$admin_url" -c "SELECT current_setting('server_version') || ', fsync=' || current_setting('fsync') || ', synchronous_commit=' || current_setting('synchronous_commit') || ', wal_sync_method=' || current_setting('wal_sync_method') || ', shared_buffers=' || current_setting('shared_buffers')")"
cpu_model="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
mem_total="$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)"
echo "== machine: nproc=$(nproc) ($cpu_model), $mem_total RAM, $(uname -sr)"
echo "== PostgreSQL $pg_facts"
echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== git: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (dirty)')"
echo "== $clients clients, ${seconds} s per run, $rounds round(s); pgbench -n -c $clients -j $threads -T $seconds"
echo

# pgbench_tps SCRIPT — prints the tps (without initial connection time).
pgbench_tps() {
  local out
  out="$("$pgbench" -n -c "$clients" -j "$threads" -T "$seconds" -f "$1" "${2:-$raw_url}" 2>&1)" ||
    die "pgbench failed: $out"
  sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out" | tail -n 1
}

# append_run FIELD ARGS... — runs append-bench --json and prints FIELD of its answer.
append_run() {
  local field="$1" out
  shift
  out="$("$append_bench" --database-url "$admin_url" --clients "$clients" --seconds "$seconds" --json "$@")" ||
    die "append-bench $* failed"
  echo "$out" >>"$work/append.jsonl"
  sed -n "s/.*\"$field\":\([0-9.]*\).*/\1/p" <<<"$out"
}

# p99 of the last append-bench run.
last_latency() {
  tail -n 1 "$work/append.jsonl" | sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" |
    awk '{ printf "%.2f", $1 }'
}
last_p50() { last_latency p50; }
last_p99() { last_latency p99; }

declare -A results=()
record() { results[$1]="${results[$1]:-} $2"; }

for round in $(seq 1 "$rounds"); do
  info "round $round/$rounds: pgbench single-row INSERT"
  record raw1 "$(pgbench_tps "$work/raw1.sql")"
  info "round $round/$rounds: append-bench 1 event/command"
  record app1 "$(append_run commands_per_sec)"
  record app1_p50 "$(last_p50)"
  record app1_p99 "$(last_p99)"
  info "round $round/$rounds: pgbench 10-row INSERT"
  record raw10 "$(awk -v t="$(pgbench_tps "$work/raw10.sql")" 'BEGIN { printf "%.1f", t * 10 }')"
  info "round $round/$rounds: append-bench 10 events/command"
  record app10 "$(append_run events_per_sec --events-per-command 10)"
  record app10_p99 "$(last_p99)"
  info "round $round/$rounds: append-bench 1 event/command, --load-each"
  record load1 "$(append_run commands_per_sec --load-each)"
  record load1_p99 "$(last_p99)"
  if ((diagnose)); then
    info "round $round/$rounds: pgbench 1 row into the events table, NOTIFY trigger disabled"
    set_notify_trigger DISABLE
    record shape "$(pgbench_tps "$work/shape1.sql" "$shape_url")"
    if has_notify_trigger; then
      info "round $round/$rounds: pgbench 1 row into the events table, NOTIFY trigger enabled"
      set_notify_trigger ENABLE
      record shape_notify "$(pgbench_tps "$work/shape1.sql" "$shape_url")"
    fi
    info "round $round/$rounds: append-bench 1 event/command, --no-notify (no follower wake-ups)"
    record nonotify "$(append_run commands_per_sec --no-notify)"
    record nonotify_p99 "$(last_p99)"
    info "round $round/$rounds: append-bench 1 event/command, --idempotency"
    record idem "$(append_run commands_per_sec --idempotency)"
    info "round $round/$rounds: append-bench 1 event/command, --streams 0 (new stream each)"
    record fresh "$(append_run commands_per_sec --streams 0)"
  fi
done

median() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
fmt() { awk -v v="$1" 'BEGIN { printf "%.0f", v }'; }
# pair_ratios "A1 A2 ..." "B1 B2 ..." — per-round ratios A_i / B_i.
pair_ratios() {
  paste -d' ' <(tr ' ' '\n' <<<"$1" | sed '/^$/d') <(tr ' ' '\n' <<<"$2" | sed '/^$/d') |
    awk '{ printf " %.2f", ($2 > 0 ? $1 / $2 : 0) }'
}

raw1="$(median "${results[raw1]}")"
app1="$(median "${results[app1]}")"
raw10="$(median "${results[raw10]}")"
app10="$(median "${results[app10]}")"
load1="$(median "${results[load1]}")"
r1="$(ratio "$app1" "$raw1")"
r10="$(ratio "$app10" "$raw10")"
rl="$(ratio "$load1" "$raw1")"

echo
echo "== results (median of $rounds round(s); each round's values in brackets)"
printf '| %-66s | %14s | %10s |\n' "what ($clients clients, $seconds s)" "rate" "vs raw"
printf '|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..68})" "$(printf -- '-%.0s' {1..16})" "$(printf -- '-%.0s' {1..12})"
printf '| %-66s | %9s tx/s | %10s |\n' "pgbench: single-row INSERT commits" "$(fmt "$raw1")" "1.00"
printf '| %-66s | %7s cmds/s | %10s |\n' "append-bench: 1 event/command (p50 $(median "${results[app1_p50]}") ms, p99 $(median "${results[app1_p99]}") ms)" "$(fmt "$app1")" "$r1"
printf '| %-66s | %7s cmds/s | %10s |\n' "append-bench: 1 event/command, --load-each (p99 $(median "${results[load1_p99]}") ms)" "$(fmt "$load1")" "$rl"
printf '| %-66s | %7s rows/s | %10s |\n' "pgbench: one 10-row INSERT per transaction" "$(fmt "$raw10")" "1.00"
printf '| %-66s | %5s events/s | %10s |\n' "append-bench: 10 events/command (p99 $(median "${results[app10_p99]}") ms)" "$(fmt "$app10")" "$r10"
if ((diagnose)); then
  shape="$(median "${results[shape]}")"
  printf '| %-66s | %9s tx/s | %10s |\n' "diagnose: pgbench, 1 row into events, NOTIFY trigger disabled" "$(fmt "$shape")" "$(ratio "$shape" "$raw1")"
  if [[ -n "${results[shape_notify]:-}" ]]; then
    shape_notify="$(median "${results[shape_notify]}")"
    printf '| %-66s | %9s tx/s | %10s |\n' "diagnose: pgbench, 1 row into events, NOTIFY trigger enabled" "$(fmt "$shape_notify")" "$(ratio "$shape_notify" "$raw1")"
  fi
  nonotify="$(median "${results[nonotify]}")"
  printf '| %-66s | %7s cmds/s | %10s |\n' "diagnose: 1 event/command, --no-notify (p99 $(median "${results[nonotify_p99]}") ms)" "$(fmt "$nonotify")" "$(ratio "$nonotify" "$raw1")"
  printf '| %-66s | %7s cmds/s | %10s |\n' "diagnose: 1 event/command + idempotency record" "$(fmt "$(median "${results[idem]}")")" "$(ratio "$(median "${results[idem]}")" "$raw1")"
  printf '| %-66s | %7s cmds/s | %10s |\n' "diagnose: 1 event/command, new stream per command" "$(fmt "$(median "${results[fresh]}")")" "$(ratio "$(median "${results[fresh]}")" "$raw1")"
fi
echo
for key in raw1 app1 load1 raw10 app10 shape shape_notify nonotify idem fresh; do
  if [[ -n "${results[$key]:-}" ]]; then
    printf '  %-9s [%s ]\n' "$key" "${results[$key]}"
  fi
done
# Each round's ratio compares runs seconds apart, so it is less exposed to a busy machine's
# swings than the ratio of the medians; the verdict uses the median of these.
ratios1="$(pair_ratios "${results[app1]}" "${results[raw1]}")"
ratios10="$(pair_ratios "${results[app10]}" "${results[raw10]}")"
ratiosl="$(pair_ratios "${results[load1]}" "${results[raw1]}")"
printf '  ratio app1/raw1   [%s ]  median %s\n' "$ratios1" "$(median "$ratios1")"
printf '  ratio load1/raw1  [%s ]  median %s\n' "$ratiosl" "$(median "$ratiosl")"
printf '  ratio app10/raw10 [%s ]  median %s\n' "$ratios10" "$(median "$ratios10")"
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
verdict="$(median "$ratios1")"
if awk -v r="$verdict" 'BEGIN { exit !(r >= 0.5) }'; then
  echo "budget: append path / raw INSERT = $verdict (median of the rounds' ratios) >= 0.5: MET"
else
  echo "budget: append path / raw INSERT = $verdict (median of the rounds' ratios) < 0.5: NOT MET (see BENCHMARKS.md, Findings)"
fi
