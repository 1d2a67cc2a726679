//! Test support: runs the built `throng` binary on a free port.

#![allow(dead_code)]

pub mod mqtt;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running node, stopped with SIGTERM when dropped.
pub struct Node {
    child: Child,
    stopped: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pub addr: String,
    /// Every listener the node announced: name (`amqp`, `http`, …) → HOST:PORT.
    pub listeners: std::collections::HashMap<String, String>,
    _dir: TempDir,
}

/// A temporary directory removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn create() -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "throng-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.0.as_os_str().is_empty() {
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Node {
    /// Starts a node with `config` (TOML) and an AMQP listener on 127.0.0.1:0.
    pub fn start(config: &str) -> Node {
        Self::start_in(config, TempDir::create())
    }

    /// Starts a node keeping its data in `dir` (reused across restarts).
    pub fn start_in(config: &str, dir: TempDir) -> Node {
        Self::start_in_with(config, dir, &[])
    }

    /// Like [`Node::start_in`], with extra `serve` flags.
    pub fn start_in_with(config: &str, dir: TempDir, extra: &[&str]) -> Node {
        let cfg = dir.0.join("throng.toml");
        std::fs::write(&cfg, config).expect("write config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_throng"))
            .args(["serve", "--amqp", "127.0.0.1:0", "--config"])
            .arg(&cfg)
            .arg("--data-dir")
            .arg(dir.0.join("data"))
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn throng");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        // amqp, plus every listener named in the extra flags
        let expected = 1 + extra
            .iter()
            .filter(|a| matches!(**a, "--http" | "--mqtt"))
            .count();
        let mut listeners = std::collections::HashMap::new();
        while listeners.len() < expected {
            let line = lines
                .next()
                .expect("throng exited before listening")
                .expect("read stdout");
            if let Some((name, a)) = line
                .strip_prefix("listening ")
                .and_then(|l| l.split_once(' '))
            {
                listeners.insert(name.to_string(), a.to_string());
            }
        }
        let addr = listeners.get("amqp").cloned().expect("amqp listener");
        // watchdog: a hung test must fail, not hang CI; the node is killed after 60 s
        // (THRONG_TEST_WATCHDOG_SECS for long manual runs) so every client call of the
        // test errors out
        let stopped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, pid) = (stopped.clone(), child.id());
        let ticks = std::env::var("THRONG_TEST_WATCHDOG_SECS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(60)
            * 10;
        std::thread::spawn(move || {
            for _ in 0..ticks {
                std::thread::sleep(Duration::from_millis(100));
                if flag.load(std::sync::atomic::Ordering::Acquire) {
                    return;
                }
            }
            eprintln!("watchdog: killing node {pid} after {} s", ticks / 10);
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        });
        Node {
            child,
            stopped,
            addr,
            listeners,
            _dir: dir,
        }
    }

    /// The node's process id (for its /proc status).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The node's peak resident memory so far, in KiB (VmHWM).
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc status")
    }

    /// Stops the node with SIGTERM and returns its exit code.
    pub fn stop(mut self) -> Option<i32> {
        self.terminate()
    }

    /// Kills the node with SIGKILL (a crash) and hands back its data directory.
    pub fn crash(mut self) -> TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stopped
            .store(true, std::sync::atomic::Ordering::Release);
        std::mem::replace(&mut self._dir, TempDir(std::path::PathBuf::new()))
    }

    fn terminate(&mut self) -> Option<i32> {
        let pid = self.child.id();
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        for _ in 0..100 {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.stopped
                    .store(true, std::sync::atomic::Ordering::Release);
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stopped
            .store(true, std::sync::atomic::Ordering::Release);
        None
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}

pub const ADDRESSES: &str = r#"
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
"#;

/// The body of a delivery as text (data sections), or its debug form.
pub fn body(d: &throng_client::Delivery) -> String {
    match d.message.body().expect("body") {
        throng_amqp::message::Body::Data(b) => String::from_utf8_lossy(&b).into_owned(),
        other => format!("{other:?}"),
    }
}

/// An anonymous connection to `node`.
pub async fn connect(node: &Node) -> throng_client::Connection {
    throng_client::Connection::connect(&node.addr, throng_client::ConnectOptions::default())
        .await
        .expect("connect")
}

/// One HTTP/1.1 request to `addr` (HOST:PORT) with optional Basic credentials; returns
/// the status code and the body.
pub async fn http(
    addr: &str,
    method: &str,
    path: &str,
    basic: Option<(&str, &str)>,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("http connect");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some((u, p)) = basic {
        req.push_str(&format!(
            "Authorization: Basic {}\r\n",
            base64(&format!("{u}:{p}"))
        ));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.expect("http write");
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await.expect("http read");
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Base64 (standard alphabet, padded), for Basic credentials.
fn base64(s: &str) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = (chunk[0] as u32) << 16
            | (*chunk.get(1).unwrap_or(&0) as u32) << 8
            | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// An encoded message with header `durable=true` and `body` as its data section.
pub fn durable_message(body: impl Into<bytes::Bytes>) -> bytes::Bytes {
    throng_amqp::message::MessageBuilder::new()
        .header(throng_amqp::definitions::Header {
            durable: Some(true),
            ..Default::default()
        })
        .data(body.into())
        .encode()
}
