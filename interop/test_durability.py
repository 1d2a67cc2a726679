"""Durable queues across restarts (docs/SEMANTICS.md, "Durability"), black-box with
python-qpid-proton.

Specified behaviour under test:
- a message with header durable=true sent to a queue is settled ACCEPTED only once it is on
  disk, and survives SIGKILL of the node and a clean stop (SIGTERM), in queue order, with
  its bare message (properties, application properties, body) unchanged;
- its delivery count survives too (released: unchanged; modified(delivery-failed): +1);
- non-durable messages live in memory only: they are gone after a crash or a restart.

Each test runs nodes on one data directory with the `restartable` fixture (conftest.py):
start, kill -9 / SIGTERM, start again on the same directory (a new port each time).
Client connections are opened with reconnect=False; after a kill they are dropped with
`World.drop_all()`.
"""

from proton import Delivery, Message

from amqp_util import outcome_name


ACCEPTED = Delivery.ACCEPTED
N = 200


def connect(world):
    return world.connect(reconnect=False)


def send_all(world, sender, messages, timeout=30.0):
    """Send every message unsettled (pipelined), wait (bounded) for every settlement, return outcomes."""
    world.wait(lambda: sender.credit > 0, what="sender credit")
    deliveries = [sender.send_async(m) for m in messages]
    return sender.settle_wait(deliveries, timeout=timeout)


def assert_all_accepted(outcomes):
    bad = [(i, outcome_name(o)) for i, o in enumerate(outcomes) if o != ACCEPTED]
    assert not bad, f"sends not settled ACCEPTED: {bad[:10]} ({len(bad)} of {len(outcomes)})"


def durable_messages(n, prefix="d"):
    return [
        Message(
            id=f"{prefix}-{i}", subject="durable", durable=True,
            body=f"{prefix}-body-{i}" if i % 2 == 0 else f"{prefix}-bin-{i}".encode() * 3,
            properties={"seq": i, "tag": f"{prefix}-{i}", "even": i % 2 == 0, "ratio": i / 4, "u": "grüße ✓"},
        )
        for i in range(n)
    ]


def app_props(m):
    """Application properties with proton's decoded types normalized (ints come back as int
    subclasses, strings as str)."""
    return {str(k): (v if isinstance(v, (bool, float)) else int(v) if isinstance(v, int) else str(v))
            for k, v in (m.properties or {}).items()}


def body_of(m):
    b = m.body
    return bytes(b) if isinstance(b, (bytes, bytearray, memoryview)) else b


def receive_all(world, address, n, timeout=30.0):
    """Attach one consumer with credit n and receive exactly n messages (bounded wait)."""
    rcv = world.receiver(connect(world), address, credit=n)
    return rcv, rcv.get_n(n, timeout=timeout)


def recovery_line(node):
    """The node's `journal recovered queues=.. messages=.. records=..` log line, for failure messages."""
    lines = [l for l in node.log_text().splitlines() if "journal recovered" in l]
    return lines[0].strip() if lines else "(no 'journal recovered' line in the node's stderr)"


def assert_same_messages(sent, got, node):
    ids = [str(r.message.id) for r in got]
    assert ids == [str(m.id) for m in sent], \
        f"after restart: messages missing or out of order: first ids {ids[:10]}; {recovery_line(node)}"
    for s, r in zip(sent, got):
        assert body_of(r.message) == body_of(s), f"{s.id}: body changed"
        assert app_props(r.message) == app_props(s), f"{s.id}: application properties changed"
        assert r.message.subject == s.subject, f"{s.id}: subject changed"
        assert r.message.durable, f"{s.id}: header durable lost"


def assert_queue_empty(world, address, seconds=1.0):
    rcv = world.receiver(connect(world), address, credit=10)
    world.pump(seconds)
    extra = rcv.drain_available()
    assert not extra, f"unexpected messages on {address!r}: {[str(r.message.id) for r in extra]}"
    return rcv


# (a) ------------------------------------------------------------------------------------

def test_accepted_durable_messages_survive_kill_9(restartable, new_world, tmp_path):
    data = tmp_path / "data"
    node = restartable(data)
    w = new_world(node.url)
    snd = w.sender(connect(w), "q1")
    sent = durable_messages(N)
    assert_all_accepted(send_all(w, snd, sent))

    node.kill()
    w.drop_all()

    node = restartable(data)
    w = new_world(node.url)
    rcv, got = receive_all(w, "q1", N)
    assert_same_messages(sent, got, node)
    for r in got:
        assert r.message.delivery_count == 0, f"{r.message.id}: never delivered, count {r.message.delivery_count}"
        r.accept()
    # nothing beyond the 200
    rcv.flow(10)
    w.pump(0.5)
    assert not rcv.available, f"more than {N} messages after restart"


# (b) ------------------------------------------------------------------------------------

def test_non_durable_messages_do_not_survive_restart(restartable, new_world, tmp_path):
    """Specified behaviour (SEMANTICS.md "Durability"): a message without durable=true lives
    in memory only, so it is gone after a crash *and* after a clean restart. Durable
    messages sent in between do come back, in order."""
    data = tmp_path / "data"
    node = restartable(data)
    w = new_world(node.url)
    snd = w.sender(connect(w), "q1")
    mixed = [Message(id=f"m-{i}", body=f"m-{i}", durable=(i % 3 == 0)) for i in range(30)]
    assert_all_accepted(send_all(w, snd, mixed))
    plain_q = w.sender(connect(w), "plain")  # an auto-created queue with only non-durable messages
    assert_all_accepted(send_all(w, plain_q, [Message(id=f"p-{i}", body=f"p-{i}") for i in range(10)]))

    node.kill()
    w.drop_all()

    node = restartable(data)
    w = new_world(node.url)
    want = [str(m.id) for m in mixed if m.durable]
    rcv, got = receive_all(w, "q1", len(want))
    assert [str(r.message.id) for r in got] == want
    for r in got:
        r.accept()
    rcv.flow(10)
    w.pump(0.5)
    leaked = [str(r.message.id) for r in rcv.drain_available()]
    assert not leaked, f"non-durable messages survived kill -9: {leaked}"
    assert_queue_empty(w, "plain", 0.5)

    # a clean restart drops non-durable messages as well
    snd = w.sender(connect(w), "q1")
    assert_all_accepted(send_all(w, snd, [Message(id=f"n-{i}", body=f"n-{i}") for i in range(10)]))
    w.close_all()
    node.terminate()

    node = restartable(data)
    w = new_world(node.url)
    assert_queue_empty(w, "q1")


# (c) ------------------------------------------------------------------------------------

def test_delivery_count_survives_kill_9(restartable, new_world, tmp_path):
    data = tmp_path / "data"
    node = restartable(data)
    w = new_world(node.url)
    snd = w.sender(connect(w), "q1")
    ids = ["rel", "mod1", "mod2", "untouched"]
    assert_all_accepted(send_all(w, snd, [Message(id=i, body=f"body-{i}", durable=True) for i in ids]))

    rcv = w.receiver(connect(w), "q1", credit=3)
    first = rcv.get_n(3)
    assert [str(r.message.id) for r in first] == ids[:3]
    assert [r.message.delivery_count for r in first] == [0, 0, 0]
    first[0].release()
    first[1].modify(failed=True)
    first[2].modify(failed=True)
    # Let the dispositions go out before the new credit: proton writes a pending flow
    # before pending dispositions, and credit arriving first would fetch "untouched".
    w.pump(0.2)

    # The node has applied the outcomes: redelivered in order with the new counts.
    rcv.flow(3)
    second = rcv.get_n(3)
    assert [str(r.message.id) for r in second] == ids[:3]
    assert [r.message.delivery_count for r in second] == [0, 1, 1]
    second[0].release()
    second[1].release()
    second[2].modify(failed=True)  # mod2: 2
    w.pump(0.2)
    rcv.close()

    # Barrier: the journal is one log written in order (docs/ARCHITECTURE.md), so once a
    # durable message sent after the outcomes is ACCEPTED (fsync'ed), the delivery-count
    # records written before it are on disk as well.
    assert snd.send(Message(id="barrier", body="barrier", durable=True)) == ACCEPTED

    node.kill()
    w.drop_all()

    node = restartable(data)
    w = new_world(node.url)
    rcv, got = receive_all(w, "q1", 5)
    counts = {str(r.message.id): r.message.delivery_count for r in got}
    assert [str(r.message.id) for r in got] == ids + ["barrier"], f"order after restart: {list(counts)}"
    assert counts == {"rel": 0, "mod1": 1, "mod2": 2, "untouched": 0, "barrier": 0}, \
        f"delivery counts after kill -9 (header delivery-count): {counts}; {recovery_line(node)}"
    for r in got:
        assert r.body == f"body-{r.message.id}" or r.message.id == "barrier"
        r.accept()


# (d) ------------------------------------------------------------------------------------

def test_durable_messages_survive_clean_stop(restartable, new_world, tmp_path):
    data = tmp_path / "data"
    node = restartable(data)
    w = new_world(node.url)
    snd = w.sender(connect(w), "q1")
    sent = durable_messages(N, prefix="t")
    assert_all_accepted(send_all(w, snd, sent))
    w.close_all()
    node.terminate()  # SIGTERM, exit 0 required

    node = restartable(data)
    w = new_world(node.url)
    rcv, got = receive_all(w, "q1", N)
    assert_same_messages(sent, got, node)
    for r in got:
        r.accept()
    w.pump(0.2)
    w.close_all()
    node.terminate()

    # the accepts were flushed at the clean stop: nothing comes back
    node = restartable(data)
    w = new_world(node.url)
    assert_queue_empty(w, "q1")
