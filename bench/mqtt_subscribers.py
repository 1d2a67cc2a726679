#!/usr/bin/env python3
"""QoS 1 delivery to third-party MQTT subscribers, Throng beside Mosquitto, interleaved;
prints Markdown tables for docs/BENCHMARKS.md.

    python3 bench/mqtt_subscribers.py [--runs 3] [--count 50000] [--clients a,b,...]

Clients (each a real third-party MQTT implementation, subscribing to one topic at QoS 1
and exiting after COUNT messages):
  mosquitto_sub-v5    mosquitto_sub -V mqttv5 (libmosquitto announces Receive Maximum 20)
  mosquitto_sub-v311  mosquitto_sub -V mqttv311
  paho-v5, paho-v311  paho-mqtt (Python) with loop_start and automatic acknowledgements
  rumqttc-v311        bench/rumqttc-sub, rumqttc 0.24, inflight 1000
  rumqttc-v5          the same, MQTT 5, receive maximum 1000

Per run and client, Mosquitto first, then Throng: a fresh server, the subscriber started
and given 1 s to subscribe, then the publisher: `throng bench --protocol mqtt --consumers 0
--qos 1` (MQTT 5, 100-byte payloads, 1000 in flight), the same binary for both servers.
The time is from the publisher's start to the subscriber's exit after its last message.
Mosquitto runs with max_queued_messages 1000000 so that it drops nothing (its default
queue of 1000 would discard most of a burst); its in-flight limit stays the default (20).
Throng: `throng serve --mqtt 127.0.0.1:0 --data-dir DIR` (embedded defaults). Every
process listens on 127.0.0.1 and every step is bounded by a timeout.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILT = os.path.join(ROOT, "target", "release", "throng")
MOSQUITTO = os.path.join(ROOT, "bench", "peers", "mosquitto.sh")
RUMQTTC = os.path.join(ROOT, "bench", "rumqttc-sub", "target", "release", "rumqttc-sub")
PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
TOPIC = "bench/t"
LIMIT = 300  # seconds any one step may take

PAHO = r"""
import sys, threading
import paho.mqtt.client as mqtt
port, count, version = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
done, n = threading.Event(), 0
def on_message(c, u, m):
    global n
    n += 1
    if n == count:
        done.set()
proto = mqtt.MQTTv5 if version == "5" else mqtt.MQTTv311
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="paho-sub", protocol=proto)
c.on_message = on_message
c.on_connect = lambda c, u, f, rc, p=None: c.subscribe("bench/t", 1)
c.connect("127.0.0.1", port, keepalive=30)
c.loop_start()
ok = done.wait(%d)
c.loop_stop()
print("received", n)
sys.exit(0 if ok else 1)
""" % LIMIT


def subscriber(client, port, count):
    if client.startswith("mosquitto_sub"):
        v = "mqttv5" if client.endswith("v5") else "mqttv311"
        return ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-V", v, "-q", "1",
                "-t", TOPIC, "-C", str(count), "-i", "mosq-sub"]
    if client.startswith("paho"):
        return [PYTHON, "-c", PAHO, str(port), str(count), "5" if client.endswith("v5") else "3"]
    if client.startswith("rumqttc"):
        return [RUMQTTC, "127.0.0.1", str(port), TOPIC, str(count),
                "5" if client.endswith("v5") else "3", "1000"]
    raise SystemExit("unknown client " + client)


class Throng:
    name = "Throng"

    def __init__(self, binary, scratch):
        self.binary, self.scratch = binary, scratch

    def start(self):
        d = tempfile.mkdtemp(prefix="node-", dir=self.scratch)
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--amqp", "127.0.0.1:0", "--mqtt", "127.0.0.1:0",
             "--data-dir", os.path.join(d, "data")],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("listening mqtt "):
                return int(line.split()[2].rsplit(":", 1)[1])
        raise SystemExit("throng did not start")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Mosquitto:
    name = "Mosquitto"
    port = 15700

    def start(self):
        env = dict(os.environ, BENCH_MOSQUITTO_MAX_QUEUED="1000000",
                   BENCH_MOSQUITTO_PORT=str(self.port))
        subprocess.run(["bash", MOSQUITTO, "start"], env=env, check=True,
                       stdout=subprocess.DEVNULL, timeout=LIMIT)
        return self.port

    def stop(self):
        subprocess.run(["bash", MOSQUITTO, "stop"], check=False,
                       stdout=subprocess.DEVNULL, timeout=60)


def one(server, client, count, binary):
    port = server.start()
    try:
        sub = subprocess.Popen(subscriber(client, port, count), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        t0 = time.monotonic()
        pub = subprocess.run(
            [binary, "bench", "--protocol", "mqtt", "--url", "127.0.0.1:%d" % port,
             "--address", TOPIC, "--producers", "1", "--consumers", "0", "--count", str(count),
             "--qos", "1", "--mqtt-version", "5", "--timeout", str(LIMIT)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=LIMIT + 30)
        try:
            rc = sub.wait(LIMIT)
        except subprocess.TimeoutExpired:
            sub.kill()
            rc = None
        elapsed = time.monotonic() - t0
        if rc != 0 or pub.returncode != 0:
            return None
        return elapsed
    finally:
        server.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--count", type=int, default=50000)
    ap.add_argument("--clients", default="mosquitto_sub-v5,mosquitto_sub-v311,paho-v5,paho-v311,rumqttc-v311,rumqttc-v5")
    ap.add_argument("--binary", default=BUILT)
    args = ap.parse_args()
    scratch = tempfile.mkdtemp(prefix="mqtt-subs-")
    binary = os.path.join(scratch, "throng")
    shutil.copy(args.binary, binary)
    clients = args.clients.split(",")
    servers = [Mosquitto(), Throng(binary, scratch)]
    times = {(c, s.name): [] for c in clients for s in servers}
    try:
        for r in range(args.runs):
            for c in clients:
                for s in servers:
                    t = one(s, c, args.count, binary)
                    times[(c, s.name)].append(t)
                    shown = "failed" if t is None else "%.2f s" % t
                    print("run %d %-18s %-9s %s" % (r + 1, c, s.name, shown), file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print("| subscriber | Mosquitto s | Throng s | Mosquitto msgs/s | Throng msgs/s | Throng/Mosquitto throughput | runs |")
    print("|---|---|---|---|---|---|---|")
    for c in clients:
        m = [t for t in times[(c, "Mosquitto")] if t is not None]
        t = [t for t in times[(c, "Throng")] if t is not None]
        if not m or not t:
            print("| %s | %s | %s | | | | %d/%d |" % (c, m, t, len(t), args.runs))
            continue
        mm, tm = statistics.median(m), statistics.median(t)
        print("| %s | %.2f | %.2f | %d | %d | %.2f | %d/%d, %d/%d |" % (
            c, mm, tm, args.count / mm, args.count / tm, mm / tm, len(m), args.runs, len(t), args.runs))


if __name__ == "__main__":
    main()
