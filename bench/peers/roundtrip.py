#!/usr/bin/env python3
"""AMQP 1.0 smoke test for a peer broker: send N messages to ADDRESS, then
receive N from it and check every body came back exactly once.

Needs python-qpid-proton (pip install python-qpid-proton), e.g. in a throwaway
venv:  python3 -m venv /tmp/benchvenv && /tmp/benchvenv/bin/pip install python-qpid-proton

  roundtrip.py --url amqp://127.0.0.1:15680 --address /queue/bench
  roundtrip.py --url amqp://guest:guest@127.0.0.1:15680 --address /amq/queue/bench
  roundtrip.py --url amqp://127.0.0.1:15690 --address bench

Exit status 0 on success. Prints one summary line; the timings are a rough
single-client figure, not a benchmark.
"""
import argparse
import sys
import time

from proton import Message
from proton.handlers import MessagingHandler
from proton.reactor import Container, LinkOption


class TerminusDurable(LinkOption):
    """Set the durability of the terminus that names the queue
    (target for a sender, source for a receiver): 0 none, 1 configuration, 2 unsettled-state."""

    def __init__(self, value):
        self.value = value

    def apply(self, link):
        if link.is_sender:
            link.target.durability = self.value
        else:
            link.source.durability = self.value


def connect(container, url):
    # No reconnect loop (a failed login must fail the run). With user:password in
    # the URL force SASL PLAIN: proton otherwise picks ANONYMOUS when the server
    # offers it first (RabbitMQ does) and the password is never checked.
    mechs = "PLAIN" if "@" in url else None
    return container.connect(url, reconnect=False, allowed_mechs=mechs)


class ErrorsMixin:
    def _fail(self, event, what, cond):
        if self.error is None:
            self.error = "%s error: %s" % (what, cond)
        if getattr(self, "timer", None):
            self.timer.cancel()
        if event.connection is not None:
            event.connection.close()

    def on_link_error(self, event):
        self._fail(event, "link", event.link.remote_condition)

    def on_session_error(self, event):
        self._fail(event, "session", event.session.remote_condition)

    def on_connection_error(self, event):
        self._fail(event, "connection", event.connection.remote_condition)

    def on_transport_error(self, event):
        if self.error is None:
            self.error = "transport error: %s" % event.transport.condition


class Sender(ErrorsMixin, MessagingHandler):
    def __init__(self, url, address, count, durable, size, terminus):
        super().__init__()
        self.url, self.address, self.count, self.terminus = url, address, count, terminus
        self.durable, self.pad = durable, "x" * size
        self.sent = self.accepted = self.rejected = 0
        self.error = None

    def on_start(self, event):
        conn = connect(event.container, self.url)
        event.container.create_sender(conn, self.address, options=TerminusDurable(self.terminus))

    def on_sendable(self, event):
        while event.sender.credit and self.sent < self.count:
            body = "%d:%s" % (self.sent, self.pad)
            event.sender.send(Message(body=body, durable=self.durable))
            self.sent += 1

    def on_accepted(self, event):
        self.accepted += 1
        self._maybe_done(event)

    def on_rejected(self, event):
        self.rejected += 1
        self._maybe_done(event)

    def on_released(self, event):
        self.rejected += 1
        self._maybe_done(event)

    def _maybe_done(self, event):
        if self.accepted + self.rejected == self.count:
            event.connection.close()


class Receiver(ErrorsMixin, MessagingHandler):
    def __init__(self, url, address, count, idle, terminus):
        super().__init__(prefetch=min(count, 500), auto_accept=True)
        self.url, self.address, self.count, self.idle = url, address, count, idle
        self.terminus = terminus
        self.seen = set()
        self.dups = 0
        self.error = None
        self.timer = None

    def on_start(self, event):
        self.container = event.container
        self.conn = connect(event.container, self.url)
        event.container.create_receiver(self.conn, self.address,
                                        options=TerminusDurable(self.terminus))
        self._arm()

    def _arm(self):
        if self.timer:
            self.timer.cancel()
        self.timer = self.container.schedule(self.idle, self)

    def on_timer_task(self, event):
        self.error = "timed out after %.0fs idle with %d/%d received" % (
            self.idle, len(self.seen), self.count)
        self.conn.close()

    def on_message(self, event):
        n = int(str(event.message.body).split(":", 1)[0])
        if n in self.seen:
            self.dups += 1
        self.seen.add(n)
        self._arm()
        if len(self.seen) == self.count:
            self.timer.cancel()
            event.connection.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--address", required=True)
    ap.add_argument("--recv-address", help="address to consume from (default: --address)")
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--size", type=int, default=0, help="extra body padding bytes")
    ap.add_argument("--durable", action="store_true", help="send durable messages")
    ap.add_argument("--terminus-durable", type=int, default=0, choices=(0, 1, 2),
                    help="terminus durability on attach (RabbitMQ 3.x /queue/NAME declares "
                         "the queue durable iff this is not 0)")
    ap.add_argument("--idle-timeout", type=float, default=10.0)
    a = ap.parse_args()

    t0 = time.monotonic()
    s = Sender(a.url, a.address, a.count, a.durable, a.size, a.terminus_durable)
    Container(s).run()
    t1 = time.monotonic()
    if s.error or s.accepted != a.count:
        print("FAIL send: sent=%d accepted=%d rejected/released=%d %s"
              % (s.sent, s.accepted, s.rejected, s.error or ""))
        return 1
    r = Receiver(a.url, a.recv_address or a.address, a.count, a.idle_timeout,
                 a.terminus_durable)
    Container(r).run()
    t2 = time.monotonic()
    if r.error or len(r.seen) != a.count or r.dups:
        print("FAIL recv: got=%d/%d dups=%d %s" % (len(r.seen), a.count, r.dups, r.error or ""))
        return 1
    print("OK %s %s: sent+accepted %d in %.3fs (%.0f msg/s), received %d in %.3fs (%.0f msg/s)"
          % (a.url, a.address, a.count, t1 - t0, a.count / (t1 - t0),
             len(r.seen), t2 - t1, a.count / (t2 - t1)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
