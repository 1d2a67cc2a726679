"""AMQP local transactions (coordinator, declare/discharge, transactional send and accept)
driven by python-qpid-proton's transaction API, as JMS transacted sessions use them."""

import threading
import time

from proton import Message
from proton.handlers import MessagingHandler, TransactionHandler
from proton.reactor import Container

TIMEOUT = 15


class TxClient(MessagingHandler, TransactionHandler):
    """Runs one scripted transaction: send `bodies` (and/or receive `receive` messages with
    transactional accepts), then commit or abort; records what happened."""

    def __init__(self, url, address, bodies=(), receive=0, commit=True, durable=False,
                 relay_to=None):
        super().__init__(prefetch=0, auto_accept=False)
        self.url, self.address = url, address
        self.bodies, self.receive, self.commit = list(bodies), receive, commit
        self.durable, self.relay_to = durable, relay_to
        self.states = []  # remote states of the transactional sends, as they settle
        self.received = []
        self.result = None
        self.txn = None

    def on_start(self, event):
        self.container = event.container
        self.conn = event.container.connect(self.url)
        if self.bodies:
            # relay_to: an anonymous-relay sender, each message naming its address in `to`
            target = None if self.relay_to else self.address
            self.sender = event.container.create_sender(self.conn, target)
        if self.receive:
            self.receiver = event.container.create_receiver(self.conn, self.address)
        event.container.declare_transaction(self.conn, handler=self)
        self.timer = event.container.schedule(TIMEOUT, self)

    def finish(self, result):
        self.result = result
        self.timer.cancel()
        self.conn.close()

    def on_timer_task(self, event):
        if self.result is None:
            self.result = "timeout"
            self.conn.close()

    def on_transaction_declared(self, event):
        self.txn = event.transaction
        if self.receive:
            self.receiver.flow(self.receive)
        self.maybe_send()

    def on_sendable(self, event):
        self.maybe_send()

    def maybe_send(self):
        if not self.txn or not self.bodies:
            return
        while self.bodies and self.sender.credit > 0:
            msg = Message(body=self.bodies.pop(0), durable=self.durable)
            if self.relay_to:
                msg.address = self.relay_to
            self.txn.send(self.sender, msg)
        self.maybe_discharge()

    def on_message(self, event):
        self.received.append(event.message.body)
        self.txn.accept(event.delivery)
        self.maybe_discharge()

    def maybe_discharge(self):
        if self.bodies or len(self.received) < self.receive:
            return
        if self.commit:
            self.txn.commit()
        else:
            self.txn.abort()

    def on_settled(self, event):
        if event.delivery.link.is_sender:
            # a transactional-state's fields: [txn-id, outcome]; the outcome's descriptor
            data = event.delivery.remote.data or []
            inner = data[1] if len(data) > 1 else None
            self.states.append(getattr(inner, "descriptor", inner))

    def on_transaction_committed(self, event):
        self.finish("committed")

    def on_transaction_aborted(self, event):
        self.finish("aborted")

    def on_transaction_declare_failed(self, event):
        self.finish("declare-failed")

    def on_transaction_commit_failed(self, event):
        self.finish("commit-failed")


def run(client):
    t = threading.Thread(target=Container(client).run, daemon=True)
    t.start()
    t.join(TIMEOUT + 5)
    assert not t.is_alive(), "transaction client hung"
    return client


def drain(world, address, n=10):
    rcv = world.receiver(world.connect(), address, credit=n)
    world.pump(0.5)
    got = [r.body for r in rcv.drain_available()]
    rcv.close()
    return got


def test_aborted_sends_never_arrive_committed_ones_do(server, world):
    c = run(TxClient(server.url, "txq", bodies=["a1", "a2"], commit=False))
    assert c.result == "aborted"
    assert drain(world, "txq") == []
    c = run(TxClient(server.url, "txq", bodies=["c1", "c2", "c3"], commit=True))
    assert c.result == "committed"
    assert drain(world, "txq") == ["c1", "c2", "c3"]


def test_transactional_accepts_apply_on_commit_only(server, world):
    assert run(TxClient(server.url, "txr", bodies=["m1", "m2"])).result == "committed"
    c = run(TxClient(server.url, "txr", receive=2, commit=False))
    assert c.result == "aborted" and c.received == ["m1", "m2"]
    # rolled back: both come back
    c = run(TxClient(server.url, "txr", receive=2, commit=True))
    assert c.result == "committed" and c.received == ["m1", "m2"]
    assert drain(world, "txr") == []


# Issue 11: a transaction's commit goes through the core's one entry point, all or nothing.

SMALL_QUEUES = """\
[[tenant]]
name = "default"
auto_create = true

[[tenant.address]]
name = "small"
type = "queue"
max_bytes = 2000
full_policy = "reject"

[[tenant.address]]
name = "small2"
type = "queue"
max_bytes = 2000
full_policy = "reject"

[[tenant.address]]
name = "smallblock"
type = "queue"
max_bytes = 2000

[[tenant.address]]
name = "any1"
type = "anycast"

[[tenant.address]]
name = "multi1"
type = "multicast"

[[tenant.address]]
name = "t1"
type = "topic"
"""


def send_plain(url, address, bodies):
    """Sends without a transaction; the outcome of each, by name."""
    from amqp_util import World, outcome_name
    w = World(url)
    try:
        snd = w.sender(w.connect(), address)
        return [outcome_name(snd.send(Message(body=b))) for b in bodies]
    finally:
        w.close_all()


def test_a_transaction_that_does_not_fit_a_rejecting_queue_commits_nothing(throng, new_world):
    node = throng(SMALL_QUEUES)
    # without a transaction: ten fit, the rest are rejected
    plain = send_plain(node.url, "small", ["x" * 200] * 50)
    assert plain.count("ACCEPTED") > 0 and plain.count("REJECTED") > 0, plain
    # the same 50 in one transaction, to an identical empty queue: all or nothing
    c = run(TxClient(node.url, "small2", bodies=["y" * 200] * 50))
    assert c.result == "commit-failed", c.result
    w = new_world(node.url)
    assert drain(w, "small2", n=60) == [], "a failed commit delivers nothing"


def test_a_transaction_larger_than_a_blocking_queue_fails_instead_of_passing_its_bound(
        throng, new_world):
    node = throng(SMALL_QUEUES)
    c = run(TxClient(node.url, "smallblock", bodies=["z" * 200] * 30))
    assert c.result in ("commit-failed", "timeout"), c.result
    w = new_world(node.url)
    got = drain(w, "smallblock", n=60)
    assert len(got) * 200 <= 2000, f"{len(got)} messages stored past max_bytes"


def test_relayed_transactional_sends_to_a_direct_address_without_consumer_are_not_accepted(
        throng, new_world):
    node = throng(SMALL_QUEUES)
    for address in ("any1", "multi1"):
        c = run(TxClient(node.url, address, bodies=["r1", "r2"], relay_to=address))
        assert c.result == "committed", c.result
        # the outcome inside the transactional state: released (0x26), as a plain send to
        # the relay would be told; never accepted (0x24) for a message that goes nowhere
        assert c.states and all(s == 0x26 for s in c.states), (address, c.states)


def test_a_durable_topic_transaction_survives_kill_9_right_after_commit(restartable, tmp_path):
    from proton.reactor import DurableSubscription
    from proton.utils import BlockingConnection
    data = tmp_path / "data"
    node = restartable(data)

    def subscriber(url):
        conn = BlockingConnection(url, timeout=TIMEOUT, container=Container(container_id="app1"))
        return conn, conn.create_receiver("t1", name="sub1", options=DurableSubscription(),
                                          credit=0)

    conn, rcv = subscriber(node.url)
    rcv.detach()
    conn.close()
    committed = 0
    for round_ in range(5):
        c = run(TxClient(node.url, "t1", bodies=[f"r{round_}-{i}" for i in range(100)],
                         durable=True))
        assert c.result == "committed", c.result
        committed += 100
        node.kill()  # at once: the commit was answered, so it is on disk
        node = restartable(data)
    conn, rcv = subscriber(node.url)
    rcv.flow(committed + 10)
    got = []
    try:
        while True:
            got.append(rcv.receive(timeout=3).body)
            rcv.accept()
    except Exception as e:
        assert "Timeout" in type(e).__name__ or "timed out" in str(e).lower(), e
    conn.close()
    assert len(got) == committed, f"{committed - len(got)} committed messages lost"


class TxLoop(MessagingHandler, TransactionHandler):
    """Commits transactions of `batch` durable messages to `address` one after another until
    the connection goes (the node is killed); `committed` holds the bodies of every
    transaction whose commit was answered."""

    def __init__(self, url, address, tag, batch=20):
        super().__init__(prefetch=0, auto_accept=False)
        self.url, self.address, self.tag, self.batch = url, address, tag, batch
        self.committed, self.pending, self.n = [], [], 0

    def on_start(self, event):
        self.container = event.container
        self.conn = event.container.connect(self.url, reconnect=False)
        self.sender = event.container.create_sender(self.conn, self.address)
        event.container.declare_transaction(self.conn, handler=self)

    def on_transaction_declared(self, event):
        self.txn = event.transaction
        self.pending = []
        self.fill()

    def on_sendable(self, event):
        self.fill()

    def fill(self):
        txn = getattr(self, "txn", None)
        if txn is None:
            return
        while len(self.pending) < self.batch and self.sender.credit > 0:
            body = f"{self.tag}-{self.n}"
            self.n += 1
            txn.send(self.sender, Message(body=body, durable=True))
            self.pending.append(body)
        if len(self.pending) == self.batch:
            self.txn = None
            txn.commit()

    def on_transaction_committed(self, event):
        self.committed.extend(self.pending)
        self.container.declare_transaction(self.conn, handler=self)

    def on_transaction_commit_failed(self, event):
        self.conn.close()

    def on_transport_error(self, event):
        event.container.stop()

    def on_disconnected(self, event):
        event.container.stop()


def test_no_committed_message_is_lost_to_kill_9_under_load(restartable, tmp_path):
    """Transactional producers on a queue and on a topic with a durable subscription, the
    node killed at a random moment, 20 times: every message of every commit that was
    answered is there after the restarts."""
    import random

    from proton.reactor import DurableSubscription
    from proton.utils import BlockingConnection

    def subscription(url):
        conn = BlockingConnection(url, timeout=TIMEOUT, container=Container(container_id="crash"))
        return conn, conn.create_receiver("t1", name="sub", options=DurableSubscription(), credit=0)

    data = tmp_path / "data"
    node = restartable(data)
    conn, rcv = subscription(node.url)
    rcv.detach()
    conn.close()
    committed = {"q1": [], "t1": []}
    for round_ in range(20):
        loops = [TxLoop(node.url, a, f"r{round_}-{a}") for a in committed]
        threads = [threading.Thread(target=Container(l).run, daemon=True) for l in loops]
        for t in threads:
            t.start()
        time.sleep(0.2 + random.random() * 0.4)
        node.kill()
        for t in threads:
            t.join(10)
            assert not t.is_alive(), "a producer hung after the crash"
        for l in loops:
            committed[l.address].extend(l.committed)
        node = restartable(data)
    assert all(committed.values()), {a: len(c) for a, c in committed.items()}

    def receive_all(rcv, n):
        got = set()
        rcv.flow(n + 100)
        try:
            while True:
                got.add(rcv.receive(timeout=3).body)
                rcv.accept()
        except Exception as e:
            assert "Timeout" in type(e).__name__ or "timed out" in str(e).lower(), e
        return got

    conn, rcv = subscription(node.url)
    on_topic = receive_all(rcv, len(committed["t1"]))
    conn.close()
    conn = BlockingConnection(node.url, timeout=TIMEOUT)
    on_queue = receive_all(conn.create_receiver("q1", credit=0), len(committed["q1"]))
    conn.close()
    lost = [b for b in committed["q1"] if b not in on_queue]
    lost += [b for b in committed["t1"] if b not in on_topic]
    assert not lost, f"{len(lost)} committed messages lost, e.g. {lost[:5]}"
