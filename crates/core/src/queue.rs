//! A store-and-forward queue: competing consumers, redelivery in order, dead-lettering,
//! a byte bound that withholds producer credit when reached, and — with a journal —
//! durable messages that survive a crash.
//!
//! Durability: a message whose header says `durable` is appended to the journal under the
//! queue lock (so journal order is queue order) and its producer is settled only when the
//! journal reports it fsync'ed. Settling it appends an `Ack`; a failed delivery appends its
//! new count; dead-lettering enqueues in the DLQ *before* acking here, so a crash between
//! the two can duplicate a message but never lose it.

use crate::address::{ConsumerKey, Outcome};
use crate::outbox::{Command, Outbox};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use throng_amqp::engine::LinkId;
use throng_amqp::message::Message;
use throng_selector::Selector;
use throng_store::{Journal, Record};

/// Messages a dispatch with selectors looks at, at most, before it yields (bounds the
/// time a queue lock is held when consumers' selectors match little).
const SELECTOR_SCAN_LIMIT: usize = 10_000;

/// Runs once a durable message is on disk (settles its producer).
pub type OnDurable = Box<dyn FnOnce() + Send>;

/// What [`Queue::publish_durably`] did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// In the queue (in memory, or not durable): settle the producer now.
    Now,
    /// In the queue and on its way to disk: the callback settles the producer.
    WhenDurable,
    /// The journal has failed: the message was not taken.
    Failed,
}

/// Where a queue writes its durable messages: the node's journal and the queue's key in it.
#[derive(Clone)]
pub struct Persistence {
    pub journal: Journal,
    pub key: String,
}

/// Deliveries after which a message goes to the dead-letter address.
pub const DEFAULT_MAX_DELIVERY_ATTEMPTS: u32 = 10;
/// Bytes a queue holds before producers stop getting credit.
pub const DEFAULT_MAX_BYTES: usize = 256 * 1024 * 1024;

/// A message waiting in (or out on loan from) a queue.
#[derive(Debug, Clone)]
struct Entry {
    seq: u64,
    msg: Message,
    delivery_count: u32,
    /// Whether the entry is in the journal (acks must be journaled too).
    durable: bool,
}

/// Credit bookkeeping in the consumer link's delivery-count space, so credit granted by
/// the peer and deliveries still in the connection's outbox are never confused.
#[derive(Debug)]
pub(crate) struct CreditWindow {
    /// The peer's limit: its delivery-count plus the credit it granted.
    pub limit: u32,
    /// Deliveries handed to the connection so far.
    pub dispatched: u32,
    pub drain: bool,
}

impl CreditWindow {
    pub(crate) fn new() -> Self {
        CreditWindow {
            limit: 0,
            dispatched: 0,
            drain: false,
        }
    }

    /// Credit not yet used by a dispatch.
    pub(crate) fn available(&self) -> u32 {
        let c = self.limit.wrapping_sub(self.dispatched);
        if c > i32::MAX as u32 {
            0
        } else {
            c
        }
    }
}

struct Consumer {
    key: ConsumerKey,
    outbox: Arc<Outbox>,
    link: LinkId,
    presettled: bool,
    credit: CreditWindow,
    /// Only messages matching this JMS selector go to this consumer.
    selector: Option<Arc<Selector>>,
}

struct State {
    ready: VecDeque<Entry>,
    unacked: HashMap<u64, (ConsumerKey, Entry)>,
    consumers: Vec<Consumer>,
    next_consumer: usize,
    next_seq: u64,
    bytes: usize,
    blocked: Vec<(Arc<Outbox>, LinkId)>,
}

/// A queue.
pub struct Queue {
    name: String,
    max_bytes: usize,
    max_delivery_attempts: u32,
    dead_letter: Option<Arc<Queue>>,
    persistence: Option<Persistence>,
    state: Mutex<State>,
}

impl Queue {
    /// A queue whose rejected or too-often-delivered messages go to `dead_letter`.
    pub fn new(name: impl Into<String>, dead_letter: Option<Arc<Queue>>) -> Self {
        Queue {
            name: name.into(),
            max_bytes: DEFAULT_MAX_BYTES,
            max_delivery_attempts: DEFAULT_MAX_DELIVERY_ATTEMPTS,
            dead_letter,
            persistence: None,
            state: Mutex::new(State {
                ready: VecDeque::new(),
                unacked: HashMap::new(),
                consumers: Vec::new(),
                next_consumer: 0,
                next_seq: 0,
                bytes: 0,
                blocked: Vec::new(),
            }),
        }
    }

    /// Overrides the byte bound.
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Makes durable messages persistent in `p`.
    pub fn with_persistence(mut self, p: Option<Persistence>) -> Self {
        self.persistence = p;
        self
    }

    /// Whether `msg` would be written to the journal (durable header on a persistent queue).
    pub fn will_persist(&self, msg: &Message) -> bool {
        self.persistence.is_some() && msg.header().is_ok_and(|h| h.durable == Some(true))
    }

    /// Puts a message recovered from the journal back, before any client attaches.
    pub fn restore(&self, seq: u64, msg: Message, delivery_count: u32) {
        let mut st = self.lock();
        st.bytes += msg.len();
        st.next_seq = st.next_seq.max(seq + 1);
        Self::requeue(
            &mut st,
            Entry {
                seq,
                msg,
                delivery_count,
                durable: true,
            },
        );
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        crate::sync::lock(&self.state)
    }

    /// Messages waiting for a consumer.
    pub fn depth(&self) -> usize {
        self.lock().ready.len()
    }

    /// Messages delivered and not yet settled.
    pub fn unacked(&self) -> usize {
        self.lock().unacked.len()
    }

    /// Whether producers may send more.
    pub fn has_space(&self) -> bool {
        self.lock().bytes < self.max_bytes
    }

    /// Stores a message and hands it to a consumer with credit, if there is one. Returns
    /// whether the queue still has room (when not, the producer should stop and call
    /// [`Queue::notify_when_space`]).
    pub fn publish(&self, msg: Message) -> bool {
        self.publish_durably(msg, None).1
    }

    /// Like [`Queue::publish`]; a durable message is also journaled and `on_durable` runs
    /// once it is on disk. Returns what happened and whether the queue still has room.
    pub fn publish_durably(&self, msg: Message, on_durable: Option<OnDurable>) -> (Stored, bool) {
        let durable = self.will_persist(&msg);
        let mut st = self.lock();
        let seq = st.next_seq;
        let mut stored = Stored::Now;
        if let (true, Some(p)) = (durable, &self.persistence) {
            let rec = Record::Enqueue {
                queue: p.key.clone(),
                seq,
                message: msg.bytes().clone(),
            };
            match p.journal.append(rec, on_durable) {
                Ok(()) => stored = Stored::WhenDurable,
                Err(e) => {
                    tracing::error!(queue = %self.name, "journal append failed: {e}");
                    return (Stored::Failed, st.bytes < self.max_bytes);
                }
            }
        }
        st.next_seq += 1;
        st.bytes += msg.len();
        st.ready.push_back(Entry {
            seq,
            msg,
            delivery_count: 0,
            durable,
        });
        self.dispatch(&mut st);
        (stored, st.bytes < self.max_bytes)
    }

    /// Journals that a durable entry is gone.
    fn journal_ack(&self, entry: &Entry) {
        if let (true, Some(p)) = (entry.durable, &self.persistence) {
            let _ = p.journal.append(
                Record::Ack {
                    queue: p.key.clone(),
                    seq: entry.seq,
                },
                None,
            );
        }
    }

    /// Asks for a [`Command::Unblocked`] on `link` once the queue has room again.
    pub fn notify_when_space(&self, outbox: Arc<Outbox>, link: LinkId) {
        let mut st = self.lock();
        if st.bytes < self.max_bytes {
            outbox.push(Command::Unblocked { link });
        } else {
            st.blocked.push((outbox, link));
        }
    }

    /// Forgets a blocked producer (its link is gone).
    pub fn remove_producer(&self, outbox: &Arc<Outbox>, link: LinkId) {
        self.lock()
            .blocked
            .retain(|(o, l)| !(Arc::ptr_eq(o, outbox) && *l == link));
    }

    /// Registers a consumer; it gets messages once it grants credit.
    pub fn add_consumer(&self, outbox: Arc<Outbox>, link: LinkId, presettled: bool) -> ConsumerKey {
        self.add_consumer_selecting(outbox, link, presettled, None)
    }

    /// Registers a consumer that only takes messages matching `selector`; messages it
    /// skips stay in the queue, in order, for other consumers.
    pub fn add_consumer_selecting(
        &self,
        outbox: Arc<Outbox>,
        link: LinkId,
        presettled: bool,
        selector: Option<Selector>,
    ) -> ConsumerKey {
        let key = ConsumerKey::fresh();
        self.lock().consumers.push(Consumer {
            key,
            outbox,
            link,
            presettled,
            credit: CreditWindow::new(),
            selector: selector.map(Arc::new),
        });
        key
    }

    /// Updates a consumer's credit: `limit` is its delivery-count plus granted credit.
    pub fn flow(&self, key: ConsumerKey, limit: u32, drain: bool) {
        let mut st = self.lock();
        if let Some(c) = st.consumers.iter_mut().find(|c| c.key == key) {
            c.credit.limit = limit;
            c.credit.drain = drain;
        }
        self.dispatch(&mut st);
    }

    /// Removes a consumer; its unsettled messages go back to the queue in their order.
    pub fn remove_consumer(&self, key: ConsumerKey) {
        let mut st = self.lock();
        st.consumers.retain(|c| c.key != key);
        let mut back: Vec<Entry> = Vec::new();
        st.unacked.retain(|_, (k, e)| {
            if *k == key {
                back.push(e.clone());
                false
            } else {
                true
            }
        });
        back.sort_by_key(|e| e.seq);
        for e in back {
            Self::requeue(&mut st, e);
        }
        self.dispatch(&mut st);
    }

    /// Applies a consumer's outcome for the delivery `token`.
    pub fn settle(&self, key: ConsumerKey, token: u64, outcome: Outcome) {
        let mut dead: Option<Entry> = None;
        {
            let mut st = self.lock();
            let Some((owner, mut entry)) = st.unacked.remove(&token) else {
                return;
            };
            if owner != key {
                st.unacked.insert(token, (owner, entry));
                return;
            }
            match outcome {
                Outcome::Accepted => self.forget(&mut st, &entry),
                Outcome::Released | Outcome::Modified { failed: false, .. } => {
                    Self::requeue(&mut st, entry)
                }
                Outcome::Modified { failed: true, .. } => {
                    entry.delivery_count += 1;
                    if entry.delivery_count >= self.max_delivery_attempts {
                        self.release_bytes(&mut st, &entry);
                        dead = Some(entry);
                    } else {
                        if let (true, Some(p)) = (entry.durable, &self.persistence) {
                            let rec = Record::DeliveryCount {
                                queue: p.key.clone(),
                                seq: entry.seq,
                                count: entry.delivery_count,
                            };
                            let _ = p.journal.append(rec, None);
                        }
                        Self::requeue(&mut st, entry);
                    }
                }
                Outcome::Rejected => {
                    self.release_bytes(&mut st, &entry);
                    dead = Some(entry);
                }
            }
            self.dispatch(&mut st);
        }
        if let Some(entry) = dead {
            // into the DLQ first, then gone from here: a crash in between duplicates
            if let Some(dlq) = &self.dead_letter {
                dlq.publish_durably(entry.msg.clone(), None);
            }
            self.journal_ack(&entry);
        }
    }

    /// Puts a delivery the connection could not send back at the head, unchanged.
    pub fn undeliverable(&self, key: ConsumerKey, token: u64) {
        let mut st = self.lock();
        if let Some((owner, entry)) = st.unacked.remove(&token) {
            if owner == key {
                Self::requeue(&mut st, entry);
            } else {
                st.unacked.insert(token, (owner, entry));
            }
        }
    }

    /// An entry is settled: journal its ack and release its bytes.
    fn forget(&self, st: &mut State, entry: &Entry) {
        self.journal_ack(entry);
        self.release_bytes(st, entry);
    }

    fn release_bytes(&self, st: &mut State, entry: &Entry) {
        st.bytes = st.bytes.saturating_sub(entry.msg.len());
        if st.bytes < self.max_bytes && !st.blocked.is_empty() {
            for (outbox, link) in st.blocked.drain(..) {
                outbox.push(Command::Unblocked { link });
            }
        }
    }

    /// Returns an entry to the ready list at its place in sequence order.
    fn requeue(st: &mut State, e: Entry) {
        let pos = st.ready.partition_point(|x| x.seq < e.seq);
        st.ready.insert(pos, e);
    }

    fn dispatch(&self, st: &mut State) {
        if st.consumers.iter().any(|c| c.selector.is_some()) {
            self.dispatch_selecting(st);
        } else {
            self.dispatch_in_order(st);
        }
        // presettled dispatch may have freed room
        if st.bytes < self.max_bytes && !st.blocked.is_empty() {
            for (outbox, link) in st.blocked.drain(..) {
                outbox.push(Command::Unblocked { link });
            }
        }
    }

    /// No selectors: the head of the queue goes to the next consumer with credit.
    fn dispatch_in_order(&self, st: &mut State) {
        let n = st.consumers.len();
        while !st.ready.is_empty() && n > 0 {
            let Some(idx) = (0..n)
                .map(|i| (st.next_consumer + i) % n)
                .find(|&idx| st.consumers[idx].credit.available() > 0)
            else {
                break;
            };
            st.next_consumer = (idx + 1) % n;
            self.hand_over(st, idx, 0);
        }
        if st.ready.is_empty() {
            Self::complete_drains(st);
        }
    }

    /// Some consumers select: each message, in order, goes to the next consumer (round
    /// robin) with credit whose selector it matches; unmatched messages wait in place.
    fn dispatch_selecting(&self, st: &mut State) {
        let n = st.consumers.len();
        let mut index = 0;
        let mut scanned = 0;
        while index < st.ready.len() && scanned < SELECTOR_SCAN_LIMIT {
            if !st.consumers.iter().any(|c| c.credit.available() > 0) {
                break;
            }
            scanned += 1;
            let msg = &st.ready[index].msg;
            let chosen = (0..n).map(|i| (st.next_consumer + i) % n).find(|&idx| {
                let c = &st.consumers[idx];
                c.credit.available() > 0 && c.selector.as_ref().is_none_or(|s| s.matches(msg))
            });
            match chosen {
                Some(idx) => {
                    st.next_consumer = (idx + 1) % n;
                    self.hand_over(st, idx, index);
                }
                None => index += 1,
            }
        }
        // every remaining message was looked at: a draining consumer matched none
        if index >= st.ready.len() {
            Self::complete_drains(st);
        }
    }

    /// Completes the drain of every draining consumer that still has credit.
    fn complete_drains(st: &mut State) {
        for c in st.consumers.iter_mut() {
            if c.credit.drain && c.credit.available() > 0 {
                c.credit.dispatched = c.credit.limit;
                c.credit.drain = false;
                c.outbox.push(Command::Drained { link: c.link });
            }
        }
    }

    /// Hands the entry at `index` of the ready list to consumer `idx`.
    fn hand_over(&self, st: &mut State, idx: usize, index: usize) {
        let Some(entry) = st.ready.remove(index) else {
            return;
        };
        let c = &mut st.consumers[idx];
        c.credit.dispatched = c.credit.dispatched.wrapping_add(1);
        c.outbox.push(Command::Deliver {
            link: c.link,
            msg: entry.msg.clone(),
            token: entry.seq,
            settled: c.presettled,
            delivery_count: entry.delivery_count,
        });
        if c.presettled {
            st.bytes = st.bytes.saturating_sub(entry.msg.len());
            self.journal_ack(&entry);
        } else {
            let key = c.key;
            st.unacked.insert(entry.seq, (key, entry));
        }
    }
}
