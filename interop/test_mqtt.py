"""MQTT 3.1.1 and 5.0 with paho-mqtt and mosquitto_pub/_sub, and MQTT <-> AMQP bridging
with python-qpid-proton, against the built binary (every server also listens for MQTT)."""

import queue
import shutil
import socket
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest
from proton import Data, Message
from proton.reactor import LinkOption

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

TIMEOUT = 10


class TopicTarget(LinkOption):
    """An AMQP sender whose target carries the capability `topic` (creates a topic, not a
    queue, when the address does not exist yet)."""

    def apply(self, link):
        caps = link.target.capabilities
        caps.put_array(False, Data.SYMBOL)
        caps.enter()
        caps.put_symbol("topic")
        caps.exit()


class Client:
    """A paho client on its own network thread; messages land in a queue."""

    def __init__(self, port, version=5, client_id=None, clean=True, will=None, username=None,
                 password=None, session_expiry=None, will_properties=None):
        self.version = version
        proto = mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311
        self.id = client_id or f"py-{uuid.uuid4().hex[:8]}"
        kwargs = {}
        if version != 5:
            kwargs["clean_session"] = clean
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.id, protocol=proto,
                             reconnect_on_failure=False, **kwargs)
        self.messages = queue.Queue()
        self.connack = queue.Queue()
        self.subacks = queue.Queue()
        self.disconnects = queue.Queue()
        self.c.on_message = lambda c, u, m: self.messages.put(m)
        self.c.on_connect = lambda c, u, f, rc, p: self.connack.put((f, rc))
        self.c.on_subscribe = lambda c, u, mid, rcs, p: self.subacks.put(rcs)
        self.c.on_disconnect = lambda c, u, f, rc, p: self.disconnects.put(rc)
        if username:
            self.c.username_pw_set(username, password)
        if will:
            self.c.will_set(*will, properties=will_properties)
        props = None
        if version == 5:
            props = Properties(PacketTypes.CONNECT)
            if session_expiry is not None:
                props.SessionExpiryInterval = session_expiry
        connect_kwargs = {"properties": props} if version == 5 else {}
        if version == 5:
            connect_kwargs["clean_start"] = clean
        self.c.connect("127.0.0.1", port, keepalive=30, **connect_kwargs)
        self.c.loop_start()
        self.flags, self.rc = self.connack.get(timeout=TIMEOUT)

    def subscribe(self, topic, qos=1, **kwargs):
        self.c.subscribe(topic, qos, **kwargs)
        return self.subacks.get(timeout=TIMEOUT)

    def publish(self, topic, payload, qos=1, retain=False, properties=None):
        info = self.c.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        if qos > 0:
            info.wait_for_publish(timeout=TIMEOUT)
            assert info.is_published(), f"publish to {topic} not acknowledged"
        return info

    def get(self, timeout=TIMEOUT):
        return self.messages.get(timeout=timeout)

    def nothing(self, wait=0.5):
        try:
            m = self.messages.get(timeout=wait)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected message on {m.topic}: {m.payload!r}")

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def clients(server):
    made = []

    def make(**kwargs):
        c = Client(server.mqtt_port, **kwargs)
        made.append(c)
        return c

    yield make
    for c in made:
        try:
            c.close()
        except Exception:
            pass


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_wildcards_and_qos(clients, version, qos):
    sub = clients(version=version)
    assert [int(getattr(r, "value", r)) for r in sub.subscribe("home/+/temp", qos=qos)] == [qos]
    sub2 = clients(version=version)
    sub2.subscribe("home/#", qos=qos)
    pub = clients(version=version)
    # the topics do not exist yet: wildcard subscriptions reach topics created later
    pub.publish("home/kitchen/temp", b"21.5", qos=qos)
    pub.publish("home/kitchen/humidity", b"40", qos=qos)
    pub.publish("office/desk/temp", b"19", qos=qos)
    m = sub.get()
    assert (m.topic, m.payload, m.qos) == ("home/kitchen/temp", b"21.5", qos)
    got = sorted((m.topic, m.payload) for m in (sub2.get(), sub2.get()))
    assert got == [("home/kitchen/humidity", b"40"), ("home/kitchen/temp", b"21.5")]
    sub.nothing()
    sub2.nothing(0.2)


def test_dollar_topics_are_not_matched_by_leading_wildcards(clients):
    sub = clients()
    sub.subscribe("#")
    sub.subscribe("+/status")
    pub = clients()
    pub.publish("$SYS/status", b"internal")
    pub.publish("dev/status", b"ok")
    # overlapping subscriptions: one copy for both; never the $SYS one
    assert sub.get().topic == "dev/status"
    sub.nothing(0.3)


def test_order_is_kept_per_topic_and_qos_is_downgraded(clients):
    sub = clients()
    sub.subscribe("seq", qos=0)
    pub = clients()
    for i in range(200):
        pub.c.publish("seq", str(i).encode(), qos=1)
    got = [sub.get() for _ in range(200)]
    assert [int(m.payload) for m in got] == list(range(200))
    assert {m.qos for m in got} == {0}, "subscription QoS 0 caps delivery QoS"


def test_retained_message_delivered_on_subscribe_and_cleared(clients):
    pub = clients()
    pub.publish("state/door", b"open", retain=True)
    pub.publish("state/door", b"closed", retain=True)
    sub = clients()
    sub.subscribe("state/+")
    m = sub.get()
    assert (m.topic, m.payload, m.retain) == ("state/door", b"closed", True)
    # a live message is not marked retained (retain-as-published off)
    pub.publish("state/door", b"ajar", retain=True)
    m = sub.get()
    assert (m.payload, m.retain) == (b"ajar", False)
    # an empty retained publish clears it
    pub.publish("state/door", b"", retain=True)
    assert sub.get().payload == b""
    late = clients()
    late.subscribe("state/door")
    late.nothing()


def test_retained_messages_survive_a_restart(restartable, tmp_path):
    node = restartable(tmp_path / "data")
    c = Client(node.mqtt_port)
    c.publish("config/mode", b"eco", retain=True)
    c.close()
    node.kill()
    node = restartable(tmp_path / "data")
    c = Client(node.mqtt_port)
    c.subscribe("config/#")
    m = c.get()
    assert (m.topic, m.payload, m.retain) == ("config/mode", b"eco", True)
    c.close()


def test_shared_subscription_members_compete(clients):
    a = clients()
    b = clients()
    a.subscribe("$share/workers/jobs")
    b.subscribe("$share/workers/jobs")
    plain = clients()
    plain.subscribe("jobs")
    pub = clients()
    for i in range(20):
        pub.publish("jobs", f"job-{i}".encode())
    got_plain = [plain.get().payload for _ in range(20)]
    assert len(got_plain) == 20, "a non-shared subscriber gets everything"
    shared = []
    deadline = time.time() + TIMEOUT
    while len(shared) < 20 and time.time() < deadline:
        for c in (a, b):
            try:
                shared.append((c.id, c.messages.get(timeout=0.1).payload))
            except queue.Empty:
                pass
    assert sorted(p for _, p in shared) == sorted(f"job-{i}".encode() for i in range(20))
    assert len({cid for cid, _ in shared}) == 2, "both members of the group got work"


def crash_while_away(restartable, tmp_path, version, client_id, filters, topics):
    """A persistent session subscribes to `filters` (QoS 1) and leaves; one message per
    topic of `topics` is published ("msg-I"); the node is killed (-9) and started again
    on the same data; the session comes back. Returns (node, the client back, kwargs)."""
    node = restartable(tmp_path / "data")
    kwargs = {"session_expiry": 3600} if version == 5 else {}
    c = Client(node.mqtt_port, version=version, client_id=client_id, clean=False, **kwargs)
    for f in filters:
        c.subscribe(f, qos=1)
    c.close()
    pub = Client(node.mqtt_port, version=version)
    for i, t in enumerate(topics):
        pub.publish(t, f"msg-{i}".encode(), qos=1)
    pub.close()
    node.kill()
    node = restartable(tmp_path / "data")
    back = Client(node.mqtt_port, version=version, client_id=client_id, clean=False, **kwargs)
    assert back.flags.session_present, "the session came back after the crash"
    return node, back, kwargs


@pytest.mark.parametrize("version", [4, 5])
def test_persistent_shared_subscription_survives_a_crash(restartable, tmp_path, version):
    """What a shared subscription holds for a persistent member that is away is journaled:
    a kill -9 loses none of it."""
    _, back, _ = crash_while_away(restartable, tmp_path, version, "worker-1",
                                  ["$share/crew/jobs/+"], [f"jobs/{i}" for i in range(5)])
    got = sorted(back.get().payload for _ in range(5))
    assert got == [f"msg-{i}".encode() for i in range(5)]
    back.nothing(0.3)
    back.close()


def test_persistent_session_keeps_messages_while_away(clients, server):
    c = clients(version=4, client_id="sensor-sink", clean=False)
    c.subscribe("readings/#", qos=1)
    c.close()
    pub = clients()
    for i in range(5):
        pub.publish(f"readings/{i}", f"r{i}".encode())
    back = clients(version=4, client_id="sensor-sink", clean=False)
    assert back.flags.session_present, "the session was resumed"
    got = sorted(back.get().payload for _ in range(5))
    assert got == [f"r{i}".encode() for i in range(5)]


def test_clean_session_forgets_subscriptions(clients):
    c = clients(version=5, client_id="forgetful", clean=False, session_expiry=60)
    c.subscribe("news")
    c.close()
    again = clients(version=5, client_id="forgetful", clean=True)
    assert not again.flags.session_present
    clients().publish("news", b"x")
    again.nothing()


def read_packet(s):
    """One MQTT packet from a bare socket: (first byte, body)."""
    def exactly(n):
        data = b""
        while len(data) < n:
            chunk = s.recv(n - len(data))
            assert chunk, f"connection closed after {len(data)} of {n} bytes"
            data += chunk
        return data

    first = exactly(1)[0]
    length, shift = 0, 0
    while True:
        b = exactly(1)[0]
        length |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            break
    return first, exactly(length)


# MQTT 5 property ids by value type (those a server sends)
PROP_U8 = {0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A}
PROP_U16 = {0x13, 0x21, 0x22, 0x23}
PROP_U32 = {0x02, 0x11, 0x18, 0x27}
PROP_STR = {0x03, 0x08, 0x12, 0x15, 0x1A, 0x1C, 0x1F}
PROP_BIN = {0x09, 0x16}


def parse_props(body, i):
    """The property block at body[i:]: ({id: value}, index after it)."""
    length, shift = 0, 0
    while True:
        b = body[i]
        i += 1
        length |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            break
    end, props = i + length, {}
    while i < end:
        pid = body[i]
        i += 1
        if pid in PROP_U8:
            props[pid], i = body[i], i + 1
        elif pid in PROP_U16:
            props[pid], i = int.from_bytes(body[i:i + 2], "big"), i + 2
        elif pid in PROP_U32:
            props[pid], i = int.from_bytes(body[i:i + 4], "big"), i + 4
        elif pid in PROP_STR | PROP_BIN:
            n = int.from_bytes(body[i:i + 2], "big")
            v = body[i + 2:i + 2 + n]
            props[pid], i = (v.decode() if pid in PROP_STR else v), i + 2 + n
        elif pid == 0x26:  # user property: a string pair
            n = int.from_bytes(body[i:i + 2], "big")
            k = body[i + 2:i + 2 + n].decode()
            i += 2 + n
            n = int.from_bytes(body[i:i + 2], "big")
            props.setdefault(0x26, []).append((k, body[i + 2:i + 2 + n].decode()))
            i += 2 + n
        else:
            raise AssertionError(f"unexpected property {pid:#x} in {body!r}")
    return props, end


def mqtt_string(text):
    b = text.encode()
    return len(b).to_bytes(2, "big") + b


def raw_connect_v5(port, client_id, keep_alive=30, username=None, password=None):
    """A bare MQTT 5 connection, to see exactly what the server sends: (socket, CONNACK
    reason code, CONNACK properties)."""
    flags = 0x02 | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    body = (b"\x00\x04MQTT\x05" + bytes([flags]) + keep_alive.to_bytes(2, "big") + b"\x00"
            + mqtt_string(client_id))
    if username is not None:
        body += mqtt_string(username)
    if password is not None:
        body += mqtt_string(password)
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    s.sendall(bytes([0x10, len(body)]) + body)
    first, connack = read_packet(s)
    assert first == 0x20, (first, connack)
    props, _ = parse_props(connack, 2)
    return s, connack[1], props


def test_session_takeover_disconnects_the_older_connection(clients, server):
    first, _, _ = raw_connect_v5(server.mqtt_port, "dup-id")
    second = clients(version=5, client_id="dup-id")
    # DISCONNECT (0xE0) with reason 0x8E session taken over and a reason string, then the
    # socket closes
    kind, body = read_packet(first)
    assert (kind, body[0]) == (0xE0, 0x8E), body
    assert "took this session over" in parse_props(body, 1)[0][0x1F]
    assert first.recv(16) == b""
    first.close()
    second.subscribe("t")
    clients().publish("t", b"to the new one")
    assert second.get().payload == b"to the new one"


WILL_SCRIPT = textwrap.dedent("""
    import sys, time
    import paho.mqtt.client as mqtt
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="doomed", protocol=mqtt.MQTTv311)
    c.will_set("devices/doomed/status", b"offline", qos=1, retain=True)
    c.connect("127.0.0.1", int(sys.argv[1]), keepalive=30)
    c.loop_start()
    print("connected", flush=True)
    time.sleep(60)
""")


def test_will_published_when_the_client_process_is_killed(clients, server, tmp_path):
    watcher = clients()
    watcher.subscribe("devices/+/status")
    script = tmp_path / "doomed.py"
    script.write_text(WILL_SCRIPT)
    p = subprocess.Popen([sys.executable, str(script), str(server.mqtt_port)], stdout=subprocess.PIPE)
    try:
        assert p.stdout.readline().strip() == b"connected"
        time.sleep(0.3)
        watcher.nothing(0.2)
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
    m = watcher.get()
    assert (m.topic, m.payload) == ("devices/doomed/status", b"offline")
    # retained: a later subscriber sees the device is offline
    late = clients()
    late.subscribe("devices/doomed/status")
    assert late.get().payload == b"offline"


def test_no_will_after_a_clean_disconnect(clients):
    watcher = clients()
    watcher.subscribe("wills/#")
    c = clients(will=("wills/x", b"gone", 1, False))
    c.close()
    watcher.nothing(0.7)


def test_mqtt_publish_reaches_amqp_consumer_with_properties(clients, world):
    pub = clients()
    # the MQTT publish creates the topic; an AMQP receiver then subscribes to it
    pub.publish("telemetry/t1", b"first")
    rcv = world.receiver(world.connect(), "telemetry/t1", credit=10)
    world.pump(0.2)
    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = "application/json"
    props.ResponseTopic = "replies/t1"
    props.CorrelationData = b"corr-1"
    props.UserProperty = [("unit", "celsius"), ("site", "lab")]
    pub.publish("telemetry/t1", b'{"t": 21}', qos=1, properties=props)
    r = rcv.get()
    msg = r.message
    assert msg.body in (b'{"t": 21}', memoryview(b'{"t": 21}')) or bytes(msg.body) == b'{"t": 21}'
    assert msg.address == "telemetry/t1"
    assert msg.content_type == "application/json"
    assert msg.reply_to == "replies/t1"
    assert bytes(msg.correlation_id) == b"corr-1"
    assert msg.properties == {"unit": "celsius", "site": "lab"}
    assert msg.durable, "QoS 1 maps to durable"
    r.accept()


def test_amqp_message_reaches_mqtt_subscriber_with_properties(clients, world):
    sub = clients(version=5)
    sub.subscribe("commands/+", qos=1)
    snd = world.sender(world.connect(), "commands/lamp", options=TopicTarget())
    msg = Message(body=b"on", durable=True, content_type="text/plain", reply_to="acks/lamp",
                  correlation_id=b"c-7", properties={"by": "scheduler", "n": 3})
    assert snd.send(msg) is not None
    m = sub.get()
    assert (m.topic, m.payload, m.qos) == ("commands/lamp", b"on", 1)
    p = m.properties
    assert p.ContentType == "text/plain"
    assert p.ResponseTopic == "acks/lamp"
    assert p.CorrelationData == b"c-7"
    assert sorted(p.UserProperty) == [("by", "scheduler"), ("n", "3")]


def test_mqtt_request_reply_through_amqp_service(clients, world):
    """A device asks with MQTT 5 (response topic + correlation data); an AMQP service
    answers to reply-to with the correlation id; the device gets the answer."""
    device = clients(version=5)
    device.subscribe("replies/dev-1")
    service = world.receiver(world.connect(), "requests", credit=5)
    # the AMQP receiver created `requests` as a queue: the MQTT publish lands in it
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = "replies/dev-1"
    props.CorrelationData = b"req-42"
    device.publish("requests", b"ping", qos=1, properties=props)
    req = service.get()
    req.accept()
    answer = world.sender(world.connect(), req.message.reply_to)
    # (proton hands binary fields out as memoryview)
    answer.send(Message(body=b"pong", correlation_id=bytes(req.message.correlation_id)))
    m = device.get()
    assert (m.topic, m.payload) == ("replies/dev-1", b"pong")
    assert m.properties.CorrelationData == b"req-42"


@pytest.mark.skipif(shutil.which("mosquitto_pub") is None, reason="mosquitto-clients not installed")
def test_mosquitto_command_line_clients(server):
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(server.mqtt_port),
                            "-t", "cli/#", "-C", "2", "-v", "-q", "1", "-W", "10"],
                           stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    for topic, payload, opts in (("cli/a", "one", []), ("cli/b", "two", ["-V", "mqttv5", "-q", "2"])):
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(server.mqtt_port), "-t", topic,
                        "-m", payload] + opts, check=True, timeout=10)
    out, _ = sub.communicate(timeout=15)
    assert out.splitlines() == ["cli/a one", "cli/b two"]


AUTH_MQTT_CONFIG = """\
[[tenant]]
name = "default"
auto_create = true
[[tenant.user]]
name = "dev"
password = "pw"
permissions = [{ pattern = "devices/*", ops = ["send", "recv"] }]
"""


@pytest.mark.parametrize("version", [4, 5])
def test_authentication_and_denied_filters(throng, version):
    node = throng(AUTH_MQTT_CONFIG, name="mqttauth")
    anonymous = Client(node.mqtt_port, version=version)
    # v5 0x87 not authorized / v3 return code 5; wrong password: 0x86 / 4 (paho reports
    # v3 return codes as the matching v5 reason codes)
    assert int(getattr(anonymous.rc, "value", anonymous.rc)) == 0x87
    bad = Client(node.mqtt_port, version=version, username="dev", password="nope")
    assert int(getattr(bad.rc, "value", bad.rc)) == 0x86
    c = Client(node.mqtt_port, version=version, username="dev", password="pw")
    assert int(getattr(c.rc, "value", c.rc)) == 0
    denied = c.subscribe("secrets/#")
    code = int(getattr(denied[0], "value", denied[0]))
    assert code == (0x87 if version == 5 else 0x80)
    ok = c.subscribe("devices/#")
    assert int(getattr(ok[0], "value", ok[0])) == 1
    c.publish("devices/d1", b"allowed")
    assert c.get().payload == b"allowed"
    c.close()


DENY_CONFIG = """\
[[tenant]]
name = "default"
auto_create = true
deny_filters = ["secret/#"]
"""


@pytest.mark.parametrize("version", [4, 5])
def test_tenant_denied_filters(throng, version):
    node = throng(DENY_CONFIG, name="deny")
    c = Client(node.mqtt_port, version=version)
    refused = 0x87 if version == 5 else 0x80
    for f in ("secret/plans", "secret/#", "#", "+/plans"):
        code = c.subscribe(f)[0]
        assert int(getattr(code, "value", code)) == refused, f"{f} must be refused"
    code = c.subscribe("public/#")[0]
    assert int(getattr(code, "value", code)) == 1
    c.publish("secret/plans", b"hidden")
    c.publish("public/news", b"open")
    assert c.get().payload == b"open"
    c.nothing(0.3)
    c.close()


def test_v5_refusals_carry_reason_strings(throng):
    """A refused CONNECT, PUBLISH and SUBSCRIBE say why (property 0x1F), besides the code."""
    node = throng(AUTH_MQTT_CONFIG, name="reasons")
    s, reason, props = raw_connect_v5(node.mqtt_port, "r1", username="dev", password="nope")
    assert reason == 0x86 and "password" in props[0x1F], props
    s.close()
    s, reason, props = raw_connect_v5(node.mqtt_port, "r2", username="dev", password="pw")
    assert reason == 0 and 0x1F not in props
    # PUBLISH QoS 1 where "dev" may not send: PUBACK 0x87 with the why
    body = mqtt_string("secrets/x") + b"\x00\x05" + b"\x00" + b"psst"
    s.sendall(bytes([0x32, len(body)]) + body)
    kind, ack = read_packet(s)
    assert (kind, ack[:3]) == (0x40, b"\x00\x05\x87"), ack
    assert "permission" in parse_props(ack, 3)[0][0x1F]
    # SUBSCRIBE one refused and one granted filter: the reason string names the refused one
    filters = mqtt_string("secrets/#") + b"\x01" + mqtt_string("devices/#") + b"\x01"
    body = b"\x00\x06" + b"\x00" + filters
    s.sendall(bytes([0x82, len(body)]) + body)
    kind, suback = read_packet(s)
    assert kind == 0x90 and suback[:2] == b"\x00\x06", suback
    props, i = parse_props(suback, 2)
    assert suback[i:] == b"\x87\x01"
    assert "secrets/#" in props[0x1F] and "devices/#" not in props[0x1F], props
    s.close()


KEEP_ALIVE_CONFIG = """\
[mqtt]
max_keep_alive = 2

[[tenant]]
name = "default"
auto_create = true
"""


def test_server_keep_alive_caps_the_clients_and_is_enforced(throng):
    """`[mqtt] max_keep_alive`: a v5 client asking for none (0) or more is told the maximum
    in the CONNACK (Server Keep Alive, 0x13) and disconnected after 1.5x it of silence."""
    node = throng(KEEP_ALIVE_CONFIG, name="keepalive")
    modest, reason, props = raw_connect_v5(node.mqtt_port, "modest", keep_alive=1)
    assert reason == 0 and 0x13 not in props, "a keep-alive within the maximum stands"
    modest.close()
    lazy, reason, props = raw_connect_v5(node.mqtt_port, "lazy", keep_alive=0)
    assert reason == 0 and props[0x13] == 2, props
    silent_since = time.monotonic()
    lazy.settimeout(10)
    kind, body = read_packet(lazy)
    waited = time.monotonic() - silent_since
    assert (kind, body[0]) == (0xE0, 0x8D), body  # keep alive timeout
    assert "keep-alive" in parse_props(body, 1)[0][0x1F]
    assert 2.5 <= waited < 6, waited
    assert lazy.recv(16) == b""
    lazy.close()


def test_mqtt_over_websocket(server, clients):
    """paho over WebSocket (path /mqtt, subprotocol mqtt) talks to TCP clients."""
    ws = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="ws-client", protocol=mqtt.MQTTv5,
                     transport="websockets", reconnect_on_failure=False)
    ws.ws_set_options(path="/mqtt")
    got = queue.Queue()
    subscribed = queue.Queue()
    ws.on_message = lambda c, u, m: got.put(m)
    ws.on_subscribe = lambda c, u, mid, rcs, p: subscribed.put(rcs)
    connected = queue.Queue()
    ws.on_connect = lambda c, u, f, rc, p: connected.put(rc)
    ws.connect("127.0.0.1", server.http_port, keepalive=30)
    ws.loop_start()
    try:
        assert int(getattr(connected.get(timeout=TIMEOUT), "value", 1)) == 0
        ws.subscribe("ws/in", 1)
        subscribed.get(timeout=TIMEOUT)
        tcp = clients()
        tcp.subscribe("ws/out")
        tcp.publish("ws/in", b"from tcp")
        m = got.get(timeout=TIMEOUT)
        assert (m.topic, m.payload) == ("ws/in", b"from tcp")
        ws.publish("ws/out", b"from websocket", qos=1).wait_for_publish(timeout=TIMEOUT)
        assert tcp.get().payload == b"from websocket"
    finally:
        ws.disconnect()
        ws.loop_stop()


@pytest.mark.parametrize("version", [4, 5])
def test_persistent_session_survives_a_crash(restartable, tmp_path, version):
    node, back, kwargs = crash_while_away(restartable, tmp_path, version, "plant-sink",
                                          ["plant/#", "plant/alarms"],
                                          [f"plant/line{i}" for i in range(3)])
    got = sorted(back.get().payload for _ in range(3))
    assert got == [f"msg-{i}".encode() for i in range(3)]
    # its wildcard subscription still reaches new topics, and the exact one works too
    pub = Client(node.mqtt_port, version=version)
    pub.publish("plant/alarms", b"overheat", qos=1)
    assert back.get().payload == b"overheat"
    back.nothing(0.3)  # one copy for the two overlapping filters
    back.close()
    # a clean start ends it for good, across restarts too
    gone = Client(node.mqtt_port, version=version, client_id="plant-sink", clean=True)
    gone.close()
    pub.close()
    node.terminate()
    node = restartable(tmp_path / "data")
    again = Client(node.mqtt_port, version=version, client_id="plant-sink", clean=False, **kwargs)
    assert not again.flags.session_present
    again.close()


def raw_connect(port, client_id, clean_start, expiry=None):
    """MQTT 5 CONNECT over a bare socket (clean start flag and session expiry chosen)."""
    cid = client_id.encode()
    props = b"" if expiry is None else b"\x11" + expiry.to_bytes(4, "big")
    flags = 0x02 if clean_start else 0x00
    body = (b"\x00\x04MQTT\x05" + bytes([flags]) + b"\x00\x1e" + bytes([len(props)]) + props
            + len(cid).to_bytes(2, "big") + cid)
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    s.sendall(bytes([0x10, len(body)]) + body)
    head = s.recv(2)
    assert head[0] == 0x20, head
    connack = s.recv(head[1])
    return s, connack[0] & 1  # session present


def raw_publish_qos2(s, topic, payload, packet_id, dup):
    t = topic.encode()
    body = len(t).to_bytes(2, "big") + t + packet_id.to_bytes(2, "big") + b"\x00" + payload
    s.sendall(bytes([0x34 | (0x08 if dup else 0), len(body)]) + body)


def test_qos2_is_exactly_once_across_a_reconnect(clients, server):
    sub = clients()
    sub.subscribe("once", qos=2)
    s, present = raw_connect(server.mqtt_port, "exactly", clean_start=True, expiry=300)
    raw_publish_qos2(s, "once", b"only-once", 7, dup=False)
    pubrec = s.recv(16)
    assert pubrec[0] == 0x50 and pubrec[2:4] == b"\x00\x07", pubrec
    s.close()  # gone before PUBREL: the id stays "received" in the session
    assert sub.get().payload == b"only-once"
    s, present = raw_connect(server.mqtt_port, "exactly", clean_start=False, expiry=300)
    assert present == 1
    raw_publish_qos2(s, "once", b"only-once", 7, dup=True)
    pubrec = s.recv(16)
    assert pubrec[0] == 0x50 and pubrec[2:4] == b"\x00\x07", pubrec
    s.sendall(b"\x62\x02\x00\x07")  # PUBREL
    pubcomp = s.recv(16)
    assert pubcomp[0] == 0x70 and pubcomp[2:4] == b"\x00\x07", pubcomp
    sub.nothing(0.5)
    s.close()


def test_qos2_state_goes_with_a_session_taken_over_from_a_live_connection(clients, server):
    """The client comes back (clean start 0) while its old connection is still open: the
    old connection's QoS 2 state (an id awaiting PUBREL) goes to the new one, so the
    resent PUBLISH is acknowledged, not delivered twice."""
    sub = clients()
    sub.subscribe("once-taken", qos=2)
    old, _ = raw_connect(server.mqtt_port, "taker", clean_start=True, expiry=300)
    raw_publish_qos2(old, "once-taken", b"only-once", 9, dup=False)
    raw_expect(old, 0x50, 9)
    assert sub.get().payload == b"only-once"
    new, present = raw_connect(server.mqtt_port, "taker", clean_start=False, expiry=300)
    assert present == 1
    kind, body = read_packet(old)
    assert (kind, body[0]) == (0xE0, 0x8E), "the old connection is told: session taken over"
    raw_qos2_exchange(new, "once-taken", b"only-once", 9, dup=True)
    sub.nothing(0.5)
    old.close()
    new.close()


def raw_expect(s, first_byte, packet_id):
    """Reads one 4-byte acknowledgement (PUBREC/PUBCOMP ...) and checks type and id."""
    ack = b""
    while len(ack) < 4:
        chunk = s.recv(4 - len(ack))
        assert chunk, "connection closed"
        ack += chunk
    assert ack[0] == first_byte and ack[2:4] == packet_id.to_bytes(2, "big"), ack


def raw_qos2_exchange(s, topic, payload, packet_id, dup=False):
    """PUBLISH QoS 2, PUBREC, PUBREL, PUBCOMP."""
    raw_publish_qos2(s, topic, payload, packet_id, dup)
    raw_expect(s, 0x50, packet_id)
    s.sendall(b"\x62\x02" + packet_id.to_bytes(2, "big"))
    raw_expect(s, 0x70, packet_id)


def test_qos2_state_survives_node_crashes_without_loss_or_duplicates(restartable, tmp_path):
    """The QoS 2 ids of a persistent session are written as they change, before the PUBREC
    or PUBCOMP that stands for the change: after a crash a resent PUBLISH of a stored
    message is not stored again, and an id released before the crash is free for a new
    message (a stale id would swallow it: acknowledged with PUBREC, never delivered)."""
    def resume(node):
        s, present = raw_connect(node.mqtt_port, "q2-pub", clean_start=False, expiry=3600)
        assert present == 1, "the publisher's session is back"
        return s

    node = restartable(tmp_path / "data")
    sink = Client(node.mqtt_port, version=5, client_id="q2-sink", clean=False, session_expiry=3600)
    sink.subscribe("q2/#", qos=1)
    sink.close()

    # id 7 stored and acknowledged, PUBREL still due when the client drops
    s, _ = raw_connect(node.mqtt_port, "q2-pub", clean_start=True, expiry=3600)
    raw_publish_qos2(s, "q2/a", b"first", 7, dup=False)
    raw_expect(s, 0x50, 7)
    s.close()
    # back: PUBREL releases id 7; the node crashes right after
    s = resume(node)
    s.sendall(b"\x62\x02\x00\x07")
    raw_expect(s, 0x70, 7)
    node.kill()
    s.close()

    node = restartable(tmp_path / "data")
    s = resume(node)
    # a new message reusing id 7 is a new message
    raw_qos2_exchange(s, "q2/a", b"second", 7)
    # id 9 stored and PUBREC'd, then the node crashes before PUBREL
    raw_publish_qos2(s, "q2/a", b"third", 9, dup=False)
    raw_expect(s, 0x50, 9)
    node.kill()
    s.close()

    node = restartable(tmp_path / "data")
    s = resume(node)
    # the client did not see the PUBREC it was sent: it resends; stored once only
    raw_qos2_exchange(s, "q2/a", b"third", 9, dup=True)
    s.close()
    sink = Client(node.mqtt_port, version=5, client_id="q2-sink", clean=False, session_expiry=3600)
    got = [sink.get().payload for _ in range(3)]
    assert got == [b"first", b"second", b"third"]
    sink.nothing(0.5)
    sink.close()


def test_v5_payload_format_and_repeated_user_properties_are_forwarded(clients, world):
    # MQTT-3.3.2-4 (payload format indicator unaltered), MQTT-3.3.2-18 (every user
    # property, in order); an AMQP consumer sees the first value of a repeated key
    sub = clients(version=5)
    sub.subscribe("pfi/#", qos=1)
    pub = clients(version=5)
    pub.publish("pfi/a", b"created")
    sub.get()
    rcv = world.receiver(world.connect(), "pfi/a", credit=10)
    world.pump(0.2)
    props = Properties(PacketTypes.PUBLISH)
    props.PayloadFormatIndicator = 1
    props.UserProperty = [("k", "x"), ("j", "1"), ("k", "y")]
    pub.publish("pfi/a", b"text", qos=1, properties=props)
    m = sub.get()
    assert m.properties.PayloadFormatIndicator == 1
    assert m.properties.UserProperty == [("k", "x"), ("j", "1"), ("k", "y")]
    r = rcv.get()
    assert r.message.properties == {"k": "x", "j": "1"}
    r.accept()


def test_each_puback_lets_the_next_delivery_out_at_once(clients, server):
    # a subscriber announcing Receive Maximum 4 that acknowledges one message gets the
    # next one at once, not after half its window is acknowledged
    got = queue.Queue()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="slow", protocol=mqtt.MQTTv5,
                    reconnect_on_failure=False, manual_ack=True)
    c.on_message = lambda c, u, m: got.put(m)
    subacks = queue.Queue()
    c.on_subscribe = lambda c, u, mid, rcs, p: subacks.put(rcs)
    props = Properties(PacketTypes.CONNECT)
    props.ReceiveMaximum = 4
    c.connect("127.0.0.1", server.mqtt_port, keepalive=30, properties=props)
    c.loop_start()
    try:
        c.subscribe("window/a", 1)
        subacks.get(timeout=TIMEOUT)
        pub = clients(version=5)
        for i in range(12):
            pub.publish("window/a", b"m%d" % i)
        first = [got.get(timeout=TIMEOUT) for _ in range(4)]
        time.sleep(0.3)
        assert got.empty(), "no more than the receive maximum in flight"
        c.ack(first[0].mid, 1)
        nxt = got.get(timeout=0.5)
        assert nxt.payload == b"m4"
        for m in first[1:] + [nxt]:
            c.ack(m.mid, 1)
        rest = []
        while len(rest) < 7:
            m = got.get(timeout=TIMEOUT)
            c.ack(m.mid, 1)
            rest.append(m.payload)
        assert rest == [b"m%d" % i for i in range(5, 12)]
    finally:
        c.disconnect()
        c.loop_stop()


def test_v5_subscription_options_and_identifiers(clients):
    from paho.mqtt.subscribeoptions import SubscribeOptions
    c = clients(version=5)
    props = Properties(PacketTypes.SUBSCRIBE)
    props.SubscriptionIdentifier = 42
    # no-local: the client's own messages do not come back on this subscription
    c.c.subscribe("chat/room", options=SubscribeOptions(qos=1, noLocal=True), properties=props)
    c.subacks.get(timeout=TIMEOUT)
    c.publish("chat/room", b"mine")
    other = clients(version=5)
    other.publish("chat/room", b"theirs")
    m = c.get()
    assert m.payload == b"theirs", "own message not echoed (no-local)"
    assert m.properties.SubscriptionIdentifier == [42]
    c.nothing(0.3)

    pub = clients(version=5)
    pub.publish("flags/x", b"kept", retain=True)
    # retain-as-published keeps the flag on live messages; retain handling 2 sends no
    # retained message at subscribe
    rap = clients(version=5)
    rap.c.subscribe("flags/x", options=SubscribeOptions(qos=1, retainAsPublished=True,
                                                         retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND))
    rap.subacks.get(timeout=TIMEOUT)
    rap.nothing(0.3)
    pub.publish("flags/x", b"live", retain=True)
    m = rap.get()
    assert (m.payload, m.retain) == (b"live", True)
    # retain handling 1: retained message only for a new subscription
    once = clients(version=5)
    opts = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
    once.c.subscribe("flags/x", options=opts)
    once.subacks.get(timeout=TIMEOUT)
    assert once.get().payload == b"live"
    once.c.subscribe("flags/x", options=opts)
    once.subacks.get(timeout=TIMEOUT)
    once.nothing(0.3)


def test_v5_overlapping_subscriptions_get_one_copy_with_every_identifier(clients):
    c = clients(version=5)
    for topic_filter, qos, ident in (("ov/#", 0, 1), ("ov/x", 1, 2)):
        props = Properties(PacketTypes.SUBSCRIBE)
        props.SubscriptionIdentifier = ident
        c.c.subscribe(topic_filter, qos=qos, properties=props)
        c.subacks.get(timeout=TIMEOUT)
    pub = clients(version=5)
    pub.publish("ov/x", b"both", qos=1)
    m = c.get()
    assert (m.payload, m.qos) == (b"both", 1), "one copy at the highest QoS of the matches"
    assert sorted(m.properties.SubscriptionIdentifier) == [1, 2]
    c.nothing(0.3)
    pub.publish("ov/y", b"wild", qos=1)
    m = c.get()
    assert (m.payload, m.qos, m.properties.SubscriptionIdentifier) == (b"wild", 0, [1])
    c.nothing(0.3)
    c.c.unsubscribe("ov/x")
    time.sleep(0.2)
    pub.publish("ov/x", b"left", qos=1)
    m = c.get()
    assert (m.payload, m.qos, m.properties.SubscriptionIdentifier) == (b"left", 0, [1])
    c.nothing(0.3)


def test_v5_will_delay_and_topic_alias(clients, server, tmp_path):
    watcher = clients(version=5)
    watcher.subscribe("delayed/#")
    script = tmp_path / "delayed.py"
    script.write_text(textwrap.dedent("""
        import sys, time
        import paho.mqtt.client as mqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="delayed", protocol=mqtt.MQTTv5)
        wp = Properties(PacketTypes.WILLMESSAGE)
        wp.WillDelayInterval = 1
        c.will_set("delayed/will", b"late", qos=1, properties=wp)
        cp = Properties(PacketTypes.CONNECT)
        cp.SessionExpiryInterval = 60
        c.connect("127.0.0.1", int(sys.argv[1]), keepalive=30, properties=cp)
        c.loop_start()
        time.sleep(0.3)
        # a topic alias: first publish sets it, the second uses it with an empty topic
        p1 = Properties(PacketTypes.PUBLISH); p1.TopicAlias = 3
        c.publish("delayed/alias", b"one", qos=1, properties=p1).wait_for_publish(5)
        p2 = Properties(PacketTypes.PUBLISH); p2.TopicAlias = 3
        c.publish("", b"two", qos=1, properties=p2).wait_for_publish(5)
        print("ready", flush=True)
        time.sleep(60)
    """))
    p = subprocess.Popen([sys.executable, str(script), str(server.mqtt_port)], stdout=subprocess.PIPE)
    try:
        assert p.stdout.readline().strip() == b"ready"
        got = [(m.topic, m.payload) for m in (watcher.get(), watcher.get())]
        assert got == [("delayed/alias", b"one"), ("delayed/alias", b"two")]
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=10)
        killed_at = time.monotonic()
    finally:
        if p.poll() is None:
            p.kill()
    m = watcher.get()
    waited = time.monotonic() - killed_at
    assert (m.topic, m.payload) == ("delayed/will", b"late")
    assert waited >= 0.8, f"the will waited its delay ({waited:.2f}s)"


def lose(c):
    """Ends a paho client's connection without DISCONNECT, as a crash would."""
    c.c.loop_stop()
    c.c.socket().close()


def will_client(server, client_id, delay, expiry):
    """A v5 client with a persistent session (`expiry` s) and a QoS 1 will on
    wills/CLIENT_ID delayed by `delay` s."""
    wp = Properties(PacketTypes.WILLMESSAGE)
    wp.WillDelayInterval = delay
    return Client(server.mqtt_port, client_id=client_id, clean=False, session_expiry=expiry,
                  will=(f"wills/{client_id}", b"gone", 1), will_properties=wp)


def test_v5_delayed_will_is_published_when_the_session_ends_first(clients, server):
    """Will delay 60 s, session expiry 1 s: the will goes when the session ends
    (MQTT-3.1.3-9), not a minute later."""
    watcher = clients()
    watcher.subscribe("wills/#")
    c = will_client(server, "short-session", delay=60, expiry=1)
    lost_at = time.monotonic()
    lose(c)
    m = watcher.get()
    waited = time.monotonic() - lost_at
    assert (m.topic, m.payload) == ("wills/short-session", b"gone")
    assert waited >= 0.8, f"published when the session ended ({waited:.2f}s)"


def test_v5_delayed_will_is_published_when_a_clean_start_ends_the_session(clients, server):
    watcher = clients()
    watcher.subscribe("wills/#")
    lose(will_client(server, "restarter", delay=60, expiry=300))
    watcher.nothing(0.5)  # the delay runs
    fresh = clients(client_id="restarter", clean=True)
    assert not fresh.flags.session_present
    m = watcher.get()
    assert (m.topic, m.payload) == ("wills/restarter", b"gone")


def test_v5_delayed_will_is_cancelled_by_resuming_the_session(clients, server):
    watcher = clients()
    watcher.subscribe("wills/#")
    lose(will_client(server, "comeback", delay=2, expiry=300))
    back = clients(client_id="comeback", clean=False, session_expiry=300)
    assert back.flags.session_present
    watcher.nothing(3.0)


def test_amqp_message_with_retain_annotation_is_retained(clients, world):
    snd = world.sender(world.connect(), "status/gateway", options=TopicTarget())
    msg = Message(body=b"online", durable=True)
    msg.annotations = {"x-opt-retain-message": True}
    snd.send(msg)
    late = clients()
    late.subscribe("status/+")
    m = late.get()
    assert (m.topic, m.payload, m.retain) == ("status/gateway", b"online", True)


def test_will_published_after_keep_alive_timeout(clients, server):
    """A client that goes silent (socket open, no packets) past 1.5x its keep-alive is
    disconnected by the server and its will is published."""
    watcher = clients()
    watcher.subscribe("silent/#")
    cid, topic, msg = b"silent-1", b"silent/status", b"timed out"
    will = len(topic).to_bytes(2, "big") + topic + len(msg).to_bytes(2, "big") + msg
    # 3.1.1 CONNECT: clean session + will flag (QoS 0), keep-alive 1 s
    body = (b"\x00\x04MQTT\x04" + bytes([0x02 | 0x04]) + b"\x00\x01"
            + len(cid).to_bytes(2, "big") + cid + will)
    s = socket.create_connection(("127.0.0.1", server.mqtt_port), timeout=TIMEOUT)
    try:
        s.sendall(bytes([0x10, len(body)]) + body)
        assert s.recv(4)[0] == 0x20
        started = time.monotonic()
        m = watcher.get()
        waited = time.monotonic() - started
        assert (m.topic, m.payload) == ("silent/status", b"timed out")
        assert 1.2 <= waited <= 5, f"will after {waited:.2f}s (keep-alive 1 s, timeout 1.5 s)"
        assert s.recv(16) == b"", "the server closed the silent connection"
    finally:
        s.close()


def test_message_expiry_counts_the_time_spent_in_the_node(clients):
    away = clients(version=5, client_id="expiring", clean=False, session_expiry=60)
    away.subscribe("exp/x", qos=1)
    away.close()
    props = Properties(PacketTypes.PUBLISH)
    props.MessageExpiryInterval = 10
    clients(version=5).publish("exp/x", b"soon stale", qos=1, properties=props)
    time.sleep(2.2)
    back = clients(version=5, client_id="expiring", clean=False, session_expiry=60)
    m = back.get()
    assert m.payload == b"soon stale"
    left = m.properties.MessageExpiryInterval
    assert 7 <= left <= 8, f"10 s minus ~2.2 s waiting, rounded up: got {left}"


FULL_CONFIG = """\
[[tenant]]
name = "default"
auto_create = true

[[tenant.address]]
name = "tight"
type = "queue"
max_bytes = 1000
full_policy = "reject"
"""


@pytest.mark.parametrize("version", [4, 5])
def test_a_publish_the_node_cannot_take_is_never_acknowledged_as_taken(throng, version):
    """A queue that rejects when full (`full_policy = "reject"`): v5 publishers get PUBACK
    0x97 (quota exceeded) for what does not fit; 3.1.1 has no negative PUBACK, so the node
    closes the connection instead of acknowledging a message it did not take."""
    node = throng(FULL_CONFIG, name="full")
    c = Client(node.mqtt_port, version=version)
    reasons = {}
    c.c.on_publish = lambda cl, u, mid, rc, props: reasons.__setitem__(mid, rc)
    sent = [c.c.publish("tight", b"x" * 400, qos=1) for _ in range(6)]
    if version == 5:
        deadline = time.monotonic() + TIMEOUT
        while len(reasons) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.05)
        codes = [getattr(reasons.get(i.mid), "value", None) for i in sent]
        assert codes[0] == 0 and codes[-1] == 0x97, codes
        assert set(codes) == {0, 0x97}, codes
        c.close()
    else:
        c.disconnects.get(timeout=TIMEOUT)
        acked = sum(1 for i in sent if i.mid in reasons)
        assert 0 < acked < len(sent), f"{acked} acknowledged"
        c.c.loop_stop()
    # what was acknowledged is there; what was refused is not (3.1.1: publishes taken
    # but not yet acknowledged when the connection closed are there too; the client
    # sends them again, at least once)
    r = Client(node.mqtt_port, version=5)
    r.subscribe("tight", qos=1)
    got = 0
    while True:
        try:
            r.get(timeout=1)
        except queue.Empty:
            break
        got += 1
    acked = sum(1 for i in sent if i.mid in reasons and getattr(reasons[i.mid], "value", 0) == 0)
    if version == 5:
        assert got == acked, f"{got} in the queue, {acked} acknowledged"
    else:
        assert acked <= got < len(sent), f"{got} in the queue, {acked} acknowledged"
    r.close()
