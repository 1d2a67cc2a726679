"""A durable topic subscriber written with python-qpid-proton (durable terminus,
expiry-policy never, fixed container-id and link name) reconnects across a node restart
and gets everything published meanwhile; closing its link ends the subscription."""

from proton import Message
from proton.reactor import Container, DurableSubscription
from proton.utils import BlockingConnection

TIMEOUT = 10


def subscriber(url):
    """The same JMS-style identity every time: container-id `app1`, link `sub1`."""
    conn = BlockingConnection(url, timeout=TIMEOUT, container=Container(container_id="app1"))
    rcv = conn.create_receiver("t1", name="sub1", options=DurableSubscription(), credit=10)
    return conn, rcv


def publish(url, bodies):
    conn = BlockingConnection(url, timeout=TIMEOUT)
    snd = conn.create_sender("t1")
    for b in bodies:
        snd.send(Message(body=b, durable=True))  # blocks until settled (accepted)
    conn.close()


def test_durable_subscriber_gets_what_was_published_while_away(restartable, tmp_path):
    data = tmp_path / "data"
    node = restartable(data)
    conn, rcv = subscriber(node.url)
    rcv.detach()  # away, not unsubscribed
    conn.close()
    publish(node.url, ["m1", "m2"])

    node.kill()
    node = restartable(data)
    publish(node.url, ["m3"])

    conn, rcv = subscriber(node.url)
    got = []
    for _ in range(3):
        msg = rcv.receive(timeout=TIMEOUT)
        got.append(msg.body)
        rcv.accept()
    assert got == ["m1", "m2", "m3"]

    # closing the link (not detaching) ends the subscription
    rcv.close()
    conn.close()
    publish(node.url, ["m4"])
    conn, rcv = subscriber(node.url)
    try:
        rcv.receive(timeout=0.5)
        raise AssertionError("a new subscription must start empty")
    except Exception as e:  # proton.utils raises Timeout
        assert "Timeout" in type(e).__name__ or "timed out" in str(e).lower(), e
    conn.close()
