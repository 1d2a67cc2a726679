//! Consumers on other nodes, as the mesh registers them: remote consumers of an anycast
//! address, the reach a message from the mesh has, and what the address advertises of
//! this node's own consumers. In memory: outboxes stand in for connections.

use std::sync::{Arc, Mutex};
use throng_amqp::message::{Message, MessageBuilder};
use throng_core::{
    Address, AddressKind, Advertiser, Command, ConsumerKey, Handle, Outbox, Outcome, Producer,
    Reach, Reply, Target, Tenant, Verdict,
};

const PRODUCER: Handle = Handle(1);
const LOCAL: Handle = Handle(2);
const REMOTE: Handle = Handle(3);

#[derive(Default)]
struct Heard(Mutex<Vec<(String, String, Option<u32>)>>);

impl Advertiser for Heard {
    fn advertise(&self, tenant: &str, address: &str, level: Option<u32>) {
        self.0
            .lock()
            .unwrap()
            .push((tenant.into(), address.into(), level));
    }
}

impl Heard {
    fn levels(&self) -> Vec<Option<u32>> {
        self.0
            .lock()
            .unwrap()
            .drain(..)
            .map(|(_, _, l)| l)
            .collect()
    }
}

struct World {
    tenant: Tenant,
    anycast: Arc<throng_core::anycast::Anycast>,
    producer: Arc<Outbox>,
    mesh: Arc<Outbox>,
    heard: Arc<Heard>,
}

fn world() -> World {
    let tenant = Tenant::new("acme", false, Vec::new());
    let heard = Arc::new(Heard::default());
    let Address::Anycast(anycast) = tenant.create("svc", AddressKind::Anycast) else {
        unreachable!()
    };
    assert!(tenant.advertise_to(heard.clone()));
    World {
        tenant,
        anycast,
        producer: Arc::new(Outbox::new()),
        mesh: Arc::new(Outbox::new()),
        heard,
    }
}

fn msg() -> Message {
    Message::parse(MessageBuilder::new().data(&b"hello"[..]).encode()).unwrap()
}

fn commands(o: &Outbox) -> Vec<Command> {
    let mut v = Vec::new();
    o.drain_into(&mut v);
    v
}

/// The deliveries in `cmds`: (link, token, settled).
fn deliveries(cmds: &[Command]) -> Vec<(Handle, u64, bool)> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Deliver {
                link,
                token,
                settled,
                ..
            } => Some((*link, *token, *settled)),
            _ => None,
        })
        .collect()
}

fn credit(cmds: &[Command]) -> Option<u32> {
    cmds.iter().rev().find_map(|c| match c {
        Command::SetCredit { credit, .. } => Some(*credit),
        _ => None,
    })
}

fn verdicts(cmds: &[Command]) -> Vec<(u32, Verdict)> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Verdict {
                delivery, verdict, ..
            } => Some((*delivery, verdict.clone())),
            _ => None,
        })
        .collect()
}

impl World {
    fn send(&self, n: u32, to: Target<'_>) -> Option<Verdict> {
        let address = Address::Anycast(self.anycast.clone());
        let to = match to {
            Target::Named(..) => Target::Address(&address),
            other => other,
        };
        self.tenant
            .publish(
                msg(),
                to,
                Some(Producer {
                    outbox: &self.producer,
                    link: PRODUCER,
                }),
                Reply::Delivery(n),
                None,
            )
            .verdict
    }

    fn remote(&self, level: u32) -> ConsumerKey {
        let key = self.anycast.add_remote(self.mesh.clone(), REMOTE);
        self.anycast.set_level(key, level);
        key
    }
}

const ANY: Target<'static> = Target::Named("svc", AddressKind::Anycast);

#[test]
fn a_producer_gets_credit_from_a_remote_level_and_hears_the_remote_outcome() {
    let w = world();
    w.anycast.add_producer(w.producer.clone(), PRODUCER);
    let key = w.anycast.add_remote(w.mesh.clone(), REMOTE);
    assert_eq!(credit(&commands(&w.producer)), None, "level 0: no credit");
    w.anycast.set_level(key, 64);
    assert_eq!(credit(&commands(&w.producer)), Some(64));

    assert_eq!(
        w.send(7, ANY),
        None,
        "the verdict waits for the far consumer"
    );
    let sent = deliveries(&commands(&w.mesh));
    assert_eq!(sent.len(), 1);
    let (link, token, settled) = sent[0];
    assert_eq!(
        (link, settled),
        (REMOTE, false),
        "remote deliveries are unsettled"
    );
    w.anycast.settle(key, token, Outcome::Accepted);
    assert_eq!(
        verdicts(&commands(&w.producer)),
        vec![(7, Verdict::Accepted)]
    );
}

#[test]
fn a_remote_level_bounds_the_unsettled_deliveries_sent_there() {
    let w = world();
    let key = w.remote(2);
    for n in 0..3 {
        assert_eq!(w.send(n, ANY), None);
    }
    let sent = deliveries(&commands(&w.mesh));
    assert_eq!(sent.len(), 2, "the third is held");
    w.anycast.settle(key, sent[0].1, Outcome::Released);
    assert_eq!(
        verdicts(&commands(&w.producer)),
        vec![(0, Verdict::Released)]
    );
    assert_eq!(
        deliveries(&commands(&w.mesh)).len(),
        1,
        "room again: it goes"
    );
}

#[test]
fn a_message_from_the_mesh_reaches_only_local_consumers() {
    let w = world();
    w.remote(100);
    assert_eq!(
        w.send(1, Target::Mesh("svc", Reach::Local)),
        Some(Verdict::Released),
        "no consumer here: back to the node it came from, never on to another"
    );
    assert!(deliveries(&commands(&w.mesh)).is_empty());

    let consumer = Arc::new(Outbox::new());
    let local = w.anycast.add_consumer(consumer.clone(), LOCAL, false);
    assert_eq!(w.send(2, Target::Mesh("svc", Reach::Local)), None, "held");
    assert!(deliveries(&commands(&w.mesh)).is_empty());
    w.anycast.flow(local, 1, false);
    assert_eq!(deliveries(&commands(&consumer)).len(), 1);
    assert!(deliveries(&commands(&w.mesh)).is_empty());
}

#[test]
fn a_message_in_transit_goes_to_the_one_consumer_named() {
    let w = world();
    let consumer = Arc::new(Outbox::new());
    let local = w.anycast.add_consumer(consumer.clone(), LOCAL, false);
    w.anycast.flow(local, 10, false);
    let key = w.remote(0);
    assert_eq!(w.send(1, Target::Mesh("svc", Reach::Via(key))), None);
    assert_eq!(
        deliveries(&commands(&w.mesh)).len(),
        1,
        "on towards its node, whatever the level here"
    );
    assert!(deliveries(&commands(&consumer)).is_empty());
    w.anycast.remove_consumer(key);
    assert_eq!(
        w.send(2, Target::Mesh("svc", Reach::Via(key))),
        Some(Verdict::Released),
        "the way is gone"
    );
}

#[test]
fn a_lost_remote_consumer_settles_what_it_had_as_failed() {
    let w = world();
    let key = w.remote(10);
    assert_eq!(w.send(4, ANY), None);
    w.anycast.remove_consumer(key);
    let v = verdicts(&commands(&w.producer));
    assert!(
        matches!(v.as_slice(), [(4, Verdict::Modified { failed: true, .. })]),
        "{v:?}"
    );
}

#[test]
fn only_this_nodes_own_consumers_are_advertised_coarsely() {
    let w = world();
    assert!(w.heard.levels().is_empty(), "nothing to tell yet");
    w.remote(500);
    assert!(
        w.heard.levels().is_empty(),
        "remote levels are never re-advertised"
    );

    let consumer = Arc::new(Outbox::new());
    let local = w.anycast.add_consumer(consumer.clone(), LOCAL, false);
    assert_eq!(w.heard.levels(), vec![Some(0)], "attached, no credit");
    w.anycast.flow(local, 1000, false);
    assert_eq!(w.heard.levels(), vec![Some(512)]);
    w.anycast.flow(local, 1300, false);
    assert!(w.heard.levels().is_empty(), "a small move is no news");
    w.anycast.remove_consumer(local);
    assert_eq!(w.heard.levels(), vec![None]);
}

#[test]
fn addresses_created_before_the_mesh_tell_it_what_they_have() {
    let tenant = Tenant::new("acme", false, Vec::new());
    let Address::Anycast(a) = tenant.create("early", AddressKind::Anycast) else {
        unreachable!()
    };
    let c = a.add_consumer(Arc::new(Outbox::new()), LOCAL, false);
    a.flow(c, 8, false);
    let heard = Arc::new(Heard::default());
    tenant.advertise_to(heard.clone());
    assert_eq!(
        heard.0.lock().unwrap().as_slice(),
        &[("acme".to_string(), "early".to_string(), Some(8))]
    );
}

#[test]
fn a_multicast_copy_goes_once_to_each_remote_node_and_from_the_mesh_only_locally() {
    let tenant = Tenant::new("acme", false, Vec::new());
    let heard = Arc::new(Heard::default());
    let Address::Multicast(m) = tenant.create("news", AddressKind::Multicast) else {
        unreachable!()
    };
    tenant.advertise_to(heard.clone());
    let (mesh_a, mesh_b, local) = (
        Arc::new(Outbox::new()),
        Arc::new(Outbox::new()),
        Arc::new(Outbox::new()),
    );
    let a = m.add_remote(mesh_a.clone(), REMOTE);
    m.add_remote(mesh_b.clone(), REMOTE);
    assert!(
        heard.levels().is_empty(),
        "remote members are not re-advertised"
    );
    let c = m.add_consumer(local.clone(), LOCAL);
    m.flow(c, 10, false);
    assert_eq!(heard.levels(), vec![Some(0), Some(8)]);

    let to = |reach| {
        tenant
            .publish(msg(), Target::Mesh("news", reach), None, Reply::None, None)
            .verdict
    };
    assert_eq!(to(Reach::Any), Some(Verdict::Accepted));
    for o in [&mesh_a, &mesh_b, &local] {
        let d = deliveries(&commands(o));
        assert_eq!(d.len(), 1, "one copy each");
        assert!(d[0].2, "presettled");
    }
    to(Reach::Local);
    assert_eq!(deliveries(&commands(&local)).len(), 1);
    assert!(commands(&mesh_a).is_empty() && commands(&mesh_b).is_empty());
    to(Reach::Via(a));
    assert_eq!(deliveries(&commands(&mesh_a)).len(), 1);
    assert!(commands(&local).is_empty() && commands(&mesh_b).is_empty());
}
