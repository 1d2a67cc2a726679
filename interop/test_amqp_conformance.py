"""AMQP 1.0 conformance with python-qpid-proton (issue 11): credit granted after a drain,
dynamic reply addresses that end with their link, and the `modified` outcome's
undeliverable-here and message-annotations (part 3 §3.4.5)."""

import pytest
from proton import Delivery, Message, symbol

ACCEPTED = Delivery.ACCEPTED
REJECTED = Delivery.REJECTED


@pytest.mark.parametrize("address", ["q1", "t1", "any1", "multi1"])
def test_credit_granted_after_a_completed_drain_is_used(world, address):
    conn = world.connect()
    rcv = world.receiver(conn, address, credit=0)
    snd = world.sender(world.connect(), address)
    world.pump(0.2)
    for round_ in range(3):
        # a JMS receive(timeout) with prefetch 0: drain, then credit 1
        rcv.link.drain(5)
        world.wait(lambda: rcv.link.credit == 0 and not rcv.link.draining(),
                   what=f"round {round_}: the drain on {address} to complete")
        rcv.link.drain_mode = False
        rcv.flow(1)
        world.pump(0.2)
        # anycast settles the send with the consumer's outcome: send, then receive
        world.wait(lambda: snd.credit > 0, what=f"round {round_}: producer credit on {address}")
        d = snd.send_async(Message(body=f"after drain {round_}"))
        got = rcv.get()
        assert got.body == f"after drain {round_}"
        got.accept()
        assert snd.settle_wait([d]) == [ACCEPTED]


def _dynamic_receiver(world, conn):
    r = world.receiver(conn, None, dynamic=True, credit=10)
    world.wait(lambda: r.address, what="the dynamic address")
    return r


def _send_rejected_not_found(world, snd, msg):
    d = snd.send_async(msg)
    world.wait(lambda: d.remote_state, what=f"the outcome of the send to {msg.address!r}")
    assert d.remote_state == REJECTED, f"{msg.address!r}: expected rejected, got {d.remote_state}"
    assert d.remote.condition is not None and d.remote.condition.name == "amqp:not-found", str(d.remote.condition)
    d.settle()


def test_a_reply_to_a_gone_dynamic_receiver_is_refused(world):
    conn = world.connect()
    replies = _dynamic_receiver(world, conn)
    name = replies.address
    replies.close()
    anon = world.sender(world.connect(), None)
    world.wait(lambda: anon.credit > 0, what="relay credit")
    _send_rejected_not_found(world, anon, Message(address=name, body="late reply", durable=True))
    # nothing was created under that name
    from proton.utils import LinkDetached
    with pytest.raises(LinkDetached) as ei:
        world.receiver(world.connect(), name, credit=1)
        world.wait(lambda: False, timeout=3, what="the server to refuse the attach")
    assert ei.value.condition == "amqp:not-found", str(ei.value)


def test_dynamic_names_are_new_after_a_restart(restartable, new_world, tmp_path):
    data = tmp_path / "data"
    node = restartable(data)
    w = new_world(node.url)
    conn = w.connect(reconnect=False)
    old = _dynamic_receiver(w, conn)
    name = old.address
    old.close()
    anon = w.sender(conn, None)
    w.wait(lambda: anon.credit > 0, what="relay credit")
    _send_rejected_not_found(w, anon, Message(address=name, body="for the old receiver", durable=True))
    node.kill()
    w.drop_all()

    node = restartable(data)
    w = new_world(node.url)
    new = _dynamic_receiver(w, w.connect(reconnect=False))
    assert new.address != name, f"the first dynamic name after a restart repeats {name!r}"
    w.pump(0.5)
    assert not new.available, f"the new receiver got {[r.body for r in new.drain_available()]}"


def test_modified_undeliverable_here_goes_to_the_other_consumer(world):
    a = world.receiver(world.connect(), "q1", credit=10)
    b = world.receiver(world.connect(), "q1", credit=0)
    snd = world.sender(world.connect(), "q1")
    assert snd.send(Message(body="m")) == ACCEPTED
    got = a.get()
    got.modify(failed=False, undeliverable=True)
    world.pump(0.5)
    assert not a.available, "redelivered to the link that said undeliverable-here"
    # messages behind it still reach A
    assert snd.send(Message(body="n")) == ACCEPTED
    n = a.get()
    assert n.body == "n"
    n.accept()
    b.flow(10)
    m = b.get()
    assert m.body == "m"
    # released by B, it comes back to B, never to A
    m.release()
    m = b.get()
    assert m.body == "m"
    assert not a.available
    m.accept()


def test_modified_annotations_are_merged_into_the_redelivery(world):
    rcv = world.receiver(world.connect(), "q1", credit=10)
    snd = world.sender(world.connect(), "q1")
    sent = Message(body="payload", id="m-1", properties={"k": "v"},
                   annotations={symbol("x-opt-kept"): 1})
    assert snd.send(sent) == ACCEPTED
    got = rcv.get()
    got.delivery.local.annotations = {symbol("x-opt-reason"): "busy"}
    got._settle(Delivery.MODIFIED, failed=False, undeliverable=False)
    again = rcv.get()
    assert again.message.annotations.get("x-opt-reason") == "busy", again.message.annotations
    assert again.message.annotations.get("x-opt-kept") == 1, again.message.annotations
    assert again.body == "payload"
    assert again.message.id == "m-1"
    assert again.message.properties == {"k": "v"}
    again.accept()
