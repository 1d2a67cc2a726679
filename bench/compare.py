#!/usr/bin/env python3
"""Runs `throng bench` against Throng and the peer brokers, interleaved, and prints the
medians as a Markdown table for docs/BENCHMARKS.md.

    python3 bench/compare.py [--runs 5] [--count 500000] [--peer-count 100000] [--skip-peers]

Starts a fresh Throng node per scenario (target/release/throng, ports from its
`listening` line), and RabbitMQ and the Proton C example broker through bench/peers/.
Everything listens on 127.0.0.1 only; every run is bounded by `throng bench --timeout`.
"""

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THRONG = os.path.join(ROOT, "target", "release", "throng")


def start_throng(kind):
    d = tempfile.mkdtemp(prefix="throng-bench-")
    cfg = os.path.join(d, "throng.toml")
    with open(cfg, "w") as f:
        f.write('[[tenant]]\nname = "default"\n[[tenant.address]]\nname = "bench"\ntype = "%s"\n' % kind)
    p = subprocess.Popen([THRONG, "serve", "--amqp", "127.0.0.1:0", "--config", cfg, "--data-dir", os.path.join(d, "data")],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.time() + 10
    while time.time() < deadline:
        line = p.stdout.readline()
        m = re.match(r"listening amqp (\S+)", line)
        if m:
            return p, m.group(1)
    p.kill()
    raise RuntimeError("throng did not start")


def start_peer(script):
    out = subprocess.run(["bash", os.path.join(ROOT, "bench", "peers", script), "start"], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError("%s start failed: %s" % (script, out.stderr[-2000:]))
    url = re.search(r"listening amqp (\S+)", out.stdout).group(1)
    pid = int(re.search(r"pid (\d+)", out.stdout).group(1))
    return url, pid


def stop_peer(script):
    subprocess.run(["bash", os.path.join(ROOT, "bench", "peers", script), "stop"], capture_output=True, timeout=120)


def bench(url, address, pid, extra, timeout=180):
    cmd = [THRONG, "bench", "--url", url, "--address", address, "--server-pid", str(pid), "--timeout", str(timeout)] + extra
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 60)
    text = out.stdout
    r = {}
    m = re.search(r"throughput (\d+)", text)
    r["rate"] = int(m.group(1)) if m else 0
    m = re.search(r"latency_us p50 (\d+) p90 (\d+) p99 (\d+) max (\d+)", text)
    if m:
        r["p50"], r["p90"], r["p99"], r["max"] = map(int, m.groups())
    m = re.search(r"server_cpu_us_per_msg ([\d.]+)", text)
    r["cpu"] = float(m.group(1)) if m else None
    m = re.search(r"sent (\d+) received (\d+) accepted (\d+)", text)
    r["ok"] = bool(m) and m.group(1) == m.group(2) == m.group(3)
    m = re.search(r"per_connection_kib ([\d.]+)", text)
    if m:
        r["kib"] = float(m.group(1))
    m = re.search(r"\(([\d.]+) connections/s\)", text)
    if m:
        r["cps"] = float(m.group(1))
    r["raw"] = text.strip() + ("\n" + out.stderr.strip() if out.returncode else "")
    return r


def med(rs, key):
    vals = [r[key] for r in rs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--count", type=int, default=500000)
    ap.add_argument("--peer-count", type=int, default=100000)
    ap.add_argument("--paced-seconds", type=int, default=3)
    ap.add_argument("--skip-peers", action="store_true")
    ap.add_argument("--idle", type=int, default=10000)
    args = ap.parse_args()

    paced = ["--rate", "10000", "--count", str(10000 * args.paced_seconds)]
    scenarios = []  # (name, starter, address, extra)
    scenarios.append(("Throng queue", "throng:queue", "bench", ["--count", str(args.count)]))
    scenarios.append(("Throng anycast", "throng:anycast", "bench", ["--count", str(args.count)]))
    scenarios.append(("Throng queue, paced 10k/s", "throng:queue", "bench", paced))
    scenarios.append(("Throng queue, durable, 4 producers", "throng:queue", "bench",
                      ["--count", str(args.count // 2), "--producers", "4", "--durable"]))
    scenarios.append(("Throng anycast, paced 10k/s", "throng:anycast", "bench", paced))
    if not args.skip_peers:
        scenarios.append(("RabbitMQ 3.10 queue", "rabbitmq.sh", "/amq/queue/bench", ["--count", str(args.peer_count)]))
        scenarios.append(("RabbitMQ 3.10 queue, paced 10k/s", "rabbitmq.sh", "/amq/queue/bench", paced))
        scenarios.append(("Proton C broker queue", "proton-broker.sh", "bench", ["--count", str(args.peer_count)]))
        scenarios.append(("Proton C broker queue, paced 10k/s", "proton-broker.sh", "bench", paced))

    results = {name: [] for name, _, _, _ in scenarios}
    peers = {}
    try:
        if not args.skip_peers:
            for s in ("rabbitmq.sh", "proton-broker.sh"):
                peers[s] = start_peer(s)
        for run in range(args.runs):
            for name, starter, address, extra in scenarios:
                if starter.startswith("throng:"):
                    p, url = start_throng(starter.split(":")[1])
                    try:
                        r = bench(url, address, p.pid, extra)
                    finally:
                        p.send_signal(signal.SIGTERM)
                        p.wait(timeout=10)
                else:
                    url, pid = peers[starter]
                    r = bench(url, address, pid, extra)
                results[name].append(r)
                print("run %d %-40s %8d msgs/s  p99 %s us  cpu %s us/msg%s" % (
                    run + 1, name, r["rate"], r.get("p99"), r.get("cpu"), "" if r["ok"] else "  INCOMPLETE"), file=sys.stderr)
        idle = []
        for run in range(min(args.runs, 3)):
            p, url = start_throng("queue")
            try:
                idle.append(bench(url, "bench", p.pid, ["--idle-connections", str(args.idle)]))
            finally:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=30)
    finally:
        for s in peers:
            stop_peer(s)

    print("| scenario | runs | msgs/s (median) | server CPU µs/msg | p50 µs | p99 µs | complete |")
    print("|---|---|---|---|---|---|---|")
    for name, _, _, _ in scenarios:
        rs = results[name]
        print("| %s | %d | %s | %s | %s | %s | %d/%d |" % (
            name, len(rs), "%.0f" % med(rs, "rate"), "%.2f" % med(rs, "cpu") if med(rs, "cpu") is not None else "n/a",
            med(rs, "p50"), med(rs, "p99"), sum(r["ok"] for r in rs), len(rs)))
    if idle:
        print()
        print("idle connections: %d per run, median %.2f KiB per connection, median %.0f connections/s (%d runs)" % (
            args.idle, med(idle, "kib"), med(idle, "cps"), len(idle)))
    print()
    print("raw output of the last run of each scenario:")
    for name, _, _, _ in scenarios:
        print("--- %s\n%s" % (name, results[name][-1]["raw"]))


if __name__ == "__main__":
    main()
