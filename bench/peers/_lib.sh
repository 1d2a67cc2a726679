# Shared helpers for bench/peers/*.sh. Sourced, not executed.
# shellcheck shell=bash

PEERS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$PEERS_DIR/../.." && pwd)
RUN_BASE=${BENCH_RUN_DIR:-$REPO_DIR/bench/.run}

die() { echo "error: $*" >&2; exit 1; }
log() { echo "$*" >&2; }

# deb_installed PKG -> 0 if PKG is installed
deb_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# install_debs PKG... : apt-get install the packages that are missing.
# Service start-up from maintainer scripts is blocked with a temporary
# /usr/sbin/policy-rc.d (only if none exists), so installing rabbitmq-server
# never starts the system-wide node on 5672/25672/4369.
install_debs() {
    local missing=() p
    for p in "$@"; do deb_installed "$p" || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" = 0 ] || die "need root to apt-get install ${missing[*]}"
    log "installing: ${missing[*]}"
    local made_policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    local rc=0
    {
        DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
    } || rc=$?
    [ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d
    [ $rc -eq 0 ] || die "apt-get install ${missing[*]} failed (rc=$rc)"
}

# port_in_use PORT -> 0 if something listens on TCP PORT (any address)
port_in_use() {
    [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]
}

# amqp10_probe PORT -> 0 if 127.0.0.1:PORT answers the AMQP 1.0 SASL
# protocol header ("AMQP" 3 1 0 0) with the same header.
amqp10_probe() {
    local got
    got=$(timeout 3 bash -c '
        exec 3<>/dev/tcp/127.0.0.1/'"$1"' || exit 1
        printf "AMQP\x03\x01\x00\x00" >&3
        head -c 8 <&3' 2>/dev/null | od -An -tx1 | tr -d ' \n')
    [ "$got" = "414d515003010000" ]
}

# report_status PROTO PID PORT PROBE -> the `listening PROTO 127.0.0.1:PORT` and `pid PID`
# lines the bench scripts read, when PID is set and `PROBE PORT` answers; else
# "not running" and status 1.
report_status() {
    local proto=$1 pid=$2 port=$3 probe=$4
    if [ -n "$pid" ] && "$probe" "$port"; then
        echo "listening $proto 127.0.0.1:$port"
        echo "pid $pid"
    else
        echo "not running"
        return 1
    fi
}

# pid_matches PID PATTERN -> 0 if PID is alive and its cmdline matches PATTERN
pid_matches() {
    local pid=$1 pat=$2
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "$pat"
}

# stop_pid PID PATTERN NAME [TIMEOUT_S]: SIGTERM, wait, then SIGKILL -- only
# if PID is still the process we started (cmdline matches PATTERN).
stop_pid() {
    local pid=$1 pat=$2 name=$3 t=${4:-30} i
    if ! pid_matches "$pid" "$pat"; then
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < t * 10; i++)); do
        pid_matches "$pid" "$pat" || { log "stopped $name (pid $pid)"; return 0; }
        sleep 0.1
    done
    log "$name (pid $pid) did not stop after ${t}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
}
