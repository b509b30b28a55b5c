#!/usr/bin/env bash
# scripts/services.sh — start/stop every service the tests need: PostgreSQL, Kafka, an
# OpenID provider (Ory Hydra) and a payment provider (localstripe).
#
# Usage: scripts/services.sh start|stop|restart|status|env
#
#   start    scripts/postgres.sh start, scripts/kafka.sh start, scripts/hydra.sh start,
#            scripts/payments.sh start (all idempotent).
#   stop     stop them (PostgreSQL's and Kafka's data is kept; Hydra's and localstripe's is
#            in memory).
#   status   exit 0 only when all run.
#   env      print the variables the tests read, e.g. eval "$(scripts/services.sh env)".
#
# See scripts/postgres.sh, scripts/kafka.sh, scripts/hydra.sh and scripts/payments.sh for
# ports, state dir and environment.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

print_env() {
  echo "export AGORA_TEST_DATABASE_URL=$("$here/postgres.sh" url)"
  echo "export AGORA_TEST_KAFKA_BROKERS=$("$here/kafka.sh" bootstrap)"
  "$here/hydra.sh" env
  "$here/payments.sh" env
}

case "${1:-}" in
  start)
    "$here/postgres.sh" start
    "$here/kafka.sh" start
    "$here/hydra.sh" start
    "$here/payments.sh" start
    print_env >&2
    ;;
  stop)
    rc=0
    "$here/payments.sh" stop || rc=1
    "$here/hydra.sh" stop || rc=1
    "$here/kafka.sh" stop || rc=1
    "$here/postgres.sh" stop || rc=1
    exit "$rc"
    ;;
  restart)
    "$0" stop
    "$0" start
    ;;
  status)
    rc=0
    "$here/postgres.sh" status || rc=3
    "$here/kafka.sh" status || rc=3
    "$here/hydra.sh" status || rc=3
    "$here/payments.sh" status || rc=3
    exit "$rc"
    ;;
  env) print_env ;;
  *)
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
    exit 2
    ;;
esac
