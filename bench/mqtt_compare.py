#!/usr/bin/env python3
"""Runs `throng bench --protocol mqtt` against Throng and Mosquitto, interleaved, and prints
the medians as Markdown tables for docs/BENCHMARKS.md.

    python3 bench/mqtt_compare.py [--runs 3] [--count 200000] [--fanout-count 20000]
                                  [--fanout-consumers 100] [--mqtt-version 5] [--no-fanout-qos1]
                                  [--paced-seconds 3] [--no-tuned-mosquitto]

Scenarios (MQTT 5 by default, 100-byte payloads, every consumer subscribed before the
producer starts): 1 -> 1 at QoS 0 and QoS 1, 1 -> 100 subscribers at QoS 0 and QoS 1, and
1 -> 1 at QoS 1 paced at 10,000 msgs/s (service latency). Servers: Throng, Mosquitto with
its default limits, and Mosquitto with max_inflight_messages 1024 / max_queued_messages
100000 (Throng announces a receive maximum of 1024).

The binary is copied once from target/release/throng to a temporary directory, so a rebuild
during the run cannot swap it; the copy is both the server under test and the load generator
for both servers. Per run and scenario, in this order: a fresh Throng node
(`throng serve --amqp 127.0.0.1:0 --mqtt 127.0.0.1:0 --data-dir DIR`, port from its
`listening mqtt` line), then a fresh Mosquitto (bench/peers/mosquitto.sh start ... stop).
Everything listens on 127.0.0.1 only; every run is bounded by `throng bench --timeout`.
"""

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILT = os.path.join(ROOT, "target", "release", "throng")
MOSQUITTO = os.path.join(ROOT, "bench", "peers", "mosquitto.sh")


def peak_rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class Throng:
    name = "Throng"

    def __init__(self, binary, scratch):
        self.binary, self.scratch = binary, scratch

    def start(self):
        d = tempfile.mkdtemp(prefix="node-", dir=self.scratch)
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--amqp", "127.0.0.1:0", "--mqtt", "127.0.0.1:0", "--data-dir", os.path.join(d, "data")],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        deadline = time.time() + 10
        while time.time() < deadline:
            m = re.match(r"listening mqtt (\S+)", self.proc.stdout.readline())
            if m:
                return m.group(1), self.proc.pid
        self.stop()
        raise RuntimeError("throng did not start")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Mosquitto:
    """Mosquitto with its default limits, or with `max_inflight` (the receive maximum it
    announces and its in-flight limit towards subscribers) and `max_queued` raised."""

    def __init__(self, max_inflight=None, max_queued=None):
        self.env = dict(os.environ)
        self.name = "Mosquitto"
        if max_inflight is not None:
            self.env["BENCH_MOSQUITTO_MAX_INFLIGHT"] = str(max_inflight)
            self.env["BENCH_MOSQUITTO_MAX_QUEUED"] = str(max_queued)
            self.name = "Mosquitto (inflight %d)" % max_inflight

    def start(self):
        out = subprocess.run(["bash", MOSQUITTO, "start"], capture_output=True, text=True, timeout=120,
                             env=self.env)
        if out.returncode != 0:
            raise RuntimeError("mosquitto.sh start failed: %s" % out.stderr[-2000:])
        url = re.search(r"listening mqtt (\S+)", out.stdout).group(1)
        return url, int(re.search(r"pid (\d+)", out.stdout).group(1))

    def stop(self):
        subprocess.run(["bash", MOSQUITTO, "stop"], capture_output=True, timeout=60)


def bench(binary, url, pid, extra, timeout):
    cmd = [binary, "bench", "--protocol", "mqtt", "--url", url, "--server-pid", str(pid),
           "--timeout", str(timeout)] + extra
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 60)
    text = out.stdout
    r = {"cmd": " ".join(["throng"] + cmd[1:])}
    m = re.search(r"throughput (\d+)", text)
    r["rate"] = int(m.group(1)) if m else 0
    m = re.search(r"latency_us p50 (\d+) p90 (\d+) p99 (\d+) max (\d+)", text)
    if m:
        r["p50"], r["p90"], r["p99"], r["max"] = map(int, m.groups())
    m = re.search(r"server_cpu_us_per_msg ([\d.]+)", text)
    r["cpu"] = float(m.group(1)) if m else None
    m = re.search(r"client_cpu_us_per_msg ([\d.]+)", text)
    r["client"] = float(m.group(1)) if m else None
    r["ok"] = "complete yes" in text
    r["raw"] = text.strip() + ("\n" + out.stderr.strip() if out.returncode else "")
    return r


def med(rs, key):
    vals = [r[key] for r in rs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def fmt(v, spec="%.0f"):
    return "n/a" if v is None else (spec % v)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--count", type=int, default=200000, help="messages per 1 -> 1 run")
    ap.add_argument("--fanout-count", type=int, default=20000, help="messages per fan-out run")
    ap.add_argument("--fanout-consumers", type=int, default=100)
    ap.add_argument("--mqtt-version", default="5", choices=["3", "5"])
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--no-fanout-qos1", action="store_true")
    ap.add_argument("--paced-seconds", type=int, default=3, help="length of the paced run (0: none)")
    ap.add_argument("--no-tuned-mosquitto", action="store_true",
                    help="skip the second Mosquitto (max_inflight_messages 1024, max_queued_messages 100000)")
    ap.add_argument("--timeout", type=int, default=120)
    args = ap.parse_args()

    scratch = tempfile.mkdtemp(prefix="throng-mqtt-bench-")
    binary = os.path.join(scratch, "throng")
    shutil.copy2(BUILT, binary)
    common = ["--mqtt-version", args.mqtt_version, "--size", str(args.size)]
    n = args.fanout_consumers
    scenarios = [  # (name, extra flags)
        ("1 -> 1, QoS 0", ["--qos", "0", "--count", str(args.count)]),
        ("1 -> 1, QoS 1", ["--qos", "1", "--count", str(args.count)]),
        ("1 -> %d, QoS 0" % n, ["--qos", "0", "--count", str(args.fanout_count), "--consumers", str(n)]),
    ]
    if not args.no_fanout_qos1:
        scenarios.append(("1 -> %d, QoS 1" % n, ["--qos", "1", "--count", str(args.fanout_count), "--consumers", str(n)]))
    if args.paced_seconds > 0:
        # service latency: unpaced runs measure how long messages queue, not how fast a
        # server passes one on
        scenarios.append(("1 -> 1, QoS 1, paced 10k/s", ["--qos", "1", "--rate", "10000",
                                                          "--count", str(10000 * args.paced_seconds)]))
    servers = [Throng(binary, scratch), Mosquitto()]
    if not args.no_tuned_mosquitto:
        servers.append(Mosquitto(1024, 100000))
    results = {(s, srv.name): [] for s, _ in scenarios for srv in servers}
    try:
        for run in range(args.runs):
            for name, extra in scenarios:
                for srv in servers:
                    url, pid = srv.start()
                    try:
                        r = bench(binary, url, pid, common + extra, args.timeout)
                        r["rss"] = peak_rss_kib(pid)
                    finally:
                        srv.stop()
                    results[(name, srv.name)].append(r)
                    print("run %d %-16s %-9s %9d msgs/s  cpu %s us/msg  p99 %s us  rss %s KiB%s" % (
                        run + 1, name, srv.name, r["rate"], r.get("cpu"), r.get("p99"), r.get("rss"),
                        "" if r["ok"] else "  INCOMPLETE"), file=sys.stderr, flush=True)
    finally:
        Mosquitto().stop()
        shutil.rmtree(scratch, ignore_errors=True)

    print("MQTT %s, %d-byte payloads, medians of %d runs (deliveries/s: messages received by all "
          "subscribers together; CPU per delivery)\n" % (
              "5.0" if args.mqtt_version == "5" else "3.1.1", args.size, args.runs))
    print("| scenario | server | deliveries/s | server CPU µs/delivery | client CPU µs/delivery | p50 µs | p99 µs | server peak RSS MiB | complete |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, _ in scenarios:
        for srv in servers:
            rs = results[(name, srv.name)]
            rss = med(rs, "rss")
            print("| %s | %s | %s | %s | %s | %s | %s | %s | %d/%d |" % (
                name, srv.name, fmt(med(rs, "rate")), fmt(med(rs, "cpu"), "%.2f"), fmt(med(rs, "client"), "%.2f"),
                fmt(med(rs, "p50")), fmt(med(rs, "p99")), fmt(rss / 1024 if rss else None),
                sum(r["ok"] for r in rs), len(rs)))
    print()
    print("| scenario | against | throughput Throng / it | server CPU per delivery Throng / it |")
    print("|---|---|---|---|")
    for name, _ in scenarios:
        t = results[(name, "Throng")]
        for srv in servers[1:]:
            m = results[(name, srv.name)]
            rate = med(t, "rate") / med(m, "rate") if med(m, "rate") else None
            cpu = med(t, "cpu") / med(m, "cpu") if med(t, "cpu") is not None and med(m, "cpu") else None
            print("| %s | %s | %s | %s |" % (name, srv.name, fmt(rate, "%.2f×"), fmt(cpu, "%.2f")))
    print()
    print("raw output of the last run of each scenario:")
    for name, _ in scenarios:
        for srv in servers:
            r = results[(name, srv.name)][-1]
            print("--- %s, %s\n$ %s\n%s" % (name, srv.name, r["cmd"], r["raw"]))


if __name__ == "__main__":
    main()
