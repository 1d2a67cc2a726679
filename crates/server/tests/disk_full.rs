//! A full disk: the journal cannot write, so producers of durable messages are told
//! (`rejected`, `amqp:internal-error`) instead of waiting for an answer that never comes,
//! and every message accepted before the disk filled is still there after a restart on
//! a disk with room.
//!
//! The disk is a small tmpfs mounted for the test; where mounting is not permitted (not
//! root) the test says so and passes without running.

mod common;

use bytes::Bytes;
use common::{Node, TempDir};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use throng_amqp::definitions::DeliveryState;
use throng_amqp::message::Body;
use throng_client::{ConnectOptions, Connection, ReceiverOptions, SenderOptions};

const CONFIG: &str =
    "[[tenant]]\nname = \"default\"\n[[tenant.address]]\nname = \"orders\"\ntype = \"queue\"\n";

/// A tmpfs of a fixed size at a directory, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .expect("mount");
        assert!(status.success(), "remount");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// A durable message of about 64 KiB whose body starts with `id`.
fn durable(id: u32) -> Bytes {
    let mut body = format!("{id:08}").into_bytes();
    body.resize(64 * 1024, b'.');
    common::durable_message(body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_rejects_what_it_cannot_keep_and_loses_nothing_accepted() {
    let dir = TempDir::create();
    let Some(disk) = Tmpfs::mount(&dir.0, "6m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let node = Node::start_in(CONFIG, dir);
    let c = Connection::connect(&node.addr, ConnectOptions::default())
        .await
        .expect("connect");
    let s = Arc::new(
        c.open_sender(Some("orders"), SenderOptions::default())
            .await
            .expect("sender"),
    );
    // 400 × 64 KiB: four times what the disk holds; 16 sends in flight
    let mut accepted = HashSet::new();
    let mut failed = 0;
    let mut inflight = tokio::task::JoinSet::new();
    let mut settle = |r: Result<(u32, Option<DeliveryState>), _>| match r {
        Ok((id, Some(DeliveryState::Accepted))) => {
            accepted.insert(id);
        }
        Ok((_, Some(DeliveryState::Rejected(r)))) => {
            let cond = r.error.map(|e| e.condition.to_string());
            assert_eq!(cond.as_deref(), Some("amqp:internal-error"));
            failed += 1;
        }
        Ok((id, other)) => panic!("message {id}: {other:?} (None: no answer within 10 s)"),
        Err(e) => panic!("send task: {e}"),
    };
    for id in 0..400u32 {
        let s = s.clone();
        inflight.spawn(async move {
            let sent = tokio::time::timeout(Duration::from_secs(10), s.send(durable(id))).await;
            (id, sent.ok().and_then(Result::ok))
        });
        if inflight.len() >= 16 {
            settle(inflight.join_next().await.expect("a send"));
        }
    }
    while let Some(r) = inflight.join_next().await {
        settle(r);
    }
    assert!(
        accepted.len() > 10,
        "{} accepted before the disk filled",
        accepted.len()
    );
    assert!(failed > 0, "the full disk must refuse some");
    eprintln!(
        "full disk: {} accepted, {} rejected",
        accepted.len(),
        failed
    );

    // a crash, then a disk with room: every accepted message is back
    let dir = node.crash();
    disk.resize("64m");
    let node = Node::start_in(CONFIG, dir);
    let c = Connection::connect(&node.addr, ConnectOptions::default())
        .await
        .expect("connect after restart");
    let mut r = c
        .open_receiver(
            "orders",
            ReceiverOptions {
                window: 50,
                ..Default::default()
            },
        )
        .await
        .expect("receiver");
    let mut back = HashSet::new();
    while let Ok(d) = r.recv_timeout(Duration::from_secs(2)).await {
        if let Ok(Body::Data(b)) = d.message.body() {
            if let Some(id) = std::str::from_utf8(&b[..8])
                .ok()
                .and_then(|s| s.parse::<u32>().ok())
            {
                back.insert(id);
            }
        }
        r.accept(&d);
    }
    let lost: Vec<_> = accepted.difference(&back).collect();
    assert!(lost.is_empty(), "accepted and lost: {lost:?}");
    assert_eq!(node.stop(), Some(0));
    drop(disk);
}
