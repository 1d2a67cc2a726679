#!/usr/bin/env python3
"""Interleaved A/B of two throng binaries (old, new): for each scenario a fresh node per
run, old and new in turn, `throng bench` (the new binary's) against it; prints the medians
and the new/old ratios as Markdown rows, and every run to stderr.

    python3 bench/ab.py OLD_BINARY NEW_BINARY [RUNS]     # ONLY=anycast: one scenario
                                                         # SCALE=4: 4x the message counts

Everything listens on 127.0.0.1:0; every run is bounded by `throng bench --timeout 60`."""
import re, statistics, subprocess, sys, tempfile, time, os
OLD, NEW = sys.argv[1], sys.argv[2]
RUNS = int(sys.argv[3]) if len(sys.argv) > 3 else 5
BENCH = NEW
SCEN_ALL = [
    ("amqp queue", "queue", ["--count", "300000"]),
    ("amqp anycast", "anycast", ["--count", "300000"]),
    ("amqp durable queue 4p", "queue", ["--count", "150000", "--producers", "4", "--durable"]),
    ("mqtt qos0", "topic", ["--protocol", "mqtt", "--mqtt-version", "5", "--qos", "0", "--count", "300000"]),
    ("mqtt qos1", "topic", ["--protocol", "mqtt", "--mqtt-version", "5", "--qos", "1", "--count", "300000"]),

]
import os as _os
SCALE = int(_os.environ.get("SCALE", "1"))
def _scaled(args):
    # longer runs: the server's CPU time is read in clock ticks (10 ms), and start-up
    # weighs less
    return [str(int(a) * SCALE) if i > 0 and args[i - 1] == "--count" else a for i, a in enumerate(args)]
SCEN_ALL = [(n, k, _scaled(a)) for n, k, a in SCEN_ALL]
SCEN = [x for x in SCEN_ALL if not _os.environ.get("ONLY") or _os.environ["ONLY"] in x[0]]
def node(binary, kind):
    d = tempfile.mkdtemp(prefix="ab-")
    cfg = os.path.join(d, "t.toml")
    open(cfg, "w").write('[[tenant]]\nname = "default"\nauto_create = true\n[[tenant.address]]\nname = "bench"\ntype = "%s"\n' % kind)
    p = subprocess.Popen([binary, "serve", "--amqp", "127.0.0.1:0", "--mqtt", "127.0.0.1:0", "--config", cfg, "--data-dir", d + "/data"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    ports = {}
    deadline = time.time() + 10
    while len(ports) < 2 and time.time() < deadline:
        m = re.match(r"listening (amqp|mqtt) (\S+)", p.stdout.readline())
        if m: ports[m.group(1)] = m.group(2)
    return p, ports
res = {}
for name, kind, args in SCEN:
    for r in range(RUNS):
        for label, b in (("old", OLD), ("new", NEW)):
            p, ports = node(b, kind)
            url = ports["mqtt" if "mqtt" in args else "amqp"]
            out = subprocess.run([BENCH, "bench", "--url", url, "--server-pid", str(p.pid), "--timeout", "60"] + args,
                                 capture_output=True, text=True, timeout=120).stdout
            p.terminate(); p.wait(15)
            rate = re.search(r"throughput (\d+) msgs/s", out); cpu = re.search(r"server_cpu_us_per_msg ([\d.]+)", out)
            if rate and cpu:
                res.setdefault((name, label), []).append((float(rate.group(1).replace(",", "")), float(cpu.group(1))))
            else:
                print("unparsed", name, label, out[-300:], file=sys.stderr)
for name, _, _ in SCEN:
    o, n = res.get((name, "old"), []), res.get((name, "new"), [])
    if not o or not n: continue
    mo, mn = statistics.median(x[0] for x in o), statistics.median(x[0] for x in n)
    co, cn = statistics.median(x[1] for x in o), statistics.median(x[1] for x in n)
    print(name, "old", sorted(o), "new", sorted(n), file=sys.stderr)
    print(f"| {name} | {mo:,.0f} | {mn:,.0f} | {mn/mo:.2f} | {co:.2f} | {cn:.2f} | {cn/co:.2f} | {len(o)}/{len(n)} |")
