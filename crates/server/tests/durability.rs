//! Crash safety: every durable message whose send was settled `accepted` survives
//! `kill -9` of the node, over several crashes at arbitrary moments.
//!
//! The default run (3 crash rounds, 3 producers, about 5 s) is the CI check. The same test
//! is the long run: `THRONG_CRASH_ROUNDS` and `THRONG_CRASH_PRODUCERS` raise the number of
//! crashes and of producer connections (see `scripts/crash_harness.sh`). The test ends by
//! writing one summary line to stderr:
//! `crash test: N accepted over R crashes, M received after restart, D duplicates, L lost`.

mod common;

use bytes::Bytes;
use common::{durable_message as durable, Node, TempDir};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use throng_amqp::definitions::DeliveryState;
use throng_amqp::message::Body;
use throng_client::{ConnectOptions, Connection, ReceiverOptions, SenderOptions};

const CONFIG: &str =
    "[[tenant]]\nname = \"default\"\n[[tenant.address]]\nname = \"orders\"\ntype = \"queue\"\n";

/// A positive count from the environment variable `name`, or `default` when it is unset.
fn env_count(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => panic!("{name}={v:?}: expected a positive integer"),
        },
        Err(_) => default,
    }
}

/// A tiny deterministic-per-run random source (no extra dependency).
fn jitter(seed: &mut u64, max_ms: u64) -> Duration {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    Duration::from_millis(*seed % max_ms)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_durable_messages_survive_kill_9() {
    let rounds = env_count("THRONG_CRASH_ROUNDS", 3);
    let producers = env_count("THRONG_CRASH_PRODUCERS", 3);
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let mut dir = TempDir::create();
    let mut accepted_all: Vec<String> = Vec::new();
    for round in 0..rounds {
        let node = Node::start_in(CONFIG, dir);
        let accepted: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for p in 0..producers {
            let addr = node.addr.clone();
            let accepted = accepted.clone();
            tasks.push(tokio::spawn(async move {
                let Ok(c) = Connection::connect(&addr, ConnectOptions::default()).await else {
                    return;
                };
                let Ok(s) = c
                    .open_sender(Some("orders"), SenderOptions::default())
                    .await
                else {
                    return;
                };
                let s = Arc::new(s);
                let mut inflight = tokio::task::JoinSet::new();
                for n in 0..100_000 {
                    let id = format!("r{round}-p{p}-{n}");
                    let s = s.clone();
                    let accepted = accepted.clone();
                    inflight.spawn(async move {
                        if let Ok(DeliveryState::Accepted) = s.send(durable(id.clone())).await {
                            accepted.lock().unwrap().push(id);
                            true
                        } else {
                            false
                        }
                    });
                    if inflight.len() >= 20 {
                        match inflight.join_next().await {
                            Some(Ok(true)) => {}
                            _ => return,
                        }
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(300) + jitter(&mut seed, 700)).await;
        dir = node.crash();
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
        let got = accepted.lock().unwrap().clone();
        assert!(
            !got.is_empty(),
            "round {round}: no send was accepted before the crash"
        );
        accepted_all.extend(got);
    }

    // restart and drain
    let node = Node::start_in(CONFIG, dir);
    let c = Connection::connect(&node.addr, ConnectOptions::default())
        .await
        .unwrap();
    let mut r = c
        .open_receiver(
            "orders",
            ReceiverOptions {
                window: 500,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut seen: HashMap<String, u32> = HashMap::new();
    while let Ok(d) = r.recv_timeout(Duration::from_secs(2)).await {
        if let Ok(Body::Data(b)) = d.message.body() {
            *seen
                .entry(String::from_utf8_lossy(&b).into_owned())
                .or_default() += 1;
        }
        r.accept(&d);
    }
    let lost: Vec<&String> = accepted_all
        .iter()
        .filter(|id| !seen.contains_key(*id))
        .collect();
    let duplicates: u32 = seen.values().map(|n| n - 1).sum();
    eprintln!(
        "crash test: {} accepted over {} crashes, {} received after restart, {} duplicates, {} lost",
        accepted_all.len(),
        rounds,
        seen.len(),
        duplicates,
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "accepted messages lost: {:?}",
        &lost[..lost.len().min(10)]
    );
    assert_eq!(node.stop(), Some(0));
}

/// Opens the durable subscription `sub1` of container `app1` on topic `news`.
async fn subscriber(node: &Node) -> (Connection, throng_client::Receiver) {
    let c = Connection::connect(
        &node.addr,
        ConnectOptions {
            container_id: "app1".into(),
            ..ConnectOptions::default()
        },
    )
    .await
    .unwrap();
    let r = c
        .open_receiver(
            "news",
            ReceiverOptions {
                durable: true,
                link_name: Some("sub1".into()),
                capabilities: vec![throng_amqp::codec::Symbol::new("topic")],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    (c, r)
}

async fn publish(node: &Node, bodies: &[&str]) {
    let c = Connection::connect(&node.addr, ConnectOptions::default())
        .await
        .unwrap();
    let topic = vec![throng_amqp::codec::Symbol::new("topic")];
    let s = c
        .open_sender(
            Some("news"),
            SenderOptions {
                capabilities: topic,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    for b in bodies {
        assert_eq!(
            s.send(durable(b.to_string())).await.unwrap(),
            DeliveryState::Accepted
        );
    }
    c.close().await.unwrap();
}

#[tokio::test]
async fn a_durable_subscription_collects_while_away_and_survives_restarts() {
    let node = Node::start_in("[[tenant]]\nname = \"default\"\n", TempDir::create());
    let (c, r) = subscriber(&node).await;
    r.detach().await.unwrap(); // away, not unsubscribed
    c.close().await.unwrap();
    publish(&node, &["while-away-1", "while-away-2"]).await;

    // crash and restart: the subscription and its messages are still there
    let node = Node::start_in("[[tenant]]\nname = \"default\"\n", node.crash());
    publish(&node, &["after-restart"]).await;
    let (c, mut r) = subscriber(&node).await;
    for want in ["while-away-1", "while-away-2", "after-restart"] {
        let d = r.recv_timeout(Duration::from_secs(5)).await.unwrap();
        assert_eq!(d.message.body().unwrap(), Body::Data(Bytes::from(want)));
        r.accept(&d);
    }
    // closing the link ends the subscription
    r.close().await.unwrap();
    c.close().await.unwrap();
    publish(&node, &["after-unsubscribe"]).await;
    let (_c, mut r) = subscriber(&node).await;
    assert!(
        r.recv_timeout(Duration::from_millis(300)).await.is_err(),
        "a new subscription starts empty"
    );
}

/// The metadata store is gone (deleted here; a failed write loses a record the same
/// way): the journal still holds the subscription's messages, so the node recreates the
/// subscription and the subscriber gets them.
#[tokio::test]
async fn durable_subscription_messages_outlive_a_lost_metadata_store() {
    let config = "[[tenant]]\nname = \"default\"\n";
    let node = Node::start_in(config, TempDir::create());
    let (c, r) = subscriber(&node).await;
    r.detach().await.unwrap();
    c.close().await.unwrap();
    publish(&node, &["kept-1", "kept-2"]).await;
    let dir = node.crash();
    std::fs::remove_file(dir.0.join("data").join("metadata.redb")).expect("metadata store");
    let node = Node::start_in(config, dir);
    let (_c, mut r) = subscriber(&node).await;
    for want in ["kept-1", "kept-2"] {
        let d = r.recv_timeout(Duration::from_secs(5)).await.unwrap();
        assert_eq!(d.message.body().unwrap(), Body::Data(Bytes::from(want)));
        r.accept(&d);
    }
}

#[tokio::test]
async fn corruption_in_the_middle_refuses_to_start_unless_told_to_skip() {
    let node = Node::start_in(CONFIG, TempDir::create());
    let c = Connection::connect(&node.addr, ConnectOptions::default())
        .await
        .unwrap();
    let s = c
        .open_sender(Some("orders"), SenderOptions::default())
        .await
        .unwrap();
    for i in 0..100 {
        s.send(durable(format!("m{i:03}"))).await.unwrap();
    }
    c.close().await.unwrap();
    let dir = node.crash();
    // flip a byte inside the 10th message's body: its CRC fails, valid records follow
    let journal = dir.0.join("data").join("journal");
    let segment = std::fs::read_dir(&journal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "log"))
        .unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    let at = bytes
        .windows(4)
        .position(|w| w == b"m009")
        .expect("message bytes in the journal");
    bytes[at + 1] ^= 0xff;
    std::fs::write(&segment, &bytes).unwrap();

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_throng"))
        .args(["serve", "--amqp", "127.0.0.1:0", "--data-dir"])
        .arg(dir.0.join("data"))
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a corrupt journal must stop the node"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("journal"),
        "the refusal names the journal: {stderr}"
    );

    // told to skip: it starts and serves the 99 intact messages
    let node = Node::start_in_with(CONFIG, dir, &["--skip-corrupt-journal"]);
    let c = Connection::connect(&node.addr, ConnectOptions::default())
        .await
        .unwrap();
    let mut r = c
        .open_receiver("orders", ReceiverOptions::default())
        .await
        .unwrap();
    let mut got = 0;
    while let Ok(d) = r.recv_timeout(Duration::from_secs(2)).await {
        assert_ne!(
            d.message.body().unwrap(),
            Body::Data(Bytes::from_static(b"m009"))
        );
        r.accept(&d);
        got += 1;
    }
    assert_eq!(got, 99);
}

#[tokio::test]
async fn addresses_created_on_first_use_outlive_a_restart() {
    let node = Node::start_in("[[tenant]]\nname = \"default\"\n", TempDir::create());
    let c = Connection::connect(&node.addr, ConnectOptions::default())
        .await
        .unwrap();
    let topic = vec![throng_amqp::codec::Symbol::new("topic")];
    c.open_sender(
        Some("alerts"),
        SenderOptions {
            capabilities: topic,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    c.close().await.unwrap();
    let node = Node::start_in("[[tenant]]\nname = \"default\"\n", node.crash());

    // no capability now: were `alerts` forgotten, these would auto-create a queue
    let c = Connection::connect(&node.addr, ConnectOptions::default())
        .await
        .unwrap();
    let mut a = c
        .open_receiver("alerts", ReceiverOptions::default())
        .await
        .unwrap();
    let mut b = c
        .open_receiver("alerts", ReceiverOptions::default())
        .await
        .unwrap();
    let s = c
        .open_sender(Some("alerts"), SenderOptions::default())
        .await
        .unwrap();
    s.send(durable("fire")).await.unwrap();
    for r in [&mut a, &mut b] {
        let d = r.recv_timeout(Duration::from_secs(5)).await.unwrap();
        assert_eq!(
            d.message.body().unwrap(),
            Body::Data(Bytes::from_static(b"fire")),
            "still a topic"
        );
    }
}
