#!/usr/bin/env bash
# Install what the local stack runs on, only what is missing:
#   kafka       java and mvn (Debian packages), then the broker's jars (Maven Central)
#   clickhouse  a ClickHouse server: `clickhouse` on PATH, else Debian's clickhouse-server
#   prometheus  promtool, from Debian's prometheus package (checks alert rules)
#
#   deploy/local/deps.sh [kafka] [clickhouse] [prometheus]    (default: all three)
#
# OS packages come from apt-get, which needs root; the package lists are
# refreshed only when they do not know a package yet.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"

# has_candidates PKG...: apt knows an installable version of every PKG.
has_candidates() {
    local pkg
    for pkg in "$@"; do
        apt-cache policy "$pkg" 2>/dev/null | grep -q 'Candidate: [^(]' || return 1
    done
}

apt_install() {
    if (( EUID != 0 )) || ! command -v apt-get >/dev/null; then
        die "deps: missing Debian package(s): $*. Install them as root (apt-get install $*), then run this again."
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! has_candidates "$@"; then
        echo "deps: apt-get update (the package lists do not know: $*)"
        apt-get update -q
    fi
    echo "deps: apt-get install $*"
    apt-get install -y -q --no-install-recommends "$@"
}

clickhouse_server_found() {
    command -v clickhouse >/dev/null || command -v clickhouse-server >/dev/null \
        || [[ -x /usr/sbin/clickhouse-server ]]
}

want=("$@")
(( ${#want[@]} )) || want=(kafka clickhouse prometheus)

missing=()
for part in "${want[@]}"; do
    case "$part" in
        kafka)
            command -v java >/dev/null || missing+=(default-jre-headless)
            command -v mvn >/dev/null || missing+=(maven)
            ;;
        clickhouse)
            clickhouse_server_found || missing+=(clickhouse-server)
            ;;
        prometheus)
            command -v promtool >/dev/null || missing+=(prometheus)
            ;;
        *) die "usage: $0 [kafka] [clickhouse] [prometheus]" ;;
    esac
done

if (( ${#missing[@]} )); then
    apt_install "${missing[@]}"
fi

for part in "${want[@]}"; do
    if [[ "$part" == kafka ]]; then
        "$HERE/kafka.sh" deps
    fi
done
