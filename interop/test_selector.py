"""JMS selectors (source filter apache.org:selector-filter:string) with python-qpid-proton."""

from proton import Message
from proton.reactor import Selector

from test_queue import assert_all_accepted


def test_selector_filters_a_queue_and_leaves_the_rest(world):
    conn = world.connect()
    snd = world.sender(conn, "q1")
    colors = ["red", "blue", "red", "green"]
    world.wait(lambda: snd.credit > 0, what="sender credit")
    deliveries = [snd.send_async(Message(body=f"{c}{i}", properties={"color": c, "n": i}))
                  for i, c in enumerate(colors)]
    assert_all_accepted(snd.settle_wait(deliveries))

    reds = world.receiver(world.connect(), "q1", credit=10, options=Selector("color = 'red'"))
    # the server confirms the filter it applies in its attach
    world.wait(lambda: reds.link.remote_source.filter is not None, what="filter echoed")
    got = reds.get_n(2)
    assert [r.body for r in got] == ["red0", "red2"]
    for r in got:
        r.accept()
    world.pump(0.3)
    assert not reds.available

    rest = world.receiver(world.connect(), "q1", credit=10)
    got = rest.get_n(2)
    assert [r.body for r in got] == ["blue1", "green3"]
    for r in got:
        r.accept()


def test_browsing_sees_copies_and_takes_nothing(world):
    from proton.reactor import Copy

    conn = world.connect()
    snd = world.sender(conn, "q1")
    world.wait(lambda: snd.credit > 0, what="sender credit")
    assert_all_accepted(snd.settle_wait([snd.send_async(Message(body=f"b{i}")) for i in range(3)]))

    browser = world.receiver(world.connect(), "q1", credit=10, options=Copy())
    got = browser.get_n(3)
    assert [r.body for r in got] == ["b0", "b1", "b2"]
    assert all(r.delivery.settled for r in got), "browsed copies arrive presettled"

    rcv = world.receiver(world.connect(), "q1", credit=10)
    got = rcv.get_n(3)
    assert [r.body for r in got] == ["b0", "b1", "b2"], "browsing took nothing"
    for r in got:
        r.accept()
