"""Wills survive a node crash (docs/SEMANTICS.md, "Wills"): a will registered by a
connection the node then loses to a kill -9 is published when the node starts again —
MQTT CONNECT wills (paho-mqtt) and AMQP `$lwt` wills (python-qpid-proton). A will
withdrawn by a clean end before the crash is not, and a delayed MQTT will whose
persistent session the client resumes in time is cancelled."""

import time

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from test_amqp_will import run_client
from test_mqtt import Client


def session_kwargs(version):
    return {"session_expiry": 3600} if version == 5 else {}


def watch(node, version, filters="status/#"):
    """The persistent session `watcher` subscribed to `filters` (QoS 1), connected."""
    return Client(node.mqtt_port, version=version, client_id="watcher", clean=False,
                  **session_kwargs(version))


@pytest.mark.parametrize("version", [4, 5])
def test_wills_of_connections_lost_in_a_crash_are_published_after_the_restart(
        restartable, tmp_path, version):
    node = restartable(tmp_path / "data")
    w = watch(node, version)
    w.subscribe("status/#", qos=1)
    w.close()
    quitter = Client(node.mqtt_port, version=version, will=("status/quitter", b"quitter-gone", 1))
    quitter.close()  # a clean DISCONNECT withdraws the will
    time.sleep(0.5)  # let the node read the DISCONNECT before the next CONNECTs
    # the CONNACK of each comes after its will is on disk
    live = Client(node.mqtt_port, version=version, will=("status/live", b"live-gone", 1))
    kept = Client(node.mqtt_port, version=version, will=("status/kept", b"kept-gone", 1, True))
    node.kill()
    for c in (live, kept):
        c.c.loop_stop()
    node = restartable(tmp_path / "data")
    back = watch(node, version)
    assert back.flags.session_present
    got = sorted((m.topic, m.payload) for m in (back.get(), back.get()))
    assert got == [("status/kept", b"kept-gone"), ("status/live", b"live-gone")]
    back.nothing(0.5)
    back.close()
    late = Client(node.mqtt_port, version=version)
    late.subscribe("status/#")
    m = late.get()
    assert (m.topic, m.payload, m.retain) == ("status/kept", b"kept-gone", True)
    late.nothing(0.3)
    late.close()
    # published once: the next start finds no will left
    node.kill()
    node = restartable(tmp_path / "data")
    again = watch(node, version)
    again.nothing(0.5)
    again.close()


def test_delayed_will_waits_after_a_restart_and_a_resumed_session_cancels_it(
        restartable, tmp_path):
    node = restartable(tmp_path / "data")
    w = watch(node, 5)
    w.subscribe("status/#", qos=1)
    w.close()
    devices = []
    for name in ("resumer", "leaver"):
        wp = Properties(PacketTypes.WILLMESSAGE)
        wp.WillDelayInterval = 3
        devices.append(Client(node.mqtt_port, client_id=name, clean=False, session_expiry=600,
                              will=(f"status/{name}", f"{name}-gone".encode(), 1),
                              will_properties=wp))
    node.kill()
    for c in devices:
        c.c.loop_stop()
    node = restartable(tmp_path / "data")
    started = time.monotonic()
    resumed = Client(node.mqtt_port, client_id="resumer", clean=False, session_expiry=600)
    assert resumed.flags.session_present
    back = watch(node, 5)
    m = back.get()
    waited = time.monotonic() - started
    assert (m.topic, m.payload) == ("status/leaver", b"leaver-gone")
    assert waited >= 2.5, f"the will waited its delay after the restart ({waited:.2f}s)"
    back.nothing(1.0)  # the resumed session's will was cancelled
    back.close()
    resumed.close()


def test_amqp_will_registered_before_a_crash_is_published_after_the_restart(
        restartable, new_world, tmp_path):
    node = restartable(tmp_path / "data")
    p = run_client(tmp_path, node.url, "crash")
    try:
        # "registered" is printed once the `$lwt` message was settled accepted
        assert p.stdout.readline().strip() == b"registered"
        node.kill()
    finally:
        p.kill()
        p.wait(timeout=10)
    node = restartable(tmp_path / "data")
    world = new_world(node.url)
    rcv = world.receiver(world.connect(reconnect=False), "alerts", credit=5)
    r = rcv.get()
    assert r.body == "service-7 is gone"
    r.accept()
