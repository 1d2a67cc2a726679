//! A store-and-forward queue held in memory: competing consumers, redelivery in order,
//! dead-lettering, and a byte bound that withholds producer credit when reached.

use crate::address::{ConsumerKey, Outcome};
use crate::outbox::{Command, Outbox};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use throng_amqp::engine::LinkId;
use throng_amqp::message::Message;

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
        let mut st = self.lock();
        st.bytes += msg.len();
        let seq = st.next_seq;
        st.next_seq += 1;
        st.ready.push_back(Entry {
            seq,
            msg,
            delivery_count: 0,
        });
        self.dispatch(&mut st);
        st.bytes < self.max_bytes
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
        let key = ConsumerKey::fresh();
        self.lock().consumers.push(Consumer {
            key,
            outbox,
            link,
            presettled,
            credit: CreditWindow::new(),
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
        let mut dead = None;
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
                        self.forget(&mut st, &entry);
                        dead = Some(entry.msg);
                    } else {
                        Self::requeue(&mut st, entry);
                    }
                }
                Outcome::Rejected => {
                    self.forget(&mut st, &entry);
                    dead = Some(entry.msg);
                }
            }
            self.dispatch(&mut st);
        }
        if let (Some(msg), Some(dlq)) = (dead, &self.dead_letter) {
            dlq.publish(msg);
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

    fn forget(&self, st: &mut State, entry: &Entry) {
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
        let n = st.consumers.len();
        while !st.ready.is_empty() && n > 0 {
            // next consumer with credit, round robin
            let mut chosen = None;
            for i in 0..n {
                let idx = (st.next_consumer + i) % n;
                if st.consumers[idx].credit.available() > 0 {
                    chosen = Some(idx);
                    break;
                }
            }
            let Some(idx) = chosen else { break };
            st.next_consumer = (idx + 1) % n;
            let Some(entry) = st.ready.pop_front() else {
                break;
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
            } else {
                let key = c.key;
                st.unacked.insert(entry.seq, (key, entry));
            }
        }
        if st.ready.is_empty() {
            for c in st.consumers.iter_mut() {
                if c.credit.drain && c.credit.available() > 0 {
                    c.credit.dispatched = c.credit.limit;
                    c.credit.drain = false;
                    c.outbox.push(Command::Drained { link: c.link });
                }
            }
        }
        // presettled dispatch may have freed room
        if st.bytes < self.max_bytes && !st.blocked.is_empty() {
            for (outbox, link) in st.blocked.drain(..) {
                outbox.push(Command::Unblocked { link });
            }
        }
    }
}
