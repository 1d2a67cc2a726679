"""An AMQP client registers a will on the `$lwt` link (python-qpid-proton): published to
the message's `to` address when the client's connection drops without a clean close."""

import subprocess
import sys
import textwrap

WILL_CLIENT = textwrap.dedent("""
    import sys, time
    from proton import Message
    from proton.utils import BlockingConnection
    c = BlockingConnection(sys.argv[1])
    s = c.create_sender("$lwt")
    s.send(Message(address="alerts", body="service-7 is gone", durable=True))
    if sys.argv[2] == "clean":
        c.close()
        print("closed", flush=True)
    else:
        print("registered", flush=True)
        time.sleep(60)
""")


def run_client(tmp_path, url, mode):
    script = tmp_path / "will_client.py"
    script.write_text(WILL_CLIENT)
    return subprocess.Popen([sys.executable, str(script), url, mode], stdout=subprocess.PIPE)


def test_will_published_when_the_connection_drops(server, world, tmp_path):
    rcv = world.receiver(world.connect(), "alerts", credit=5)
    p = run_client(tmp_path, server.url, "crash")
    try:
        assert p.stdout.readline().strip() == b"registered"
        world.pump(0.3)
        assert not rcv.available, "no will while the client is connected"
        p.kill()
        p.wait(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
    r = rcv.get()
    assert r.body == "service-7 is gone"
    r.accept()


def test_no_will_after_a_clean_close(server, world, tmp_path):
    rcv = world.receiver(world.connect(), "alerts", credit=5)
    p = run_client(tmp_path, server.url, "clean")
    assert p.stdout.readline().strip() == b"closed"
    p.wait(timeout=10)
    world.pump(0.7)
    assert not rcv.available, "a clean close withdraws the will"
