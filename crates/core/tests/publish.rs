//! The one entry point, as a table: every address type × every way a message enters
//! (a plain send, the anonymous relay, a will, a transaction) × the states an address can
//! be in (a consumer with credit, none, one without credit, full under either policy, a
//! failing store) gives the answer the table says — the same answer for every way in,
//! except where a transaction's all-or-nothing commit must differ (noted per row).
//!
//! Runs in memory against a real journal in a temporary directory; no sockets, no binary.

use std::sync::{mpsc, Arc};
use std::time::Duration;
use throng_amqp::definitions::{Header, Properties};
use throng_amqp::message::{Message, MessageBuilder};
use throng_core::{
    Address, AddressKind, AddressOptions, Command, ConsumerKey, Handle, Later, Outbox, Producer,
    Refusal, Reply, Target, Tenant, Transaction, Verdict,
};
use throng_store::{Journal, JournalConfig};

const NAME: &str = "dest";
const PRODUCER: Handle = Handle(1);
const CONSUMER: Handle = Handle(2);
const BODY: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// One consumer with credit.
    Consumer,
    /// No consumer (a topic: no subscription).
    NoConsumer,
    /// One consumer that granted no credit.
    NoCredit,
    /// Full, `full_policy = "block"`.
    FullBlock,
    /// Full, `full_policy = "reject"`.
    FullReject,
    /// The journal has failed (messages are durable).
    StoreFailing,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Way {
    Plain,
    Relay,
    Will,
    Transaction,
}

/// What the producer hears.
#[derive(Debug, Clone, PartialEq)]
enum Heard {
    /// This verdict (at once or later).
    Told(Verdict),
    /// Nothing yet: held for a consumer that has no credit.
    Pending,
}

/// The expected answer for a plain send; `None`: the case does not exist for the type.
fn expected(kind: AddressKind, state: State) -> Option<(Heard, bool)> {
    use AddressKind::*;
    use State::*;
    let told = |v| Some((Heard::Told(v), false));
    match (kind, state) {
        (Queue | Topic, Consumer | NoConsumer | NoCredit) => told(Verdict::Accepted),
        (Queue | Topic, FullBlock) => Some((Heard::Told(Verdict::Accepted), true)),
        (Queue, FullReject) => told(Verdict::Refused(Refusal::Full)),
        (Topic, FullReject) => None, // topics block; they have no reject policy
        (Queue | Topic, StoreFailing) => told(Verdict::Refused(Refusal::StoreFailed)),
        (Anycast, Consumer) => told(Verdict::Accepted), // the consumer accepts it
        (Anycast | Multicast, NoConsumer) => told(Verdict::Released),
        (Anycast, NoCredit) => Some((Heard::Pending, false)),
        (Multicast, Consumer) => told(Verdict::Accepted),
        (Multicast, NoCredit) => told(Verdict::Released),
        (Anycast | Multicast, FullBlock | FullReject | StoreFailing) => None,
    }
}

/// Where a transaction's answer differs from a plain send's: the commit's verdict.
fn expected_commit(kind: AddressKind, state: State, plain: &Heard) -> Heard {
    use State::*;
    match (kind, state) {
        // at commit the queue is still full: all-or-nothing, never past the bound
        (AddressKind::Queue | AddressKind::Topic, FullBlock) => {
            Heard::Told(Verdict::Refused(Refusal::Full))
        }
        // the held message waits for credit; the commit is answered
        (AddressKind::Anycast, NoCredit) => Heard::Told(Verdict::Accepted),
        // a multicast consumer is attached: the commit forwards (the copy is dropped
        // and counted, as multicast always does for a consumer without credit)
        (AddressKind::Multicast, NoCredit) => Heard::Told(Verdict::Accepted),
        // a direct address without a consumer: the send is released, not held
        (AddressKind::Anycast | AddressKind::Multicast, NoConsumer) => {
            Heard::Told(Verdict::Accepted)
        }
        _ => plain.clone(),
    }
}

struct World {
    tenant: Arc<Tenant>,
    journal: Journal,
    dir: std::path::PathBuf,
    address: Address,
    producer: Arc<Outbox>,
    consumer: Arc<Outbox>,
    key: Option<(Address, ConsumerKey)>,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn message(to: Option<&str>) -> Message {
    let mut b = MessageBuilder::new().header(Header {
        durable: Some(true),
        ..Header::default()
    });
    if let Some(to) = to {
        b = b.properties(Properties {
            to: Some(to.to_string()),
            ..Properties::default()
        });
    }
    Message::parse(b.data(vec![7u8; BODY]).encode()).expect("parse")
}

fn world(kind: AddressKind, state: State, case: &str) -> World {
    let dir = std::env::temp_dir().join(format!("throng-publish-{case}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = JournalConfig::new(&dir);
    cfg.segment_bytes = 4096;
    cfg.fsync = false;
    let (journal, _) = Journal::open(cfg).expect("journal");
    let tenant = Arc::new(Tenant::with_journal(
        "t",
        true,
        vec![],
        Some(journal.clone()),
    ));
    let size = message(None).len();
    let opts = AddressOptions {
        max_bytes: matches!(state, State::FullBlock | State::FullReject).then_some(size * 3),
        reject_when_full: Some(state == State::FullReject),
        ..AddressOptions::default()
    };
    let address = tenant.create_with(NAME, kind, &opts);
    let consumer = Arc::new(Outbox::new());
    let mut w = World {
        tenant,
        journal,
        dir,
        address: address.clone(),
        producer: Arc::new(Outbox::new()),
        consumer: consumer.clone(),
        key: None,
    };
    let wants_consumer = match kind {
        // a topic stores for its subscriptions: full and failing cases need one too
        AddressKind::Topic => state != State::NoConsumer,
        AddressKind::Queue => matches!(state, State::Consumer | State::NoCredit),
        _ => matches!(state, State::Consumer | State::NoCredit),
    };
    if wants_consumer {
        let key = match &address {
            Address::Queue(q) => (address.clone(), q.add_consumer(consumer, CONSUMER, false)),
            Address::Topic(t) => {
                let q = w.tenant.open_subscription(t, "sub");
                let key = q.add_consumer(consumer, CONSUMER, false);
                (Address::Queue(q), key)
            }
            Address::Anycast(a) => (address.clone(), a.add_consumer(consumer, CONSUMER, false)),
            Address::Multicast(m) => (address.clone(), m.add_consumer(consumer, CONSUMER)),
        };
        w.key = Some(key);
    }
    if state == State::Consumer {
        w.flow(10);
    }
    if matches!(state, State::FullBlock | State::FullReject) {
        // fill it (a topic: its subscription, whose consumer takes nothing)
        for _ in 0..3 {
            let p = w.tenant.publish(
                message(None),
                Target::Address(&w.address),
                None,
                Reply::None,
                None,
            );
            assert_eq!(p.verdict, Some(Verdict::Accepted), "filling {kind:?}");
        }
        w.journal.sync().expect("filled");
    }
    if state == State::StoreFailing {
        w.fail_journal();
    }
    w
}

impl World {
    fn flow(&self, credit: u32) {
        match &self.key {
            Some((Address::Queue(q), k)) => q.flow(*k, credit, false),
            Some((Address::Anycast(a), k)) => a.flow(*k, credit, false),
            Some((Address::Multicast(m), k)) => m.flow(*k, credit, false),
            _ => {}
        }
    }

    /// Removes the journal's directory and writes until it notices.
    fn fail_journal(&self) {
        std::fs::remove_dir_all(&self.dir).expect("remove the journal directory");
        let scratch = self.tenant.create("scratch", AddressKind::Queue);
        for _ in 0..10_000 {
            let p = self.tenant.publish(
                message(None),
                Target::Address(&scratch),
                None,
                Reply::None,
                None,
            );
            if p.verdict == Some(Verdict::Refused(Refusal::StoreFailed)) {
                return;
            }
            let _ = self.journal.sync();
        }
        panic!("the journal never failed");
    }

    /// Settles every delivery the consumer has (accepted), as a consumer would.
    fn consume(&self) -> usize {
        let mut cmds = Vec::new();
        self.consumer.drain_into(&mut cmds);
        let mut n = 0;
        for c in cmds {
            if let Command::Deliver { token, settled, .. } = c {
                n += 1;
                if settled {
                    continue;
                }
                match &self.key {
                    Some((Address::Queue(q), k)) => {
                        q.settle(*k, token, throng_core::Outcome::Accepted)
                    }
                    Some((Address::Anycast(a), k)) => {
                        a.settle(*k, token, throng_core::Outcome::Accepted)
                    }
                    _ => {}
                }
            }
        }
        n
    }

    /// What the producer's outbox was told (the verdict of delivery 5), and whether it
    /// was told to resume.
    fn told(&self) -> (Option<Verdict>, bool) {
        let mut cmds = Vec::new();
        self.producer.drain_into(&mut cmds);
        let mut verdict = None;
        let mut unblocked = false;
        for c in cmds {
            match c {
                Command::Verdict {
                    link,
                    delivery: 5,
                    verdict: v,
                } if link == PRODUCER => verdict = Some(v),
                Command::Unblocked { link } if link == PRODUCER => unblocked = true,
                _ => {}
            }
        }
        (verdict, unblocked)
    }

    /// Sends one message the given way; what the producer hears, and whether it was asked
    /// to wait.
    fn send(&self, way: Way) -> (Heard, bool) {
        let from = Producer {
            outbox: &self.producer,
            link: PRODUCER,
        };
        let (tx, rx) = mpsc::channel::<Verdict>();
        let published = match way {
            Way::Plain | Way::Relay => {
                let (msg, to) = match way {
                    Way::Plain => (message(None), Target::Address(&self.address)),
                    _ => (message(Some(NAME)), Target::To),
                };
                self.tenant
                    .publish(msg, to, Some(from), Reply::Delivery(5), None)
            }
            Way::Will => {
                let call = Box::new(move |v| {
                    let _ = tx.send(v);
                });
                let to = Target::Named(NAME, AddressKind::Queue);
                self.tenant
                    .publish(message(None), to, None, Reply::Call(call), None)
            }
            Way::Transaction => {
                let mut txn = Transaction::new();
                let held = self.tenant.hold(
                    &mut txn,
                    message(None),
                    Target::Address(&self.address),
                    Some(from),
                    None,
                );
                assert!(
                    matches!(
                        held.verdict,
                        Some(Verdict::Accepted | Verdict::Released | Verdict::Refused(_))
                    ),
                    "a transactional send is answered at once: {held:?}"
                );
                let call = Box::new(move |v| {
                    let _ = tx.send(v);
                });
                self.tenant.commit(txn, Later::Call(call));
                return (self.wait_for(&rx, way), held.wait.is_some());
            }
        };
        let heard = match published.verdict {
            Some(v) => Heard::Told(v),
            None => self.wait_for(&rx, way),
        };
        (heard, published.wait.is_some())
    }

    fn wait_for(&self, rx: &mpsc::Receiver<Verdict>, way: Way) -> Heard {
        let _ = self.journal.sync();
        // the consumer settles what it got (anycast passes its outcome back)
        self.consume();
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while std::time::Instant::now() < deadline {
            let got = match way {
                Way::Will | Way::Transaction => rx.try_recv().ok(),
                _ => self.told().0,
            };
            if let Some(v) = got {
                return Heard::Told(v);
            }
            std::thread::sleep(Duration::from_millis(5));
            self.consume();
        }
        Heard::Pending
    }
}

#[test]
fn every_way_in_gets_the_answer_of_the_table() {
    use AddressKind::*;
    use State::*;
    let mut checked = 0;
    for kind in [Queue, Topic, Anycast, Multicast] {
        for state in [
            Consumer,
            NoConsumer,
            NoCredit,
            FullBlock,
            FullReject,
            StoreFailing,
        ] {
            let Some((plain, wait)) = expected(kind, state) else {
                continue;
            };
            for way in [Way::Plain, Way::Relay, Way::Will, Way::Transaction] {
                let case = format!("{kind:?}-{state:?}-{way:?}");
                let w = world(kind, state, &case);
                let (heard, asked_to_wait) = w.send(way);
                let want = match way {
                    Way::Transaction => expected_commit(kind, state, &plain),
                    _ => plain.clone(),
                };
                assert_eq!(heard, want, "{case}: what the producer hears");
                let want_wait = wait && matches!(way, Way::Plain | Way::Relay | Way::Transaction);
                assert_eq!(asked_to_wait, want_wait, "{case}: asked to wait");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 4 * (6 + 5 + 3 + 3), "every row ran");
}

#[test]
fn a_commit_that_cannot_store_everything_delivers_nothing() {
    // 50 messages of ~200 bytes to a queue holding 10 with `full_policy = "reject"`
    let w = world(AddressKind::Queue, State::NoConsumer, "txn-all-or-nothing");
    let size = message(None).len();
    let q = w.tenant.create_with(
        "small",
        AddressKind::Queue,
        &AddressOptions {
            max_bytes: Some(size * 10),
            reject_when_full: Some(true),
            ..AddressOptions::default()
        },
    );
    let Address::Queue(queue) = &q else {
        panic!("a queue")
    };
    let mut txn = Transaction::new();
    let mut refused = 0;
    for _ in 0..50 {
        let p = w
            .tenant
            .hold(&mut txn, message(None), Target::Address(&q), None, None);
        if p.verdict == Some(Verdict::Refused(Refusal::Full)) {
            refused += 1;
        }
    }
    assert_eq!(refused, 40, "the sends past the bound are refused");
    let (tx, rx) = mpsc::channel();
    w.tenant.commit(
        txn,
        Later::Call(Box::new(move |v| {
            let _ = tx.send(v);
        })),
    );
    let v = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("commit answered");
    assert_eq!(v, Verdict::Refused(Refusal::Full));
    assert_eq!(queue.depth(), 0, "nothing of a failed commit is delivered");
    assert_eq!(queue.bytes(), 0, "nor held");
}

#[test]
fn a_durable_commit_is_answered_only_once_on_disk_whatever_the_type() {
    // the journal's writer runs the callbacks; the commit's answer must not come first
    let w = world(AddressKind::Topic, State::NoCredit, "txn-durable-topic");
    let mut txn = Transaction::new();
    for _ in 0..100 {
        let p = w.tenant.hold(
            &mut txn,
            message(None),
            Target::Address(&w.address),
            None,
            None,
        );
        assert_eq!(p.verdict, Some(Verdict::Accepted));
    }
    let (tx, rx) = mpsc::channel();
    let journal = w.journal.clone();
    let before = journal.stats().records;
    w.tenant.commit(
        txn,
        Later::Call(Box::new(move |v| {
            let _ = tx.send((v, journal.stats().records - before));
        })),
    );
    let (v, written) = rx.recv_timeout(Duration::from_secs(5)).expect("answered");
    assert_eq!(v, Verdict::Accepted);
    assert!(
        written >= 100,
        "answered with {written} of 100 records written"
    );
    let Some((Address::Queue(sub), _)) = &w.key else {
        panic!("subscription")
    };
    assert_eq!(
        sub.depth(),
        100,
        "the committed messages are in the subscription"
    );
}

/// A producer link attaching to a queue or topic that is full and blocks gets no credit
/// until there is room — the same answer its first message would get — and one
/// attaching in any other state gets its window.
#[test]
fn a_producer_attaching_to_a_full_blocking_address_waits() {
    use throng_core::ProducerCredit;
    for kind in [AddressKind::Queue, AddressKind::Topic] {
        for state in [State::FullBlock, State::NoCredit, State::FullReject] {
            if expected(kind, state).is_none() {
                continue;
            }
            let w = world(kind, state, &format!("attach-{kind:?}-{state:?}"));
            let credit = w.address.attach_producer(Producer {
                outbox: &w.producer,
                link: PRODUCER,
            });
            let want = match state {
                State::FullBlock => ProducerCredit::Wait,
                _ => ProducerCredit::Window,
            };
            assert_eq!(credit, want, "{kind:?} {state:?}");
        }
    }
}

/// A producer asked to wait learns which queue it waits in — for the anonymous relay,
/// which has no address of its own, that is the only place to find it — and a producer
/// that goes before there is room leaves nothing waiting there, however often a client
/// comes and goes.
#[test]
fn a_relay_producer_that_goes_while_waiting_leaves_nothing_behind() {
    let w = world(AddressKind::Queue, State::FullBlock, "relay-waits");
    let Address::Queue(q) = &w.address else {
        unreachable!()
    };
    for link in 100..150 {
        let outbox = Arc::new(Outbox::new());
        let p = w.tenant.publish(
            message(Some(NAME)),
            Target::To,
            Some(Producer {
                outbox: &outbox,
                link: Handle(link),
            }),
            Reply::None,
            None,
        );
        let waits_in = p.wait.expect("asked to wait");
        assert!(Arc::ptr_eq(&waits_in, q), "told the queue it waits in");
        assert_eq!(q.waiting_producers(), 1);
        // the link detaches (or its connection drops) before there is room
        waits_in.remove_producer(&outbox, Handle(link));
        assert_eq!(q.waiting_producers(), 0);
    }
}
