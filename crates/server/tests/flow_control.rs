//! Flow control and isolation: full queues stop producers, and a client that stops
//! reading stalls nobody else.

mod common;

use bytes::Bytes;
use common::Node;
use std::io::{Read, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use throng_amqp::definitions::{DeliveryState, Role, Source, Target, TargetTerminus};
use throng_amqp::engine::{self, ConnectionConfig, Event, LinkSpec};
use throng_amqp::message::MessageBuilder;
use throng_client::{ConnectOptions, Connection, OutcomeCounter, ReceiverOptions, SenderOptions};

const T: Duration = Duration::from_secs(10);

fn msg(size: usize) -> Bytes {
    MessageBuilder::new()
        .data(Bytes::from(vec![7u8; size]))
        .encode()
}

/// The settled count once it has not moved for half a second (at most 10 s), so a slow
/// machine still sees everything that was in flight.
async fn settled_when_stable(counter: &OutcomeCounter) -> u64 {
    let start = Instant::now();
    let mut last = counter.settled();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = counter.settled();
        if now == last || start.elapsed() > T {
            return now;
        }
        last = now;
    }
}

async fn settled_after(counter: &OutcomeCounter, wait: Duration) -> u64 {
    tokio::time::sleep(wait).await;
    counter.settled()
}

#[tokio::test]
async fn a_full_queue_withholds_credit_until_consumers_make_room() {
    let node = Node::start("[[tenant]]\nname = \"default\"\n[[tenant.address]]\nname = \"small\"\ntype = \"queue\"\nmax_bytes = 20000\n");
    let c = Connection::connect(&node.addr, ConnectOptions::default())
        .await
        .unwrap();
    let s = c
        .open_sender(Some("small"), SenderOptions::default())
        .await
        .unwrap();
    let counter = Arc::new(OutcomeCounter::default());
    for _ in 0..3000 {
        s.send_counted(msg(1000), &counter);
    }
    // the queue takes 20 KB, plus what the producer had in flight on its credit window
    let first = settled_when_stable(&counter).await;
    assert!(
        (19..=1025).contains(&first),
        "the producer must wait for room: {first} settled"
    );
    let later = settled_after(&counter, Duration::from_millis(500)).await;
    assert_eq!(first, later, "no credit while the queue is full");

    let mut r = c
        .open_receiver("small", ReceiverOptions::default())
        .await
        .unwrap();
    for _ in 0..3000 {
        let d = r.recv_timeout(T).await.unwrap();
        r.accept(&d);
    }
    let start = Instant::now();
    while counter.settled() < 3000 && start.elapsed() < T {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(counter.accepted.load(Ordering::Relaxed), 3000);
}

/// Attaches a receiver with a large credit over a raw socket, then never reads again.
fn stuck_consumer(addr: &str, address: &str) -> std::net::TcpStream {
    let mut sock = std::net::TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut eng = engine::Connection::new(ConnectionConfig::client("stuck"), Instant::now());
    let session = eng.begin_session().unwrap();
    let link = eng
        .attach(
            session,
            LinkSpec {
                name: "stuck".into(),
                role: Role::Receiver,
                source: Some(Source {
                    address: Some(address.into()),
                    ..Source::default()
                }),
                target: Some(TargetTerminus::Target(Target::default())),
                ..LinkSpec::default()
            },
        )
        .unwrap();
    let deadline = Instant::now() + T;
    let mut buf = [0u8; 4096];
    loop {
        let out = eng.output().split();
        sock.write_all(&out).unwrap();
        let mut attached = false;
        while let Some(e) = eng.poll_event() {
            attached |= matches!(e, Event::Attached { .. });
        }
        if attached {
            eng.flow(link, 1_000_000, false).unwrap();
            let out = eng.output().split();
            sock.write_all(&out).unwrap();
            return sock;
        }
        assert!(Instant::now() < deadline, "stuck consumer never attached");
        if let Ok(n) = sock.read(&mut buf) {
            eng.handle_input(&buf[..n], Instant::now());
        }
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_stalls_only_itself() {
    let node = Node::start("[[tenant]]\nname = \"default\"\n");
    let addr = node.addr.clone();
    let _stuck = tokio::task::spawn_blocking(move || stuck_consumer(&addr, "big"))
        .await
        .unwrap();

    // 30 MB for the stuck consumer: far more than the socket buffers hold
    let c = Connection::connect(&node.addr, ConnectOptions::default())
        .await
        .unwrap();
    let s = c
        .open_sender(Some("big"), SenderOptions::default())
        .await
        .unwrap();
    let counter = Arc::new(OutcomeCounter::default());
    for _ in 0..3000 {
        s.send_counted(msg(10_000), &counter);
    }
    let start = Instant::now();
    while counter.settled() < 3000 && start.elapsed() < T {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        counter.accepted.load(Ordering::Relaxed),
        3000,
        "the queue keeps taking messages"
    );

    // everybody else is served promptly
    let other = Connection::connect(&node.addr, ConnectOptions::default())
        .await
        .unwrap();
    let mut r = other
        .open_receiver("other", ReceiverOptions::default())
        .await
        .unwrap();
    let s2 = other
        .open_sender(Some("other"), SenderOptions::default())
        .await
        .unwrap();
    let start = Instant::now();
    for i in 0..100 {
        s2.send(msg(100 + i)).await.unwrap();
        let d = r.recv_timeout(Duration::from_secs(2)).await.unwrap();
        r.accept(&d);
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "other clients were stalled: {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_full_queue_with_the_reject_policy_rejects_new_messages() {
    let node = Node::start(
        "[[tenant]]\nname = \"default\"\n[[tenant.address]]\nname = \"strict\"\ntype = \"queue\"\nmax_bytes = 5000\nfull_policy = \"reject\"\n",
    );
    let c = Connection::connect(&node.addr, ConnectOptions::default())
        .await
        .unwrap();
    let s = c
        .open_sender(Some("strict"), SenderOptions::default())
        .await
        .unwrap();
    let mut accepted = 0;
    let mut refused = None;
    for _ in 0..20 {
        match s.send(msg(1000)).await.unwrap() {
            DeliveryState::Accepted => accepted += 1,
            other => {
                refused = Some(other);
                break;
            }
        }
    }
    assert!((5..=6).contains(&accepted), "about 5 KB fit: {accepted}");
    match refused {
        Some(DeliveryState::Rejected(r)) => {
            assert_eq!(
                r.error.unwrap().condition.as_str(),
                "amqp:resource-limit-exceeded"
            )
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    // the producer keeps its credit: once room is made, sends are accepted again
    let mut r = c
        .open_receiver("strict", ReceiverOptions::default())
        .await
        .unwrap();
    for _ in 0..accepted {
        let d = r.recv_timeout(T).await.unwrap();
        r.accept(&d);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(s.send(msg(1000)).await.unwrap(), DeliveryState::Accepted);
}
