#!/usr/bin/env bash
# Starts an N-node mesh of `throng serve` processes on 127.0.0.1 in a chosen topology,
# for people and for benchmarks, and stops it again.
#
#   bench/mesh.sh start TOPOLOGY N [DIR]   # TOPOLOGY: line | ring | square | full
#   bench/mesh.sh stop [DIR]
#
# Nodes are r1..rN; each binds 127.0.0.1:0 for AMQP, MQTT, HTTP and inter-router, and
# dials the nodes before it that the topology joins it to (cost 1; `square` is four nodes
# with the r1-r3-r4 side at cost 10, so the cheap path is r1-r2-r4). `start` waits until
# every node has a route to every other (GET /api/v1/mesh), then prints one line per
# node:
#
#   r1 pid PID amqp 127.0.0.1:PORT mqtt 127.0.0.1:PORT http 127.0.0.1:PORT inter-router 127.0.0.1:PORT
#
# and writes the same lines to DIR/nodes (default DIR: /tmp/throng-mesh). `stop` sends
# SIGTERM to the PIDs in DIR/nodes (only those) and waits for them.
# Environment: THRONG_BIN (default target/release/throng), MESH_CONFIG (a config file
# for every node; default: tenant `default` with anycast `any1`, multicast `multi1`),
# MESH_WORKERS (worker_threads of each node, default: tokio's).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${THRONG_BIN:-$ROOT/target/release/throng}"

usage() {
    sed -n '2,9p' "$0" >&2
    exit 2
}

# edges TOPOLOGY N: lines "A B COST" (B dials A, A < B)
edges() {
    local topo=$1 n=$2 i j
    case "$topo" in
        line) for ((i = 2; i <= n; i++)); do echo "$((i - 1)) $i 1"; done ;;
        ring)
            for ((i = 2; i <= n; i++)); do echo "$((i - 1)) $i 1"; done
            ((n > 2)) && echo "1 $n 1"
            ;;
        full) for ((j = 2; j <= n; j++)); do for ((i = 1; i < j; i++)); do echo "$i $j 1"; done; done ;;
        square)
            ((n == 4)) || { echo "square has 4 nodes" >&2; exit 2; }
            printf '1 2 1\n1 3 10\n2 4 1\n3 4 10\n'
            ;;
        *) usage ;;
    esac
}

start() {
    local topo=${1:-} n=${2:-} dir=${3:-/tmp/throng-mesh}
    [[ -n $topo && -n $n ]] || usage
    [[ -x $BIN ]] || { echo "no binary at $BIN (cargo build --release)" >&2; exit 1; }
    if [[ -f $dir/nodes ]]; then
        echo "$dir/nodes exists: stop that mesh first (bench/mesh.sh stop $dir)" >&2
        exit 1
    fi
    mkdir -p "$dir"
    local config=${MESH_CONFIG:-$dir/mesh.toml}
    if [[ -z ${MESH_CONFIG:-} ]]; then
        {
            [[ -n ${MESH_WORKERS:-} ]] && echo "worker_threads = $MESH_WORKERS"
            printf '[[tenant]]\nname = "default"\nauto_create = true\n'
            printf '[[tenant.address]]\nname = "any1"\ntype = "anycast"\n'
            printf '[[tenant.address]]\nname = "multi1"\ntype = "multicast"\n'
        } > "$config"
    fi
    local -A ir pid amqp mqtt http
    local i a b c args line
    : > "$dir/nodes.tmp"
    for ((i = 1; i <= n; i++)); do
        args=(serve --config "$config" --data-dir "$dir/r$i-data" --node-id "r$i"
              --inter-router 127.0.0.1:0 --amqp 127.0.0.1:0 --mqtt 127.0.0.1:0 --http 127.0.0.1:0)
        while read -r a b c; do
            ((b == i)) && args+=(--connect "${ir[$a]},$c")
        done < <(edges "$topo" "$n")
        rm -f "$dir/r$i.out"
        "$BIN" "${args[@]}" > "$dir/r$i.out" 2> "$dir/r$i.log" &
        pid[$i]=$!
        for _ in $(seq 200); do
            [[ $(grep -c '^listening' "$dir/r$i.out" 2>/dev/null || true) -ge 4 ]] && break
            kill -0 "${pid[$i]}" 2>/dev/null || { echo "r$i exited; see $dir/r$i.log" >&2; exit 1; }
            sleep 0.05
        done
        ir[$i]=$(awk '$2 == "inter-router" {print $3}' "$dir/r$i.out")
        amqp[$i]=$(awk '$2 == "amqp" {print $3}' "$dir/r$i.out")
        mqtt[$i]=$(awk '$2 == "mqtt" {print $3}' "$dir/r$i.out")
        http[$i]=$(awk '$2 == "http" {print $3}' "$dir/r$i.out")
        [[ -n ${ir[$i]} && -n ${http[$i]} ]] || { echo "r$i printed no listeners" >&2; exit 1; }
        echo "r$i pid ${pid[$i]} amqp ${amqp[$i]} mqtt ${mqtt[$i]} http ${http[$i]} inter-router ${ir[$i]}" >> "$dir/nodes.tmp"
    done
    mv "$dir/nodes.tmp" "$dir/nodes"
    # converged: every node routes to the n-1 others (bounded: 20 s)
    local deadline=$((SECONDS + 20)) routes
    for ((i = 1; i <= n; i++)); do
        while :; do
            routes=$(curl -sf "http://${http[$i]}/api/v1/mesh" | grep -o '"next_hop"' | wc -l || true)
            ((routes >= n - 1)) && break
            ((SECONDS < deadline)) || { echo "r$i has $routes of $((n - 1)) routes after 20 s" >&2; exit 1; }
            sleep 0.05
        done
    done
    cat "$dir/nodes"
}

stop() {
    local dir=${1:-/tmp/throng-mesh} p
    [[ -f $dir/nodes ]] || { echo "no mesh in $dir" >&2; exit 1; }
    local pids=()
    while read -r _ _ p _; do pids+=("$p"); done < "$dir/nodes"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for p in "${pids[@]}"; do
        for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    done
    rm -f "$dir/nodes"
}

case "${1:-}" in
    start) shift; start "$@" ;;
    stop) shift; stop "$@" ;;
    *) usage ;;
esac
