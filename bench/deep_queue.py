#!/usr/bin/env python3
"""Drain rate of a deep, paged queue: Throng beside RabbitMQ, interleaved, and the medians
as a Markdown table for docs/BENCHMARKS.md ("Deep paged queue").

    python3 bench/deep_queue.py [--runs 3] [--sizes 1024,16384] [--fill-mib 1024]
                                [--peer-fill-mib MIB] [--skip-peers]

Per run and body size, each broker gets a fresh node and two phases, both `throng bench`:

  fill   --producers 2 --consumers 0 --durable --size S --count N   (N*S = --fill-mib)
  drain  --producers 0 --consumers 1 --size S --count N             (everything back)

Throng: `throng serve --amqp 127.0.0.1:0 --config CFG --data-dir TMP`, the address `bench`
a queue with `memory_limit` 32 MiB and `max_bytes` 16 GiB, so all but the first 32 MiB of
the fill go to page files. RabbitMQ 3.10: `bench/peers/rabbitmq.sh start` with
BENCH_RABBITMQ_QUEUE_DURABLE=true (a durable classic queue `bench`, address
`/amq/queue/bench`) and the policy `queue-mode: lazy` on it (set with `rabbitmq.sh ctl
set_policy` and checked before the fill), so RabbitMQ too keeps the deep queue on disk.

Recorded per phase: msgs/s, MiB/s of bodies, server CPU µs per message (`--server-pid`),
the server's peak RSS (VmHWM of /proc/PID/status: the Throng process, RabbitMQ's beam.smp)
and its disk I/O (/proc/PID/io). The binary is a copy (--throng, default
/tmp/throng-bench-bin, copied from target/release/throng if missing) so a rebuild during
the run changes nothing. Everything listens on 127.0.0.1; every phase is bounded by
`--timeout`; each run's data directory is removed after the run.
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RABBITMQ = os.path.join(ROOT, "bench", "peers", "rabbitmq.sh")
RUN_BASE = os.environ.get("BENCH_RUN_DIR", os.path.join(ROOT, "bench", ".run"))
RABBIT_ENV = dict(os.environ, BENCH_RABBITMQ_QUEUE_DURABLE="true")
RABBIT_ADDRESS = "/amq/queue/bench"
LAZY_POLICY = ["set_policy", "deep-lazy", "^bench$", '{"queue-mode":"lazy"}', "--apply-to", "queues", "--priority", "1"]
MIB = 1024 * 1024


def proc_status(pid, key):
    """A kB field of /proc/PID/status (VmHWM, VmRSS), in MiB."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def proc_io(pid):
    """/proc/PID/io: rchar/wchar (bytes through read/write calls, page cache included) and
    read_bytes/write_bytes (what reached the block layer)."""
    r = {}
    try:
        with open("/proc/%d/io" % pid) as f:
            for line in f:
                k, v = line.split(":")
                r[k.strip()] = int(v)
    except OSError:
        pass
    return r


def du_mib(path):
    total = 0
    for d, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(d, name)).st_blocks * 512
            except OSError:
                pass
    return total / MIB


def check_disk(path, need_bytes):
    free = shutil.disk_usage(path).free
    if free < need_bytes:
        raise RuntimeError("only %.1f GiB free under %s, need %.1f GiB" % (free / 1024**3, path, need_bytes / 1024**3))
    return free


def start_throng(binary, memory_limit, max_bytes):
    d = tempfile.mkdtemp(prefix="throng-deep-")
    cfg = os.path.join(d, "throng.toml")
    with open(cfg, "w") as f:
        f.write('[[tenant]]\nname = "default"\n[[tenant.address]]\nname = "bench"\ntype = "queue"\n'
                'memory_limit = %d\nmax_bytes = %d\n' % (memory_limit, max_bytes))
    log = open(os.path.join(d, "serve.log"), "w")
    p = subprocess.Popen([binary, "serve", "--amqp", "127.0.0.1:0", "--config", cfg, "--data-dir", os.path.join(d, "data")],
                         stdout=subprocess.PIPE, stderr=log, text=True)
    deadline = time.time() + 30
    while time.time() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        m = re.match(r"listening amqp (\S+)", line)
        if m:
            # keep draining stdout so the node never blocks on a full pipe
            threading.Thread(target=p.stdout.read, daemon=True).start()
            return p, m.group(1), d
    p.kill()
    p.wait()
    shutil.rmtree(d, ignore_errors=True)
    raise RuntimeError("throng did not start")


def stop_throng(p, d):
    """SIGTERM, wait; returns the node's `journal flushed` log line; removes the data."""
    flushed = None
    try:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        with open(os.path.join(d, "serve.log")) as f:
            for line in f:
                if "journal flushed" in line:
                    flushed = line.split("journal flushed", 1)[1].strip()
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return flushed


def rabbit(*args, timeout=600):
    return subprocess.run(["bash", RABBITMQ] + list(args), capture_output=True, text=True, timeout=timeout, env=RABBIT_ENV)


def start_rabbitmq():
    out = rabbit("start")
    if out.returncode != 0:
        raise RuntimeError("rabbitmq.sh start failed: %s" % out.stderr[-2000:])
    url = re.search(r"listening amqp (\S+)", out.stdout).group(1)
    pid = int(re.search(r"pid (\d+)", out.stdout).group(1))
    try:
        out = rabbit("ctl", *LAZY_POLICY, timeout=120)
        if out.returncode != 0:
            raise RuntimeError("set_policy failed: %s" % (out.stdout + out.stderr)[-2000:])
        # the policy applies asynchronously: wait until the queue reports lazy mode
        expr = ("[{proplists:get_value(durable, I), proplists:get_value(mode, proplists:get_value(backing_queue_status, I))}"
                " || I <- rabbit_amqqueue:info_all(<<\"/\">>, [durable, backing_queue_status])].")
        for _ in range(50):
            out = rabbit("ctl", "eval", expr, timeout=120)
            if "{true,lazy}" in out.stdout.replace(" ", ""):
                return url, pid
            time.sleep(0.2)
        raise RuntimeError("queue bench is not durable+lazy: %s" % out.stdout.strip())
    except BaseException:
        stop_rabbitmq()
        raise


def rabbitmq_queue():
    out = rabbit("ctl", "list_queues", "--no-table-headers", "name", "messages", "messages_ram", "message_bytes_persistent", timeout=120)
    for line in out.stdout.splitlines():
        f = line.split()
        if len(f) == 4 and f[0] == "bench":
            return {"messages": int(f[1]), "messages_ram": int(f[2]), "bytes_persistent": int(f[3])}
    return {}


def stop_rabbitmq():
    rabbit("stop", timeout=180)
    # the node's data (the queue's files) lives here; start wipes it anyway
    shutil.rmtree(os.path.join(RUN_BASE, "rabbitmq", "mnesia"), ignore_errors=True)


def bench(binary, url, address, pid, extra, timeout):
    cmd = [binary, "bench", "--url", url, "--address", address, "--server-pid", str(pid), "--timeout", str(timeout)] + extra
    io0 = proc_io(pid)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 60)
    io1 = proc_io(pid)
    text = out.stdout
    r = {"cmd": " ".join(cmd)}
    m = re.search(r"sent (\d+) received (\d+) accepted (\d+) not-accepted (\d+) in ([\d.]+) s", text)
    if m:
        r["sent"], r["received"], r["accepted"], r["not_accepted"] = map(int, m.groups()[:4])
        r["seconds"] = float(m.group(5))
    m = re.search(r"throughput (\d+)", text)
    r["rate"] = int(m.group(1)) if m else 0
    m = re.search(r"server_cpu_us_per_msg ([\d.]+)", text)
    r["cpu"] = float(m.group(1)) if m else None
    m = re.search(r"client_cpu_us_per_msg ([\d.]+)", text)
    r["client_cpu"] = float(m.group(1)) if m else None
    for k in ("rchar", "wchar", "read_bytes", "write_bytes"):
        if k in io0 and k in io1:
            r[k + "_mib"] = (io1[k] - io0[k]) / MIB
    r["raw"] = text.strip() + ("\n" + out.stderr.strip() if out.returncode or out.stderr.strip() else "")
    return r


def one_run(broker, args, size, count):
    """Fresh node, fill, drain; returns the measurements."""
    need = count * size * 3 + 2 * 1024**3  # Throng: journal + page files (+ slack)
    check_disk(tempfile.gettempdir() if broker == "throng" else (RUN_BASE if os.path.isdir(RUN_BASE) else ROOT), need)
    fill = ["--producers", str(args.producers), "--consumers", "0", "--size", str(size), "--count", str(count), "--durable"]
    drain = ["--producers", "0", "--consumers", "1", "--size", str(size), "--count", str(count)]
    r = {"size": size, "count": count}
    if broker == "throng":
        p, url, d = start_throng(args.throng, args.memory_limit_mib * MIB, args.max_bytes_gib * 1024**3)
        pid, address = p.pid, "bench"
    else:
        url, pid = start_rabbitmq()
        address, d = RABBIT_ADDRESS, None
    try:
        r["rss_start"] = proc_status(pid, "VmRSS")
        r["fill"] = bench(args.throng, url, address, pid, fill, args.timeout)
        r["fill"]["hwm"] = proc_status(pid, "VmHWM")
        r["fill"]["rss"] = proc_status(pid, "VmRSS")
        if broker == "throng":
            data = os.path.join(d, "data")
            pages = os.path.join(data, "journal", "pages")
            r["fill"]["disk_mib"] = du_mib(data)
            r["fill"]["pages_mib"] = du_mib(pages)
            r["fill"]["page_files"] = sum(len(fs) for _, _, fs in os.walk(pages))
        else:
            r["fill"]["disk_mib"] = du_mib(os.path.join(RUN_BASE, "rabbitmq", "mnesia"))
            r["fill"]["queue"] = rabbitmq_queue()
        r["drain"] = bench(args.throng, url, address, pid, drain, args.timeout)
        r["drain"]["hwm"] = proc_status(pid, "VmHWM")
        r["drain"]["rss"] = proc_status(pid, "VmRSS")
        if broker == "throng":
            r["drain"]["disk_mib"] = du_mib(os.path.join(d, "data"))
        else:
            r["drain"]["disk_mib"] = du_mib(os.path.join(RUN_BASE, "rabbitmq", "mnesia"))
            r["drain"]["queue"] = rabbitmq_queue()
    finally:
        if broker == "throng":
            r["journal_flushed"] = stop_throng(p, d)
        else:
            stop_rabbitmq()
    r["ok"] = (r["fill"].get("accepted") == count and r["drain"].get("received") == count
               and r["drain"].get("queue", {}).get("messages", 0) == 0)
    return r


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def fmt(v, spec="%.0f"):
    return "n/a" if v is None else (spec % v)


def commas(v):
    return "n/a" if v is None else "{:,.0f}".format(v)


def main():
    ap = argparse.ArgumentParser(description="Drain rate of a deep paged queue, Throng beside RabbitMQ (see the module docs).")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sizes", default="1024,16384", help="body sizes in bytes, comma-separated")
    ap.add_argument("--fill-mib", type=int, default=1024, help="bodies per fill, MiB (count = this / size)")
    ap.add_argument("--peer-fill-mib", type=int, default=None, help="the same for RabbitMQ [--fill-mib]")
    ap.add_argument("--producers", type=int, default=2)
    ap.add_argument("--memory-limit-mib", type=int, default=32)
    ap.add_argument("--max-bytes-gib", type=int, default=16)
    ap.add_argument("--timeout", type=int, default=900, help="seconds per phase (throng bench --timeout)")
    ap.add_argument("--skip-peers", action="store_true")
    ap.add_argument("--throng", default="/tmp/throng-bench-bin", help="throng binary (a copy, see above)")
    ap.add_argument("--json", default=None, help="also write every measurement to this file")
    args = ap.parse_args()

    if not os.path.exists(args.throng):
        src = os.path.join(ROOT, "target", "release", "throng")
        shutil.copy2(src, args.throng)
        print("copied %s to %s" % (src, args.throng), file=sys.stderr)
    sizes = [int(s) for s in args.sizes.split(",")]
    brokers = ["throng"] + ([] if args.skip_peers else ["rabbitmq"])
    fill_mib = {"throng": args.fill_mib, "rabbitmq": args.peer_fill_mib or args.fill_mib}

    def count_for(b, size):
        c = fill_mib[b] * MIB // size
        return c - c % args.producers

    results = {(b, s): [] for b in brokers for s in sizes}
    t0 = time.time()
    for run in range(args.runs):
        for size in sizes:
            for b in brokers:
                r = one_run(b, args, size, count_for(b, size))
                results[(b, size)].append(r)
                f, d = r["fill"], r["drain"]
                print("run %d %-8s %5d B x %7d: fill %7d msgs/s (%.1f s, %s us/msg, HWM %s MiB, disk %s MiB) | "
                      "drain %7d msgs/s (%.1f s, %s us/msg, HWM %s MiB, read %s MiB)%s  [%.0f s]" % (
                          run + 1, b, size, r["count"], f["rate"], f.get("seconds", 0), f["cpu"], fmt(f["hwm"]),
                          fmt(f.get("disk_mib")), d["rate"], d.get("seconds", 0), d["cpu"], fmt(d["hwm"]),
                          fmt(d.get("read_bytes_mib")), "" if r["ok"] else "  INCOMPLETE", time.time() - t0), file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"%s/%d" % k: v for k, v in results.items()}, f, indent=1)

    def m(b, s, phase, key):
        return med([r[phase].get(key) for r in results[(b, s)]])

    def mibs(b, s, phase):
        return med([r["count"] * s / r[phase]["seconds"] / MIB for r in results[(b, s)] if r[phase].get("seconds")])

    print("| body | server | messages (MiB) | drain msgs/s | drain MiB/s | drain server CPU µs/msg | "
          "peak RSS MiB (fill / fill+drain) | fill msgs/s | fill server CPU µs/msg | complete |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for s in sizes:
        for b in brokers:
            rs = results[(b, s)]
            name = "Throng" if b == "throng" else "RabbitMQ 3.10 (durable, lazy)"
            print("| %s B | %s | %s (%d) | %s | %s | %s | %s / %s | %s | %s | %d/%d |" % (
                commas(s), name, commas(rs[0]["count"]), rs[0]["count"] * s // MIB, commas(m(b, s, "drain", "rate")),
                fmt(mibs(b, s, "drain")), fmt(m(b, s, "drain", "cpu"), "%.2f"), fmt(m(b, s, "fill", "hwm")),
                fmt(m(b, s, "drain", "hwm")), commas(m(b, s, "fill", "rate")), fmt(m(b, s, "fill", "cpu"), "%.2f"),
                sum(r["ok"] for r in rs), len(rs)))
    if "rabbitmq" in brokers:
        print()
        print("| body | drain msgs/s Throng/RabbitMQ | drain CPU/msg Throng/RabbitMQ | peak RSS Throng/RabbitMQ | fill msgs/s Throng/RabbitMQ |")
        print("|---|---|---|---|---|")
        for s in sizes:
            def ratio(phase, key):
                a, b = m("throng", s, phase, key), m("rabbitmq", s, phase, key)
                return "n/a" if not a or not b else "%.2f" % (a / b)
            print("| %s B | %s | %s | %s | %s |" % (commas(s), ratio("drain", "rate"), ratio("drain", "cpu"),
                                                      ratio("drain", "hwm"), ratio("fill", "rate")))
    print()
    print("server RSS right after start (median, MiB): " + ", ".join(
        "%s %d B %s" % (b, s, fmt(med([r.get("rss_start") for r in results[(b, s)]]))) for s in sizes for b in brokers))
    print()
    print("disk and I/O (medians; wchar/rchar: bytes through write/read calls, device: /proc/PID/io write_bytes/read_bytes)")
    for s in sizes:
        for b in brokers:
            extra = ""
            if b == "throng":
                extra = ", page files %s MiB in %s files; last run's `journal flushed %s`" % (
                    fmt(m(b, s, "fill", "pages_mib")), fmt(m(b, s, "fill", "page_files")), results[(b, s)][-1].get("journal_flushed"))
            else:
                q = results[(b, s)][-1]["fill"].get("queue", {})
                extra = ", queue after fill: %s" % q
            print("  %-8s %5d B: fill wchar %s MiB (device %s MiB), on disk after %s MiB%s; drain rchar %s MiB (device %s MiB), "
                  "wchar %s MiB (device %s MiB), on disk after %s MiB" % (
                      b, s, fmt(m(b, s, "fill", "wchar_mib")), fmt(m(b, s, "fill", "write_bytes_mib")),
                      fmt(m(b, s, "fill", "disk_mib")), extra, fmt(m(b, s, "drain", "rchar_mib")),
                      fmt(m(b, s, "drain", "read_bytes_mib")), fmt(m(b, s, "drain", "wchar_mib")),
                      fmt(m(b, s, "drain", "write_bytes_mib")), fmt(m(b, s, "drain", "disk_mib"))))
    print()
    print("raw output of the last run:")
    for s in sizes:
        for b in brokers:
            r = results[(b, s)][-1]
            print("--- %s %d B fill\n$ %s\n%s\n--- %s %d B drain\n$ %s\n%s" % (
                b, s, r["fill"]["cmd"], r["fill"]["raw"], b, s, r["drain"]["cmd"], r["drain"]["raw"]))


if __name__ == "__main__":
    main()
