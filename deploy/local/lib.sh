# shellcheck shell=bash
# Helpers shared by kafka.sh and clickhouse.sh. Sourced, not run.
# Every function takes its inputs as arguments; nothing here reads the caller's globals.

# die MESSAGE...: print to stderr and exit 1.
die() {
    printf '%s\n' "$*" >&2
    exit 1
}

# require_port NAME VALUE: VALUE must be a TCP port number.
require_port() {
    if ! [[ "$2" =~ ^[0-9]+$ ]] || (( $2 < 1 || $2 > 65535 )); then
        die "$1 must be a port number, got '$2'"
    fi
}

# require_seconds NAME VALUE: VALUE must be a positive whole number of seconds.
require_seconds() {
    if ! [[ "$2" =~ ^[0-9]+$ ]] || (( $2 < 1 )); then
        die "$1 must be a positive number of seconds, got '$2'"
    fi
}

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# pid_alive PID: the process exists and is not a zombie. Our servers are started
# detached, so once stopped they may linger as zombies of an init that never reaps.
pid_alive() {
    local state
    [[ -r "/proc/$1/stat" ]] || return 1
    state="$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$1/stat" 2>/dev/null)" || return 1
    [[ -n "$state" && "$state" != "Z" && "$state" != "X" ]]
}

# pid_cmdline_has PID TEXT: the process's command line contains TEXT. Guards
# against a pid file whose pid has since been reused by an unrelated process.
pid_cmdline_has() {
    [[ -r "/proc/$1/cmdline" ]] || return 1
    tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$2"
}

# running_pid PIDFILE MARKER: print the pid from PIDFILE if that process is alive
# and its command line contains MARKER; fail otherwise.
running_pid() {
    local pid
    [[ -f "$1" ]] || return 1
    pid="$(cat "$1" 2>/dev/null)" || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    pid_alive "$pid" && pid_cmdline_has "$pid" "$2" || return 1
    printf '%s\n' "$pid"
}

# stop_pid NAME PID TIMEOUT: SIGTERM, wait up to TIMEOUT seconds, then SIGKILL and
# wait up to 10 more. Fails if the process outlives both.
stop_pid() {
    local name="$1" pid="$2" timeout="$3" waited=0
    kill -TERM "$pid" 2>/dev/null || true
    while pid_alive "$pid"; do
        if (( waited >= timeout * 10 )); then
            echo "$name: still running ${timeout}s after SIGTERM; sending SIGKILL to pid $pid" >&2
            kill -KILL "$pid" 2>/dev/null || true
            waited=0
            while pid_alive "$pid"; do
                (( waited++ < 100 )) || die "$name: pid $pid survived SIGKILL"
                sleep 0.1
            done
            return 0
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
}

# stop_service NAME PID_FILE MATCH TIMEOUT: stop the process PID_FILE names (when it
# is alive and its command line holds MATCH) with stop_pid, and remove PID_FILE.
stop_service() {
    local name="$1" pid_file="$2" match="$3" timeout="$4" pid
    if ! pid="$(running_pid "$pid_file" "$match")"; then
        rm -f "$pid_file"
        echo "$name: not running"
        return 0
    fi
    stop_pid "$name" "$pid" "$timeout"
    rm -f "$pid_file"
    echo "$name: stopped (pid $pid)"
}

# show_log_tail FILE: the last lines of a log, to stderr, when a start fails.
show_log_tail() {
    if [[ -s "$1" ]]; then
        echo "--- last lines of $1 ---" >&2
        tail -n 30 "$1" >&2
        echo "---" >&2
    fi
}

# kill_pid NAME PID: SIGKILL, then wait (up to 10 s) until the process is gone.
kill_pid() {
    local name="$1" pid="$2" waited=0
    kill -KILL "$pid" 2>/dev/null || true
    while pid_alive "$pid"; do
        (( waited++ < 100 )) || die "$name: pid $pid survived SIGKILL"
        sleep 0.1
    done
}

# fetch_maven_jars NAME POM DEST: copy the runtime jars of POM from Maven Central into
# DEST, once. Fetched into a temporary folder and moved into place under DEST.lock, so
# that two scripts starting at once neither download twice nor see half a folder;
# DEST/.complete marks a finished copy (the same convention as kafka.sh).
fetch_maven_jars() {
    local name="$1" pom="$2" dest="$3" tmp started
    [[ -f "$dest/.complete" ]] && return 0
    command -v mvn >/dev/null || die "$name: mvn (Maven) not found; run 'make stack-deps'"
    mkdir -p "$(dirname "$dest")"
    (
        exec 9>"$dest.lock"
        flock 9
        [[ -f "$dest/.complete" ]] && exit 0
        tmp="$(mktemp -d "$dest.tmp.XXXXXX")"
        started="$SECONDS"
        echo "$name: fetching jars from Maven Central into $dest"
        if ! mvn -q -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies \
                -DoutputDirectory="$tmp" -DincludeScope=runtime >"$tmp.mvn.log" 2>&1; then
            show_log_tail "$tmp.mvn.log"
            rm -rf "$tmp" "$tmp.mvn.log"
            die "$name: mvn could not fetch the jars of $pom"
        fi
        rm -f "$tmp.mvn.log"
        touch "$tmp/.complete"
        rm -rf "$dest"
        mv "$tmp" "$dest"
        echo "$name: jars ready in $((SECONDS - started))s"
    )
}

# zk_command PORT WORD: send a ZooKeeper four-letter word (srvr, ruok, mntr) to
# 127.0.0.1:PORT and print the answer; fails when nothing answers within 3 s.
zk_command() {
    timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "%s" "$2" >&3 && cat <&3' _ "$1" "$2" 2>/dev/null
}

# kafka_cluster_probe PYTHON BOOTSTRAP: real requests to a Kafka cluster through
# PYTHON's kafka-python. Prints the ids of the unfenced brokers, space-separated and
# sorted, once the group coordinator answers too (a consumer group works only then);
# fails, with the reason on stderr, otherwise.
kafka_cluster_probe() {
    PROBE_BOOTSTRAP="$2" "$1" - <<'PY'
import logging
import os
import sys

logging.getLogger("kafka").addHandler(logging.NullHandler())
logging.getLogger("kafka").propagate = False

from kafka.admin import KafkaAdminClient

try:
    admin = KafkaAdminClient(
        bootstrap_servers=os.environ["PROBE_BOOTSTRAP"].split(","),
        client_id="runstream-local-probe",
        request_timeout_ms=3000,
        bootstrap_timeout_ms=3000,
    )
    try:
        ids = sorted(b["broker_id"] for b in admin.describe_cluster()["brokers"] if not b.get("is_fenced"))
        if ids:
            # The first FindCoordinator creates __consumer_offsets; until its partitions
            # have leaders the answer is COORDINATOR_NOT_AVAILABLE.
            admin.describe_groups(["runstream-local-probe"])
    finally:
        admin.close()
except Exception as exc:  # any failure means "not answering yet"
    print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
    sys.exit(1)
if not ids:
    print("no unfenced broker yet", file=sys.stderr)
    sys.exit(1)
print(" ".join(str(i) for i in ids))
PY
}

# --- Secure mode (KAFKA_SECURE=1, CLICKHOUSE_SECURE=1) -------------------------------

# ensure_secret FILE: FILE holds a random password (48 hex characters), created
# when missing; the file is 0600 in a 0700 folder. Passwords never appear on a
# command line: readers take them from the file.
ensure_secret() {
    local file="$1" dir
    dir="$(dirname "$file")"
    mkdir -p "$dir"
    chmod 700 "$dir"
    if [[ ! -s "$file" ]]; then
        (umask 077 && openssl rand -hex 24 >"$file.tmp") || die "openssl could not make a password for $file"
        mv "$file.tmp" "$file"
    fi
    chmod 600 "$file"
}

# ensure_tls DIR NAME: a local certificate authority (DIR/ca.pem, DIR/ca.key) and a
# server certificate it signed for 127.0.0.1, ::1 and localhost (DIR/NAME.crt, private
# key DIR/NAME.key, PKCS#8, unencrypted, 0600). Made with openssl when missing or
# when either certificate expires within a day; otherwise kept, so clients that
# trust DIR/ca.pem keep working across restarts. Prints nothing on success.
ensure_tls() {
    local dir="$1" name="$2" ext
    command -v openssl >/dev/null || die "openssl not found; secure mode makes its certificates with it"
    mkdir -p "$dir"
    chmod 700 "$dir"
    if [[ -s "$dir/ca.pem" && -s "$dir/ca.key" && -s "$dir/$name.crt" && -s "$dir/$name.key" ]] \
        && openssl x509 -checkend 86400 -noout -in "$dir/ca.pem" >/dev/null 2>&1 \
        && openssl x509 -checkend 86400 -noout -in "$dir/$name.crt" >/dev/null 2>&1; then
        return 0
    fi
    ext="$dir/$name.ext"
    printf '%s\n' \
        "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature,keyEncipherment" \
        "extendedKeyUsage=serverAuth" \
        "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost" >"$ext"
    (
        umask 077
        set -e
        openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 825 \
            -subj "/CN=runstream local CA ($name)" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
            -keyout "$dir/ca.key" -out "$dir/ca.pem"
        openssl req -newkey rsa:2048 -nodes -sha256 -subj "/CN=localhost" \
            -keyout "$dir/$name.key" -out "$dir/$name.csr"
        openssl x509 -req -sha256 -days 397 -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
            -CAcreateserial -extfile "$ext" -out "$dir/$name.crt"
    ) >"$dir/openssl.log" 2>&1 || { show_log_tail "$dir/openssl.log"; die "openssl could not make the certificates in $dir"; }
    rm -f "$dir/$name.csr" "$dir/ca.srl" "$ext" "$dir/openssl.log"
    chmod 644 "$dir/ca.pem" "$dir/$name.crt"
}
