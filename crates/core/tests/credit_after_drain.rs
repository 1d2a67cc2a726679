//! Credit granted after a completed drain (issue 11): the adapter gives each address its
//! consumer's limit as the deliveries the connection took so far plus the link's credit
//! now; a drain that used up credit without deliveries must not leave a deficit, on any
//! of the address types. In memory, through the tenant's one entry point.

use std::sync::Arc;
use throng_amqp::message::{Message, MessageBuilder};
use throng_core::{
    Address, AddressKind, Command, Handle, Outbox, Producer, Reply, Target, Tenant, Verdict,
};

const LINK: Handle = Handle(7);
const PRODUCER: Handle = Handle(1);

fn message(body: &str) -> Message {
    Message::parse(MessageBuilder::new().data(body.to_string()).encode()).expect("parse")
}

/// How many deliveries and completed drains the outbox holds.
fn take(outbox: &Outbox) -> (usize, usize) {
    let mut cmds = Vec::new();
    outbox.drain_into(&mut cmds);
    let delivered = cmds
        .iter()
        .filter(|c| matches!(c, Command::Deliver { .. }))
        .count();
    let drained = cmds
        .iter()
        .filter(|c| matches!(c, Command::Drained { .. }))
        .count();
    (delivered, drained)
}

/// The flow sequence a JMS `receive(timeout)` with prefetch 0 makes: credit 5 and drain on
/// an empty address, then credit 1 (the connection took no delivery: limit 0 + 1).
fn drain_then_credit_one(flow: impl Fn(u32, bool), publish: impl Fn(), outbox: &Outbox) {
    flow(5, true);
    assert_eq!(
        take(outbox),
        (0, 1),
        "the drain completes on an empty address"
    );
    flow(1, false);
    publish();
    assert_eq!(
        take(outbox),
        (1, 0),
        "the credit granted after the drain is used"
    );
    // and again: every drain leaves the count where it was
    flow(1 + 3, true);
    assert_eq!(take(outbox), (0, 1));
    flow(1 + 2, false);
    publish();
    publish();
    assert_eq!(take(outbox), (2, 0));
}

/// Publishes one message to `address` through the entry point, as a producer link
/// whose verdict (accepted, or later from the anycast consumer) is not what is tested.
fn publish(tenant: &Tenant, address: &Address, producer: &Arc<Outbox>) {
    let p = tenant.publish(
        message("m"),
        Target::Address(address),
        Some(Producer {
            outbox: producer,
            link: PRODUCER,
        }),
        Reply::Delivery(0),
        None,
    );
    assert_ne!(p.verdict, Some(Verdict::Released), "a consumer is attached");
}

/// A tenant with one address of `kind`, and the consumer's outbox.
fn address(kind: AddressKind) -> (Tenant, Address, Arc<Outbox>, Arc<Outbox>) {
    let tenant = Tenant::new("t", false, vec![]);
    let address = tenant.create("a", kind);
    (
        tenant,
        address,
        Arc::new(Outbox::new()),
        Arc::new(Outbox::new()),
    )
}

#[test]
fn queue_credit_after_a_drain_is_used() {
    let (tenant, address, outbox, producer) = address(AddressKind::Queue);
    let Address::Queue(q) = &address else {
        unreachable!()
    };
    let key = q.add_consumer(outbox.clone(), LINK, false);
    drain_then_credit_one(
        |limit, drain| q.flow(key, limit, drain),
        || publish(&tenant, &address, &producer),
        &outbox,
    );
}

#[test]
fn queue_with_a_selector_credit_after_a_drain_is_used() {
    let (tenant, address, outbox, producer) = address(AddressKind::Queue);
    let Address::Queue(q) = &address else {
        unreachable!()
    };
    let selector = throng_selector::Selector::parse("1 = 1").expect("selector");
    let key = q.add_consumer_selecting(outbox.clone(), LINK, false, Some(selector));
    drain_then_credit_one(
        |limit, drain| q.flow(key, limit, drain),
        || publish(&tenant, &address, &producer),
        &outbox,
    );
}

#[test]
fn topic_subscription_credit_after_a_drain_is_used() {
    let (tenant, address, outbox, producer) = address(AddressKind::Topic);
    let Address::Topic(t) = &address else {
        unreachable!()
    };
    let sub = t.subscribe();
    let key = sub.add_consumer(outbox.clone(), LINK, false);
    drain_then_credit_one(
        |limit, drain| sub.flow(key, limit, drain),
        || publish(&tenant, &address, &producer),
        &outbox,
    );
}

#[test]
fn anycast_credit_after_a_drain_is_used() {
    let (tenant, address, outbox, producer) = address(AddressKind::Anycast);
    let Address::Anycast(a) = &address else {
        unreachable!()
    };
    let key = a.add_consumer(outbox.clone(), LINK, true);
    drain_then_credit_one(
        |limit, drain| a.flow(key, limit, drain),
        || publish(&tenant, &address, &producer),
        &outbox,
    );
}

#[test]
fn multicast_credit_after_a_drain_is_used() {
    let (tenant, address, outbox, producer) = address(AddressKind::Multicast);
    let Address::Multicast(m) = &address else {
        unreachable!()
    };
    let key = m.add_consumer(outbox.clone(), LINK);
    drain_then_credit_one(
        |limit, drain| m.flow(key, limit, drain),
        || publish(&tenant, &address, &producer),
        &outbox,
    );
}
