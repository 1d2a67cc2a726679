"""Small synchronous helpers over python-qpid-proton for the interop tests.

A `World` holds every BlockingConnection a test opened. `World.wait()` drives all of
them, so a test can be written step by step even when a message has to travel from
one client connection through the server to another (each BlockingConnection has
its own event loop, which only runs while someone waits on it).

Every wait has a timeout: nothing here can hang a test.
"""

import itertools
import time

from proton import Delivery, Endpoint, Timeout
from proton.utils import BlockingConnection

DEFAULT_TIMEOUT = 10.0
_link_ids = itertools.count(1)


def _link_name(kind, address):
    # Unique link names. (Proton's default, "<container-id>-<address>", gives a sender and a
    # receiver on the same address the same name; that is legal AMQP and covered by its own
    # test, test_queue.py::test_sender_and_receiver_with_the_same_link_name.)
    return f"{kind}-{address or 'dynamic'}-{next(_link_ids)}"

OUTCOME_NAMES = {
    Delivery.ACCEPTED: "ACCEPTED",
    Delivery.REJECTED: "REJECTED",
    Delivery.RELEASED: "RELEASED",
    Delivery.MODIFIED: "MODIFIED",
    Delivery.RECEIVED: "RECEIVED",
    0: "none",
    None: "none",
}


def outcome_name(state):
    return OUTCOME_NAMES.get(state, repr(state))


class World:
    def __init__(self, url):
        self.url = url
        self.conns = []

    def connect(self, url=None, **kwargs):
        """Open a BlockingConnection (kwargs go to proton's Container.connect)."""
        conn = BlockingConnection(url or self.url, timeout=DEFAULT_TIMEOUT, **kwargs)
        self.conns.append(conn)
        return conn

    def close(self, conn):
        self.conns.remove(conn)
        conn.close()

    def close_all(self):
        while self.conns:
            conn = self.conns.pop()
            try:
                conn.close()
            except Exception:  # teardown: the test result is already decided
                pass

    def drop_all(self, timeout=DEFAULT_TIMEOUT):
        """After the server died: drive every connection until it has seen its socket close,
        then free them all. (A BlockingConnection that has noticed the disconnect closes at
        once; one that has not would wait for the dead peer's close frame.) Connect with
        reconnect=False for this, or proton keeps trying to reconnect."""
        deadline = time.monotonic() + timeout
        for c in self.conns:
            c.container.timeout = 0.01
        while not all(c.disconnected for c in self.conns):
            if time.monotonic() >= deadline:
                raise Timeout(f"timed out after {timeout}s waiting for connections to see the server go")
            for c in self.conns:
                if not c.disconnected:
                    c.container.process()
        self.close_all()

    def pump(self, seconds):
        """Drive all connections for `seconds` (e.g. to check that nothing arrives)."""
        try:
            self.wait(lambda: False, timeout=seconds, what="pump")
        except Timeout:
            pass

    def wait(self, cond, timeout=DEFAULT_TIMEOUT, what="condition"):
        """Process events on all open connections until cond() is true; raise Timeout otherwise."""
        deadline = time.monotonic() + timeout
        saved = [(c, c.container.timeout) for c in self.conns]
        try:
            for c, _ in saved:
                c.container.timeout = 0.01
            while not cond():
                if time.monotonic() >= deadline:
                    raise Timeout(f"timed out after {timeout}s waiting for {what}")
                for c, _ in saved:
                    if c.container is not None:
                        c.container.process()
                    if c.disconnected and not c.closing:
                        raise ConnectionError(f"connection {c.url} dropped: {c.disconnected}")
        finally:
            for c, t in saved:
                if c.container is not None:
                    c.container.timeout = t

    # ---- links ---------------------------------------------------------------------

    def sender(self, conn, address, name=None, options=None):
        name = name or _link_name("snd", address)
        return Sender(self, conn.create_sender(address, name=name, options=options))

    def receiver(self, conn, address, credit=10, dynamic=False, name=None, options=None):
        return Receiver(self, conn, address, credit, dynamic, name, options)


class Sender:
    def __init__(self, world, blocking_sender):
        self.world = world
        self.blocking = blocking_sender
        self.link = blocking_sender.link

    @property
    def credit(self):
        return self.link.credit

    def send_async(self, msg):
        """Send without waiting; returns the Delivery."""
        return self.link.send(msg)

    def settle_wait(self, deliveries, timeout=DEFAULT_TIMEOUT):
        deliveries = list(deliveries)
        self.world.wait(lambda: all(d.settled for d in deliveries), timeout=timeout,
                        what=f"{len(deliveries)} deliveries on {self.link.target.address!r} to be settled")
        states = [d.remote_state for d in deliveries]
        for d in deliveries:
            d.settle()
        return states

    def send(self, msg, timeout=DEFAULT_TIMEOUT):
        """Send unsettled, wait until the server settles it, return its outcome (Delivery.ACCEPTED...)."""
        self.world.wait(lambda: self.link.credit > 0, timeout=timeout,
                        what=f"credit on sender to {self.link.target.address!r}")
        d = self.link.send(msg)
        return self.settle_wait([d], timeout=timeout)[0]

    def close(self):
        self.blocking.close()


class Received:
    """One received message with its delivery."""

    def __init__(self, message, delivery):
        self.message = message
        self.delivery = delivery

    @property
    def body(self):
        return self.message.body

    def _settle(self, state, failed=False, undeliverable=False):
        if state == Delivery.MODIFIED:
            self.delivery.local.failed = failed
            self.delivery.local.undeliverable = undeliverable
        self.delivery.update(state)
        self.delivery.settle()

    def accept(self):
        self._settle(Delivery.ACCEPTED)

    def reject(self):
        self._settle(Delivery.REJECTED)

    def release(self):
        self._settle(Delivery.RELEASED)

    def modify(self, failed=True, undeliverable=False):
        self._settle(Delivery.MODIFIED, failed=failed, undeliverable=undeliverable)


class Receiver:
    """A receiver with explicit credit (no automatic top-up) and explicit settlement."""

    def __init__(self, world, conn, address, credit, dynamic, name, options):
        self.world = world
        self.conn = conn
        # credit=None: no FlowController, we grant credit ourselves.
        name = name or _link_name("rcv", address)
        self.blocking = conn.create_receiver(address, credit=None, dynamic=dynamic, name=name, options=options)
        self.link = self.blocking.link
        self.fetcher = self.blocking.fetcher
        if credit:
            self.link.flow(credit)

    @property
    def address(self):
        """The address the server attached us to (for dynamic receivers, the generated one)."""
        return self.link.remote_source.address

    def flow(self, n):
        self.link.flow(n)

    @property
    def available(self):
        return self.fetcher.has_message

    def get(self, timeout=DEFAULT_TIMEOUT):
        self.world.wait(lambda: self.fetcher.has_message, timeout=timeout,
                        what=f"a message on {self.link.source.address or self.address!r}")
        message, delivery = self.fetcher.incoming.popleft()
        return Received(message, delivery)

    def get_n(self, n, timeout=DEFAULT_TIMEOUT):
        self.world.wait(lambda: self.fetcher.has_message >= n, timeout=timeout,
                        what=f"{n} messages on {self.link.source.address or self.address!r}"
                             f" (have {self.fetcher.has_message})")
        return [self.get(timeout=0.1) for _ in range(n)]

    def drain_available(self):
        out = []
        while self.fetcher.has_message:
            message, delivery = self.fetcher.incoming.popleft()
            out.append(Received(message, delivery))
        return out

    def close(self):
        self.blocking.close()


def link_is_closed(link):
    return bool(link.state & Endpoint.REMOTE_CLOSED)
