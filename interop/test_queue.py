"""Queue semantics (docs/ARCHITECTURE.md, "Address types": `queue`) with python-qpid-proton."""

import subprocess
import sys
import textwrap
import uuid

import pytest
from proton import Delivery, Message, ulong
from proton.utils import LinkDetached

from amqp_util import outcome_name

ACCEPTED = Delivery.ACCEPTED


def send_all(world, sender, bodies, **props):
    """Send every body unsettled (pipelined), wait for settlement, return outcomes."""
    world.wait(lambda: sender.credit > 0, what="sender credit")
    deliveries = [sender.send_async(Message(body=b, **props)) for b in bodies]
    return sender.settle_wait(deliveries)


def assert_all_accepted(outcomes):
    bad = [(i, outcome_name(o)) for i, o in enumerate(outcomes) if o != ACCEPTED]
    assert not bad, f"sends not settled ACCEPTED by the queue: {bad}"


def test_queue_send_then_receive_in_order(world):
    n = 20
    conn = world.connect()
    snd = world.sender(conn, "q1")
    bodies = [f"msg-{i}" for i in range(n)]
    assert_all_accepted(send_all(world, snd, bodies))

    rcv = world.receiver(world.connect(), "q1", credit=n)
    got = rcv.get_n(n)
    assert [r.body for r in got] == bodies
    for r in got:
        assert not r.delivery.settled, "queue deliveries must be sent unsettled (at-least-once)"
        r.accept()
    rcv.close()

    # accepted = done: nothing is left in the queue
    again = world.receiver(world.connect(), "q1", credit=10)
    world.pump(0.5)
    assert not again.available, f"accepted messages came back: {[r.body for r in again.drain_available()]}"


def test_queue_competing_consumers_get_disjoint_subsets(world):
    n = 20
    a = world.receiver(world.connect(), "q1", credit=5)
    b = world.receiver(world.connect(), "q1", credit=5)
    world.pump(0.2)
    snd = world.sender(world.connect(), "q1")
    bodies = [f"m{i}" for i in range(n)]
    assert_all_accepted(send_all(world, snd, bodies))

    got_a, got_b = [], []
    # Two rounds of 5 credits each: together exactly n messages.
    for round_ in range(2):
        world.wait(lambda: a.available + b.available >= 10,
                   what=f"round {round_}: 10 messages over both consumers (a={a.available}, b={b.available})")
        world.pump(0.2)  # anything beyond the granted credit would show up now
        ra, rb = a.drain_available(), b.drain_available()
        assert len(ra) <= 5 and len(rb) <= 5, f"credit exceeded: a got {len(ra)}, b got {len(rb)} with 5 credits each"
        for r in ra + rb:
            r.accept()
        got_a += [r.body for r in ra]
        got_b += [r.body for r in rb]
        a.flow(5)
        b.flow(5)

    assert got_a and got_b, f"one consumer got nothing: a={got_a} b={got_b}"
    assert not set(got_a) & set(got_b), f"a message went to both consumers: {set(got_a) & set(got_b)}"
    assert len(got_a) == len(set(got_a)) and len(got_b) == len(set(got_b)), "duplicate delivery"
    assert sorted(got_a + got_b) == sorted(bodies)
    # each consumer sees its share in queue order
    assert got_a == sorted(got_a, key=bodies.index)
    assert got_b == sorted(got_b, key=bodies.index)
    world.pump(0.3)
    assert not a.available and not b.available


def test_queue_released_message_is_redelivered_with_count_unchanged(world):
    snd = world.sender(world.connect(), "q1")
    assert snd.send(Message(body="again", id="rel-1")) == ACCEPTED

    rcv = world.receiver(world.connect(), "q1", credit=1)
    first = rcv.get()
    assert first.body == "again"
    assert first.message.delivery_count == 0
    first.release()

    rcv.flow(1)
    second = rcv.get()
    assert second.body == "again"
    assert second.message.id == "rel-1"
    assert second.message.delivery_count == 0, "released: delivery-count must be unchanged"
    second.accept()


def test_queue_modified_delivery_failed_increments_count(world):
    snd = world.sender(world.connect(), "q1")
    assert snd.send(Message(body="flaky", id="mod-1")) == ACCEPTED

    rcv = world.receiver(world.connect(), "q1", credit=1)
    r = rcv.get()
    assert r.body == "flaky"
    assert r.message.delivery_count == 0
    r.modify(failed=True)

    rcv.flow(1)
    r = rcv.get()
    assert r.body == "flaky"
    assert r.message.delivery_count == 1, "modified(delivery-failed): delivery-count must be incremented"
    r.modify(failed=True)

    rcv.flow(1)
    r = rcv.get()
    assert r.message.delivery_count == 2
    r.accept()


def test_queue_rejected_message_goes_to_dlq(world):
    snd = world.sender(world.connect(), "q1")
    assert snd.send(Message(body="poison", id="bad-1", properties={"k": "v"})) == ACCEPTED
    assert snd.send(Message(body="fine", id="ok-1")) == ACCEPTED

    rcv = world.receiver(world.connect(), "q1", credit=1)
    r = rcv.get()
    assert r.body == "poison"
    r.reject()
    rcv.flow(1)
    r = rcv.get()
    assert r.body == "fine", "after a reject the next message must follow, the rejected one must not come back"
    r.accept()
    rcv.flow(5)
    world.pump(0.5)
    assert not rcv.available, f"rejected message came back to q1: {[x.body for x in rcv.drain_available()]}"

    dlq = world.receiver(world.connect(), "DLQ", credit=5)
    d = dlq.get()
    assert d.body == "poison"
    assert d.message.id == "bad-1"
    assert d.message.properties == {"k": "v"}
    d.accept()
    world.pump(0.3)
    assert not dlq.available


def test_queue_unacked_messages_return_on_disconnect_in_order(world):
    snd = world.sender(world.connect(), "q1")
    bodies = [f"o{i}" for i in range(8)]
    assert_all_accepted(send_all(world, snd, bodies))

    conn_a = world.connect()
    a = world.receiver(conn_a, "q1", credit=5)
    got = a.get_n(5)
    assert [r.body for r in got] == bodies[:5]
    world.close(conn_a)  # disconnect without settling anything

    b = world.receiver(world.connect(), "q1", credit=20)
    again = b.get_n(8)
    assert [r.body for r in again] == bodies, \
        "unacknowledged messages must go back to the queue ahead of later ones, in their original order"
    for r in again:
        r.accept()


ABRUPT_CONSUMER = textwrap.dedent("""
    import os, sys
    from proton.utils import BlockingConnection
    conn = BlockingConnection(sys.argv[1], timeout=10)
    rcv = conn.create_receiver("q1", credit=3)
    bodies = [rcv.receive(timeout=10).body for _ in range(3)]
    print(",".join(bodies), flush=True)
    os._exit(0)  # vanish: no disposition, no detach, no close frame
""")


def test_queue_unacked_messages_return_on_abrupt_disconnect(server, world):
    snd = world.sender(world.connect(), "q1")
    bodies = [f"x{i}" for i in range(5)]
    assert_all_accepted(send_all(world, snd, bodies))

    proc = subprocess.run([sys.executable, "-c", ABRUPT_CONSUMER, server.url],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "x0,x1,x2"

    b = world.receiver(world.connect(), "q1", credit=10)
    again = b.get_n(5)
    assert [r.body for r in again] == bodies, \
        "messages held by a consumer whose socket dropped must go back in their original order"
    for r in again:
        r.accept()


def _rich_messages():
    return [
        Message(
            id="msg-1", correlation_id="corr-1", reply_to="replies", subject="subj-1",
            content_type="text/plain", body="hello world",
            properties={"str": "v", "int": 42, "neg": -7, "bool": True, "float": 1.5, "unicode": "grüße ✓"},
        ),
        Message(
            id=uuid.UUID("12345678-1234-5678-1234-567812345678"), correlation_id=ulong(77),
            reply_to="reply/here", subject="binary", content_type="application/octet-stream",
            body=b"\x00\x01\x02\xff" * 64, properties={"n": 1},
        ),
        Message(
            id=ulong(123456789), correlation_id=b"\xde\xad\xbe\xef", reply_to="r3", subject="map",
            content_type="application/json", body={"a": 1, "b": [1, 2, 3], "c": {"d": "e"}},
            properties={"empty": ""}, group_id="g1", group_sequence=3, content_encoding="identity",
            creation_time=1700000000.0,
        ),
        Message(id=b"binary-id", correlation_id=uuid.UUID(int=5), subject="list", body=["x", 2, None, True]),
        Message(id="msg-5", body="ünïcødé ✓ 日本語"),
        Message(id="msg-6", content_type="application/octet-stream", body=b"data section \x00\xff", inferred=True),
    ]


def normalized(v):
    """(kind, value) so that equal AMQP values compare equal whatever Python type proton
    picked when decoding (binary comes back as memoryview, ulong as int, symbol is a str)."""
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, int):
        return ("int", int(v))
    if isinstance(v, float):
        return ("float", v)
    if isinstance(v, str):
        return ("str", str(v))
    if isinstance(v, (bytes, bytearray, memoryview)):
        return ("binary", bytes(v))
    if isinstance(v, uuid.UUID):
        return ("uuid", v)
    if v is None:
        return ("null", None)
    if isinstance(v, dict):
        return ("map", sorted((normalized(k), normalized(x)) for k, x in v.items()))
    if isinstance(v, (list, tuple)):
        return ("list", [normalized(x) for x in v])
    return (type(v).__name__, v)


FIELDS = ("id", "correlation_id", "reply_to", "subject", "content_type", "properties", "body",
          "group_id", "group_sequence", "content_encoding", "creation_time")


def test_queue_preserves_body_and_properties(world):
    sent = _rich_messages()
    snd = world.sender(world.connect(), "q1")
    for m in sent:
        assert snd.send(m) == ACCEPTED

    rcv = world.receiver(world.connect(), "q1", credit=len(sent))
    got = rcv.get_n(len(sent))
    for s, r in zip(sent, got):
        for f in FIELDS:
            sv, rv = getattr(s, f), getattr(r.message, f)
            assert normalized(rv) == normalized(sv), f"{f}: sent {sv!r}, got {rv!r}"
        assert r.message.inferred == s.inferred, "body section kind (data vs amqp-value) changed"
        r.accept()


def test_large_message_round_trip(world):
    body = bytes((i * 7 + (i >> 10)) & 0xFF for i in range(1024 * 1024))  # 1 MiB
    snd = world.sender(world.connect(), "q1")
    assert snd.send(Message(body=body, id="big", inferred=True), timeout=30) == ACCEPTED
    # a small max-frame on the receiving connection forces the server to split it into many frames
    rcv = world.receiver(world.connect(max_frame_size=16384), "q1", credit=1)
    r = rcv.get(timeout=30)
    assert r.message.id == "big"
    assert len(r.body) == len(body)
    assert bytes(r.body) == body
    r.accept()


def test_auto_create_makes_a_queue(world):
    addr = "auto.created.queue"
    snd = world.sender(world.connect(), addr)
    assert snd.send(Message(body="stored-1")) == ACCEPTED
    assert snd.send(Message(body="stored-2")) == ACCEPTED
    snd.close()
    # queue semantics: the messages waited for a consumer that attaches later
    rcv = world.receiver(world.connect(), addr, credit=5)
    got = rcv.get_n(2)
    assert [r.body for r in got] == ["stored-1", "stored-2"]
    for r in got:
        r.accept()


def test_unknown_address_not_found_without_auto_create(noauto_server, new_world):
    world = new_world(noauto_server.url)
    conn = world.connect()
    # a configured address still works
    assert world.sender(conn, "q1").send(Message(body="ok")) == ACCEPTED

    with pytest.raises(LinkDetached) as ei:
        world.sender(world.connect(), "no.such.address")
        world.wait(lambda: False, timeout=3, what="the server to refuse the sender attach")
    assert ei.value.condition == "amqp:not-found", str(ei.value)

    with pytest.raises(LinkDetached) as ei:
        world.receiver(world.connect(), "no.such.address.either", credit=1)
        world.wait(lambda: False, timeout=3, what="the server to refuse the receiver attach")
    assert ei.value.condition == "amqp:not-found", str(ei.value)


def test_sender_and_receiver_with_the_same_link_name(world):
    """Proton names links "<container-id>-<address>" by default, so a sender and a receiver
    on one connection to the same address share a name. That is legal AMQP (a link is
    identified by its name and direction) and must work."""
    conn = world.connect()
    snd = conn.create_sender("q1")
    rcv = conn.create_receiver("q1", credit=1)
    assert snd.link.name == rcv.link.name
    snd.send(Message(body="same-name"), timeout=10)
    m = rcv.receive(timeout=10)
    assert m.body == "same-name"
    rcv.accept()
