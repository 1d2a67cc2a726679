//! The `modified` outcome on a queue (issue 11, part 3 §3.4.5): `undeliverable-here`
//! keeps the message from the consumer that said so, in order and in selector dispatch,
//! and its `message-annotations` are merged into the message for its next delivery.

use std::sync::Arc;
use throng_amqp::codec::{Fields, Symbol, Value};
use throng_amqp::message::{Body, Message, MessageBuilder};
use throng_core::queue::Queue;
use throng_core::{
    Address, AddressKind, Command, ConsumerKey, Handle, Outbox, Outcome, Reply, Target, Tenant,
    Verdict,
};
use throng_selector::Selector;

/// A tenant with one queue.
fn queue() -> (Tenant, Address, Arc<Queue>) {
    let tenant = Tenant::new("t", false, vec![]);
    let address = tenant.create("q", AddressKind::Queue);
    let Address::Queue(q) = &address else {
        unreachable!()
    };
    let q = q.clone();
    (tenant, address, q)
}

/// Stores `msg` in the queue through the tenant's entry point.
fn publish(tenant: &Tenant, address: &Address, msg: Message) {
    let p = tenant.publish(msg, Target::Address(address), None, Reply::None, None);
    assert_eq!(p.verdict, Some(Verdict::Accepted));
}

fn message(body: &str) -> Message {
    Message::parse(MessageBuilder::new().data(body.to_string()).encode()).expect("parse")
}

fn text(msg: &Message) -> String {
    match msg.body() {
        Ok(Body::Data(b)) => String::from_utf8_lossy(&b).into_owned(),
        other => panic!("expected data, got {other:?}"),
    }
}

/// The deliveries in `outbox`: token and message.
fn deliveries(outbox: &Outbox) -> Vec<(u64, Message)> {
    let mut cmds = Vec::new();
    outbox.drain_into(&mut cmds);
    cmds.into_iter()
        .filter_map(|c| match c {
            Command::Deliver { token, msg, .. } => Some((token, msg)),
            _ => None,
        })
        .collect()
}

fn drained(outbox: &Outbox) -> bool {
    let mut cmds = Vec::new();
    outbox.drain_into(&mut cmds);
    cmds.iter().any(|c| matches!(c, Command::Drained { .. }))
}

fn undeliverable_here() -> Outcome {
    Outcome::Modified {
        failed: false,
        undeliverable_here: true,
        annotations: None,
    }
}

struct Consumer {
    key: ConsumerKey,
    outbox: Arc<Outbox>,
    /// Deliveries taken so far (the adapter's count the credit limit is kept in).
    taken: u32,
}

impl Consumer {
    fn new(q: &Queue, link: u32, selector: Option<&str>) -> Consumer {
        let outbox = Arc::new(Outbox::new());
        let selector = selector.map(|s| Selector::parse(s).expect("selector"));
        let key = q.add_consumer_selecting(outbox.clone(), Handle(link), false, selector);
        Consumer {
            key,
            outbox,
            taken: 0,
        }
    }

    fn credit(&self, q: &Queue, credit: u32) {
        q.flow(self.key, self.taken + credit, false);
    }

    fn take(&mut self) -> Vec<(u64, Message)> {
        let got = deliveries(&self.outbox);
        self.taken += got.len() as u32;
        got
    }
}

/// A refuses the message; with the old code it went straight back to A. It waits for B,
/// and stays away from A through B's release and later rounds.
fn refused_message_goes_to_the_other_consumer(selector: Option<&str>) {
    let (tenant, address, q) = queue();
    let mut a = Consumer::new(&q, 1, selector);
    let mut b = Consumer::new(&q, 2, selector);
    a.credit(&q, 10);
    publish(&tenant, &address, message("m"));
    let got = a.take();
    assert_eq!(got.len(), 1);
    q.settle(a.key, got[0].0, undeliverable_here());
    assert!(
        a.take().is_empty(),
        "redelivered to the link that refused it"
    );
    assert_eq!(q.depth(), 1, "it waits in the queue");
    // messages behind it still go to A
    publish(&tenant, &address, message("n"));
    let got = a.take();
    assert_eq!(got.iter().map(|(_, m)| text(m)).collect::<Vec<_>>(), ["n"]);
    q.settle(a.key, got[0].0, Outcome::Accepted);
    // B can take it
    b.credit(&q, 10);
    let got = b.take();
    assert_eq!(got.iter().map(|(_, m)| text(m)).collect::<Vec<_>>(), ["m"]);
    // B releases it: it still never goes to A, however often it comes back
    let mut token = got[0].0;
    for _ in 0..5 {
        q.settle(b.key, token, Outcome::Released);
        assert!(
            a.take().is_empty(),
            "a released message went to the refusing link"
        );
        let got = b.take();
        assert_eq!(got.len(), 1);
        token = got[0].0;
    }
    q.settle(b.key, token, Outcome::Accepted);
    assert_eq!(q.depth(), 0);
    assert_eq!(q.unacked(), 0);
}

#[test]
fn undeliverable_here_skips_that_consumer() {
    refused_message_goes_to_the_other_consumer(None);
}

#[test]
fn undeliverable_here_skips_that_consumer_with_selectors() {
    refused_message_goes_to_the_other_consumer(Some("1 = 1"));
}

#[test]
fn refused_by_the_only_consumer_the_message_waits_for_another() {
    let (tenant, address, q) = queue();
    let mut a = Consumer::new(&q, 1, None);
    a.credit(&q, 10);
    publish(&tenant, &address, message("m"));
    let got = a.take();
    q.settle(a.key, got[0].0, undeliverable_here());
    assert!(a.take().is_empty());
    // a drain completes: nothing the consumer may have is left
    q.flow(a.key, a.taken + 10, true);
    assert!(drained(&a.outbox), "the drain did not complete");
    // a new link (another consumer, or the same client attaching again) gets it
    q.remove_consumer(a.key);
    let mut c = Consumer::new(&q, 3, None);
    c.credit(&q, 1);
    let got = c.take();
    assert_eq!(got.iter().map(|(_, m)| text(m)).collect::<Vec<_>>(), ["m"]);
}

#[test]
fn failed_and_undeliverable_here_counts_and_skips() {
    let (tenant, address, q) = queue();
    let mut a = Consumer::new(&q, 1, None);
    let b = Consumer::new(&q, 2, None);
    a.credit(&q, 10);
    publish(&tenant, &address, message("m"));
    let got = a.take();
    q.settle(
        a.key,
        got[0].0,
        Outcome::Modified {
            failed: true,
            undeliverable_here: true,
            annotations: None,
        },
    );
    assert!(a.take().is_empty());
    b.credit(&q, 1);
    let mut cmds = Vec::new();
    b.outbox.drain_into(&mut cmds);
    match cmds.as_slice() {
        [Command::Deliver { delivery_count, .. }] => assert_eq!(*delivery_count, 1),
        other => panic!("expected one delivery to B, got {other:?}"),
    }
}

fn fields(pairs: &[(&str, Value)]) -> Fields {
    pairs
        .iter()
        .map(|(k, v)| (Symbol::new(*k), v.clone()))
        .collect()
}

#[test]
fn modified_annotations_are_merged_for_the_next_delivery() {
    let (tenant, address, q) = queue();
    let mut a = Consumer::new(&q, 1, None);
    a.credit(&q, 10);
    let original = MessageBuilder {
        message_annotations: Some(fields(&[("x-opt-kept", Value::Int(1))])),
        ..MessageBuilder::new().data("body")
    }
    .encode();
    publish(&tenant, &address, Message::parse(original.clone()).unwrap());
    let before = q.memory_bytes();
    let got = a.take();
    q.settle(
        a.key,
        got[0].0,
        Outcome::Modified {
            failed: false,
            undeliverable_here: false,
            annotations: Some(fields(&[("x-opt-reason", Value::String("busy".into()))])),
        },
    );
    let got = a.take();
    assert_eq!(got.len(), 1);
    let msg = &got[0].1;
    assert_eq!(
        msg.message_annotations().unwrap().unwrap(),
        fields(&[
            ("x-opt-kept", Value::Int(1)),
            ("x-opt-reason", Value::String("busy".into())),
        ])
    );
    assert_eq!(
        msg.bare(),
        Message::parse(original).unwrap().bare(),
        "the bare message is kept byte for byte"
    );
    assert!(
        q.memory_bytes() > before,
        "the queue counts the larger message"
    );
    // and it stays merged through a release
    q.settle(a.key, got[0].0, Outcome::Released);
    let got = a.take();
    assert!(got[0]
        .1
        .message_annotations()
        .unwrap()
        .unwrap()
        .iter()
        .any(|(k, _)| k.as_str() == "x-opt-reason"));
    q.settle(a.key, got[0].0, Outcome::Accepted);
    assert_eq!(q.memory_bytes(), 0, "no bytes left counted");
}

#[test]
fn oversized_modified_annotations_are_not_merged() {
    let (tenant, address, q) = queue();
    let mut a = Consumer::new(&q, 1, None);
    a.credit(&q, 10);
    publish(&tenant, &address, message("m"));
    let got = a.take();
    let huge = "x".repeat(throng_core::queue::MAX_MODIFIED_ANNOTATIONS + 1);
    q.settle(
        a.key,
        got[0].0,
        Outcome::Modified {
            failed: false,
            undeliverable_here: false,
            annotations: Some(fields(&[("x-opt-huge", Value::String(huge))])),
        },
    );
    let got = a.take();
    assert_eq!(got.len(), 1, "still redelivered");
    assert!(!got[0].1.has_message_annotations());
}
