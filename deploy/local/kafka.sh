#!/usr/bin/env bash
# A real single-node Apache Kafka broker (KRaft: broker and controller in one JVM)
# on 127.0.0.1, for development and the integration tests.
#
#   deploy/local/kafka.sh start    start (if not running) and wait until it answers
#   deploy/local/kafka.sh stop     stop and wait for the process to exit
#   deploy/local/kafka.sh status   exit 0 if running and answering, 1 otherwise
#   deploy/local/kafka.sh deps     only fetch the broker's jars
#
# Settings, from the environment:
#   KAFKA_PORT             client listener             (default 9092)
#   KAFKA_CONTROLLER_PORT  KRaft controller listener   (default 9093)
#   KAFKA_STATE_DIR        data, logs, pid file        (default deploy/local/.state/kafka-$KAFKA_PORT)
#   KAFKA_LIBS_DIR         the broker's jars           (default deploy/local/.cache/kafka-libs)
#   KAFKA_HEAP             JVM -Xmx                    (default 512m)
#   KAFKA_START_TIMEOUT    seconds to wait for an answer (default 120)
#   KAFKA_STOP_TIMEOUT     seconds between SIGTERM and SIGKILL (default 30)
#   KAFKA_SECURE           1: secure mode, see below   (default 0)
#   KAFKA_SASL_PORT        SASL_SSL listener, secure mode (default KAFKA_PORT + 2)
#   KAFKA_EVENTS_TOPIC, KAFKA_DLQ_TOPIC, KAFKA_INGEST_GROUP
#                          what the ACLs name, secure mode (default runstream.events,
#                          <events topic>.dlq, runstream-ingest)
#   RUNSTREAM_PYTHON       a python with kafka-python, for the readiness probe
#                          (default .venv/bin/python)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"

KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
require_port KAFKA_PORT "$KAFKA_PORT"
require_port KAFKA_CONTROLLER_PORT "$KAFKA_CONTROLLER_PORT"
[[ "$KAFKA_PORT" != "$KAFKA_CONTROLLER_PORT" ]] || die "KAFKA_PORT and KAFKA_CONTROLLER_PORT must differ"
KAFKA_STATE_DIR="${KAFKA_STATE_DIR:-$HERE/.state/kafka-$KAFKA_PORT}"
KAFKA_LIBS_DIR="${KAFKA_LIBS_DIR:-$HERE/.cache/kafka-libs}"
KAFKA_HEAP="${KAFKA_HEAP:-512m}"
[[ "$KAFKA_HEAP" =~ ^[0-9]+[kmgKMG]?$ ]] || die "KAFKA_HEAP must look like 512m, got '$KAFKA_HEAP'"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
require_seconds KAFKA_START_TIMEOUT "$KAFKA_START_TIMEOUT"
require_seconds KAFKA_STOP_TIMEOUT "$KAFKA_STOP_TIMEOUT"
RUNSTREAM_PYTHON="${RUNSTREAM_PYTHON:-$ROOT/.venv/bin/python}"

# Secure mode adds, next to the PLAINTEXT listener, a SASL_SSL listener (TLS with a
# certificate made at start by a local CA, SASL/SCRAM-SHA-512) and turns on KRaft's
# StandardAuthorizer. The principals and their ACLs are in kafka/access.py. The
# PLAINTEXT listener stays, on 127.0.0.1 only, as the local admin: its principal
# (User:ANONYMOUS) is the super user, so plaintext commands keep working and this
# script can create credentials, topics and ACLs. The controller listener is
# loopback too. Client material, all under the state folder (never committed):
#   tls/ca.pem                       the CA clients trust (ssl_cafile)
#   secrets/<principal>.password     one 0600 file per principal
KAFKA_SECURE="${KAFKA_SECURE:-0}"
[[ "$KAFKA_SECURE" == 0 || "$KAFKA_SECURE" == 1 ]] || die "KAFKA_SECURE must be 0 or 1, got '$KAFKA_SECURE'"
KAFKA_SASL_PORT="${KAFKA_SASL_PORT:-$((KAFKA_PORT + 2))}"
KAFKA_EVENTS_TOPIC="${KAFKA_EVENTS_TOPIC:-runstream.events}"
KAFKA_DLQ_TOPIC="${KAFKA_DLQ_TOPIC:-$KAFKA_EVENTS_TOPIC.dlq}"
KAFKA_INGEST_GROUP="${KAFKA_INGEST_GROUP:-runstream-ingest}"
if [[ "$KAFKA_SECURE" == 1 ]]; then
    require_port KAFKA_SASL_PORT "$KAFKA_SASL_PORT"
    [[ "$KAFKA_SASL_PORT" != "$KAFKA_PORT" && "$KAFKA_SASL_PORT" != "$KAFKA_CONTROLLER_PORT" ]] \
        || die "KAFKA_SASL_PORT must differ from KAFKA_PORT and KAFKA_CONTROLLER_PORT"
fi

NAME="kafka[127.0.0.1:$KAFKA_PORT]"
BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
PID_FILE="$KAFKA_STATE_DIR/kafka.pid"
PROPERTIES="$KAFKA_STATE_DIR/server.properties"
DATA_DIR="$KAFKA_STATE_DIR/data"
LOG_DIR="$KAFKA_STATE_DIR/logs"
TLS_DIR="$KAFKA_STATE_DIR/tls"
SECRETS_DIR="$KAFKA_STATE_DIR/secrets"
PRINCIPALS=(runstream-producer runstream-ingest runstream-exporter)
COMPLETE_MARK=".complete"

# The jars, copied from Maven Central by the pom beside this script. Fetched into
# a temporary folder and moved into place, under a lock, so that two instances
# starting at once neither download twice nor see half a folder.
fetch_jars() {
    [[ -f "$KAFKA_LIBS_DIR/$COMPLETE_MARK" ]] && return 0
    command -v mvn >/dev/null || die "kafka: mvn (Maven) not found; run 'make stack-deps'"
    mkdir -p "$(dirname "$KAFKA_LIBS_DIR")"
    exec 9>"$KAFKA_LIBS_DIR.lock"
    flock 9
    if [[ ! -f "$KAFKA_LIBS_DIR/$COMPLETE_MARK" ]]; then
        local tmp started
        tmp="$(mktemp -d "$KAFKA_LIBS_DIR.tmp.XXXXXX")"
        started="$SECONDS"
        echo "kafka: fetching the broker's jars from Maven Central into $KAFKA_LIBS_DIR"
        if ! mvn -q -B -Dstyle.color=never -f "$HERE/kafka/pom.xml" dependency:copy-dependencies \
                -DoutputDirectory="$tmp" -DincludeScope=runtime >"$tmp.mvn.log" 2>&1; then
            show_log_tail "$tmp.mvn.log"
            rm -rf "$tmp" "$tmp.mvn.log"
            die "kafka: mvn could not fetch the broker's jars"
        fi
        rm -f "$tmp.mvn.log"
        touch "$tmp/$COMPLETE_MARK"
        rm -rf "$KAFKA_LIBS_DIR"
        mv "$tmp" "$KAFKA_LIBS_DIR"
        echo "kafka: jars ready in $((SECONDS - started))s"
    fi
    flock -u 9
    exec 9>&-
}

write_properties() {
    local listeners="PLAINTEXT://127.0.0.1:$KAFKA_PORT" protocols="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    if [[ "$KAFKA_SECURE" == 1 ]]; then
        listeners="$listeners,SASL_SSL://127.0.0.1:$KAFKA_SASL_PORT"
        protocols="$protocols,SASL_SSL:SASL_SSL"
    fi
    cat >"$PROPERTIES" <<EOF
# Generated by deploy/local/kafka.sh on every start; edits are overwritten.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=$listeners,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=$listeners
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$protocols
log.dirs=$DATA_DIR
# Topics are created explicitly, by runstream or by the tests.
auto.create.topics.enable=false
num.partitions=1
# One broker: internal topics can have one replica only.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Consumers in a new group start at once instead of after the default 3 s.
group.initial.rebalance.delay.ms=0
EOF
    if [[ "$KAFKA_SECURE" == 1 ]]; then
        cat >>"$PROPERTIES" <<EOF
# Secure mode: SASL_SSL with SCRAM-SHA-512, ACLs enforced by the KRaft authorizer.
# Only the loopback PLAINTEXT and CONTROLLER listeners map to User:ANONYMOUS.
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:ANONYMOUS
allow.everyone.if.no.acl.found=false
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PEM
ssl.keystore.location=$TLS_DIR/broker.keystore.pem
ssl.client.auth=none
ssl.enabled.protocols=TLSv1.3,TLSv1.2
EOF
    fi
}

# Secure mode: the CA, the broker's certificate (a PEM keystore: key, then
# certificate) and one password per principal; all kept across restarts.
prepare_secure() {
    local principal
    ensure_tls "$TLS_DIR" broker
    (umask 077 && cat "$TLS_DIR/broker.key" "$TLS_DIR/broker.crt" >"$TLS_DIR/broker.keystore.pem")
    for principal in "${PRINCIPALS[@]}"; do
        ensure_secret "$SECRETS_DIR/$principal.password"
    done
}

# Secure mode, once the broker answers: credentials, the topics the ACLs name and
# the ACLs (kafka/access.py), then a real SASL_SSL request as the exporter.
grant_access() {
    local deadline=$((SECONDS + 30)) last=""
    "$RUNSTREAM_PYTHON" "$HERE/kafka/access.py" --admin "$BOOTSTRAP" --secrets "$SECRETS_DIR" \
        --events-topic "$KAFKA_EVENTS_TOPIC" --dlq-topic "$KAFKA_DLQ_TOPIC" --group "$KAFKA_INGEST_GROUP" \
        >"$LOG_DIR/access.out" 2>&1 \
        || { show_log_tail "$LOG_DIR/access.out"; die "kafka: setting credentials and ACLs failed; logs in $LOG_DIR"; }
    until last="$(probe_secure 2>&1)"; do
        (( SECONDS < deadline )) || die "kafka: the SASL_SSL listener on 127.0.0.1:$KAFKA_SASL_PORT does not answer (last: ${last##*$'\n'}); logs in $LOG_DIR"
        sleep 0.5
    done
}

# Real requests (lib.sh's kafka_cluster_probe): the broker must describe the cluster
# with at least one unfenced broker and find the group coordinator. Prints the
# broker count.
probe() {
    local ids
    ids="$(kafka_cluster_probe "$RUNSTREAM_PYTHON" "$BOOTSTRAP")" || return 1
    wc -w <<<"$ids"
}

# Secure mode: the exporter principal describes the events topic over SASL_SSL,
# trusting only tls/ca.pem: a TLS handshake, a SCRAM login and an ACL check in one.
probe_secure() {
    PROBE_BOOTSTRAP="127.0.0.1:$KAFKA_SASL_PORT" PROBE_CA="$TLS_DIR/ca.pem" PROBE_TOPIC="$KAFKA_EVENTS_TOPIC" \
        PROBE_PASSWORD_FILE="$SECRETS_DIR/runstream-exporter.password" "$RUNSTREAM_PYTHON" - <<'PY'
import logging
import os
import sys

logging.getLogger("kafka").addHandler(logging.NullHandler())
logging.getLogger("kafka").propagate = False

from kafka.admin import KafkaAdminClient

try:
    with open(os.environ["PROBE_PASSWORD_FILE"], encoding="utf-8") as f:
        password = f.read().strip()
    admin = KafkaAdminClient(
        bootstrap_servers=os.environ["PROBE_BOOTSTRAP"],
        client_id="runstream-local-probe",
        security_protocol="SASL_SSL",
        ssl_cafile=os.environ["PROBE_CA"],
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username="runstream-exporter",
        sasl_plain_password=password,
        request_timeout_ms=5000,
        bootstrap_timeout_ms=5000,
    )
    try:
        [topic] = admin.describe_topics([os.environ["PROBE_TOPIC"]])
    finally:
        admin.close()
except Exception as exc:  # any failure means "not answering yet"
    print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
    sys.exit(1)
if topic.get("error_code"):
    print(f"describe_topics answered error code {topic['error_code']}", file=sys.stderr)
    sys.exit(1)
PY
}

require_probe_python() {
    [[ -x "$RUNSTREAM_PYTHON" ]] || die "kafka: $RUNSTREAM_PYTHON not found; run 'make install' (or set RUNSTREAM_PYTHON to a python with kafka-python)"
}

# wait_ready PID: poll until the broker answers, the process dies, or time runs out.
wait_ready() {
    local pid="$1" deadline=$((SECONDS + KAFKA_START_TIMEOUT)) last=""
    while true; do
        if last="$(probe 2>&1)"; then
            return 0
        fi
        if ! pid_alive "$pid"; then
            show_log_tail "$LOG_DIR/kafka.out"
            show_log_tail "$LOG_DIR/server.log"
            rm -f "$PID_FILE"
            die "kafka: the broker (pid $pid) exited during start-up; logs in $LOG_DIR"
        fi
        if (( SECONDS >= deadline )); then
            show_log_tail "$LOG_DIR/server.log"
            die "kafka: timed out after ${KAFKA_START_TIMEOUT}s waiting for the broker on $BOOTSTRAP to answer (last: ${last##*$'\n'}); pid $pid is still running, logs in $LOG_DIR"
        fi
        sleep 0.5
    done
}

start() {
    local pid
    require_probe_python
    if pid="$(running_pid "$PID_FILE" "$PROPERTIES")"; then
        wait_ready "$pid"
        if [[ "$KAFKA_SECURE" == 1 ]]; then
            grant_access
        fi
        echo "$NAME: already running (pid $pid)"
        return 0
    fi
    rm -f "$PID_FILE"
    local ports=("$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT")
    [[ "$KAFKA_SECURE" == 1 ]] && ports+=("$KAFKA_SASL_PORT")
    for port in "${ports[@]}"; do
        if port_open "$port"; then
            die "kafka: port $port on 127.0.0.1 is taken by another process; stop it or choose other ports (KAFKA_PORT, KAFKA_CONTROLLER_PORT, KAFKA_SASL_PORT)"
        fi
    done
    command -v java >/dev/null || die "kafka: java not found; run 'make stack-deps'"
    fetch_jars

    local started="$SECONDS"
    mkdir -p "$DATA_DIR" "$LOG_DIR"
    if [[ "$KAFKA_SECURE" == 1 ]]; then
        prepare_secure
    fi
    write_properties
    if [[ ! -f "$DATA_DIR/meta.properties" ]]; then
        local cluster_id
        cluster_id="$(java -cp "$KAFKA_LIBS_DIR/*" kafka.tools.StorageTool random-uuid)"
        java -cp "$KAFKA_LIBS_DIR/*" kafka.tools.StorageTool format \
            -t "$cluster_id" -c "$PROPERTIES" >"$LOG_DIR/format.out" 2>&1 \
            || { show_log_tail "$LOG_DIR/format.out"; die "kafka: formatting $DATA_DIR failed"; }
    fi

    # setsid: the broker outlives this script and is not hit by a Ctrl-C meant for make.
    setsid java "-Xmx$KAFKA_HEAP" "-Xms$KAFKA_HEAP" -Djava.awt.headless=true \
        "-Dlog4j2.configurationFile=$HERE/kafka/log4j2.xml" "-Dkafka.logs.dir=$LOG_DIR" \
        -cp "$KAFKA_LIBS_DIR/*" kafka.Kafka "$PROPERTIES" \
        </dev/null >"$LOG_DIR/kafka.out" 2>&1 &
    pid=$!
    echo "$pid" >"$PID_FILE"
    wait_ready "$pid"
    if [[ "$KAFKA_SECURE" == 1 ]]; then
        grant_access
        echo "$NAME: started (pid $pid) in $((SECONDS - started))s; SASL_SSL (SCRAM-SHA-512) on 127.0.0.1:$KAFKA_SASL_PORT, CA $TLS_DIR/ca.pem, passwords in $SECRETS_DIR; state in $KAFKA_STATE_DIR"
    else
        echo "$NAME: started (pid $pid) in $((SECONDS - started))s; state in $KAFKA_STATE_DIR"
    fi
}

stop() {
    stop_service "$NAME" "$PID_FILE" "$PROPERTIES" "$KAFKA_STOP_TIMEOUT"
}

status() {
    local pid
    if ! pid="$(running_pid "$PID_FILE" "$PROPERTIES")"; then
        echo "$NAME: not running"
        return 1
    fi
    require_probe_python
    if probe >/dev/null 2>&1 && { [[ "$KAFKA_SECURE" == 0 ]] || probe_secure >/dev/null 2>&1; }; then
        echo "$NAME: running (pid $pid), answering; state in $KAFKA_STATE_DIR"
        return 0
    fi
    echo "$NAME: running (pid $pid) but not answering; logs in $LOG_DIR"
    return 1
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    deps) fetch_jars ;;
    *) die "usage: $0 start|stop|status|deps" ;;
esac
