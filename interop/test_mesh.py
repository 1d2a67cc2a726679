"""Direct messaging across a mesh of routers (docs/SEMANTICS.md, "Across a mesh"), with
python-qpid-proton clients on different `throng serve` processes joined by inter-router
connections on 127.0.0.1: anycast over several hops with the consumer's outcome passed
back, credit only while a consumer somewhere can take messages, multicast exactly once
over redundant paths, a router on the path
killed (SIGKILL) or hung (SIGSTOP) mid-stream with the traffic moving to the other path,
request/reply across three nodes, and two tenants with the same address names.

Every node binds 127.0.0.1:0 for its listeners and reads its ports from the `listening`
lines; a restarted node gets its old inter-router port back, so the nodes that dial it
find it again.
"""

import json
import signal
import time
import urllib.request

import pytest
from proton import Delivery, Message, Timeout

from conftest import DEFAULT_CONFIG

ACCEPTED, RELEASED, MODIFIED = Delivery.ACCEPTED, Delivery.RELEASED, Delivery.MODIFIED


class Mesh:
    """Nodes started one after another; each dials nodes started before it."""

    def __init__(self, throng, tmp_path, config=DEFAULT_CONFIG):
        self.throng = throng
        self.tmp_path = tmp_path
        self.config = config
        self.nodes = {}
        self.dials = {}
        self.starts = 0

    def add(self, name, dial=(), port=0):
        """Starts node `name` dialling `dial` [(node, cost)]; port: its inter-router port."""
        args = ["--node-id", name, "--inter-router", f"127.0.0.1:{port}"]
        for peer, cost in dial:
            args += ["--connect", f"127.0.0.1:{self.nodes[peer].inter_router_port},{cost}"]
        data = self.tmp_path / f"{name}-data"
        self.starts += 1
        srv = self.throng(self.config, name=f"{name}-{self.starts}", extra_args=args, data_dir=data)
        self.nodes[name] = srv
        self.dials[name] = list(dial)
        return srv

    def restart(self, name):
        """Starts `name` again, on its data and its inter-router port."""
        return self.add(name, self.dials[name], port=self.nodes[name].inter_router_port)

    def status(self, name):
        srv = self.nodes[name]
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.http_port}/api/v1/mesh", timeout=5) as r:
            return json.loads(r.read())

    def next_hop(self, frm, to):
        for r in self.status(frm)["routes"]:
            if r["node"] == to:
                return r["next_hop"]
        return None

    def wait_for(self, cond, timeout=10.0, what="the mesh"):
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}: "
                                     + "; ".join(f"{n}: {self.status(n)}" for n, s in self.nodes.items()
                                                 if s.proc is not None))
            time.sleep(0.05)

    def wait_converged(self, timeout=10.0):
        names = [n for n, s in self.nodes.items() if s.proc is not None]

        def done():
            return all({r["node"] for r in self.status(n)["routes"]} >= set(names) - {n} for n in names)

        self.wait_for(done, timeout, "every node to have a route to every other")

    def advertised(self, at, address, by):
        return any(a["address"] == address and any(n == by for n, _ in a["nodes"])
                   for a in self.status(at)["addresses"])


@pytest.fixture
def mesh(throng, tmp_path):
    return Mesh(throng, tmp_path)


def line(mesh, n):
    mesh.add("r1")
    for i in range(2, n + 1):
        mesh.add(f"r{i}", dial=[(f"r{i - 1}", 1)])
    mesh.wait_converged()
    return [mesh.nodes[f"r{i}"] for i in range(1, n + 1)]


def test_anycast_crosses_two_routers_with_credit_only_from_a_consumer(mesh, new_world):
    r1, r2, r3 = line(mesh, 3)
    world = new_world(r1.url)
    snd = world.sender(world.connect(r1.url), "any1")
    with pytest.raises(Timeout):
        world.wait(lambda: snd.credit > 0, timeout=1.0, what="credit (must not come: no consumer anywhere)")

    rcv = world.receiver(world.connect(r3.url), "any1", credit=20)
    world.wait(lambda: snd.credit > 0, timeout=5, what="credit once a consumer two hops away attached")
    assert mesh.advertised("r1", "any1", "r3")

    deliveries = [snd.send_async(Message(body=f"m{i}", id=f"id-{i}", reply_to="back",
                                         properties={"k": i})) for i in range(10)]
    got = rcv.get_n(10)
    assert [r.body for r in got] == [f"m{i}" for i in range(10)], "in order, untouched"
    assert [r.message.properties["k"] for r in got] == list(range(10))
    assert got[0].message.id == "id-0" and got[0].message.reply_to == "back"
    # the consumer's own outcome travels back: accept, reject, release
    for i, r in enumerate(got):
        (r.accept, r.reject, r.release)[i % 3]()
    states = snd.settle_wait(deliveries)
    assert states == [(ACCEPTED, Delivery.REJECTED, RELEASED)[i % 3] for i in range(10)]


def test_a_consumer_leaving_takes_the_credit_away_across_the_mesh(mesh, new_world):
    r1, r2 = line(mesh, 2)
    world = new_world(r1.url)
    snd = world.sender(world.connect(r1.url), "any1")
    rconn = world.connect(r2.url)
    rcv = world.receiver(rconn, "any1", credit=5)
    world.wait(lambda: snd.credit > 0, timeout=5, what="credit from the far consumer")
    rcv.close()
    world.wait(lambda: snd.credit == 0, timeout=5, what="the credit to go with the consumer")


def test_request_reply_across_three_nodes(mesh, new_world):
    r1, r2, r3 = line(mesh, 3)
    world = new_world(r1.url)
    # the service on r3 answers through an anonymous sender, to each request's reply-to
    sconn = world.connect(r3.url)
    requests = world.receiver(sconn, "any1", credit=10)
    anon = world.sender(sconn, None)
    # the client on r1 has a dynamic reply address
    cconn = world.connect(r1.url)
    replies = world.receiver(cconn, None, dynamic=True, credit=10)
    reply_to = replies.address
    assert reply_to
    client = world.sender(cconn, "any1")
    mesh.wait_for(lambda: mesh.advertised("r3", reply_to, "r1"), what="the reply address to reach r3")

    pending = []
    for i in range(3):
        req = Message(body=f"question {i}", reply_to=reply_to, correlation_id=f"corr-{i}")
        pending.append(client.send_async(req))
    for i in range(3):
        r = requests.get()
        assert r.message.reply_to == reply_to
        anon.send_async(Message(address=r.message.reply_to, correlation_id=r.message.correlation_id,
                                body=r.body.upper()))
        r.accept()
    assert client.settle_wait(pending) == [ACCEPTED] * 3
    for i in range(3):
        got = replies.get()
        assert (got.message.correlation_id, got.body) == (f"corr-{i}", f"QUESTION {i}")
        got.accept()


TWO_TENANTS = """\
[[tenant]]
name = "alpha"
auto_create = false
[[tenant.address]]
name = "svc"
type = "anycast"

[[tenant]]
name = "beta"
auto_create = false
[[tenant.address]]
name = "svc"
type = "anycast"
"""


def test_two_tenants_with_the_same_address_never_meet_across_the_mesh(throng, tmp_path, new_world):
    mesh = Mesh(throng, tmp_path, config=TWO_TENANTS)
    mesh.add("r1")
    mesh.add("r2", dial=[("r1", 1)])
    mesh.wait_converged()
    r1, r2 = mesh.nodes["r1"], mesh.nodes["r2"]
    world = new_world(r1.url)
    beta_rcv = world.receiver(world.connect(r2.url, virtual_host="beta"), "svc", credit=10)
    alpha_snd = world.sender(world.connect(r1.url, virtual_host="alpha"), "svc")
    with pytest.raises(Timeout):
        world.wait(lambda: alpha_snd.credit > 0, timeout=1.0,
                   what="credit for alpha (must not come: only beta has a consumer)")
    alpha_rcv = world.receiver(world.connect(r2.url, virtual_host="alpha"), "svc", credit=10)
    world.wait(lambda: alpha_snd.credit > 0, timeout=5, what="credit from alpha's consumer")
    alpha_snd.send_async(Message(body="for alpha"))
    assert alpha_rcv.get().body == "for alpha"
    world.pump(0.3)
    assert not beta_rcv.available, "beta's consumer got alpha's message"


def test_multicast_reaches_every_member_exactly_once_over_redundant_paths(mesh, new_world):
    mesh.add("r1")
    mesh.add("r2", dial=[("r1", 1)])
    mesh.add("r3", dial=[("r1", 1)])
    mesh.add("r4", dial=[("r2", 1), ("r3", 1)])
    mesh.wait_converged()
    world = new_world(mesh.nodes["r1"].url)
    members = {n: world.receiver(world.connect(mesh.nodes[n].url), "multi1", credit=100)
               for n in ("r1", "r2", "r3", "r4")}
    snd = world.sender(world.connect(mesh.nodes["r1"].url), "multi1")
    mesh.wait_for(lambda: all(mesh.advertised("r1", "multi1", n) for n in ("r2", "r3", "r4")),
                  what="every member node advertised")
    world.wait(lambda: snd.credit > 0, timeout=5, what="multicast credit")
    pending = [snd.send_async(Message(body=f"n{i}")) for i in range(20)]
    assert snd.settle_wait(pending) == [ACCEPTED] * 20
    for n, rcv in members.items():
        got = rcv.get_n(20)
        assert [r.body for r in got] == [f"n{i}" for i in range(20)], f"{n} got {[r.body for r in got]}"
    world.pump(0.5)
    extra = {n: [r.body for r in rcv.drain_available()] for n, rcv in members.items()}
    assert not any(extra.values()), f"copies arrived twice: {extra}"


def square(mesh):
    """r1 to r4 over r2 (cost 1 + 1) or over r3 (cost 10 + 10)."""
    mesh.add("r1")
    mesh.add("r2", dial=[("r1", 1)])
    mesh.add("r3", dial=[("r1", 10)])
    mesh.add("r4", dial=[("r2", 1), ("r3", 10)])
    mesh.wait_converged()
    assert mesh.next_hop("r1", "r4") == "r2"
    return mesh.nodes["r1"], mesh.nodes["r4"]


def stream(world, snd, rcv, total, at, action, window=20, timeout=60.0):
    """Sends `total` numbered messages keeping `window` unsettled, the consumer accepting
    each as it comes; runs `action` once `at` have been sent. Returns (outcomes by
    number, arrival times by number)."""
    sent = []
    arrived = {}
    i = 0
    acted = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        unsettled = [d for _, d in sent if not d.settled]
        if i >= total and not unsettled:
            break
        while i < total and snd.credit > 0 and len(unsettled) < window:
            d = snd.send_async(Message(body=f"m{i}"))
            sent.append((i, d))
            unsettled.append(d)
            i += 1
        if not acted and i >= at:
            action()
            acted = True
        world.pump(0.005)
        for r in rcv.drain_available():
            arrived.setdefault(int(r.body[1:]), time.monotonic())
            r.accept()
            rcv.flow(1)
    outcomes = {n: d.remote_state if d.settled else None for n, d in sent}
    return outcomes, arrived


def check_failover(outcomes, arrived, total):
    never = [n for n, s in outcomes.items() if s is None]
    assert not never, f"deliveries never settled: {never[:10]}"
    assert len(outcomes) == total
    lost = [n for n, s in outcomes.items() if s == ACCEPTED and n not in arrived]
    assert not lost, f"accepted but never delivered: {lost[:10]}"
    odd = {s for s in outcomes.values()} - {ACCEPTED, RELEASED, MODIFIED}
    assert not odd, f"unexpected outcomes {odd}"
    accepted = sorted(n for n, s in outcomes.items() if s == ACCEPTED)
    assert accepted and accepted[-1] > total * 0.9, "traffic did not come back after the failure"
    times = sorted(arrived.values())
    return max(b - a for a, b in zip(times, times[1:]))


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_a_router_on_the_cheap_path_fails_and_traffic_takes_the_other(mesh, new_world, how):
    r1, r4 = square(mesh)
    world = new_world(r1.url)
    rcv = world.receiver(world.connect(r4.url), "any1", credit=50)
    snd = world.sender(world.connect(r1.url), "any1")
    world.wait(lambda: snd.credit > 0, timeout=5, what="credit from the consumer on r4")
    r2 = mesh.nodes["r2"]
    stopped = []

    def fail():
        if how == "kill":
            r2.kill()
        else:
            r2.proc.send_signal(signal.SIGSTOP)
            stopped.append(r2)

    try:
        outcomes, arrived = stream(world, snd, rcv, total=600, at=200, action=fail)
        # while r2 is still gone (a resumed r2 takes the cheap path back at once)
        assert mesh.next_hop("r1", "r4") == "r3"
    finally:
        for s in stopped:
            s.proc.send_signal(signal.SIGCONT)
    gap = check_failover(outcomes, arrived, 600)
    print(f"{how}: longest gap between deliveries {gap * 1000:.0f} ms; outcomes "
          f"{sum(1 for s in outcomes.values() if s == ACCEPTED)} accepted, "
          f"{sum(1 for s in outcomes.values() if s != ACCEPTED)} released/modified")
    assert gap < 5.0, f"deliveries stopped for {gap:.1f}s"


def test_a_killed_router_coming_back_takes_the_cheap_path_again(mesh, new_world):
    r1, r4 = square(mesh)
    mesh.nodes["r2"].kill()
    mesh.wait_for(lambda: mesh.next_hop("r1", "r4") == "r3", what="the route over r3")
    mesh.restart("r2")
    mesh.wait_for(lambda: mesh.next_hop("r1", "r4") == "r2", what="the route over r2 again")
    world = new_world(r1.url)
    rcv = world.receiver(world.connect(r4.url), "any1", credit=10)
    snd = world.sender(world.connect(r1.url), "any1")
    world.wait(lambda: snd.credit > 0, timeout=5, what="credit from the consumer on r4")
    d = snd.send_async(Message(body="again"))
    got = rcv.get()
    assert got.body == "again"
    got.accept()
    assert snd.settle_wait([d]) == [ACCEPTED]


@pytest.mark.parametrize("qos", [0, 1])
def test_an_mqtt_publish_reaches_an_amqp_consumer_two_nodes_away(mesh, new_world, qos):
    from test_mqtt import Client

    r1, r2, r3 = line(mesh, 3)
    world = new_world(r3.url)
    rcv = world.receiver(world.connect(r3.url), "any1", credit=10)
    mesh.wait_for(lambda: mesh.advertised("r1", "any1", "r3"), what="r3's consumer seen from r1")
    device = Client(r1.mqtt_port)
    try:
        info = device.c.publish("any1", b"reading 42", qos=qos)
        got = rcv.get()
        assert got.message.body == b"reading 42"
        got.accept()
        if qos:
            # the PUBACK waits for the consumer's accept, two nodes away
            world.wait(info.is_published, timeout=10, what="the PUBACK")
    finally:
        device.close()
