#!/usr/bin/env bash
# Long crash run of the durable-queue test.
#
#   bash scripts/crash_harness.sh [ROUNDS [PRODUCERS]]
#
# Runs crates/server/tests/durability.rs (accepted_durable_messages_survive_kill_9) in
# release mode with many crash rounds: each round starts the node on the same data
# directory, lets PRODUCERS connections send durable messages unsettled to the queue
# `orders` for 0.3-1 s, then kills the node with SIGKILL. After the last round the node is
# started once more and the queue drained; the test fails if any message whose send was
# settled `accepted` is missing. Messages are not drained between rounds, so every restart
# replays the journal of all rounds so far.
#
# ROUNDS    crash rounds (default 30; env THRONG_CRASH_ROUNDS)
# PRODUCERS producer connections per round (default 3; env THRONG_CRASH_PRODUCERS)
#
# The CI run of the same test (cargo test, no variables set) does 3 rounds, 3 producers.
#
# Output: the test's summary line, e.g.
#   crash test: N accepted over R crashes, M received after restart, D duplicates, L lost
# (M counts distinct messages; it may exceed N by sends that reached the journal but whose
# `accepted` the client did not see before the crash). The full cargo/test output is kept
# in a temporary log whose path is printed on failure. Exit status: the test's.
#
# Builds what is missing with `cargo test --release` (same target dir as the release
# build, so the node under test is target/release/throng built from the working tree).
# Note: each node the test starts is killed by the test's 60 s watchdog, so very large runs
# (whose final recovery + drain takes longer than 60 s) fail with "watchdog" in the log.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

export THRONG_CRASH_ROUNDS="${1:-${THRONG_CRASH_ROUNDS:-30}}"
export THRONG_CRASH_PRODUCERS="${2:-${THRONG_CRASH_PRODUCERS:-3}}"

log="$(mktemp "${TMPDIR:-/tmp}/throng-crash-harness.XXXXXX.log")"
echo "crash harness: $THRONG_CRASH_ROUNDS rounds, $THRONG_CRASH_PRODUCERS producers (log: $log)"
start=$SECONDS
rc=0
cargo test --release -p throng-server --test durability -- \
    --exact accepted_durable_messages_survive_kill_9 --nocapture >"$log" 2>&1 || rc=$?

summary="$(grep -E '^crash test: ' "$log" || true)"
if [[ -n "$summary" ]]; then
    echo "$summary"
else
    echo "crash test: no summary line (the test did not get to the final drain)"
fi
echo "elapsed $((SECONDS - start)) s"
if ((rc != 0)); then
    echo "FAILED (exit $rc); last lines of $log:"
    tail -n 30 "$log"
    exit "$rc"
fi
rm -f "$log"
