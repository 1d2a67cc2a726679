"""topic, anycast and multicast semantics (docs/ARCHITECTURE.md, "Address types") with python-qpid-proton."""

import pytest
from proton import Delivery, Message, Timeout

from amqp_util import outcome_name

ACCEPTED = Delivery.ACCEPTED


# ---- topic ---------------------------------------------------------------------------

def test_topic_every_subscriber_gets_every_message(world):
    snd = world.sender(world.connect(), "t1")
    # nobody is subscribed yet: this one reaches no subscription (its outcome is not checked)
    world.wait(lambda: snd.credit > 0, what="credit on the topic sender")
    snd.send(Message(body="before"))

    s1 = world.receiver(world.connect(), "t1", credit=20)
    s2 = world.receiver(world.connect(), "t1", credit=20)
    world.pump(0.2)
    bodies = [f"news-{i}" for i in range(10)]
    for b in bodies:
        assert snd.send(Message(body=b)) == ACCEPTED

    for name, sub in (("s1", s1), ("s2", s2)):
        got = sub.get_n(len(bodies))
        assert [r.body for r in got] == bodies, f"{name} got {[r.body for r in got]}"
        for r in got:
            r.accept()
    world.pump(0.3)
    assert not s1.available and not s2.available, "extra messages (was the pre-subscription one delivered?)"


# ---- anycast -------------------------------------------------------------------------

def test_anycast_sender_gets_credit_only_with_a_consumer(world):
    snd = world.sender(world.connect(), "any1")
    with pytest.raises(Timeout):
        world.wait(lambda: snd.credit > 0, timeout=1.0, what="credit (must not come: no consumer)")
    assert snd.credit == 0

    rcv = world.receiver(world.connect(), "any1", credit=1)
    world.wait(lambda: snd.credit > 0, timeout=5, what="credit once a consumer attached and granted credit")

    d = snd.send_async(Message(body="direct", id="a-1"))
    r = rcv.get()
    assert r.body == "direct"
    assert r.message.id == "a-1"
    r.accept()
    assert snd.settle_wait([d]) == [ACCEPTED]


@pytest.mark.parametrize("outcome", ["accept", "reject", "release"])
def test_anycast_consumer_outcome_reaches_producer(world, outcome):
    expected = {"accept": Delivery.ACCEPTED, "reject": Delivery.REJECTED, "release": Delivery.RELEASED}[outcome]
    rcv = world.receiver(world.connect(), "any1", credit=1)
    snd = world.sender(world.connect(), "any1")
    world.wait(lambda: snd.credit > 0, what="anycast sender credit")

    d = snd.send_async(Message(body=outcome))
    r = rcv.get()
    assert r.body == outcome
    world.pump(0.3)
    assert not d.settled, \
        "anycast: the producer's delivery must stay unsettled until the consumer settles it"
    getattr(r, outcome)()
    [state] = snd.settle_wait([d])
    assert state == expected, f"consumer did {outcome}, producer saw {outcome_name(state)}"


def test_anycast_two_consumers_are_balanced(world):
    n = 10
    a = world.receiver(world.connect(), "any1", credit=n)
    b = world.receiver(world.connect(), "any1", credit=n)
    snd = world.sender(world.connect(), "any1")
    world.wait(lambda: snd.credit > 0, what="anycast sender credit")
    world.pump(0.3)  # let both consumers' credit reach the server

    deliveries = []
    for i in range(n):
        world.wait(lambda: snd.credit > 0, what=f"credit for message {i}")
        deliveries.append(snd.send_async(Message(body=f"w{i}")))
    # nobody settles until all have arrived: "fewest unsettled" must alternate
    world.wait(lambda: a.available + b.available >= n, what=f"{n} messages over both consumers")
    ra, rb = a.drain_available(), b.drain_available()
    got_a, got_b = [r.body for r in ra], [r.body for r in rb]
    assert got_a and got_b, f"not balanced: a={got_a} b={got_b}"
    assert abs(len(got_a) - len(got_b)) <= 1, f"not balanced by fewest unsettled: a={got_a} b={got_b}"
    assert sorted(got_a + got_b) == sorted(f"w{i}" for i in range(n))
    for r in ra + rb:
        r.accept()
    assert snd.settle_wait(deliveries) == [ACCEPTED] * n


# ---- multicast -----------------------------------------------------------------------

def test_multicast_every_receiver_gets_every_message(world):
    r1 = world.receiver(world.connect(), "multi1", credit=20)
    r2 = world.receiver(world.connect(), "multi1", credit=20)
    world.pump(0.3)
    snd = world.sender(world.connect(), "multi1")
    bodies = [f"bc-{i}" for i in range(10)]
    for b in bodies:
        state = snd.send(Message(body=b))
        assert state == ACCEPTED, f"multicast send settled {outcome_name(state)}, expected ACCEPTED"

    for name, rcv in (("r1", r1), ("r2", r2)):
        got = rcv.get_n(len(bodies))
        assert [r.body for r in got] == bodies, f"{name} got {[r.body for r in got]}"
        assert all(r.delivery.settled for r in got), "multicast deliveries must arrive presettled"
    world.pump(0.3)
    assert not r1.available and not r2.available


def test_multicast_whose_only_consumer_has_no_credit_releases_for_amqp_and_mqtt(server, world):
    """Issue 11: one answer from the core for every protocol. A copy that no consumer can
    take is dropped, so nobody has the message: AMQP is told released, MQTT 5 0x10 (No
    matching subscribers), never accepted / success."""
    import queue as queue_mod

    import paho.mqtt.client as mqtt

    rcv = world.receiver(world.connect(), "multi1", credit=0)
    world.pump(0.3)
    snd = world.sender(world.connect(), "multi1")
    world.wait(lambda: snd.credit > 0, what="multicast producer credit with a consumer attached")
    assert outcome_name(snd.send(Message(body="nobody can take this"))) == "RELEASED"

    acks = queue_mod.Queue()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="mc-pub", protocol=mqtt.MQTTv5)
    c.on_publish = lambda cl, u, mid, rc, props: acks.put(rc)
    c.connect("127.0.0.1", server.mqtt_port)
    c.loop_start()
    try:
        c.publish("multi1", b"nor this", qos=1)
        rc = acks.get(timeout=10)
        assert getattr(rc, "value", rc) == 0x10, f"PUBACK reason {rc}"
    finally:
        c.loop_stop()
        c.disconnect()
    assert not rcv.available
