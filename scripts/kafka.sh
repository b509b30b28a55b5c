#!/usr/bin/env bash
# scripts/kafka.sh — a private single-node Apache Kafka (KRaft) for Agora's tests and development.
#
# Usage: scripts/kafka.sh start|stop|restart|status|bootstrap|sasl|proxied|topics|reset
#
#   start      download the Kafka jars on first use (Maven Central, cached outside the repo),
#              format the storage once, start the broker (broker+controller in one JVM) and wait
#              until it accepts connections and serves metadata. A no-op when already running.
#   stop       graceful shutdown (SIGTERM; SIGKILL after a deadline), waits for the exit.
#              Data is kept: a later start resumes with every topic and committed offset.
#   status     exit 0 when running and serving metadata, 3 otherwise.
#   bootstrap  print the bootstrap servers (127.0.0.1:59092).
#   sasl       print the SASL_SSL listener's settings as shell assignments: its bootstrap
#              servers (127.0.0.1:59094; SASL/PLAIN over TLS, the server certificate from
#              scripts/tls.sh), the user, the password and the CA file.
#   proxied    print the listener for a fault proxy: the address it listens on
#              (127.0.0.1:59095) and the one it advertises (127.0.0.1:59096), where a TCP proxy
#              to the first must listen; clients bootstrapping there then send all their traffic
#              through the proxy (e2e/tests/faults_kafka_network.rs puts toxiproxy there).
#   topics     list the broker's topics.
#   reset      stop and delete the broker's data.
#
# Environment: AGORA_STATE_DIR (default ~/.cache/agora; state in kafka-test/ there: data,
# logs, pid file, generated configs), AGORA_CACHE_DIR (default ~/.cache/agora; jars in
# kafka-<version>/libs), AGORA_KAFKA_VERSION (default below), AGORA_KAFKA_PORT (59092),
# AGORA_KAFKA_CONTROLLER_PORT (59093), AGORA_KAFKA_START_TIMEOUT (seconds, 90),
# AGORA_KAFKA_STOP_TIMEOUT (seconds before SIGKILL, 60), AGORA_KAFKA_HEAP_OPTS (-Xms256m -Xmx1g),
# AGORA_KAFKA_SASL_PORT (59094), AGORA_KAFKA_PROXIED_PORT (59095),
# AGORA_KAFKA_PROXY_PORT (59096).
#
# Needs Java 17+ and Maven (installed from Debian when missing).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

KAFKA_VERSION="${AGORA_KAFKA_VERSION:-4.4.0}"
KAFKA_HOST=127.0.0.1
KAFKA_PORT="${AGORA_KAFKA_PORT:-59092}"
CONTROLLER_PORT="${AGORA_KAFKA_CONTROLLER_PORT:-59093}"
BOOTSTRAP="$KAFKA_HOST:$KAFKA_PORT"
SASL_PORT="${AGORA_KAFKA_SASL_PORT:-59094}"
SASL_BOOTSTRAP="$KAFKA_HOST:$SASL_PORT"
# A plaintext listener that advertises a proxy's address instead of its own.
PROXIED_PORT="${AGORA_KAFKA_PROXIED_PORT:-59095}"
PROXY_PORT="${AGORA_KAFKA_PROXY_PORT:-59096}"
# The SASL_SSL listener's one user (a test credential: this broker listens on loopback only).
SASL_USER=agora
SASL_PASSWORD=agora-test-sasl-password
START_TIMEOUT="${AGORA_KAFKA_START_TIMEOUT:-90}"
STOP_TIMEOUT="${AGORA_KAFKA_STOP_TIMEOUT:-60}"
HEAP_OPTS="${AGORA_KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}"

KAFKA_CACHE="$AGORA_CACHE_DIR/kafka-$KAFKA_VERSION"
KAFKA_LIBS="$KAFKA_CACHE/libs"
STATE="$AGORA_STATE_DIR/kafka-test"
DATA_DIR="$STATE/data"
LOG_DIR="$STATE/logs"
PID_FILE="$STATE/kafka.pid"
SERVER_PROPS="$STATE/server.properties"
LOG4J_SERVER="$STATE/log4j2.properties"
LOG4J_TOOLS="$STATE/log4j2-tools.properties"
FORMAT_INFO="$STATE/formatted-with"
LOCK="$AGORA_STATE_DIR/locks/kafka.lock"
PROBE_SRC="$REPO_ROOT/scripts/lib/KafkaProbe.java"

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
  exit 2
}

# --- prerequisites ---------------------------------------------------------------------------

java_major() {
  java -version 2>&1 | sed -n 's/.*version "\([0-9]*\)[."].*/\1/p' | head -n 1
}

ensure_java_and_maven() {
  local pkgs=()
  if ! command -v java >/dev/null 2>&1 || ! command -v javac >/dev/null 2>&1 ||
    [[ "$(java_major)" -lt 17 ]]; then
    pkgs+=(openjdk-17-jdk-headless)
  fi
  command -v mvn >/dev/null 2>&1 || pkgs+=(maven)
  if ((${#pkgs[@]})); then
    info "installing ${pkgs[*]}"
    apt_install "${pkgs[@]}"
  fi
  [[ "$(java_major)" -ge 17 ]] || die "Kafka $KAFKA_VERSION needs Java 17+, found: $(java -version 2>&1 | head -n 1)"
}

# mvn_quiet DIR ARGS... — run Maven in DIR; its output goes to DIR/mvn.log, shown on failure.
mvn_quiet() {
  local dir="$1"
  shift
  if ! (cd "$dir" && mvn -B -q -Dstyle.color=never "$@") >>"$dir/mvn.log" 2>&1; then
    sed 's/\x1b\[[0-9;]*m//g' "$dir/mvn.log" | tail -n 40 >&2
    return 1
  fi
}

# Fetch org.apache.kafka:kafka_2.13 and its runtime dependencies from Maven Central into
# $KAFKA_LIBS (once; the directory appears atomically when complete).
download_kafka() {
  [[ -f "$KAFKA_LIBS/.complete" ]] && return 0
  mkdir -p "$AGORA_CACHE_DIR"
  local tmp started=$SECONDS
  tmp="$(mktemp -d "$AGORA_CACHE_DIR/.kafka-$KAFKA_VERSION.XXXXXX")"
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" EXIT
  info "downloading Kafka $KAFKA_VERSION (kafka_2.13 + runtime dependencies) from Maven Central"
  cat >"$tmp/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.agora.local</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
  mvn_quiet "$tmp" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp/libs" ||
    die "Maven could not fetch org.apache.kafka:kafka_2.13:$KAFKA_VERSION (is Maven Central reachable? does that version exist?)"

  # kafka_2.13 does not pull an SLF4J binding (the distribution adds one); without it the
  # broker logs nothing. Add the Log4j 2 binding matching the bundled log4j-core and slf4j-api.
  local log4j slf4j binding
  log4j="$(find "$tmp/libs" -name 'log4j-core-*.jar' -printf '%f\n' | sed 's/^log4j-core-\(.*\)\.jar$/\1/' | head -n 1)"
  slf4j="$(find "$tmp/libs" -name 'slf4j-api-*.jar' -printf '%f\n' | sed 's/^slf4j-api-\([0-9]*\).*/\1/' | head -n 1)"
  [[ -n "$log4j" ]] || die "no log4j-core among Kafka's dependencies; cannot configure logging"
  if [[ "$slf4j" == 1 ]]; then binding="log4j-slf4j-impl"; else binding="log4j-slf4j2-impl"; fi
  if ! compgen -G "$tmp/libs/log4j-slf4j*-impl-*.jar" >/dev/null; then
    mvn_quiet "$tmp" dependency:copy -Dartifact="org.apache.logging.log4j:$binding:$log4j" \
      -DoutputDirectory="$tmp/libs" ||
      die "Maven could not fetch org.apache.logging.log4j:$binding:$log4j"
  fi

  compgen -G "$tmp/libs/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null ||
    die "kafka_2.13-$KAFKA_VERSION.jar missing after download"
  touch "$tmp/libs/.complete"
  mkdir -p "$KAFKA_CACHE"
  rm -rf "$KAFKA_LIBS"
  mv "$tmp/libs" "$KAFKA_LIBS"
  rm -rf "$tmp"
  trap - EXIT
  info "Kafka $KAFKA_VERSION: $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars in $KAFKA_LIBS ($((SECONDS - started)) s)"
}

# Compile the readiness probe once per source version.
PROBE_DIR=""
build_probe() {
  local sum
  sum="$(sha256sum "$PROBE_SRC" | cut -c1-12)"
  PROBE_DIR="$KAFKA_CACHE/probe-$sum"
  [[ -f "$PROBE_DIR/KafkaProbe.class" ]] && return 0
  mkdir -p "$PROBE_DIR.tmp"
  javac -nowarn -d "$PROBE_DIR.tmp" -cp "$KAFKA_LIBS/*" "$PROBE_SRC" >&2 ||
    die "compiling $PROBE_SRC failed"
  rm -rf "$PROBE_DIR"
  mv "$PROBE_DIR.tmp" "$PROBE_DIR"
}

# --- configuration ---------------------------------------------------------------------------

write_configs() {
  mkdir -p "$STATE" "$DATA_DIR" "$LOG_DIR"
  local tls_dir
  tls_dir="$("$REPO_ROOT/scripts/tls.sh" dir)"
  cat >"$SERVER_PROPS" <<EOF
# Managed by scripts/kafka.sh: rewritten on every start; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$KAFKA_HOST:$CONTROLLER_PORT
listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,SASL_SSL://$KAFKA_HOST:$SASL_PORT,PROXIED://$KAFKA_HOST:$PROXIED_PORT,CONTROLLER://$KAFKA_HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,SASL_SSL://$KAFKA_HOST:$SASL_PORT,PROXIED://$KAFKA_HOST:$PROXY_PORT,CONTROLLER://$KAFKA_HOST:$CONTROLLER_PORT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,PROXIED:PLAINTEXT
# SASL/PLAIN over TLS, as managed Kafka services offer it (scripts/tls.sh's certificate).
listener.name.sasl_ssl.sasl.enabled.mechanisms=PLAIN
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$SASL_USER="$SASL_PASSWORD";
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$tls_dir/server.pem
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$DATA_DIR

# Single node: every internal topic has one replica.
num.partitions=4
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=8
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1

auto.create.topics.enable=true
delete.topic.enable=true
group.initial.rebalance.delay.ms=0
log.retention.hours=168
EOF

  cat >"$LOG4J_SERVER" <<EOF
# Managed by scripts/kafka.sh. Broker logs go to files in $LOG_DIR.
status = warn
name = AgoraKafkaBroker
appender.server.type = RollingFile
appender.server.name = server
appender.server.fileName = $LOG_DIR/server.log
appender.server.filePattern = $LOG_DIR/server.log.%i
appender.server.layout.type = PatternLayout
appender.server.layout.pattern = [%d] %p %m (%c)%n
appender.server.policies.type = Policies
appender.server.policies.size.type = SizeBasedTriggeringPolicy
appender.server.policies.size.size = 50MB
appender.server.strategy.type = DefaultRolloverStrategy
appender.server.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.server.ref = server
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
EOF

  cat >"$LOG4J_TOOLS" <<EOF
# Managed by scripts/kafka.sh. Command-line tools (format, probe): errors only, on stderr.
status = error
name = AgoraKafkaTools
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = ERROR
rootLogger.appenderRef.console.ref = console
EOF
}

# Run a Kafka tool class in a short-lived, quiet JVM.
kafka_tool() {
  java -Xmx256m -XX:TieredStopAtLevel=1 -Xshare:auto \
    -Dlog4j2.configurationFile="$LOG4J_TOOLS" -cp "$KAFKA_LIBS/*" "$@"
}

# Format the storage once (KRaft, standalone controller quorum).
format_storage() {
  local endpoints="$KAFKA_HOST:$KAFKA_PORT/$CONTROLLER_PORT"
  if [[ -f "$DATA_DIR/meta.properties" ]]; then
    local was
    was="$(cat "$FORMAT_INFO" 2>/dev/null || true)"
    if [[ -n "$was" && "$was" != "$endpoints" ]]; then
      die "the data in $DATA_DIR was formatted for ports $was, not $endpoints; run '$0 reset' (deletes topics) or use the old ports"
    fi
    return 0
  fi
  local cluster_id
  cluster_id="$(kafka_tool kafka.tools.StorageTool random-uuid | tail -n 1)"
  [[ -n "$cluster_id" ]] || die "kafka.tools.StorageTool random-uuid printed nothing"
  info "formatting $DATA_DIR (cluster id $cluster_id)"
  rm -rf "$DATA_DIR"
  mkdir -p "$DATA_DIR"
  kafka_tool kafka.tools.StorageTool format -t "$cluster_id" -c "$SERVER_PROPS" --standalone \
    >"$LOG_DIR/format.log" 2>&1 || {
    cat "$LOG_DIR/format.log" >&2
    rm -rf "$DATA_DIR"
    die "kafka.tools.StorageTool format failed"
  }
  printf '%s\n' "$endpoints" >"$FORMAT_INFO"
}

# --- process control -------------------------------------------------------------------------

# The broker's pid when our pid file names a live Kafka process for this state dir.
broker_pid() {
  local pid
  pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r "/proc/$pid/cmdline" ]]; then
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "kafka.Kafka $SERVER_PROPS" || return 1
  fi
  printf '%s\n' "$pid"
}

broker_alive() { broker_pid >/dev/null; }

# Wait (up to $1 s) until the broker serves metadata; fails early if the process dies.
wait_ready() {
  local deadline=$((SECONDS + $1))
  while ! port_open "$KAFKA_HOST" "$KAFKA_PORT"; do
    broker_pid >/dev/null || {
      tail -n 40 "$LOG_DIR/server.log" "$LOG_DIR/kafka.out" >&2 2>/dev/null || true
      die "the broker exited during startup; see $LOG_DIR/server.log and $LOG_DIR/kafka.out"
    }
    ((SECONDS < deadline)) || die "the broker did not open $BOOTSTRAP within $1 s; see $LOG_DIR/server.log"
    sleep 0.25
  done
  local left=$((deadline - SECONDS))
  ((left > 5)) || left=5
  build_probe
  java -Xmx128m -XX:TieredStopAtLevel=1 -Dlog4j2.configurationFile="$LOG4J_TOOLS" \
    -cp "$PROBE_DIR:$KAFKA_LIBS/*" KafkaProbe ready "$BOOTSTRAP" "$left" >&2 || {
    tail -n 40 "$LOG_DIR/server.log" >&2 2>/dev/null || true
    die "the broker accepts connections on $BOOTSTRAP but serves no metadata; see $LOG_DIR/server.log"
  }
}

do_start() {
  ensure_java_and_maven
  download_kafka
  write_configs
  if broker_pid >/dev/null; then
    wait_ready "$START_TIMEOUT"
    if port_open "$KAFKA_HOST" "$PROXIED_PORT"; then
      info "already running (pid $(broker_pid)): $BOOTSTRAP"
      return 0
    fi
    info "the running broker predates a listener of this script; restarting it"
    do_stop
  fi
  rm -f "$PID_FILE"
  if port_open "$KAFKA_HOST" "$KAFKA_PORT" || port_open "$KAFKA_HOST" "$CONTROLLER_PORT"; then
    die "port $KAFKA_PORT or $CONTROLLER_PORT on $KAFKA_HOST is taken by another process; set AGORA_KAFKA_PORT/AGORA_KAFKA_CONTROLLER_PORT or free it"
  fi
  format_storage

  info "starting Kafka $KAFKA_VERSION (KRaft, single node) on $BOOTSTRAP, controller :$CONTROLLER_PORT; logs in $LOG_DIR"
  local started=$SECONDS
  # shellcheck disable=SC2086,SC2016 # HEAP_OPTS is a list of JVM flags; $$ is for the inner bash
  (
    close_extra_fds
    cd "$STATE"
    exec setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
      java $HEAP_OPTS -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
      -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
      -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
      -Dkafka.logs.dir="$LOG_DIR" -Dlog4j2.configurationFile="$LOG4J_SERVER" \
      -cp "$KAFKA_LIBS/*" kafka.Kafka "$SERVER_PROPS" \
      </dev/null >>"$LOG_DIR/kafka.out" 2>&1
  ) &
  if ! wait_until 10 "the broker's JVM" broker_alive; then
    tail -n 40 "$LOG_DIR/kafka.out" >&2 2>/dev/null || true
    die "the broker did not start; see $LOG_DIR/kafka.out"
  fi
  wait_ready "$START_TIMEOUT"
  info "running (pid $(broker_pid), ready in $((SECONDS - started)) s): $BOOTSTRAP"
}

do_stop() {
  local pid
  if ! pid="$(broker_pid)"; then
    rm -f "$PID_FILE"
    info "not running"
    return 0
  fi
  info "stopping Kafka (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_until "$STOP_TIMEOUT" "Kafka (pid $pid) to exit" bash -c "! kill -0 $pid 2>/dev/null"; then
    warn "Kafka ignored SIGTERM for ${STOP_TIMEOUT}s: sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_until 30 "Kafka (pid $pid) to die" bash -c "! kill -0 $pid 2>/dev/null" ||
      die "Kafka (pid $pid) survived SIGKILL"
  fi
  rm -f "$PID_FILE"
  info "stopped"
}

do_status() {
  local pid
  if pid="$(broker_pid)" && [[ -f "$KAFKA_LIBS/.complete" ]]; then
    build_probe
    if java -Xmx128m -XX:TieredStopAtLevel=1 -Dlog4j2.configurationFile="$LOG4J_TOOLS" \
      -cp "$PROBE_DIR:$KAFKA_LIBS/*" KafkaProbe ready "$BOOTSTRAP" 10 >/dev/null; then
      echo "kafka: running (pid $pid), bootstrap $BOOTSTRAP, version $KAFKA_VERSION (state $STATE)"
      return 0
    fi
    echo "kafka: process $pid alive but not serving metadata on $BOOTSTRAP (see $LOG_DIR/server.log)"
    return 3
  fi
  echo "kafka: stopped (state $STATE)"
  return 3
}

do_topics() {
  broker_pid >/dev/null || die "Kafka is not running; '$0 start'"
  build_probe
  java -Xmx128m -XX:TieredStopAtLevel=1 -Dlog4j2.configurationFile="$LOG4J_TOOLS" \
    -cp "$PROBE_DIR:$KAFKA_LIBS/*" KafkaProbe topics "$BOOTSTRAP" 20
}

do_reset() {
  do_stop
  info "deleting $STATE"
  rm -rf "$STATE"
}

cmd="${1:-}"
case "$cmd" in
  start) with_lock "$LOCK" do_start ;;
  stop) with_lock "$LOCK" do_stop ;;
  restart) with_lock "$LOCK" do_stop && with_lock "$LOCK" do_start ;;
  status) do_status ;;
  bootstrap) echo "$BOOTSTRAP" ;;
  sasl)
    printf 'bootstrap=%s\nuser=%s\npassword=%s\nca=%s\n' "$SASL_BOOTSTRAP" "$SASL_USER" \
      "$SASL_PASSWORD" "$("$REPO_ROOT/scripts/tls.sh" dir)/ca.crt"
    ;;
  proxied) printf '%s %s\n' "$KAFKA_HOST:$PROXIED_PORT" "$KAFKA_HOST:$PROXY_PORT" ;;
  topics) do_topics ;;
  reset) with_lock "$LOCK" do_reset ;;
  *) usage ;;
esac
