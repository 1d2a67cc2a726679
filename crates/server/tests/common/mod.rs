//! Test support: runs the built `throng` binary on a free port.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running node, stopped with SIGTERM when dropped.
pub struct Node {
    child: Child,
    stopped: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pub addr: String,
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
        let addr = loop {
            let line = lines
                .next()
                .expect("throng exited before listening")
                .expect("read stdout");
            if let Some(a) = line.strip_prefix("listening amqp ") {
                break a.to_string();
            }
        };
        // watchdog: a hung test must fail, not hang CI; the node is killed after 60 s so
        // every client call of the test errors out
        let stopped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, pid) = (stopped.clone(), child.id());
        std::thread::spawn(move || {
            for _ in 0..600 {
                std::thread::sleep(Duration::from_millis(100));
                if flag.load(std::sync::atomic::Ordering::Acquire) {
                    return;
                }
            }
            eprintln!("watchdog: killing node {pid} after 60 s");
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        });
        Node {
            child,
            stopped,
            addr,
            _dir: dir,
        }
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
