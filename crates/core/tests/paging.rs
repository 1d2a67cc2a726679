//! A persistent queue past its memory limit: messages wait in page files, memory stays
//! bounded, and everything comes back in order — durable messages acked in the journal.

use std::sync::Arc;
use throng_amqp::definitions::Header;
use throng_amqp::message::{Body, Message, MessageBuilder};
use throng_core::outbox::{Command, Outbox};
use throng_core::queue::{Persistence, Queue};
use throng_core::{Address, Handle, Outcome, Producer, Published, Refusal, Reply, Target};
use throng_core::{Tenant, Verdict};
use throng_store::{Journal, JournalConfig};

const LIMIT: usize = 64 * 1024;
const BODY: usize = 1000;

fn message(i: u32) -> Message {
    let mut body = vec![b'x'; BODY];
    body[..4].copy_from_slice(&i.to_be_bytes());
    let bytes = MessageBuilder::new()
        .header(Header {
            durable: Some(i.is_multiple_of(2)),
            ..Header::default()
        })
        .data(body)
        .encode();
    Message::parse(bytes).expect("parse")
}

fn number(msg: &Message) -> u32 {
    match msg.body() {
        Ok(Body::Data(data)) => u32::from_be_bytes([data[0], data[1], data[2], data[3]]),
        other => panic!("expected a data section, got {other:?}"),
    }
}

fn journal(name: &str) -> (Journal, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("throng-paging-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (j, _) = Journal::open(JournalConfig::new(&dir)).expect("journal");
    (j, dir)
}

fn paged_queue(j: &Journal, key: &str) -> Arc<Queue> {
    Queue::new("q", None)
        .with_memory_limit(LIMIT)
        .with_max_bytes(usize::MAX)
        .with_persistence(Some(Persistence {
            journal: j.clone(),
            key: key.into(),
        }))
        .into_arc()
}

/// Publishes to `q` through the tenant's entry point, from producer link `link` of
/// `outbox`, with nobody waiting for a verdict.
fn publish(q: &Arc<Queue>, msg: Message, outbox: &Arc<Outbox>, link: u32) -> Published {
    let tenant = Tenant::new("t", false, vec![]);
    let address = Address::Queue(q.clone());
    let from = Producer {
        outbox,
        link: Handle(link),
    };
    tenant.publish(
        msg,
        Target::Address(&address),
        Some(from),
        Reply::None,
        None,
    )
}

/// Takes the deliveries out of `outbox`.
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

#[test]
fn deep_queue_pages_to_disk_and_drains_in_order() {
    let (j, dir) = journal("drain");
    let q = paged_queue(&j, "t/q");
    let n = 2_000u32;
    for i in 0..n {
        let _ = publish(&q, message(i), &Arc::new(Outbox::new()), 0);
        assert!(
            q.memory_bytes() <= LIMIT,
            "memory {} over the limit after {i} messages",
            q.memory_bytes()
        );
    }
    let (paged, paged_bytes) = q.paged();
    assert!(paged > 1_500, "most messages are on disk, got {paged}");
    assert!(paged_bytes >= paged * BODY as u64);
    assert_eq!(q.depth(), n as usize);
    let pages_dir = j.pages_dir();
    assert!(
        pages_dir.join("t%2Fq").is_dir(),
        "page files under the journal"
    );

    let outbox = Arc::new(Outbox::new());
    let consumer = q.add_consumer(outbox.clone(), Handle(0), false);
    let mut next = 0u32;
    let mut limit = 0u32;
    let mut peak = 0usize;
    while next < n {
        limit += 100;
        q.flow(consumer, limit, false);
        let batch = deliveries(&outbox);
        assert!(!batch.is_empty(), "a consumer with credit gets messages");
        peak = peak.max(q.memory_bytes());
        for (token, msg) in batch {
            assert_eq!(number(&msg), next, "arrival order across the page boundary");
            next += 1;
            q.settle(consumer, token, Outcome::Accepted);
        }
    }
    assert!(
        peak <= LIMIT + 100 * (BODY + 200),
        "memory bounded while draining: {peak}"
    );
    assert_eq!(q.depth(), 0);
    assert_eq!(q.paged(), (0, 0));
    assert_eq!(q.memory_bytes(), 0);
    drop(q);
    assert!(
        !pages_dir.join("t%2Fq").exists(),
        "a dropped queue takes its page files"
    );
    // every durable message was acked in the journal: nothing comes back
    j.sync().expect("sync");
    drop(j);
    let (_j, recovered) = Journal::open(JournalConfig::new(&dir)).expect("reopen");
    assert!(
        recovered.queues.is_empty(),
        "left: {:?}",
        recovered.queues.keys()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn new_messages_queue_behind_paged_ones_and_purge_empties_disk_too() {
    let (j, dir) = journal("purge");
    let q = paged_queue(&j, "t/p");
    for i in 0..500 {
        let _ = publish(&q, message(i), &Arc::new(Outbox::new()), 0);
    }
    assert!(q.paged().0 > 0);
    // a consumer drains some: memory frees, paged messages come back before new ones
    let outbox = Arc::new(Outbox::new());
    let consumer = q.add_consumer(outbox.clone(), Handle(0), false);
    q.flow(consumer, 50, false);
    let _ = publish(&q, message(500), &outbox, 9);
    let got: Vec<u32> = deliveries(&outbox).iter().map(|(_, m)| number(m)).collect();
    assert_eq!(got, (0..50).collect::<Vec<_>>());
    // credit beyond what memory may hold: the consumer gets what fits, and no more
    q.flow(consumer, 400, false);
    let more = deliveries(&outbox).len();
    assert!(
        (10..=100).contains(&more),
        "deliveries stop near the memory limit with all of it on loan: {more}"
    );
    assert!(q.memory_bytes() <= 64 * 1024 + 1024 * 1024 + 2048);
    let loaned = 50 + more as u32;
    // purge removes what waits (memory and disk), not what is on loan
    let removed = q.purge();
    assert_eq!(removed, 501 - loaned as u64);
    assert_eq!(q.depth(), 0);
    assert_eq!(q.paged(), (0, 0));
    assert_eq!(q.unacked(), loaned as usize);
    drop(q);
    j.sync().expect("sync");
    drop(j);
    let (_j, recovered) = Journal::open(JournalConfig::new(&dir)).expect("reopen");
    let left = recovered.queues.get("t/p").map_or(0, Vec::len);
    // only durable messages on loan (the even ones) remain in the journal
    assert_eq!(left, loaned.div_ceil(2) as usize);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn past_the_disk_limit_producers_are_held_or_rejected() {
    let (j, dir) = journal("limit");
    let block = Queue::new("b", None)
        .with_memory_limit(LIMIT)
        .with_max_bytes(4 * LIMIT)
        .with_persistence(Some(Persistence {
            journal: j.clone(),
            key: "t/b".into(),
        }))
        .into_arc();
    let outbox = Arc::new(Outbox::new());
    let mut sent = 0u32;
    while publish(&block, message(sent), &outbox, 7).wait.is_none() {
        sent += 1;
        assert!(sent < 1_000, "the queue must report itself full");
    }
    assert!(block.paged().0 > 0, "past the memory limit first");
    let len = message(0).len();
    // the producer is asked to wait with the message that reaches the limit (it is stored)
    assert_eq!(
        (sent as usize + 1) * len / (4 * LIMIT),
        1,
        "full at the disk limit: {sent} messages of {len} bytes"
    );
    assert!(!block.has_space());
    assert!(deliveries(&outbox).is_empty(), "no room yet");
    // a consumer takes some: room again, the blocked producer hears of it
    let consumer = block.add_consumer(outbox.clone(), Handle(1), false);
    block.flow(consumer, 20, false);
    let mut cmds = Vec::new();
    outbox.drain_into(&mut cmds);
    for c in &cmds {
        if let Command::Deliver { token, .. } = c {
            block.settle(consumer, *token, Outcome::Accepted);
        }
    }
    outbox.drain_into(&mut cmds);
    assert!(
        cmds.iter()
            .any(|c| matches!(c, Command::Unblocked { link } if *link == Handle(7))),
        "the producer is unblocked once there is room"
    );

    let reject = Queue::new("r", None)
        .with_memory_limit(LIMIT)
        .with_max_bytes(2 * LIMIT)
        .with_reject_when_full(true)
        .with_persistence(Some(Persistence {
            journal: j.clone(),
            key: "t/r".into(),
        }))
        .into_arc();
    let mut refused = 0;
    for i in 0..300 {
        let p = publish(&reject, message(i), &outbox, 8);
        if p.verdict == Some(Verdict::Refused(Refusal::Full)) {
            assert!(
                p.wait.is_none(),
                "a rejecting queue never asks the producer to wait"
            );
            refused += 1;
        }
    }
    assert!(refused > 100, "rejected past the disk limit: {refused}");
    assert!(reject.depth() * message(0).len() <= 2 * LIMIT + message(0).len());
    drop((block, reject));
    let _ = std::fs::remove_dir_all(&dir);
}
