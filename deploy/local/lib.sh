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

# show_log_tail FILE: the last lines of a log, to stderr, when a start fails.
show_log_tail() {
    if [[ -s "$1" ]]; then
        echo "--- last lines of $1 ---" >&2
        tail -n 30 "$1" >&2
        echo "---" >&2
    fi
}
