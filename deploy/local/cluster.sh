#!/usr/bin/env bash
# A local cluster on 127.0.0.1 for the fault tests and the cluster benchmarks:
# three Kafka 4.1 nodes (KRaft, each broker+controller, one static quorum), a
# standalone ZooKeeper, and four ClickHouse servers forming 2 shards x 2 replicas.
#
#   deploy/local/cluster.sh start             start what is not running; wait until all of it is ready
#   deploy/local/cluster.sh stop              stop every node (ClickHouse, then Kafka, then ZooKeeper)
#   deploy/local/cluster.sh status            one line per node; exit 0 only if the whole cluster is ready
#   deploy/local/cluster.sh env               the RUNSTREAM_KAFKA=... and RUNSTREAM_CLICKHOUSE=... lines
#   deploy/local/cluster.sh kill-node NAME    SIGKILL one node (no clean shutdown)
#   deploy/local/cluster.sh stop-node NAME    stop one node cleanly (SIGTERM)
#   deploy/local/cluster.sh start-node NAME   start one node and wait until it is back in the cluster
#   deploy/local/cluster.sh nodes             the node names, one a line
#
# Nodes: kafka-1 kafka-2 kafka-3 zookeeper clickhouse-s1r1 clickhouse-s1r2 clickhouse-s2r1 clickhouse-s2r2.
# "Ready": three unfenced brokers and a group coordinator that answers, ZooKeeper
# answering `srvr`, and SELECT 1 on all four ClickHouse servers.
#
# Ports, from CLUSTER_PORT_BASE (B, default 20000; all of them stay below 32768):
#   kafka-N          client B+N (20001..20003), controller B+100+N (20101..20103)
#   zookeeper        client B+181 (20181)
#   clickhouse-sSrR  native B+1000+10S+R (21011 21012 21021 21022), HTTP B+1100+10S+R (211SR),
#                    interserver B+1200+10S+R (212SR)
#
# Settings, from the environment:
#   CLUSTER_PORT_BASE      see above                            (default 20000)
#   CLUSTER_STATE_DIR      one folder per node                  (default deploy/local/.state/cluster)
#   CLUSTER_NAME           the ClickHouse cluster (remote_servers) name (default runstream)
#   CLUSTER_DATABASE       created on every ClickHouse server   (default runstream)
#   CLUSTER_KAFKA_HEAP     JVM -Xmx of each Kafka node          (default 384m)
#   CLUSTER_ZOOKEEPER_HEAP JVM -Xmx of ZooKeeper                (default 128m)
#   CLUSTER_START_TIMEOUT  seconds to wait for readiness        (default 180)
#   CLUSTER_STOP_TIMEOUT   seconds between SIGTERM and SIGKILL  (default 30)
#   KAFKA_LIBS_DIR, ZOOKEEPER_LIBS_DIR   the jars (default deploy/local/.cache/{kafka,zookeeper}-libs)
#   RUNSTREAM_PYTHON       a python with kafka-python, for the Kafka probe (default .venv/bin/python)
#
# The ClickHouse servers are deploy/local/clickhouse.sh instances, each with a
# config.d/ file written here beside its generated config.xml (cluster, macros,
# ZooKeeper); the Kafka nodes and ZooKeeper are started by this script.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"

CLUSTER_PORT_BASE="${CLUSTER_PORT_BASE:-20000}"
if ! [[ "$CLUSTER_PORT_BASE" =~ ^[0-9]+$ ]] || (( CLUSTER_PORT_BASE < 1024 || CLUSTER_PORT_BASE + 1222 >= 32768 )); then
    die "CLUSTER_PORT_BASE must be a number from 1024 to 31545 (every port below 32768), got '$CLUSTER_PORT_BASE'"
fi
CLUSTER_STATE_DIR="${CLUSTER_STATE_DIR:-$HERE/.state/cluster}"
CLUSTER_NAME="${CLUSTER_NAME:-runstream}"
[[ "$CLUSTER_NAME" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "CLUSTER_NAME must be a plain identifier, got '$CLUSTER_NAME'"
CLUSTER_DATABASE="${CLUSTER_DATABASE:-runstream}"
[[ "$CLUSTER_DATABASE" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "CLUSTER_DATABASE must be a plain identifier, got '$CLUSTER_DATABASE'"
CLUSTER_KAFKA_HEAP="${CLUSTER_KAFKA_HEAP:-384m}"
CLUSTER_ZOOKEEPER_HEAP="${CLUSTER_ZOOKEEPER_HEAP:-128m}"
for heap in "$CLUSTER_KAFKA_HEAP" "$CLUSTER_ZOOKEEPER_HEAP"; do
    [[ "$heap" =~ ^[0-9]+[kmgKMG]?$ ]] || die "heap sizes must look like 384m, got '$heap'"
done
CLUSTER_START_TIMEOUT="${CLUSTER_START_TIMEOUT:-180}"
CLUSTER_STOP_TIMEOUT="${CLUSTER_STOP_TIMEOUT:-30}"
require_seconds CLUSTER_START_TIMEOUT "$CLUSTER_START_TIMEOUT"
require_seconds CLUSTER_STOP_TIMEOUT "$CLUSTER_STOP_TIMEOUT"
KAFKA_LIBS_DIR="${KAFKA_LIBS_DIR:-$HERE/.cache/kafka-libs}"
ZOOKEEPER_LIBS_DIR="${ZOOKEEPER_LIBS_DIR:-$HERE/.cache/zookeeper-libs}"
RUNSTREAM_PYTHON="${RUNSTREAM_PYTHON:-$ROOT/.venv/bin/python}"

KAFKA_NODES=(kafka-1 kafka-2 kafka-3)
CLICKHOUSE_NODES=(clickhouse-s1r1 clickhouse-s1r2 clickhouse-s2r1 clickhouse-s2r2)
ALL_NODES=(zookeeper "${KAFKA_NODES[@]}" "${CLICKHOUSE_NODES[@]}")

# -- ports and names -------------------------------------------------------------------------------

kafka_id() { printf '%s' "${1#kafka-}"; }
kafka_port() { printf '%d' $((CLUSTER_PORT_BASE + $(kafka_id "$1"))); }
kafka_controller_port() { printf '%d' $((CLUSTER_PORT_BASE + 100 + $(kafka_id "$1"))); }
zookeeper_port() { printf '%d' $((CLUSTER_PORT_BASE + 181)); }
# clickhouse_port NODE OFFSET: B + OFFSET + 10*shard + replica (OFFSET 1000 native, 1100 HTTP, 1200 interserver).
clickhouse_port() {
    local sr="${1#clickhouse-}"  # s1r2
    printf '%d' $((CLUSTER_PORT_BASE + $2 + 10 * ${sr:1:1} + ${sr:3:1}))
}

kafka_bootstrap() {
    local node out=()
    for node in "${KAFKA_NODES[@]}"; do out+=("127.0.0.1:$(kafka_port "$node")"); done
    local IFS=,
    printf '%s' "${out[*]}"
}

require_node() {
    local node
    for node in "${ALL_NODES[@]}"; do [[ "$1" == "$node" ]] && return 0; done
    die "cluster: unknown node '$1'; nodes: ${ALL_NODES[*]}"
}

node_dir() { printf '%s' "$CLUSTER_STATE_DIR/$1"; }

# -- ZooKeeper -------------------------------------------------------------------------------------

zookeeper_config() { printf '%s' "$(node_dir zookeeper)/zoo.cfg"; }

zookeeper_pid() { running_pid "$(node_dir zookeeper)/zookeeper.pid" "$(zookeeper_config)"; }

zookeeper_ready() { zk_command "$(zookeeper_port)" srvr | grep -q '^Mode: standalone'; }

zookeeper_start() {
    local dir pid port
    dir="$(node_dir zookeeper)"
    port="$(zookeeper_port)"
    if pid="$(zookeeper_pid)"; then
        wait_until "zookeeper" "$pid" zookeeper_ready "$dir/logs/server.log"
        echo "zookeeper: already running (pid $pid)"
        return 0
    fi
    port_open "$port" && die "zookeeper: port $port on 127.0.0.1 is taken by another process"
    fetch_maven_jars zookeeper "$HERE/zookeeper/pom.xml" "$ZOOKEEPER_LIBS_DIR"
    mkdir -p "$dir/data" "$dir/logs"
    cat >"$(zookeeper_config)" <<EOF
# Generated by deploy/local/cluster.sh on every start; edits are overwritten.
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$dir/data
clientPort=$port
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=srvr,ruok,mntr
autopurge.snapRetainCount=3
autopurge.purgeInterval=1
EOF
    # setsid: the node outlives this script and is not hit by a Ctrl-C meant for make.
    setsid java "-Xmx$CLUSTER_ZOOKEEPER_HEAP" "-Xms$CLUSTER_ZOOKEEPER_HEAP" -Djava.awt.headless=true \
        "-Dzookeeper.log.dir=$dir/logs" "-Dlogback.configurationFile=$HERE/zookeeper/logback.xml" \
        -cp "$ZOOKEEPER_LIBS_DIR/*" org.apache.zookeeper.server.quorum.QuorumPeerMain "$(zookeeper_config)" \
        </dev/null >"$dir/logs/zookeeper.out" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/zookeeper.pid"
    wait_until "zookeeper" "$pid" zookeeper_ready "$dir/logs/zookeeper.out" "$dir/logs/server.log"
    echo "zookeeper: started (pid $pid) on 127.0.0.1:$port"
}

# -- Kafka -----------------------------------------------------------------------------------------

kafka_properties() { printf '%s' "$(node_dir "$1")/server.properties"; }

kafka_pid() { running_pid "$(node_dir "$1")/kafka.pid" "$(kafka_properties "$1")"; }

# The one cluster id every node is formatted with, made on the first start.
cluster_id() {
    local file="$CLUSTER_STATE_DIR/kafka-cluster.id"
    if [[ ! -s "$file" ]]; then
        mkdir -p "$CLUSTER_STATE_DIR"
        java -cp "$KAFKA_LIBS_DIR/*" kafka.tools.StorageTool random-uuid >"$file.tmp"
        mv "$file.tmp" "$file"
    fi
    cat "$file"
}

kafka_write_properties() {
    local node="$1" dir voters="" other
    dir="$(node_dir "$node")"
    for other in "${KAFKA_NODES[@]}"; do
        voters+="${voters:+,}$(kafka_id "$other")@127.0.0.1:$(kafka_controller_port "$other")"
    done
    cat >"$(kafka_properties "$node")" <<EOF
# Generated by deploy/local/cluster.sh on every start; edits are overwritten.
process.roles=broker,controller
node.id=$(kafka_id "$node")
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$(kafka_port "$node"),CONTROLLER://127.0.0.1:$(kafka_controller_port "$node")
advertised.listeners=PLAINTEXT://127.0.0.1:$(kafka_port "$node")
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
# Topics are created explicitly (runstream, tests); they get three replicas, and a
# write with acks=all needs two of them in sync. No unclean leader: a lagging
# replica never becomes leader and silently drops acknowledged messages.
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=3
min.insync.replicas=2
unclean.leader.election.enable=false
offsets.topic.replication.factor=3
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
transaction.state.log.num.partitions=6
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
# Notice a dead node within seconds, not the defaults' 9 s (session) and 30 s (replica lag).
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=3000
replica.lag.time.max.ms=5000
# A restarted node takes its preferred leaderships back within seconds (default: 5 min),
# so that the next fault does not find one node leading everything.
leader.imbalance.check.interval.seconds=10
# Consumers may ask for short sessions (the fault tests move partitions quickly).
group.min.session.timeout.ms=2000
group.initial.rebalance.delay.ms=0
EOF
}

kafka_start_process() {
    local node="$1" dir pid
    dir="$(node_dir "$node")"
    mkdir -p "$dir/data" "$dir/logs"
    kafka_write_properties "$node"
    if [[ ! -f "$dir/data/meta.properties" ]]; then
        java -cp "$KAFKA_LIBS_DIR/*" kafka.tools.StorageTool format \
            -t "$(cluster_id)" -c "$(kafka_properties "$node")" >"$dir/logs/format.out" 2>&1 \
            || { show_log_tail "$dir/logs/format.out"; die "$node: formatting $dir/data failed"; }
    fi
    setsid java "-Xmx$CLUSTER_KAFKA_HEAP" "-Xms$CLUSTER_KAFKA_HEAP" -Djava.awt.headless=true \
        "-Dlog4j2.configurationFile=$HERE/kafka/log4j2.xml" "-Dkafka.logs.dir=$dir/logs" \
        -cp "$KAFKA_LIBS_DIR/*" kafka.Kafka "$(kafka_properties "$node")" \
        </dev/null >"$dir/logs/kafka.out" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/kafka.pid"
}

# kafka_unfenced: the ids of the unfenced brokers (empty when the cluster does not answer).
kafka_unfenced() { kafka_cluster_probe "$RUNSTREAM_PYTHON" "$(kafka_bootstrap)" 2>/dev/null || true; }

kafka_all_ready() { [[ "$(kafka_unfenced)" == "1 2 3" ]]; }

kafka_node_ready() { [[ " $(kafka_unfenced) " == *" $(kafka_id "$1") "* ]]; }

require_probe_python() {
    [[ -x "$RUNSTREAM_PYTHON" ]] || die "cluster: $RUNSTREAM_PYTHON not found; run 'make install' (or set RUNSTREAM_PYTHON to a python with kafka-python)"
}

kafka_check_ports() {
    local port
    for port in "$(kafka_port "$1")" "$(kafka_controller_port "$1")"; do
        port_open "$port" && die "$1: port $port on 127.0.0.1 is taken by another process"
    done
    return 0
}

# kafka_start_all: every node that is not running, at once (a quorum needs two of three).
kafka_start_all() {
    local node started=()
    require_probe_python
    command -v java >/dev/null || die "kafka: java not found; run 'make stack-deps'"
    fetch_maven_jars kafka "$HERE/kafka/pom.xml" "$KAFKA_LIBS_DIR"
    for node in "${KAFKA_NODES[@]}"; do
        if ! kafka_pid "$node" >/dev/null; then
            kafka_check_ports "$node"
            kafka_start_process "$node"
            started+=("$node")
        fi
    done
    wait_all_kafka
    for node in "${KAFKA_NODES[@]}"; do
        echo "$node: running (pid $(kafka_pid "$node")) on 127.0.0.1:$(kafka_port "$node")"
    done
}

# wait_all_kafka: until the three brokers are unfenced and the coordinator answers.
wait_all_kafka() {
    local deadline=$((SECONDS + CLUSTER_START_TIMEOUT)) node
    until kafka_all_ready; do
        for node in "${KAFKA_NODES[@]}"; do
            if ! kafka_pid "$node" >/dev/null; then
                show_log_tail "$(node_dir "$node")/logs/kafka.out"
                show_log_tail "$(node_dir "$node")/logs/server.log"
                die "$node: exited during start-up; logs in $(node_dir "$node")/logs"
            fi
        done
        if (( SECONDS >= deadline )); then
            die "kafka: timed out after ${CLUSTER_START_TIMEOUT}s waiting for three unfenced brokers (unfenced: '$(kafka_unfenced)'); logs in $CLUSTER_STATE_DIR/kafka-*/logs"
        fi
        sleep 0.5
    done
}

kafka_start_node() {
    local node="$1" pid
    require_probe_python
    fetch_maven_jars kafka "$HERE/kafka/pom.xml" "$KAFKA_LIBS_DIR"
    if ! pid="$(kafka_pid "$node")"; then
        kafka_check_ports "$node"
        kafka_start_process "$node"
        pid="$(kafka_pid "$node")" || die "$node: did not start; logs in $(node_dir "$node")/logs"
    fi
    wait_until "$node" "$pid" "kafka_node_ready $node" "$(node_dir "$node")/logs/kafka.out" \
        "$(node_dir "$node")/logs/server.log"
    echo "$node: running (pid $pid), unfenced"
}

# -- ClickHouse ------------------------------------------------------------------------------------

# clickhouse_sh NODE ARGS...: deploy/local/clickhouse.sh for this node's ports and folder.
clickhouse_sh() {
    local node="$1"
    shift
    CLICKHOUSE_TCP_PORT="$(clickhouse_port "$node" 1000)" \
    CLICKHOUSE_HTTP_PORT="$(clickhouse_port "$node" 1100)" \
    CLICKHOUSE_INTERSERVER_PORT="$(clickhouse_port "$node" 1200)" \
    CLICKHOUSE_STATE_DIR="$(node_dir "$node")" \
    CLICKHOUSE_DATABASE="$CLUSTER_DATABASE" \
    CLICKHOUSE_START_TIMEOUT="$CLUSTER_START_TIMEOUT" \
    CLICKHOUSE_STOP_TIMEOUT="$CLUSTER_STOP_TIMEOUT" \
        "$HERE/clickhouse.sh" "$@"
}

clickhouse_pid() { running_pid "$(node_dir "$1")/clickhouse.pid" "$(node_dir "$1")/config.xml"; }

# The server merges config.d/*.xml over the config.xml that clickhouse.sh writes.
clickhouse_write_cluster_config() {
    local node="$1" sr shard replicas="" s r other
    sr="${node#clickhouse-}"
    shard="${sr:1:1}"
    for s in 1 2; do
        replicas+=$'        <shard>\n            <internal_replication>true</internal_replication>\n'
        for r in 1 2; do
            other="clickhouse-s${s}r${r}"
            replicas+="            <replica><host>127.0.0.1</host><port>$(clickhouse_port "$other" 1000)</port></replica>"$'\n'
        done
        replicas+=$'        </shard>\n'
    done
    mkdir -p "$(node_dir "$node")/config.d"
    cat >"$(node_dir "$node")/config.d/runstream-cluster.xml" <<EOF
<?xml version="1.0"?>
<!-- Generated by deploy/local/cluster.sh on every start; edits are overwritten. -->
<yandex>
    <!-- internal_replication: a Distributed insert writes one replica of a shard;
         the replicated table copies it to the other. -->
    <remote_servers>
        <$CLUSTER_NAME>
${replicas}        </$CLUSTER_NAME>
    </remote_servers>
    <!-- {shard} and {replica} in ReplicatedMergeTree paths; the replica name is the node
         name, unique in the whole cluster. -->
    <macros>
        <cluster>$CLUSTER_NAME</cluster>
        <shard>$shard</shard>
        <replica>$node</replica>
    </macros>
    <zookeeper>
        <node><host>127.0.0.1</host><port>$(zookeeper_port)</port></node>
        <session_timeout_ms>10000</session_timeout_ms>
        <operation_timeout_ms>5000</operation_timeout_ms>
    </zookeeper>
    <!-- CREATE/ALTER/DROP ... ON CLUSTER, used by runstream's migrations. -->
    <distributed_ddl>
        <path>/clickhouse/task_queue/ddl</path>
    </distributed_ddl>
</yandex>
EOF
}

clickhouse_start_node() {
    clickhouse_write_cluster_config "$1"
    clickhouse_sh "$1" start | sed "s/^/$1: /"
}

# -- waiting, one node at a time -------------------------------------------------------------------

# wait_until NAME PID CHECK LOG...: poll CHECK (a command) until it passes, the process
# dies (then show the end of each LOG), or CLUSTER_START_TIMEOUT runs out.
wait_until() {
    local name="$1" pid="$2" check="$3" deadline=$((SECONDS + CLUSTER_START_TIMEOUT)) log
    shift 3
    until $check; do
        if ! pid_alive "$pid"; then
            for log in "$@"; do show_log_tail "$log"; done
            die "$name: pid $pid exited during start-up; logs in $(dirname "$1")"
        fi
        (( SECONDS < deadline )) || die "$name: not ready after ${CLUSTER_START_TIMEOUT}s; pid $pid is still running, logs in $(dirname "$1")"
        sleep 0.5
    done
}

# -- commands --------------------------------------------------------------------------------------

node_pid() {
    case "$1" in
        zookeeper) zookeeper_pid ;;
        kafka-*) kafka_pid "$1" ;;
        clickhouse-*) clickhouse_pid "$1" ;;
    esac
}

node_pid_file() {
    case "$1" in
        zookeeper) printf '%s' "$(node_dir zookeeper)/zookeeper.pid" ;;
        kafka-*) printf '%s' "$(node_dir "$1")/kafka.pid" ;;
        clickhouse-*) printf '%s' "$(node_dir "$1")/clickhouse.pid" ;;
    esac
}

start_all() {
    local started="$SECONDS" node
    # ZooKeeper before ClickHouse: replicated tables need it from the first query.
    zookeeper_start
    kafka_start_all
    for node in "${CLICKHOUSE_NODES[@]}"; do
        clickhouse_start_node "$node"
    done
    echo "cluster: ready in $((SECONDS - started))s; state in $CLUSTER_STATE_DIR"
    print_env
}

stop_node() {
    local node="$1" pid
    case "$node" in
        clickhouse-*) clickhouse_sh "$node" stop | sed "s/^/$node: /"; return 0 ;;
    esac
    if ! pid="$(node_pid "$node")"; then
        rm -f "$(node_pid_file "$node")"
        echo "$node: not running"
        return 0
    fi
    stop_pid "$node" "$pid" "$CLUSTER_STOP_TIMEOUT"
    rm -f "$(node_pid_file "$node")"
    echo "$node: stopped (pid $pid)"
}

stop_all() {
    local node pid
    local -A stopping=()
    for node in "${CLICKHOUSE_NODES[@]}"; do
        stop_node "$node"
    done
    # The three brokers at once: stopped one by one, the last ones wait for a quorum
    # that is already gone before they can hand over leadership.
    for node in "${KAFKA_NODES[@]}"; do
        if pid="$(kafka_pid "$node")"; then
            kill -TERM "$pid" 2>/dev/null || true
            stopping[$node]="$pid"
        fi
    done
    for node in "${KAFKA_NODES[@]}"; do
        if [[ -n "${stopping[$node]:-}" ]]; then
            stop_pid "$node" "${stopping[$node]}" "$CLUSTER_STOP_TIMEOUT"
            echo "$node: stopped (pid ${stopping[$node]})"
        else
            echo "$node: not running"
        fi
        rm -f "$(node_pid_file "$node")"
    done
    stop_node zookeeper
}

kill_node() {
    local node="$1" pid
    require_node "$node"
    if ! pid="$(node_pid "$node")"; then
        echo "$node: not running"
        return 0
    fi
    kill_pid "$node" "$pid"
    rm -f "$(node_pid_file "$node")"
    echo "$node: killed (SIGKILL to pid $pid)"
}

start_node() {
    require_node "$1"
    case "$1" in
        zookeeper) zookeeper_start ;;
        kafka-*) kafka_start_node "$1" ;;
        clickhouse-*) clickhouse_start_node "$1" ;;
    esac
}

# status: one line per node; exit 1 unless every node is ready.
status() {
    local node pid ok=0 unfenced
    if pid="$(zookeeper_pid)"; then
        if zookeeper_ready; then
            echo "zookeeper: running (pid $pid), answering on 127.0.0.1:$(zookeeper_port)"
        else
            echo "zookeeper: running (pid $pid) but not answering"; ok=1
        fi
    else
        echo "zookeeper: not running"; ok=1
    fi
    require_probe_python
    unfenced="$(kafka_unfenced)"
    for node in "${KAFKA_NODES[@]}"; do
        if ! pid="$(kafka_pid "$node")"; then
            echo "$node: not running"; ok=1
        elif [[ " $unfenced " == *" $(kafka_id "$node") "* ]]; then
            echo "$node: running (pid $pid), unfenced, on 127.0.0.1:$(kafka_port "$node")"
        else
            echo "$node: running (pid $pid) but not an unfenced broker (or no group coordinator)"; ok=1
        fi
    done
    for node in "${CLICKHOUSE_NODES[@]}"; do
        clickhouse_sh "$node" status | sed "s/^/$node: /" || ok=1
    done
    return "$ok"
}

# The first server, the other three as alternates (clickhouse-driver fails over to them),
# and the cluster name: runstream then creates replicated + Distributed tables.
print_env() {
    local node alt=()
    for node in "${CLICKHOUSE_NODES[@]:1}"; do alt+=("127.0.0.1:$(clickhouse_port "$node" 1000)"); done
    echo "RUNSTREAM_KAFKA=$(kafka_bootstrap)"
    echo "RUNSTREAM_CLICKHOUSE=clickhouse://127.0.0.1:$(clickhouse_port "${CLICKHOUSE_NODES[0]}" 1000)/$CLUSTER_DATABASE?cluster=$CLUSTER_NAME&alt_hosts=$(IFS=,; printf '%s' "${alt[*]}")"
}

usage() {
    die "usage: $0 start|stop|status|env|nodes|kill-node NAME|stop-node NAME|start-node NAME"
}

case "${1:-}" in
    start) start_all ;;
    stop) stop_all ;;
    status) status ;;
    env) print_env ;;
    nodes) printf '%s\n' "${ALL_NODES[@]}" ;;
    kill-node) [[ $# -eq 2 ]] || usage; kill_node "$2" ;;
    stop-node) [[ $# -eq 2 ]] || usage; require_node "$2"; stop_node "$2" ;;
    start-node) [[ $# -eq 2 ]] || usage; start_node "$2" ;;
    *) usage ;;
esac
