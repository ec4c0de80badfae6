#!/usr/bin/env bash
# Install what the local stack runs on, only what is missing:
#   kafka       java and mvn (Debian packages), then the broker's jars (Maven Central)
#   clickhouse  a ClickHouse server: `clickhouse` on PATH, else Debian's clickhouse-server
#   prometheus  promtool, from Debian's prometheus package (checks alert rules)
#   browser     Debian's chromium and chromium-driver (the web UI's browser tests and `make bench`)
#
#   deploy/local/deps.sh [kafka] [clickhouse] [prometheus] [browser]    (default: all four)
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
(( ${#want[@]} )) || want=(kafka clickhouse prometheus browser)

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
        browser)
            # Debian's own build: the browser's bundled downloaders cannot reach their hosts from here.
            [[ -x /usr/bin/chromium ]] || missing+=(chromium)
            [[ -x /usr/bin/chromedriver ]] || missing+=(chromium-driver)
            ;;
        *) die "usage: $0 [kafka] [clickhouse] [prometheus] [browser]" ;;
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
