"""A full disk (a small tmpfs; skipped where mounting one is not permitted): an MQTT
publish whose retained copy cannot be stored is never acknowledged — the node drops the
held PUBACKs and closes the connection (v5 DISCONNECT 0x80), so the client resends — and
every retained message it did acknowledge is there after a crash and a restart on a disk
with room (docs/SEMANTICS.md, "Durability")."""

import queue
import subprocess
import time

import pytest

from test_mqtt import Client

PAYLOAD = 64 * 1024


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs at tmp_path/disk, unmounted after the test's nodes are gone (ask for it
    before `restartable`, so it is torn down after)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)],
                       capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root): " + r.stderr.decode()[-200:])
    yield disk
    if subprocess.run(["umount", str(disk)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(disk)])


def payload(i):
    return bytes([i % 256]) * PAYLOAD


def test_retained_publishes_the_disk_cannot_keep_are_never_acknowledged(small_disk, restartable):
    node = restartable(small_disk / "data")
    c = Client(node.mqtt_port, version=5, client_id="filler")
    sent = [c.c.publish(f"dev/{i}", payload(i), qos=1, retain=True) for i in range(120)]
    rc = c.disconnects.get(timeout=30)
    assert getattr(rc, "value", rc) == 0x80, f"disconnected with {rc}"
    c.c.loop_stop()
    acked = [i for i, info in enumerate(sent) if info.is_published()]
    assert 0 < len(acked) < len(sent), f"{len(acked)} of {len(sent)} acknowledged"
    assert "metadata writes lost" in node.log_text()

    node.kill()
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    node = restartable(small_disk / "data")
    s = Client(node.mqtt_port, version=5)
    s.subscribe("dev/#", qos=1)
    retained = {}
    while True:
        try:
            m = s.get(timeout=2)
        except queue.Empty:
            break
        retained[m.topic] = m.payload
    missing = [i for i in acked if retained.get(f"dev/{i}") != payload(i)]
    assert not missing, f"acknowledged retained messages lost: {missing}"
    s.close()
