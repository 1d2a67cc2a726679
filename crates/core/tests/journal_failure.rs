//! A journal that fails (its directory vanished, so the next segment cannot be created):
//! every durable message a topic took for its durable subscriptions is answered exactly
//! once — accepted if all its copies made it to disk, refused (the store failed) if any
//! did not — and one the journal refused outright is refused at once, never both.

use std::sync::mpsc;
use std::time::Duration;
use throng_amqp::definitions::Header;
use throng_amqp::message::{Message, MessageBuilder};
use throng_core::{Address, AddressKind, Refusal, Reply, Target, Tenant, Verdict};
use throng_store::{Journal, JournalConfig};

fn durable(i: u32) -> Message {
    let bytes = MessageBuilder::new()
        .header(Header {
            durable: Some(true),
            ..Header::default()
        })
        .data(vec![i as u8; 200])
        .encode();
    Message::parse(bytes).expect("parse")
}

#[test]
fn every_durable_publish_is_answered_once_when_the_journal_fails() {
    let dir = std::env::temp_dir().join(format!("throng-core-jfail-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = JournalConfig::new(&dir);
    cfg.segment_bytes = 4096;
    cfg.fsync = false;
    let (journal, _) = Journal::open(cfg).expect("journal");
    let tenant = Tenant::with_journal("t", true, vec![], Some(journal.clone()));
    let Address::Topic(topic) = tenant.create("news", AddressKind::Topic) else {
        panic!("not a topic");
    };
    let _a = tenant.open_subscription(&topic, "a");
    let _b = tenant.open_subscription(&topic, "b");

    let (tx, rx) = mpsc::channel::<(u32, Verdict)>();
    let mut waiting = 0;
    let mut refused = 0;
    let address = Address::Topic(topic.clone());
    let mut publish = |i: u32| {
        let tx = tx.clone();
        let reply = Reply::Call(Box::new(move |v| {
            let _ = tx.send((i, v));
        }));
        let to = Target::Address(&address);
        match tenant.publish(durable(i), to, None, reply, None).verdict {
            None => waiting += 1,
            Some(Verdict::Refused(Refusal::StoreFailed)) => refused += 1,
            other => panic!("message {i}: {other:?}"),
        }
    };
    for i in 0..5 {
        publish(i);
    }
    journal.sync().expect("the first messages are on disk");
    std::fs::remove_dir_all(&dir).expect("remove the journal directory");
    for i in 5..200 {
        publish(i);
    }
    assert!(journal.sync().is_err(), "the journal failed");
    publish(200);
    drop(tx);
    let mut answers = std::collections::HashMap::new();
    while let Ok((i, w)) = rx.recv_timeout(Duration::from_secs(5)) {
        assert!(answers.insert(i, w).is_none(), "message {i} answered twice");
    }
    assert_eq!(answers.len(), waiting, "every message taken is answered");
    assert!(refused > 0, "a failed journal refuses new messages at once");
    assert!((0..5).all(|i| answers.get(&i) == Some(&Verdict::Accepted)));
    assert!(
        answers
            .values()
            .any(|v| *v == Verdict::Refused(Refusal::StoreFailed)),
        "messages caught in the failure hear that they failed"
    );
}
