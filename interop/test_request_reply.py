"""Dynamic nodes and request/reply (docs/ARCHITECTURE.md, "Address types") with python-qpid-proton."""

from proton import Delivery, Message

ACCEPTED = Delivery.ACCEPTED


def test_dynamic_receivers_get_unique_addresses(world):
    conn = world.connect()
    r1 = world.receiver(conn, None, dynamic=True, credit=1)
    r2 = world.receiver(conn, None, dynamic=True, credit=1)
    r3 = world.receiver(world.connect(), None, dynamic=True, credit=1)
    addrs = [r1.address, r2.address, r3.address]
    assert all(isinstance(a, str) and a for a in addrs), f"dynamic addresses must be non-empty: {addrs!r}"
    assert len(set(addrs)) == 3, f"dynamic addresses must be unique: {addrs!r}"
    assert all(r.link.remote_source.dynamic for r in (r1, r2, r3))


def test_request_reply_through_a_queue(world):
    # responder: consumes `requests`, answers through an anonymous sender (target address
    # None, message.address = reply_to), like proton's examples/python/server.py
    rconn = world.connect()
    requests = world.receiver(rconn, "requests", credit=10)
    anon = world.sender(rconn, None)

    # client: dynamic reply address, sends requests to the queue
    cconn = world.connect()
    replies = world.receiver(cconn, None, dynamic=True, credit=10)
    reply_to = replies.address
    assert reply_to
    client = world.sender(cconn, "requests")

    n = 3
    for i in range(n):
        req = Message(body=f"question {i}", reply_to=reply_to, correlation_id=f"corr-{i}", id=f"req-{i}")
        assert client.send(req) == ACCEPTED

    reply_deliveries = []
    for i in range(n):
        r = requests.get()
        assert r.message.reply_to == reply_to
        assert r.message.correlation_id == f"corr-{i}"
        answer = Message(address=r.message.reply_to, correlation_id=r.message.correlation_id,
                         body=r.body.upper())
        reply_deliveries.append(anon.send_async(answer))
        r.accept()

    for i in range(n):
        got = replies.get()
        assert got.message.correlation_id == f"corr-{i}"
        assert got.body == f"QUESTION {i}"
        got.accept()
    assert anon.settle_wait(reply_deliveries) == [ACCEPTED] * n
