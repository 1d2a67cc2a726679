#!/usr/bin/env bash
# Recovery-time benchmark of durable queues.
#
#   bash bench/recovery.sh [N ...]          # default: 100000 1000000
#   RUNS=3 THRONG_BIN=target/release/throng bash bench/recovery.sh 1000000
#
# For each N, RUNS times (default 3), with a fresh data directory each time:
#
#  crash run
#   1. start `throng serve --amqp 127.0.0.1:0 --data-dir DIR` (address `bench` is an
#      auto-created queue) and fill it with N durable 100-byte messages:
#        throng bench --url ADDR --address bench --consumers 0 --producers 4 --durable \
#                     --count N --server-pid PID
#      (every send unsettled, settled `accepted` by the node only after fsync);
#   2. SIGKILL the node; measure the journal on disk (du --apparent-size / allocated);
#   3. start it again on DIR and measure
#        listen_ms    from spawn to the `listening amqp` line on stdout,
#        recover_ms   `elapsed_ms` of the `journal recovered` line on stderr,
#        rss_mib      the node's resident memory right after the listening line;
#   4. drain `bench` with one rhea consumer (bench/drain.js: credit 1000, accept each),
#      drain_rate in msgs/s from the first message to the last, and check all N came back;
#   5. SIGTERM (its `journal flushed` line counts the drain's acks).
#  fill-stats run (a SIGKILLed node prints no `journal flushed` line)
#   6. fresh DIR: start, fill N as in 1, SIGTERM: `journal flushed records=.. fsyncs=..
#      records_per_fsync=..` of the fill alone;
#   7. start again on DIR (recovery after a clean stop: listen_ms, recover_ms), SIGTERM.
#
# Prints one line per run and the medians per N. Needs node + rhea (interop/node, set up
# by scripts/test.sh). Every wait is bounded (STARTUP_TIMEOUT, default 300 s, for a
# start; the fill and drain by their own timeouts). Data goes under $TMPDIR (default /tmp)
# and is removed at the end (KEEP=1 keeps it). fsync is on: the node has no switch to
# turn it off.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${THRONG_BIN:-$ROOT/target/release/throng}"
RUNS="${RUNS:-3}"
STARTUP_TIMEOUT="${STARTUP_TIMEOUT:-300}"
SIZES=("$@")
((${#SIZES[@]})) || SIZES=(100000 1000000)

[[ -x "$BIN" ]] || { echo "error: $BIN missing (cargo build --release)" >&2; exit 1; }
[[ -d "$ROOT/interop/node/node_modules/rhea" ]] || {
    echo "error: rhea missing in interop/node/node_modules (bash scripts/test.sh installs it)" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/throng-recovery.XXXXXX")"
NODE_PID=""
cleanup() {
    if [[ -n "$NODE_PID" ]] && kill -0 "$NODE_PID" 2>/dev/null; then
        kill -KILL "$NODE_PID" 2>/dev/null || true
    fi
    if [[ "${KEEP:-0}" == 1 ]]; then echo "data kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

now_ms() { # milliseconds with microsecond resolution, no fork
    local t=${EPOCHREALTIME/[.,]/}
    echo $((t / 1000)).$(printf '%03d' $((t % 1000)))
}

# start_node DIR NAME: spawns the node on DIR/data; sets NODE_PID, NODE_ADDR, LISTEN_MS,
# NODE_LOG (stderr, ANSI colours stripped on read)
start_node() {
    local dir=$1 name=$2 fifo="$1/$2.stdout" line t0 t1
    NODE_LOG="$dir/$name.stderr"
    rm -f "$fifo"
    mkfifo "$fifo"
    t0=${EPOCHREALTIME/[.,]/}
    "$BIN" serve --amqp 127.0.0.1:0 --data-dir "$dir/data" >"$fifo" 2>"$NODE_LOG" &
    NODE_PID=$!
    exec {NODE_OUT}<"$fifo"
    NODE_ADDR=""
    while IFS= read -r -t "$STARTUP_TIMEOUT" -u "$NODE_OUT" line; do
        if [[ "$line" == "listening amqp "* ]]; then
            t1=${EPOCHREALTIME/[.,]/}
            NODE_ADDR=${line#listening amqp }
            break
        fi
    done
    if [[ -z "$NODE_ADDR" ]]; then
        echo "error: node did not print 'listening amqp' within ${STARTUP_TIMEOUT}s" >&2
        tail -n 20 "$NODE_LOG" >&2
        exit 1
    fi
    LISTEN_MS=$(((t1 - t0) / 1000))
}

log_line() { # log_line PATTERN: the first stderr line of the node containing PATTERN, plain
    sed 's/\x1b\[[0-9;]*m//g' "$NODE_LOG" | grep -m1 -- "$1" || true
}

field() { # field LINE KEY: value of KEY=VALUE in LINE
    sed -n "s/.*[[:space:]]$2=\([^[:space:]]*\).*/\1/p" <<<"$1"
}

wait_line() { # wait_line PATTERN SECONDS: wait (bounded) until the node logged PATTERN
    local deadline=$((SECONDS + $2))
    until [[ -n "$(log_line "$1")" ]]; do
        ((SECONDS < deadline)) || { echo "error: no '$1' line in $NODE_LOG" >&2; exit 1; }
        sleep 0.05
    done
}

kill_node() { # SIGKILL and reap
    kill -KILL "$NODE_PID"
    wait "$NODE_PID" 2>/dev/null || true
    exec {NODE_OUT}<&-
    NODE_PID=""
}

term_node() { # SIGTERM, wait up to 60 s for the exit (code 0 expected)
    local rc=0 i
    kill -TERM "$NODE_PID"
    for ((i = 0; i < 600; i++)); do
        kill -0 "$NODE_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$NODE_PID" 2>/dev/null; then
        echo "error: node $NODE_PID still running 60 s after SIGTERM; killed" >&2
        kill -KILL "$NODE_PID"
    fi
    wait "$NODE_PID" 2>/dev/null || rc=$?
    exec {NODE_OUT}<&-
    NODE_PID=""
    ((rc == 0)) || echo "warning: node exited $rc after SIGTERM" >&2
}

fill() { # fill N: prints "throughput seconds server_cpu_us_per_msg"
    local out
    out="$("$BIN" bench --url "$NODE_ADDR" --address bench --consumers 0 --producers 4 --durable \
        --count "$1" --server-pid "$NODE_PID" --timeout 600)"
    if ! grep -q "^sent $1 received 0 accepted $1 not-accepted 0 " <<<"$out"; then
        echo "error: fill did not get $1 accepted:" >&2
        echo "$out" >&2
        exit 1
    fi
    echo "$(sed -n 's/^throughput \([0-9]*\) msgs.*/\1/p' <<<"$out")" \
        "$(sed -n 's/^sent .* in \([0-9.]*\) s$/\1/p' <<<"$out")" \
        "$(sed -n 's/^server_cpu_us_per_msg \([0-9.]*\).*/\1/p' <<<"$out")"
}

mb() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1e6}'; }

median() { # median of the arguments (numbers)
    printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}

echo "# $(date -u +%FT%TZ) $(nproc) cores; binary $BIN ($(sha256sum "$BIN" | cut -c1-12)); data under $WORK"
declare -A COL
for n in "${SIZES[@]}"; do
    for key in fill_rate fill_s journal_mb listen_ms recover_ms rss drain_rate fsyncs rpf clean_listen clean_recover; do
        COL[$key]=""
    done
    for ((run = 1; run <= RUNS; run++)); do
        dir="$WORK/n$n-r$run"
        mkdir -p "$dir"
        # --- crash run
        start_node "$dir" fill
        out="$(fill "$n")"
        read -r fill_rate fill_s fill_cpu <<<"$out"
        kill_node
        journal_bytes=$(du -sb "$dir/data/journal" | cut -f1)
        journal_alloc=$(du -sk "$dir/data/journal" | cut -f1)
        start_node "$dir" recover
        listen_ms=$LISTEN_MS
        rss_kib=$(awk '/^VmRSS/ {print $2}' "/proc/$NODE_PID/status")
        wait_line "journal recovered" 10
        rec="$(log_line "journal recovered")"
        recover_ms=$(field "$rec" elapsed_ms)
        rec_msgs=$(field "$rec" messages)
        [[ "$rec_msgs" == "$n" ]] || echo "warning: recovered messages=$rec_msgs, expected $n" >&2
        drain_out="$(node "$ROOT/bench/drain.js" "$NODE_ADDR" bench "$n" 1000 600)" || {
            echo "error: drain failed: $drain_out" >&2; exit 1; }
        drain_rate=$(sed -n 's/.*(\([0-9]*\) msgs\/s).*/\1/p' <<<"$drain_out")
        term_node
        # --- fill-stats run
        rm -rf "$dir/data"
        start_node "$dir" fillterm
        out="$(fill "$n")"
        term_node
        fl="$(log_line "journal flushed")"
        fsyncs=$(field "$fl" fsyncs)
        rpf=$(printf '%.0f' "$(field "$fl" records_per_fsync)")
        start_node "$dir" cleanrestart
        clean_listen=$LISTEN_MS
        wait_line "journal recovered" 10
        clean_recover=$(field "$(log_line "journal recovered")" elapsed_ms)
        term_node
        rm -rf "$dir/data"

        printf 'N=%s run=%s fill %s msgs/s (%s s, server %s us/msg) journal %.1f MB (%s KiB allocated)' \
            "$n" "$run" "$fill_rate" "$fill_s" "$fill_cpu" "$(mb "$journal_bytes")" "$journal_alloc"
        printf ' | kill -9 restart: listen %s ms, recovered %s msgs in %s ms, RSS %s MiB | drain %s msgs/s' \
            "$listen_ms" "$rec_msgs" "$recover_ms" "$((rss_kib / 1024))" "$drain_rate"
        printf ' | fill alone: fsyncs %s, records/fsync %s | clean restart: listen %s ms, recovered in %s ms\n' \
            "$fsyncs" "$rpf" "$clean_listen" "$clean_recover"
        COL[fill_rate]+=" $fill_rate"; COL[fill_s]+=" $fill_s"
        COL[journal_mb]+=" $(mb "$journal_bytes")"
        COL[listen_ms]+=" $listen_ms"; COL[recover_ms]+=" $recover_ms"; COL[rss]+=" $((rss_kib / 1024))"
        COL[drain_rate]+=" $drain_rate"; COL[fsyncs]+=" $fsyncs"; COL[rpf]+=" $rpf"
        COL[clean_listen]+=" $clean_listen"; COL[clean_recover]+=" $clean_recover"
    done
    # shellcheck disable=SC2086
    printf 'MEDIAN N=%s runs=%s: fill %s msgs/s (%s s), journal %.1f MB, kill -9 restart: listen %s ms, recovery %s ms, RSS %s MiB; drain %s msgs/s; fill fsyncs %s, records/fsync %s; clean restart: listen %s ms, recovery %s ms\n' \
        "$n" "$RUNS" "$(median ${COL[fill_rate]})" "$(median ${COL[fill_s]})" "$(median ${COL[journal_mb]})" \
        "$(median ${COL[listen_ms]})" "$(median ${COL[recover_ms]})" "$(median ${COL[rss]})" \
        "$(median ${COL[drain_rate]})" "$(median ${COL[fsyncs]})" "$(median ${COL[rpf]})" \
        "$(median ${COL[clean_listen]})" "$(median ${COL[clean_recover]})"
done
