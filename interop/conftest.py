"""Fixtures for the black-box interop suite.

Every test gets its own `throng serve` process on a free port (`--amqp 127.0.0.1:0`),
with its own config file and data directory under pytest's tmp_path. The fixture
reads the server's stdout until `listening amqp 127.0.0.1:PORT` and `listening mqtt
127.0.0.1:PORT` and `listening http 127.0.0.1:PORT` (every server also serves MQTT,
`.mqtt_port`, and HTTP, `.http_port`), and on teardown
sends SIGTERM and requires exit code 0 (the contract in docs/ARCHITECTURE.md: clean stop on SIGTERM).

The binary is `$THRONG_BIN`, or `target/release/throng` at the repository root.

Durability tests restart a node on the same data directory: the `restartable` fixture
starts a server on a given data dir; the test may `kill()` it (SIGKILL, a crash: nothing is
flushed, no exit code is checked), `terminate()` it (SIGTERM, exit code 0 required) and start
a new one on the same directory. Every start binds 127.0.0.1:0 and reads the new port from
the `listening amqp` line.
"""

import os
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
THRONG_BIN = Path(os.environ.get("THRONG_BIN", REPO_ROOT / "target" / "release" / "throng"))

STARTUP_TIMEOUT = 20.0  # seconds until the `listening amqp` line must appear
SHUTDOWN_TIMEOUT = 15.0  # seconds from SIGTERM until the process must have exited
LISTENING_RE = re.compile(r"^listening (amqp|mqtt|http|inter-router) 127\.0\.0\.1:(\d+)\s*$")
ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")

DEFAULT_CONFIG = """\
[[tenant]]
name = "default"
auto_create = true

[[tenant.address]]
name = "q1"
type = "queue"

[[tenant.address]]
name = "t1"
type = "topic"

[[tenant.address]]
name = "any1"
type = "anycast"

[[tenant.address]]
name = "multi1"
type = "multicast"
"""

NO_AUTO_CREATE_CONFIG = """\
[[tenant]]
name = "default"
auto_create = false

[[tenant.address]]
name = "q1"
type = "queue"

[[tenant.address]]
name = "t1"
type = "topic"

[[tenant.address]]
name = "any1"
type = "anycast"

[[tenant.address]]
name = "multi1"
type = "multicast"
"""

AUTH_CONFIG = """\
[[tenant]]
name = "default"
auto_create = true

[[tenant.address]]
name = "q1"
type = "queue"

[[tenant.user]]
name = "alice"
password = "secret"
permissions = [{ pattern = "*", ops = ["send", "recv"] }]
"""


class ThrongServer:
    """One `throng serve` child process."""

    def __init__(self, workdir: Path, config_text: str, name: str, data_dir: Path = None,
                 extra_args=()):
        """data_dir: an existing (or new) data directory to reuse, e.g. one a previous
        server ran on; by default a fresh `<name>-data` under workdir. extra_args: more
        `throng serve` flags (a mesh node's --node-id, --inter-router, --connect); with
        --inter-router the start also waits for `listening inter-router` (.inter_router_port)."""
        self.extra_args = list(extra_args)
        self.inter_router_port = None
        self.workdir = workdir
        self.name = name
        self.config_path = workdir / f"{name}.toml"
        self.log_path = workdir / f"{name}.stderr.log"
        self.config_path.write_text(config_text)
        if data_dir is None:
            self.data_dir = workdir / f"{name}-data"
            self.data_dir.mkdir()
        else:
            self.data_dir = Path(data_dir)
            self.data_dir.mkdir(parents=True, exist_ok=True)
        self.returncode = None
        self.stdout_lines = []
        self._lines = queue.Queue()
        self.port = None
        self.mqtt_port = None
        self.http_port = None
        self.proc = None

    @property
    def url(self) -> str:
        return f"amqp://127.0.0.1:{self.port}"

    def start(self):
        if not THRONG_BIN.exists():
            pytest.fail(f"server binary {THRONG_BIN} does not exist (build it with cargo build --release)")
        cmd = [
            str(THRONG_BIN), "serve",
            "--config", str(self.config_path),
            "--data-dir", str(self.data_dir),
            "--amqp", "127.0.0.1:0",
            "--mqtt", "127.0.0.1:0",
            "--http", "127.0.0.1:0",
            *self.extra_args,
        ]
        env = dict(os.environ)
        env.setdefault("RUST_BACKTRACE", "1")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            cmd, cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=self._log, env=env,
        )
        reader = threading.Thread(target=self._read_stdout, daemon=True)
        reader.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        wanted = ["port", "mqtt_port", "http_port"]
        if "--inter-router" in self.extra_args:
            wanted.append("inter_router_port")
        while any(getattr(self, w) is None for w in wanted):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._abort()
                pytest.fail(f"server did not print 'listening amqp 127.0.0.1:PORT' within {STARTUP_TIMEOUT}s"
                            f"\nstdout: {self.stdout_lines!r}\n{self.log_tail()}", pytrace=False)
            try:
                line = self._lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if line is None:  # EOF: the process closed stdout (most likely exited)
                try:
                    rc = self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    rc = None
                self._abort()
                pytest.fail(f"server exited (rc={rc}) before printing its amqp listener"
                            f"\nstdout: {self.stdout_lines!r}\n{self.log_tail()}", pytrace=False)
            m = LISTENING_RE.match(line)
            if m:
                setattr(self, {"amqp": "port", "mqtt": "mqtt_port", "http": "http_port",
                               "inter-router": "inter_router_port"}[m.group(1)],
                        int(m.group(2)))
        return self

    def _read_stdout(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.stdout_lines.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def _abort(self):
        """Startup failed (and is reported as such): kill the process, nothing left for stop()."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._log.close()
        self.proc = None

    def log_tail(self, n=60) -> str:
        try:
            if not self._log.closed:
                self._log.flush()
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no server log)"
        return f"--- last {min(n, len(lines))} lines of server stderr ({self.log_path}) ---\n" + "\n".join(lines[-n:])

    def log_text(self) -> str:
        """The server's stderr so far, without ANSI colour codes."""
        try:
            if not self._log.closed:
                self._log.flush()
            return ANSI_RE.sub("", self.log_path.read_text(errors="replace"))
        except OSError:
            return ""

    def stop(self):
        """SIGTERM; return None on a clean exit 0, else a description of what went wrong.
        A server already stopped (stop, terminate or kill) is left alone."""
        if self.proc is None:
            return None
        problem = None
        rc = self.proc.poll()
        if rc is not None:
            problem = f"server {self.name} died during the test with exit code {rc}"
        else:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=SHUTDOWN_TIMEOUT)
                if rc != 0:
                    problem = f"server {self.name} exited with code {rc} after SIGTERM (expected 0)"
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait(timeout=10)
                problem = f"server {self.name} did not exit within {SHUTDOWN_TIMEOUT}s of SIGTERM; killed"
        self.returncode = rc
        self.proc = None
        self._log.close()
        return problem

    def terminate(self):
        """Clean stop during a test: SIGTERM, and fail the test unless the node exits 0 in time."""
        problem = self.stop()
        if problem:
            pytest.fail(problem + "\n" + self.log_tail(), pytrace=False)

    def kill(self):
        """Crash the node: SIGKILL, and wait (bounded) until the process is gone."""
        if self.proc is None:
            return
        rc = self.proc.poll()
        if rc is not None:
            self._log.close()
            self.proc = None
            pytest.fail(f"server {self.name} died before the test killed it (exit code {rc})"
                        f"\n{self.log_tail()}", pytrace=False)
        self.proc.send_signal(signal.SIGKILL)
        try:
            self.returncode = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail(f"server {self.name} (pid {self.proc.pid}) still alive 10 s after SIGKILL",
                        pytrace=False)
        self.proc = None
        self._log.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, "rep_" + report.when, report)
    return report


@pytest.fixture
def throng(tmp_path, request):
    """Factory: throng(config_text) starts a server and returns it (stopped at teardown)."""
    servers = []

    def start(config_text=DEFAULT_CONFIG, name=None, extra_args=(), data_dir=None):
        srv = ThrongServer(tmp_path, config_text, name or f"throng{len(servers)}",
                           data_dir=data_dir, extra_args=extra_args)
        servers.append(srv)
        return srv.start()

    start.servers = servers  # shared with `restartable`, so one teardown stops them all
    yield start

    rep = getattr(request.node, "rep_call", None)
    test_failed = rep is not None and rep.failed
    problems = []
    for srv in servers:
        problem = srv.stop()
        if test_failed and not problem:
            print(f"server {srv.name} stdout: {srv.stdout_lines!r}\n{srv.log_tail()}")
        if problem:
            problems.append(problem + "\n" + srv.log_tail())
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def restartable(throng, tmp_path):
    """Factory for restart tests: restartable(data_dir, config_text=DEFAULT_CONFIG) starts a
    server on `data_dir` (created when missing) and returns it. The test may then call
    `.kill()` (SIGKILL) or `.terminate()` (SIGTERM, exit 0 required) and start another server
    on the same data_dir; each start listens on a new port (127.0.0.1:0, `.url`). Servers
    still running at teardown are stopped like the `throng` fixture's (SIGTERM, exit 0).
    Each start gets its own stderr log (`<name>.stderr.log`, `.log_text()`)."""
    servers = throng.servers

    def start(data_dir, config_text=DEFAULT_CONFIG):
        srv = ThrongServer(tmp_path, config_text, f"node{len(servers)}", data_dir=Path(data_dir))
        servers.append(srv)
        return srv.start()

    return start


@pytest.fixture
def server(throng):
    """A server with the default config (q1 queue, t1 topic, any1 anycast, multi1 multicast, auto_create)."""
    return throng(DEFAULT_CONFIG, name="default")


@pytest.fixture
def noauto_server(throng):
    """Like `server`, but with auto_create = false."""
    return throng(NO_AUTO_CREATE_CONFIG, name="noauto")


@pytest.fixture
def auth_server(throng):
    """A server whose tenant has the user alice/secret (so anonymous access is refused)."""
    return throng(AUTH_CONFIG, name="auth")


@pytest.fixture
def port(server):
    return server.port


@pytest.fixture
def url(server):
    return server.url


@pytest.fixture
def new_world(throng):
    """Factory: new_world(url) -> amqp_util.World; all its connections are closed at teardown
    (before the servers are stopped, since this fixture depends on `throng`)."""
    from amqp_util import World

    worlds = []

    def make(url):
        w = World(url)
        worlds.append(w)
        return w

    yield make
    for w in worlds:
        w.close_all()


@pytest.fixture
def world(server, new_world):
    """A World connected to the default `server`."""
    return new_world(server.url)
