//! MQTT deliveries end to end, against the binary: what a publish carries to its
//! subscribers (payload format indicator, every user property), one copy for
//! overlapping subscriptions (live, and for a persistent session across a crash), what an
//! earlier version stored per filter drained after an upgrade, and a subscriber's window
//! refilled ack by ack.

mod common;

use bytes::Bytes;
use common::{Node, TempDir};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use throng_mqtt::codec::{Connect, Subscribe, SubscriptionOptions, Unsubscribe};
use throng_mqtt::engine::{Config, Connection, Event};
use throng_mqtt::{ByteStr, Properties, Publish, QoS, ReasonCode, Version};

const CONFIG: &str = "[[tenant]]\nname = \"default\"\nauto_create = true\n";
const WAIT: Duration = Duration::from_secs(5);

fn start() -> Node {
    start_in(TempDir::create())
}

fn start_in(dir: TempDir) -> Node {
    Node::start_in_with(CONFIG, dir, &["--mqtt", "127.0.0.1:0"])
}

/// A blocking MQTT client on the engine; QoS 1/2 deliveries are acknowledged only when
/// the test says so.
struct Client {
    sock: TcpStream,
    engine: Connection,
    events: VecDeque<Event>,
}

impl Client {
    fn connect(node: &Node, connect: Connect) -> Client {
        let sock = TcpStream::connect(&node.listeners["mqtt"]).expect("connect");
        sock.set_nodelay(true).expect("nodelay");
        let mut c = Client {
            sock,
            engine: Connection::client(Config::client(), connect, Instant::now()),
            events: VecDeque::new(),
        };
        match c.wait_for(|e| matches!(e, Event::ConnAck(_))) {
            Some(Event::ConnAck(a)) => assert_eq!(a.reason, ReasonCode::Success),
            other => panic!("no CONNACK: {other:?}"),
        }
        c
    }

    fn v5(node: &Node, id: &str) -> Client {
        Self::connect(node, Connect::new(Version::V5, id))
    }

    /// Writes the engine's output, then reads for at most `wait`, queueing events.
    fn pump(&mut self, wait: Duration) {
        let out = self.engine.output().split();
        self.sock.write_all(&out).expect("write");
        let mut buf = [0u8; 65536];
        self.sock
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
            .expect("timeout");
        if let Ok(n) = self.sock.read(&mut buf) {
            if n > 0 {
                self.engine.handle_input(&buf[..n], Instant::now());
            }
        }
        while let Some(e) = self.engine.poll_event() {
            self.events.push_back(e);
        }
    }

    fn wait_for(&mut self, want: impl Fn(&Event) -> bool) -> Option<Event> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(i) = self.events.iter().position(&want) {
                return self.events.remove(i);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            self.pump((deadline - now).min(Duration::from_millis(50)));
        }
    }

    fn subscribe(&mut self, filters: &[(&str, QoS)], id: Option<u32>) {
        let mut properties = Properties::default();
        if let Some(i) = id {
            properties.subscription_identifiers = vec![i];
        }
        let filters = filters
            .iter()
            .map(|(f, q)| (ByteStr::from(*f), SubscriptionOptions::qos(*q)))
            .collect();
        let pid = self
            .engine
            .subscribe(Subscribe {
                packet_id: 0,
                properties,
                filters,
            })
            .expect("subscribe");
        let ack = self.wait_for(|e| matches!(e, Event::SubAck(s) if s.packet_id == pid));
        assert!(ack.is_some(), "no SUBACK");
    }

    fn unsubscribe(&mut self, filter: &str) {
        let pid = self
            .engine
            .unsubscribe(Unsubscribe {
                packet_id: 0,
                properties: Properties::default(),
                filters: vec![ByteStr::from(filter)],
            })
            .expect("unsubscribe");
        let ack = self.wait_for(|e| matches!(e, Event::UnsubAck(u) if u.packet_id == pid));
        assert!(ack.is_some(), "no UNSUBACK");
    }

    /// Publishes and, for QoS 1/2, waits for the acknowledgement.
    fn publish(&mut self, p: Publish) {
        let qos = p.qos;
        let pid = self.engine.publish(p).expect("publish");
        if qos != QoS::AtMostOnce {
            let ack =
                self.wait_for(|e| matches!(e, Event::Acked { packet_id, .. } if *packet_id == pid));
            assert!(ack.is_some(), "publish not acknowledged");
        } else {
            self.pump(Duration::from_millis(1));
        }
    }

    fn message(&mut self) -> Option<Publish> {
        match self.wait_for(|e| matches!(e, Event::Publish(_))) {
            Some(Event::Publish(p)) => Some(p),
            _ => None,
        }
    }

    /// Every delivery arriving within `wait`.
    fn messages_within(&mut self, wait: Duration) -> Vec<Publish> {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            self.pump(Duration::from_millis(20));
        }
        let mut got = Vec::new();
        self.events.retain(|e| match e {
            Event::Publish(p) => {
                got.push(p.clone());
                false
            }
            _ => true,
        });
        got
    }

    fn ack(&mut self, p: &Publish) {
        self.engine
            .ack_publish(p.packet_id, ReasonCode::Success)
            .expect("ack");
    }
}

fn publish(topic: &str, payload: &'static [u8], qos: QoS) -> Publish {
    let mut p = Publish::new(ByteStr::from(topic), Bytes::from_static(payload));
    p.qos = qos;
    p
}

/// A publish with a payload format indicator and a repeated user property key.
fn with_properties(topic: &str) -> Publish {
    let mut p = publish(topic, b"{}", QoS::AtLeastOnce);
    p.properties.payload_format_indicator = Some(1);
    p.properties.content_type = Some(ByteStr::from("application/json"));
    p.properties.user_properties = vec![
        (ByteStr::from("k"), ByteStr::from("x")),
        (ByteStr::from("j"), ByteStr::from("1")),
        (ByteStr::from("k"), ByteStr::from("y")),
    ];
    p
}

fn assert_properties_kept(got: &Publish, sent: &Publish) {
    assert_eq!(
        got.properties.payload_format_indicator,
        Some(1),
        "payload format indicator forwarded (MQTT-3.3.2-4)"
    );
    assert_eq!(
        got.properties.user_properties, sent.properties.user_properties,
        "every user property, in order (MQTT-3.3.2-18)"
    );
}

#[test]
fn payload_format_and_every_user_property_reach_v5_subscribers() {
    let node = start();
    let mut sub = Client::v5(&node, "sub");
    sub.subscribe(&[("props/#", QoS::AtLeastOnce)], None);
    let mut publisher = Client::v5(&node, "pub");
    let sent = with_properties("props/a");
    publisher.publish(sent.clone());
    let got = sub.message().expect("delivery");
    assert_properties_kept(&got, &sent);
    assert_eq!(
        got.properties.content_type.as_deref(),
        Some("application/json")
    );
}

#[test]
fn payload_format_and_user_properties_survive_a_restart_in_the_journal() {
    let node = start();
    let mut connect = Connect::new(Version::V5, "away");
    connect.clean_start = false;
    connect.properties.session_expiry_interval = Some(600);
    let mut sub = Client::connect(&node, connect.clone());
    sub.subscribe(&[("kept/#", QoS::AtLeastOnce)], None);
    drop(sub);
    let mut publisher = Client::v5(&node, "pub");
    let sent = with_properties("kept/a");
    publisher.publish(sent.clone());
    drop(publisher);
    let node = start_in(node.crash());
    let mut back = Client::connect(&node, connect);
    let got = back.message().expect("the journaled delivery");
    assert_properties_kept(&got, &sent);
}

#[test]
fn each_acknowledgement_lets_the_next_delivery_out_at_once() {
    let node = start();
    let mut connect = Connect::new(Version::V5, "slow");
    connect.properties.receive_maximum = Some(4);
    let mut sub = Client::connect(&node, connect);
    sub.subscribe(&[("window/a", QoS::AtLeastOnce)], None);
    let mut publisher = Client::v5(&node, "pub");
    for _ in 0..12 {
        publisher.publish(publish("window/a", b"m", QoS::AtLeastOnce));
    }
    let first = sub.messages_within(Duration::from_millis(300));
    assert_eq!(first.len(), 4, "the client's receive maximum");
    // one slot freed: the next message comes without waiting for more acks
    sub.ack(&first[0]);
    let next = sub.messages_within(Duration::from_millis(300));
    assert_eq!(next.len(), 1, "one PUBACK, one more PUBLISH");
    let mut got = first.len() + next.len();
    let mut unacked: Vec<Publish> = first[1..].iter().chain(&next).cloned().collect();
    let deadline = Instant::now() + WAIT;
    while got < 12 && Instant::now() < deadline {
        for p in unacked.drain(..) {
            sub.ack(&p);
        }
        unacked = sub.messages_within(Duration::from_millis(50));
        got += unacked.len();
    }
    assert_eq!(got, 12);
}

/// The one delivery arriving within a short wait (a second copy fails the test), acked.
fn only_copy(sub: &mut Client) -> Publish {
    let got = sub.messages_within(Duration::from_millis(400));
    assert_eq!(got.len(), 1, "one copy: {got:?}");
    let p = got[0].clone();
    if p.qos != QoS::AtMostOnce {
        sub.ack(&p);
    }
    p
}

#[test]
fn overlapping_subscriptions_get_one_copy_with_every_identifier() {
    let node = start();
    let mut sub = Client::v5(&node, "overlap");
    sub.subscribe(&[("ov/#", QoS::AtMostOnce)], Some(1));
    sub.subscribe(&[("ov/x", QoS::AtLeastOnce)], Some(2));
    let mut publisher = Client::v5(&node, "pub");
    publisher.publish(publish("ov/x", b"both", QoS::AtLeastOnce));
    let got = only_copy(&mut sub);
    assert_eq!(got.payload.as_ref(), b"both");
    assert_eq!(got.qos, QoS::AtLeastOnce, "the highest QoS of the matches");
    assert_eq!(
        got.properties.subscription_identifiers,
        vec![1, 2],
        "every matching subscription's identifier, ascending"
    );
    publisher.publish(publish("ov/y", b"wild", QoS::AtLeastOnce));
    let got = only_copy(&mut sub);
    assert_eq!(got.payload.as_ref(), b"wild");
    assert_eq!(got.properties.subscription_identifiers, vec![1]);
    assert_eq!(got.qos, QoS::AtMostOnce);
    // the source stays for the filter still subscribed, back at its QoS
    sub.unsubscribe("ov/x");
    publisher.publish(publish("ov/x", b"left", QoS::AtLeastOnce));
    let got = only_copy(&mut sub);
    assert_eq!(got.payload.as_ref(), b"left");
    assert_eq!(got.properties.subscription_identifiers, vec![1]);
    assert_eq!(
        got.qos,
        QoS::AtMostOnce,
        "only the QoS 0 subscription is left"
    );
    sub.unsubscribe("ov/#");
    publisher.publish(publish("ov/x", b"gone", QoS::AtLeastOnce));
    assert!(sub.messages_within(Duration::from_millis(300)).is_empty());
}

#[test]
fn a_persistent_session_keeps_one_copy_for_overlapping_subscriptions_across_a_crash() {
    let node = start();
    let mut connect = Connect::new(Version::V5, "overlap-away");
    connect.clean_start = false;
    connect.properties.session_expiry_interval = Some(600);
    let mut sub = Client::connect(&node, connect.clone());
    sub.subscribe(&[("away/#", QoS::AtLeastOnce)], Some(7));
    sub.subscribe(&[("away/x", QoS::AtLeastOnce)], Some(3));
    drop(sub);
    let mut publisher = Client::v5(&node, "pub");
    publisher.publish(publish("away/x", b"while away", QoS::AtLeastOnce));
    drop(publisher);
    let node = start_in(node.crash());
    let mut back = Client::connect(&node, connect);
    let got = only_copy(&mut back);
    assert_eq!(got.payload.as_ref(), b"while away");
    assert_eq!(got.properties.subscription_identifiers, vec![3, 7]);
    // and after the restart, live
    let mut publisher = Client::v5(&node, "pub");
    publisher.publish(publish("away/x", b"after", QoS::AtLeastOnce));
    let got = only_copy(&mut back);
    assert_eq!(got.payload.as_ref(), b"after");
    assert_eq!(got.properties.subscription_identifiers, vec![3, 7]);
}

/// Makes what an earlier version left for persistent session `client`: its durable
/// subscription for `filter` on `topic`, named `$mqtt|CLIENT|FILTER|TOPIC` (an AMQP
/// durable subscription of container `$mqtt` with link name `CLIENT|FILTER|TOPIC` gets
/// that name), holding the durable messages `bodies`.
fn leave_legacy_subscription(
    node: &Node,
    client: &str,
    filter: &str,
    topic: &str,
    bodies: &[&str],
) {
    use throng_amqp::codec::Symbol;
    use throng_amqp::definitions::DeliveryState;
    use throng_client::{ConnectOptions, Connection, ReceiverOptions, SenderOptions};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let options = ConnectOptions {
            container_id: "$mqtt".into(),
            ..ConnectOptions::default()
        };
        let c = Connection::connect(&node.addr, options)
            .await
            .expect("amqp");
        let r = c
            .open_receiver(
                topic,
                ReceiverOptions {
                    durable: true,
                    link_name: Some(format!("{client}|{filter}|{topic}")),
                    capabilities: vec![Symbol::new("topic")],
                    ..Default::default()
                },
            )
            .await
            .expect("durable subscription");
        r.detach().await.expect("detach"); // away, not unsubscribed
        let s = c
            .open_sender(
                Some(topic),
                SenderOptions {
                    capabilities: vec![Symbol::new("topic")],
                    ..Default::default()
                },
            )
            .await
            .expect("sender");
        for b in bodies {
            let sent = s.send(common::durable_message(b.to_string())).await;
            assert_eq!(sent.expect("send"), DeliveryState::Accepted);
        }
        c.close().await.expect("close");
    });
}

#[test]
fn what_an_earlier_version_stored_per_filter_is_drained_after_an_upgrade() {
    let node = start();
    leave_legacy_subscription(&node, "upgraded", "up/#", "up/x", &["stored before"]);
    let mut connect = Connect::new(Version::V5, "upgraded");
    connect.clean_start = false;
    connect.properties.session_expiry_interval = Some(600);
    let mut sub = Client::connect(&node, connect.clone());
    sub.subscribe(&[("up/#", QoS::AtLeastOnce)], Some(5));
    drop(sub);
    let node = start_in(node.crash());
    let mut back = Client::connect(&node, connect.clone());
    let got = only_copy(&mut back);
    assert_eq!(
        got.payload.as_ref(),
        b"stored before",
        "not lost in the upgrade"
    );
    assert_eq!(got.properties.subscription_identifiers, vec![5]);
    // the old subscription no longer collects: a new message comes once
    let mut publisher = Client::v5(&node, "pub");
    publisher.publish(publish("up/x", b"new", QoS::AtLeastOnce));
    let got = only_copy(&mut back);
    assert_eq!(got.payload.as_ref(), b"new");
    // drained, it was deleted: nothing comes back after another restart
    assert!(back.messages_within(Duration::from_millis(300)).is_empty());
    drop(back);
    drop(publisher);
    let node = start_in(node.crash());
    let mut again = Client::connect(&node, connect);
    assert!(again.messages_within(Duration::from_millis(500)).is_empty());
}
