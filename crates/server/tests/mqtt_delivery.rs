//! MQTT deliveries end to end, against the binary: what a publish carries to its
//! subscribers (payload format indicator, every user property), one copy for
//! overlapping subscriptions (live, and for a persistent session across a crash), what an
//! earlier version stored per filter drained after an upgrade, and a subscriber's window
//! refilled ack by ack.

mod common;

use common::mqtt::{publish, Client, WAIT};
use common::{Node, TempDir};
use std::time::{Duration, Instant};
use throng_mqtt::codec::Connect;
use throng_mqtt::{ByteStr, Publish, QoS, Version};

const CONFIG: &str = "[[tenant]]\nname = \"default\"\nauto_create = true\n";

fn start() -> Node {
    start_in(TempDir::create())
}

fn start_in(dir: TempDir) -> Node {
    Node::start_in_with(CONFIG, dir, &["--mqtt", "127.0.0.1:0"])
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
