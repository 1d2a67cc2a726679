//! The adapters agree with the core, over TCP against the binary: every address type ×
//! every state an address can be in gives a producer the same answer whether it sends
//! through an AMQP link, through the AMQP anonymous relay or as an MQTT 5 QoS 1 PUBLISH
//! — each protocol's words for the one verdict `Tenant::publish` returns (the table in
//! crates/core/tests/publish.rs, docs/SEMANTICS.md "Outcomes").
//!
//! The one documented difference: a producer *link* to a direct address gets credit only
//! while a consumer can take a message, so where the relay and MQTT hear `released`
//! (no consumer), the link is never given credit to send.

mod common;

use bytes::Bytes;
use common::mqtt::Client;
use common::{connect, Node};
use std::time::Duration;
use throng_amqp::definitions::{condition, DeliveryState, Properties};
use throng_amqp::message::MessageBuilder;
use throng_client::{Receiver, ReceiverOptions, SenderOptions};
use throng_mqtt::codec::Connect;
use throng_mqtt::engine::Event;
use throng_mqtt::{ByteStr, Publish, QoS, ReasonCode, Version};

/// How long a producer waits before its answer counts as "waits" (no credit, or no
/// acknowledgement: back-pressure or a message held for a consumer).
const PATIENCE: Duration = Duration::from_millis(1000);
const BODY: usize = 200;
/// The bound of the full addresses: a few messages of `BODY` bytes fill it.
const MAX_BYTES: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Queue,
    Topic,
    Anycast,
    Multicast,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// One consumer with credit (it accepts what it gets).
    Consumer,
    NoConsumer,
    /// One consumer that granted no credit.
    NoCredit,
    /// Holds `max_bytes` already; `full_policy = "reject"`.
    FullReject,
    /// Holds `max_bytes` already; `full_policy = "block"`.
    FullBlock,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Path {
    AmqpLink,
    AmqpRelay,
    Mqtt,
}

/// What the producer heard, in no protocol's words.
#[derive(Debug, Clone, PartialEq)]
enum Heard {
    Accepted,
    Released,
    /// Refused because the address is full.
    Full,
    /// Nothing within [`PATIENCE`].
    Waits,
    /// Anything else, as the protocol said it.
    Other(String),
}

/// The verdict of the core's table, for a producer that can send.
fn expected(kind: Kind, state: State) -> Option<Heard> {
    use Kind::*;
    use State::*;
    Some(match (kind, state) {
        (Queue | Topic, Consumer | NoConsumer | NoCredit) => Heard::Accepted,
        (Queue, FullReject) => Heard::Full,
        // taken, and the producer is told to wait for room (a link's credit stops; an
        // MQTT connection stops reading) — so nobody passes the bound by more than what
        // it already had credit for
        (Queue | Topic, FullBlock) => Heard::Accepted,
        (Anycast | Multicast, Consumer) => Heard::Accepted,
        (Anycast | Multicast, NoConsumer) => Heard::Released,
        // held until the consumer grants credit
        (Anycast, NoCredit) => Heard::Waits,
        // multicast does not hold: the copy for a consumer without credit is dropped
        (Multicast, NoCredit) => Heard::Released,
        // topics block; direct addresses store nothing
        (Topic, FullReject) | (Anycast | Multicast, FullReject | FullBlock) => return None,
    })
}

/// What a producer link attached in that state hears: the same, except that it gets no
/// credit to send to a direct address nobody can take from, nor to a full address that
/// blocks.
fn expected_on_a_link(kind: Kind, state: State) -> Option<Heard> {
    match (kind, state) {
        (Kind::Anycast | Kind::Multicast, State::NoConsumer) => Some(Heard::Waits),
        (Kind::Queue | Kind::Topic, State::FullBlock) => Some(Heard::Waits),
        _ => expected(kind, state),
    }
}

fn name(path: Path, kind: Kind, state: State) -> String {
    format!("{path:?}-{kind:?}-{state:?}").to_lowercase()
}

fn config() -> String {
    let mut c = String::from("[[tenant]]\nname = \"default\"\n");
    for path in [Path::AmqpLink, Path::AmqpRelay, Path::Mqtt] {
        for kind in [Kind::Queue, Kind::Topic, Kind::Anycast, Kind::Multicast] {
            for state in STATES {
                c.push_str(&format!(
                    "[[tenant.address]]\nname = \"{}\"\ntype = \"{}\"\n",
                    name(path, kind, state),
                    format!("{kind:?}").to_lowercase()
                ));
                match state {
                    State::FullReject => c.push_str(&format!(
                        "max_bytes = {MAX_BYTES}\nfull_policy = \"reject\"\n"
                    )),
                    State::FullBlock => c.push_str(&format!(
                        "max_bytes = {MAX_BYTES}\nfull_policy = \"block\"\n"
                    )),
                    _ => {}
                }
            }
        }
    }
    c
}

const STATES: [State; 5] = [
    State::Consumer,
    State::NoConsumer,
    State::NoCredit,
    State::FullReject,
    State::FullBlock,
];

fn amqp_message(to: Option<&str>) -> Bytes {
    let mut b = MessageBuilder::new();
    if let Some(to) = to {
        b = b.properties(Properties {
            to: Some(to.to_string()),
            ..Properties::default()
        });
    }
    b.data(Bytes::from(vec![b'x'; BODY])).encode()
}

fn heard_amqp(state: DeliveryState) -> Heard {
    match state {
        DeliveryState::Accepted => Heard::Accepted,
        DeliveryState::Released => Heard::Released,
        DeliveryState::Rejected(r)
            if r.error.as_ref().map(|e| e.condition.as_str())
                == Some(condition::RESOURCE_LIMIT_EXCEEDED) =>
        {
            Heard::Full
        }
        other => Heard::Other(format!("{other:?}")),
    }
}

fn heard_mqtt(reason: ReasonCode) -> Heard {
    match reason {
        ReasonCode::Success => Heard::Accepted,
        ReasonCode::NoMatchingSubscribers => Heard::Released,
        ReasonCode::QuotaExceeded => Heard::Full,
        other => Heard::Other(format!("{other:?}")),
    }
}

/// Puts the address in `state`: a consumer (kept by the caller while the producer
/// sends), or one message in a bounded address (a topic's: in the subscription of a
/// consumer without credit).
async fn prepare(
    c: &throng_client::Connection,
    address: &str,
    kind: Kind,
    state: State,
) -> Option<Receiver> {
    let window = match state {
        State::Consumer => 10,
        _ => 0,
    };
    let full = matches!(state, State::FullReject | State::FullBlock);
    let receiver =
        if matches!(state, State::Consumer | State::NoCredit) || (full && kind == Kind::Topic) {
            let opts = ReceiverOptions {
                window,
                ..ReceiverOptions::default()
            };
            Some(c.open_receiver(address, opts).await.expect("receiver"))
        } else {
            None
        };
    if full {
        let filler = c
            .open_sender(Some(address), SenderOptions::default())
            .await
            .expect("filler");
        // messages are taken while the address holds less than its bound
        let n = MAX_BYTES.div_ceil(amqp_message(None).len());
        for i in 0..n {
            let got = tokio::time::timeout(PATIENCE * 4, filler.send(amqp_message(None)))
                .await
                .unwrap_or_else(|_| panic!("filling {address}: message {i} waits"))
                .expect("sent");
            assert_eq!(got, DeliveryState::Accepted, "filling {address}");
        }
    }
    receiver
}

/// A consumer with credit accepts whatever it gets, as long as the test runs.
fn accept_everything(r: Option<Receiver>, state: State) -> Option<tokio::task::JoinHandle<()>> {
    let mut r = r?;
    if state != State::Consumer {
        // held, without credit, for the whole case
        return Some(tokio::spawn(async move {
            tokio::time::sleep(PATIENCE * 10).await;
            drop(r);
        }));
    }
    Some(tokio::spawn(async move {
        while let Some(Ok(d)) = r.recv().await {
            r.accept(&d);
        }
    }))
}

async fn send_amqp(c: &throng_client::Connection, path: Path, address: &str) -> Heard {
    let (target, to) = match path {
        Path::AmqpLink => (Some(address), None),
        _ => (None, Some(address)),
    };
    let sender = c
        .open_sender(target, SenderOptions::default())
        .await
        .expect("sender");
    match tokio::time::timeout(PATIENCE, sender.send(amqp_message(to))).await {
        Ok(Ok(state)) => heard_amqp(state),
        Ok(Err(e)) => Heard::Other(format!("{e}")),
        Err(_) => Heard::Waits,
    }
}

/// One MQTT 5 QoS 1 PUBLISH from a fresh connection, on a blocking socket.
fn send_mqtt(addr: &str, topic: &str) -> Heard {
    let id = format!("parity-{topic}");
    let mut c = Client::connect_to(addr, Connect::new(Version::V5, id.as_str()));
    let mut p = Publish::new(ByteStr::from(topic), Bytes::from(vec![b'x'; BODY]));
    p.qos = QoS::AtLeastOnce;
    let pid = c.engine.publish(p).expect("publish");
    match c.wait_within(
        PATIENCE,
        |e| matches!(e, Event::Acked { packet_id, .. } if *packet_id == pid),
    ) {
        Some(Event::Acked { reason, .. }) => heard_mqtt(reason),
        _ => Heard::Waits,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protocol_hears_the_cores_verdict_in_its_own_words() {
    let node = Node::start_in_with(
        &config(),
        common::TempDir::create(),
        &["--mqtt", "127.0.0.1:0"],
    );
    let mqtt = node.listeners["mqtt"].clone();
    let mut mismatches = Vec::new();
    let mut cells = 0;
    for kind in [Kind::Queue, Kind::Topic, Kind::Anycast, Kind::Multicast] {
        for state in STATES {
            for path in [Path::AmqpLink, Path::AmqpRelay, Path::Mqtt] {
                let want = match path {
                    Path::AmqpLink => expected_on_a_link(kind, state),
                    _ => expected(kind, state),
                };
                let Some(want) = want else {
                    continue;
                };
                cells += 1;
                let address = name(path, kind, state);
                let c = connect(&node).await;
                let receiver = prepare(&c, &address, kind, state).await;
                let keeper = accept_everything(receiver, state);
                let got = match path {
                    Path::Mqtt => {
                        let (mqtt, address) = (mqtt.clone(), address.clone());
                        tokio::task::spawn_blocking(move || send_mqtt(&mqtt, &address))
                            .await
                            .expect("mqtt producer")
                    }
                    _ => send_amqp(&c, path, &address).await,
                };
                if got != want {
                    mismatches.push(format!(
                        "{kind:?} {state:?} {path:?}: {got:?}, expected {want:?}"
                    ));
                }
                if let Some(k) = keeper {
                    k.abort();
                }
                drop(c);
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {cells} cells differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    assert_eq!(cells, 3 * (5 + 4 + 3 + 3), "every cell ran");
    assert_eq!(node.stop(), Some(0));
}
