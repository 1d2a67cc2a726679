#!/usr/bin/env bash
# Qpid Proton C example broker (broker.c from Debian's libqpid-proton11-dev-examples),
# built into bench/.run/proton/ and run on loopback as a peer for `throng bench`.
#
#   bench/peers/proton-broker.sh start    # install if missing, build if needed, start
#   bench/peers/proton-broker.sh stop
#   bench/peers/proton-broker.sh status
#   bench/peers/proton-broker.sh build    # (re)build only
#
# Environment (all optional):
#   BENCH_PROTON_PORT     AMQP port on 127.0.0.1                        [15690]
#   BENCH_PROTON_WINDOW   incoming credit per sender link; stock broker.c has 5  [5]
#   BENCH_PROTON_THREADS  proactor threads; stock broker.c has 4                 [4]
#   BENCH_RUN_DIR         state dir                               [<repo>/bench/.run]
#   BENCH_START_TIMEOUT   seconds to wait for the listener                      [30]
# With the defaults the binary is the unmodified example (only -O2 added).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

PORT=${BENCH_PROTON_PORT:-15690}
WINDOW=${BENCH_PROTON_WINDOW:-5}
THREADS=${BENCH_PROTON_THREADS:-4}
START_TIMEOUT=${BENCH_START_TIMEOUT:-30}
EXAMPLES=/usr/share/proton/examples/c
D=$RUN_BASE/proton
BIN=$D/broker
PATTERN="$BIN 127.0.0.1 $PORT"

[[ $WINDOW =~ ^[1-9][0-9]*$ ]] || die "BENCH_PROTON_WINDOW must be a positive integer"
[[ $THREADS =~ ^[1-9][0-9]*$ ]] || die "BENCH_PROTON_THREADS must be a positive integer"

cmd_build() {
    install_debs libqpid-proton11-dev-examples libqpid-proton11-dev gcc libc6-dev pkg-config
    [ -f "$EXAMPLES/broker.c" ] || die "$EXAMPLES/broker.c not found"
    # Debian ships only libqpid-proton.pc / libqpid-proton.so (core + proactor in one
    # library); the examples' Makefile.pkgconfig (libqpid-proton-core/-proactor .pc)
    # and CMakeLists.txt (find_package(Proton)) do not work as shipped, so compile directly.
    local cflags="-O2 -g -Wall -pthread"
    local key
    key=$( { sha256sum "$EXAMPLES/broker.c" "$EXAMPLES/thread.h";
             echo "window=$WINDOW threads=$THREADS cflags=$cflags";
             pkg-config --modversion libqpid-proton; } | sha256sum | cut -d' ' -f1)
    if [ -x "$BIN" ] && [ "$(cat "$D/build.key" 2>/dev/null)" = "$key" ]; then
        return 0
    fi
    pid_matches "$(cat "$D/broker.pid" 2>/dev/null || true)" "$BIN " &&
        die "broker is running; stop it before rebuilding"
    log "building $BIN (window=$WINDOW threads=$THREADS)"
    mkdir -p "$D/src"
    cp "$EXAMPLES/broker.c" "$EXAMPLES/thread.h" "$D/src/"
    rm -rf "$D/ssl-certs"
    cp -r "$EXAMPLES/ssl-certs" "$D/ssl-certs"   # broker.c loads ./ssl-certs/tserver-* at start
    local src=$D/src/broker.c
    grep -q '^const int WINDOW=5;' "$src" || die "broker.c: WINDOW line not found"
    grep -q '^  b.threads = 4;' "$src" || die "broker.c: threads line not found"
    sed -i "s/^const int WINDOW=5;/const int WINDOW=$WINDOW;/; s/^  b.threads = 4;/  b.threads = $THREADS;/" "$src"
    # shellcheck disable=SC2046
    gcc $cflags -o "$BIN.tmp" "$src" $(pkg-config --cflags --libs libqpid-proton) -lpthread
    mv "$BIN.tmp" "$BIN"
    echo "$key" > "$D/build.key"
}

broker_pid() {
    local pid
    pid=$(cat "$D/broker.pid" 2>/dev/null || true)
    if pid_matches "$pid" "$PATTERN"; then echo "$pid"; fi
}

cmd_start() {
    local pid
    pid=$(broker_pid)
    if [ -n "$pid" ]; then
        log "already running"
        echo "listening amqp 127.0.0.1:$PORT"
        echo "pid $pid"
        return 0
    fi
    cmd_build
    port_in_use "$PORT" && die "port $PORT is already in use (set BENCH_PROTON_PORT)"
    # cwd must be $D so that ./ssl-certs is found
    (cd "$D" && exec setsid "$BIN" 127.0.0.1 "$PORT" > "$D/broker.log" 2>&1 < /dev/null) &
    pid=$!
    echo "$pid" > "$D/broker.pid"
    local deadline=$((SECONDS + START_TIMEOUT))
    until grep -q '^listening on' "$D/broker.log" 2>/dev/null && amqp10_probe "$PORT"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$D/broker.log" >&2
            die "broker exited during start-up"
        fi
        if [ $SECONDS -ge $deadline ]; then
            cat "$D/broker.log" >&2
            cmd_stop >/dev/null 2>&1 || true
            die "broker did not answer AMQP 1.0 on 127.0.0.1:$PORT within ${START_TIMEOUT}s"
        fi
        sleep 0.1
    done
    echo "listening amqp 127.0.0.1:$PORT"
    echo "pid $pid"
}

cmd_stop() {
    # broker.c installs no signal handler: SIGTERM ends it at once (queues are in memory only).
    stop_pid "$(cat "$D/broker.pid" 2>/dev/null || true)" "$PATTERN" "proton broker" 10
    rm -f "$D/broker.pid"
    echo "stopped"
}

cmd_status() {
    report_status amqp "$(broker_pid)" "$PORT" amqp10_probe
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    build) cmd_build ;;
    *) echo "usage: $0 start|stop|status|build" >&2; exit 2 ;;
esac
