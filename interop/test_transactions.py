"""AMQP local transactions (coordinator, declare/discharge, transactional send and accept)
driven by python-qpid-proton's transaction API, as JMS transacted sessions use them."""

import threading

from proton import Message
from proton.handlers import MessagingHandler, TransactionHandler
from proton.reactor import Container

TIMEOUT = 15


class TxClient(MessagingHandler, TransactionHandler):
    """Runs one scripted transaction: send `bodies` (and/or receive `receive` messages with
    transactional accepts), then commit or abort; records what happened."""

    def __init__(self, url, address, bodies=(), receive=0, commit=True):
        super().__init__(prefetch=0, auto_accept=False)
        self.url, self.address = url, address
        self.bodies, self.receive, self.commit = list(bodies), receive, commit
        self.received = []
        self.result = None
        self.txn = None

    def on_start(self, event):
        self.container = event.container
        self.conn = event.container.connect(self.url)
        if self.bodies:
            self.sender = event.container.create_sender(self.conn, self.address)
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
            self.txn.send(self.sender, Message(body=self.bodies.pop(0)))
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
