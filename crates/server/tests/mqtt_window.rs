//! A subscriber's in-flight window, against the binary: at most one window of QoS 1
//! deliveries is unacknowledged at a time — the client's receive maximum, or 1024 for an
//! MQTT 3.1.1 client, which announces none — and each acknowledgement lets exactly one
//! more out at once. (With everything the consumer's credit allowed in flight, 2048 for
//! 3.1.1, an acknowledgement freed a slot with nothing waiting behind it, and a client
//! that batches its acknowledgements with Nagle on stalled for a delayed ACK.)

mod common;

use common::mqtt::{publish, Client};
use common::{Node, TempDir};
use std::time::Duration;
use throng_mqtt::QoS;

const CONFIG: &str = "[[tenant]]\nname = \"default\"\nauto_create = true\n";
/// The node's cap on unacknowledged QoS 1/2 deliveries per connection.
const WINDOW: usize = 1024;

#[test]
fn a_3_1_1_subscriber_has_one_window_in_flight_and_each_ack_sends_one_more() {
    let node = Node::start_in_with(CONFIG, TempDir::create(), &["--mqtt", "127.0.0.1:0"]);
    let mut sub = Client::v311(&node, "window-sub");
    sub.subscribe(&[("w/t", QoS::AtLeastOnce)], None);
    let mut publisher = Client::v5(&node, "window-pub");
    for _ in 0..WINDOW + 600 {
        publisher.publish(publish("w/t", b"m", QoS::AtLeastOnce));
    }
    let first = sub.messages_within(Duration::from_millis(1500));
    assert_eq!(first.len(), WINDOW, "unacknowledged deliveries in flight");
    for p in &first[..10] {
        sub.ack(p);
    }
    let next = sub.messages_within(Duration::from_millis(500));
    assert_eq!(next.len(), 10, "one more per acknowledgement");
    for p in first[10..].iter().chain(&next) {
        sub.ack(p);
    }
    let rest = sub.messages_within(Duration::from_millis(1500));
    assert_eq!(rest.len(), 600 - 10, "the rest once acknowledged");
    for p in &rest {
        sub.ack(p);
    }
    sub.pump(Duration::from_millis(10));
    assert_eq!(node.stop(), Some(0));
}
