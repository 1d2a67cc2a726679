//! Bounded memory: a queue fed far past its memory limit with no consumer keeps the
//! node's resident memory bounded, recovers after a restart in bounded memory, and
//! drains completely, in order.
//!
//! CI sends 96 MiB; `THRONG_PAGING_MB=5120 THRONG_TEST_WATCHDOG_SECS=1200 cargo test
//! --release --test paging -- --nocapture` is the 5 GB run recorded in BENCHMARKS.md.

mod common;

use common::{Node, TempDir};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use throng_amqp::definitions::Header;
use throng_amqp::message::{Body, MessageBuilder};
use throng_client::{ConnectOptions, Connection, OutcomeCounter, ReceiverOptions, SenderOptions};

const MEMORY_LIMIT_MIB: u64 = 8;
const SIZE: usize = 16 * 1024;

fn config() -> String {
    format!(
        r#"
[[tenant]]
name = "default"
auto_create = true
[[tenant.address]]
name = "deep"
type = "queue"
memory_limit = {}
max_bytes = 68719476736
"#,
        MEMORY_LIMIT_MIB * 1024 * 1024
    )
}

/// Memory the node may use besides the queue's limit: the process itself, read and
/// write buffers, the credit windows of one producer and one consumer, allocator slack.
fn bound_kib() -> u64 {
    let slack_mib = std::env::var("THRONG_PAGING_SLACK_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(96);
    (MEMORY_LIMIT_MIB + slack_mib) * 1024
}

fn message(n: u64) -> bytes::Bytes {
    let mut body = vec![b'.'; SIZE];
    body[..8].copy_from_slice(&n.to_be_bytes());
    MessageBuilder::new()
        .header(Header {
            durable: Some(n.is_multiple_of(2)),
            ..Header::default()
        })
        .data(body)
        .encode()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deep_queue_stays_on_disk_and_drains_in_order() {
    let mib: u64 = std::env::var("THRONG_PAGING_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(96);
    let count = mib * 1024 * 1024 / SIZE as u64;
    let dir = TempDir::create();
    let node = Node::start_in(&config(), dir);

    let started = Instant::now();
    let c = Connection::connect(&node.addr, ConnectOptions::default())
        .await
        .expect("connect");
    let s = c
        .open_sender(Some("deep"), SenderOptions::default())
        .await
        .expect("sender");
    let counter = Arc::new(OutcomeCounter::default());
    for n in 0..count {
        s.send_counted(message(n), &counter);
        while n + 1 - counter.settled() > 2_000 {
            let _ =
                tokio::time::timeout(Duration::from_millis(50), counter.notify.notified()).await;
        }
    }
    while counter.settled() < count {
        let _ = tokio::time::timeout(Duration::from_millis(50), counter.notify.notified()).await;
    }
    assert_eq!(
        counter.accepted.load(Ordering::Acquire),
        count,
        "every send accepted"
    );
    let send_secs = started.elapsed().as_secs_f64();
    c.close().await.expect("close");
    let peak = node.peak_rss_kib();
    eprintln!(
        "paging: sent {count} x {SIZE} B ({mib} MiB) in {send_secs:.1} s; peak RSS {} MiB (bound {} MiB)",
        peak / 1024,
        bound_kib() / 1024
    );
    assert!(
        peak < bound_kib(),
        "RSS {peak} KiB over the bound {} KiB while filling",
        bound_kib()
    );

    // restart: durable messages (the even ones) come back, in bounded memory
    let dir = node.crash();
    let node = Node::start_in(&config(), dir);
    let peak = node.peak_rss_kib();
    eprintln!("paging: recovered; peak RSS {} MiB", peak / 1024);
    assert!(
        peak < bound_kib(),
        "RSS {peak} KiB over the bound {} KiB during recovery",
        bound_kib()
    );

    let started = Instant::now();
    let c = Connection::connect(&node.addr, ConnectOptions::default())
        .await
        .expect("connect");
    let mut r = c
        .open_receiver(
            "deep",
            ReceiverOptions {
                window: 500,
                ..Default::default()
            },
        )
        .await
        .expect("receiver");
    let mut expected = 0u64;
    while expected < count {
        let d = r
            .recv_timeout(Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("message {expected} of {count} missing: {e:?}"));
        let n = match d.message.body() {
            Ok(Body::Data(b)) if b.len() == SIZE => {
                u64::from_be_bytes(b[..8].try_into().expect("8 bytes"))
            }
            other => panic!("unexpected body {other:?}"),
        };
        assert_eq!(n, expected, "drained in order");
        r.accept(&d);
        expected += 2;
    }
    let drain_secs = started.elapsed().as_secs_f64();
    assert!(
        r.recv_timeout(Duration::from_millis(300)).await.is_err(),
        "nothing beyond the durable messages"
    );
    let peak = node.peak_rss_kib();
    eprintln!(
        "paging: drained {} messages in {drain_secs:.1} s ({:.0} msgs/s, {:.0} MiB/s); peak RSS {} MiB",
        count / 2,
        (count / 2) as f64 / drain_secs,
        (count / 2) as f64 * SIZE as f64 / drain_secs / 1048576.0,
        peak / 1024
    );
    assert!(
        peak < bound_kib(),
        "RSS {peak} KiB over the bound {} KiB while draining",
        bound_kib()
    );
    assert_eq!(node.stop(), Some(0));
}
