//! The core on an injected clock: expiry, scheduled delivery and the redelivery delay
//! happen when the clock says so — not before, and without anything else waking the
//! queue — with no runtime, no sockets and no sleeping.

use std::sync::Arc;
use throng_amqp::codec::{Symbol, Value};
use throng_amqp::definitions::Header;
use throng_amqp::message::{Body, Message, MessageBuilder};
use throng_core::clock::ManualClock;
use throng_core::queue::Queue;
use throng_core::{
    Address, AddressKind, AddressOptions, Command, ConsumerKey, Handle, Outbox, Outcome, Reply,
    Target, Tenant, Verdict,
};

const START: u64 = 1_800_000_000_000;

struct World {
    clock: Arc<ManualClock>,
    tenant: Tenant,
    address: Address,
    queue: Arc<Queue>,
    outbox: Arc<Outbox>,
    key: ConsumerKey,
}

/// A tenant on a manual clock with queue `q` (created with `opts`) and one consumer on it
/// that has no credit yet.
fn world(opts: AddressOptions) -> World {
    let clock = ManualClock::new(START);
    let tenant = Tenant::with_clock("t", false, vec![], None, clock.clone());
    let address = tenant.create_with("q", AddressKind::Queue, &opts);
    let Address::Queue(queue) = &address else {
        unreachable!()
    };
    let queue = queue.clone();
    let outbox = Arc::new(Outbox::new());
    let key = queue.add_consumer(outbox.clone(), Handle(1), false);
    World {
        clock,
        tenant,
        address,
        queue,
        outbox,
        key,
    }
}

impl World {
    fn publish(&self, msg: Message) {
        let p = self
            .tenant
            .publish(msg, Target::Address(&self.address), None, Reply::None, None);
        assert_eq!(p.verdict, Some(Verdict::Accepted));
    }

    /// Bodies and tokens of the deliveries pushed since the last call.
    fn delivered(&self) -> Vec<(String, u64)> {
        let mut cmds = Vec::new();
        self.outbox.drain_into(&mut cmds);
        cmds.into_iter()
            .filter_map(|c| match c {
                Command::Deliver { msg, token, .. } => Some((body(&msg), token)),
                _ => None,
            })
            .collect()
    }
}

fn body(msg: &Message) -> String {
    match msg.body() {
        Ok(Body::Data(b)) => String::from_utf8_lossy(&b).into_owned(),
        other => panic!("expected a data body, got {other:?}"),
    }
}

fn message(body: &str) -> MessageBuilder {
    MessageBuilder::new().data(body.to_string())
}

fn parse(b: MessageBuilder) -> Message {
    Message::parse(b.encode()).expect("parse")
}

#[test]
fn a_released_message_comes_back_after_the_redelivery_delay_not_before() {
    let w = world(AddressOptions {
        redelivery_delay_ms: Some(1_000),
        ..AddressOptions::default()
    });
    w.queue.flow(w.key, 10, false);
    w.publish(parse(message("m")));
    let got = w.delivered();
    assert_eq!(got.len(), 1);
    w.queue.settle(w.key, got[0].1, Outcome::Released);
    assert!(w.delivered().is_empty(), "redelivered at once");
    w.clock.advance(999);
    assert!(w.delivered().is_empty(), "redelivered 1 ms early");
    assert_eq!(w.queue.depth(), 1, "it waits in the queue meanwhile");
    // the queue's own timer, nothing else, brings it back
    w.clock.advance(1);
    assert_eq!(
        w.delivered().iter().map(|d| &d.0[..]).collect::<Vec<_>>(),
        ["m"]
    );
}

#[test]
fn a_message_is_delivered_at_its_delivery_delay() {
    let w = world(AddressOptions::default());
    w.queue.flow(w.key, 10, false);
    let mut b = message("later");
    b.message_annotations = Some(vec![(
        Symbol::new("x-opt-delivery-delay"),
        Value::Long(5_000),
    )]);
    w.publish(parse(b));
    w.publish(parse(message("now")));
    assert_eq!(
        w.delivered().iter().map(|d| &d.0[..]).collect::<Vec<_>>(),
        ["now"],
        "a scheduled message does not hold up the ones behind it"
    );
    w.clock.advance(4_999);
    assert!(w.delivered().is_empty());
    w.clock.advance(1);
    assert_eq!(
        w.delivered().iter().map(|d| &d.0[..]).collect::<Vec<_>>(),
        ["later"]
    );
    assert_eq!(w.clock.pending(), 0, "no timer left armed");
}

#[test]
fn a_delivery_time_is_read_on_the_injected_clock() {
    let w = world(AddressOptions::default());
    w.queue.flow(w.key, 10, false);
    let mut b = message("at");
    b.message_annotations = Some(vec![(
        Symbol::new("x-opt-delivery-time"),
        Value::Timestamp(START as i64 + 60_000),
    )]);
    w.publish(parse(b));
    w.clock.advance(59_999);
    assert!(w.delivered().is_empty());
    w.clock.advance(1);
    assert_eq!(w.delivered().len(), 1);
}

#[test]
fn a_message_expires_by_its_ttl_on_the_injected_clock() {
    let w = world(AddressOptions {
        expiry_address: Some("expired".into()),
        ..AddressOptions::default()
    });
    let ttl = |body: &str, ms: u32| {
        parse(message(body).header(Header {
            ttl: Some(ms),
            ..Header::default()
        }))
    };
    w.publish(ttl("short", 500));
    w.publish(ttl("long", 5_000));
    w.clock.advance(500);
    // the consumer asks only now: the short one has expired on the way
    w.queue.flow(w.key, 10, false);
    assert_eq!(
        w.delivered().iter().map(|d| &d.0[..]).collect::<Vec<_>>(),
        ["long"]
    );
    assert_eq!(w.queue.expired(), 1);
    let Some(Address::Queue(expired)) = w.tenant.lookup("expired") else {
        panic!("no expiry queue")
    };
    assert_eq!(
        expired.depth(),
        1,
        "the expired message went to the expiry address"
    );
    // the clock the tenant hands to adapters is the same one
    assert_eq!(w.tenant.clock().now_ms(), START + 500);
}
