"""Runs the Node.js interop scripts (rhea for AMQP, mqtt.js for MQTT) in interop/node/ against a fresh server each.

Each script exits 0 on success, non-zero with a FAIL line otherwise; it gets the port
in THRONG_PORT and has its own overall timeout (THRONG_TEST_TIMEOUT), with a second,
outer timeout here.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).resolve().parent / "node"
SCRIPT_TIMEOUT = 20  # the script's own limit
OUTER_TIMEOUT = SCRIPT_TIMEOUT + 10


def run_script(script, port, extra_env=None):
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed")
    if not (NODE_DIR / "node_modules" / "rhea").is_dir():
        pytest.fail(f"rhea is not installed: run npm ci in {NODE_DIR}")
    env = dict(os.environ, THRONG_PORT=str(port), THRONG_TEST_TIMEOUT=str(SCRIPT_TIMEOUT),
               **(extra_env or {}))
    try:
        proc = subprocess.run([node, script], cwd=NODE_DIR, env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=OUTER_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace")
        pytest.fail(f"{script} did not finish within {OUTER_TIMEOUT}s\n{out}")
    out = proc.stdout.decode(errors="replace")
    print(out)
    assert proc.returncode == 0, f"{script} exited {proc.returncode}:\n{out}"


@pytest.mark.parametrize("script", [
    "queue_roundtrip.js",
    "competing_consumers.js",
    "topic_fanout.js",
    "anycast.js",
    "multicast_fanout.js",
    "request_reply.js",
])
def test_rhea(script, server):
    run_script(script, server.port)


def test_rhea_sasl_plain(auth_server):
    run_script("sasl_plain.js", auth_server.port)


def test_mqtt_js(server):
    """mqtt.js (npm) over TCP and WebSocket: see interop/node/mqtt_js.js."""
    run_script("mqtt_js.js", server.port,
               {"THRONG_MQTT_PORT": str(server.mqtt_port), "THRONG_HTTP_PORT": str(server.http_port)})
