//! A store-and-forward queue: competing consumers, redelivery in order, dead-lettering,
//! a byte bound that withholds producer credit when reached, and — with a journal —
//! durable messages that survive a crash.
//!
//! Durability: a message whose header says `durable` is appended to the journal under the
//! queue lock (so journal order is queue order) and its producer is settled only when the
//! journal reports it fsync'ed. Settling it appends an `Ack`; a failed delivery appends its
//! new count; dead-lettering enqueues in the DLQ *before* acking here, so a crash between
//! the two can duplicate a message but never lose it.
//!
//! Bounded memory: a persistent queue keeps at most its memory limit of messages in
//! memory (ready, scheduled and out on loan together). Past it, new messages go to the
//! queue's page files ([`PageStore`]) in arrival order — and so do all later ones while
//! any wait there, so order is kept — and are read back a batch at a time as memory
//! frees up. Durable messages are in the journal as well; the page files are scratch.
//! Selectors and browsers see the messages in memory (paged ones as they come back).
//!
//! The parts, one concern a file: `entry` (what a queued message carries, and the
//! clock its times are read from), `store` (a message coming in: stored, journaled,
//! staged for a transaction, restored after a restart; purge and expiry), `paging`
//! (past the memory limit, to page files and back), `schedule` (scheduled delivery
//! and redelivery delay), `consumers` (consumers, browsers and waiting producers
//! coming and going, credit), `dispatch` (which consumer gets which message:
//! in order, by selector, to browsers), `settle` (what a consumer's outcome does).
//! `ready` holds the messages waiting for a consumer, by priority.

mod consumers;
mod dispatch;
mod entry;
mod paging;
mod ready;
mod schedule;
mod settle;
mod store;

pub(crate) use entry::Entry;
use entry::Now;
pub use entry::Prepared;
pub use settle::MAX_MODIFIED_ANNOTATIONS;

use crate::clock::{Clock, SharedClock};
use crate::link::{ConsumerKey, CreditWindow, Handle, Outcome, Refusal};
use crate::outbox::{Command, Outbox};
use ready::{ReadyList, LEVELS};
use std::sync::{Arc, Mutex, MutexGuard};
use throng_amqp::definitions::Header;
use throng_amqp::message::Message;
use throng_idmap::IdMap;
use throng_selector::Selector;
pub use throng_store::Written;
use throng_store::{Journal, PageStore, PagedMeta, Record, DEFAULT_PAGE_FILE_BYTES};

/// Runs once a durable message is on disk (settles its producer), or with
/// [`Written::Failed`] if the journal failed before it was (the producer is then told the
/// store failed instead of waiting for ever).
pub type OnDurable = throng_store::OnWritten;

/// Makes the [`OnDurable`] callback, called only for a message that is journaled, so
/// non-durable messages cost no allocation.
pub type MakeOnDurable<'a> = &'a dyn Fn() -> OnDurable;

/// What `Queue::publish_durably` did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// In the queue (in memory, or not durable): settle the producer now.
    Now,
    /// In the queue and on its way to disk: the callback settles the producer.
    WhenDurable,
    /// The journal has failed: the message was not taken.
    Failed,
    /// The queue is full and its policy is to reject: the message was not taken.
    Full,
}

/// Where a queue writes its durable messages: the node's journal and the queue's key in it.
#[derive(Clone)]
pub struct Persistence {
    pub journal: Journal,
    pub key: String,
}

/// Deliveries after which a message goes to the dead-letter address.
pub const DEFAULT_MAX_DELIVERY_ATTEMPTS: u32 = 10;
/// Bytes a queue holds before producers stop getting credit, when it has no page files
/// (no journal): all of them are in memory.
pub const DEFAULT_MAX_BYTES: usize = 256 * 1024 * 1024;
/// Bytes a persistent queue holds, on disk and in memory, before producers stop getting
/// credit (or are rejected): the default disk limit.
pub const DEFAULT_MAX_DISK_BYTES: usize = 4 * 1024 * 1024 * 1024;
/// Bytes of messages a persistent queue keeps in memory; the rest wait in page files.
pub const DEFAULT_MEMORY_LIMIT: usize = 32 * 1024 * 1024;

struct Consumer {
    key: ConsumerKey,
    outbox: Arc<Outbox>,
    link: Handle,
    presettled: bool,
    credit: CreditWindow,
    /// Only messages matching this JMS selector go to this consumer.
    selector: Option<Arc<Selector>>,
    /// A browser (distribution-mode `copy`) sees copies and takes nothing: the sequence
    /// number from which it has not yet seen messages.
    browse_from: Option<u64>,
}

impl Consumer {
    /// Whether this consumer acquires messages (is not a browser) and has credit.
    fn can_take(&self) -> bool {
        self.browse_from.is_none() && self.credit.available() > 0
    }
}

struct State {
    ready: ReadyList,
    /// Messages not yet due (scheduled delivery, redelivery delay), by due time.
    scheduled: std::collections::BTreeMap<(u64, u64), Entry>,
    /// Due time of the armed wake-up timer, if one is armed.
    timer_at: Option<u64>,
    /// Expired entries waiting to go to the expiry address once the lock is released.
    expired: Vec<Entry>,
    expired_count: u64,
    /// Deliveries awaiting settlement, by sequence number.
    unacked: IdMap<u64, (ConsumerKey, Entry)>,
    consumers: Vec<Consumer>,
    next_consumer: usize,
    next_seq: u64,
    /// Bytes of every message in the queue: in memory, on loan and paged.
    bytes: usize,
    /// Bytes of the messages in memory (ready, scheduled, on loan).
    mem_bytes: usize,
    /// Messages past the memory limit, on disk in arrival order (created on first use).
    pages: Option<PageStore>,
    /// Whether a page-file failure has been logged (once per queue).
    page_error_logged: bool,
    /// Whether a refused journal append has been logged (once per queue: after a
    /// failure the journal refuses every write, and each producer is told anyway).
    journal_error_logged: bool,
    /// Producers waiting for room: their outbox, link, and the bytes they need.
    blocked: Vec<(Arc<Outbox>, Handle, usize)>,
}

/// A queue.
pub struct Queue {
    name: String,
    max_bytes: usize,
    /// Bytes of messages kept in memory before new ones are paged (persistent queues).
    memory_limit: usize,
    max_delivery_attempts: u32,
    dead_letter: Option<Arc<Queue>>,
    expiry: Option<Arc<Queue>>,
    persistence: Option<Persistence>,
    /// Delay before a released or failed message is offered again (ms; 0 = at once).
    redelivery_delay: u64,
    /// When full, reject new messages instead of withholding producer credit.
    reject_when_full: bool,
    /// This queue, for the timer that wakes scheduled messages (set by `into_arc`).
    me: std::sync::Weak<Queue>,
    /// Where expiry, delivery and redelivery times are read and their timers armed.
    clock: SharedClock,
    state: Mutex<State>,
}

impl Queue {
    /// A queue whose rejected or too-often-delivered messages go to `dead_letter`.
    pub fn new(name: impl Into<String>, dead_letter: Option<Arc<Queue>>) -> Self {
        Queue {
            name: name.into(),
            max_bytes: DEFAULT_MAX_BYTES,
            memory_limit: DEFAULT_MEMORY_LIMIT,
            max_delivery_attempts: DEFAULT_MAX_DELIVERY_ATTEMPTS,
            dead_letter,
            expiry: None,
            persistence: None,
            redelivery_delay: 0,
            reject_when_full: false,
            me: std::sync::Weak::new(),
            clock: crate::clock::system(),
            state: Mutex::new(State {
                ready: ReadyList::default(),
                scheduled: std::collections::BTreeMap::new(),
                timer_at: None,
                expired: Vec::new(),
                expired_count: 0,
                unacked: IdMap::default(),
                consumers: Vec::new(),
                next_consumer: 0,
                next_seq: 0,
                bytes: 0,
                mem_bytes: 0,
                pages: None,
                page_error_logged: false,
                journal_error_logged: false,
                blocked: Vec::new(),
            }),
        }
    }

    /// Reads time from, and arms timers on, `clock` instead of the system's.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Overrides the byte bound.
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Overrides how many bytes of messages stay in memory before new ones are paged
    /// to disk (only a persistent queue pages; others hold everything in memory).
    pub fn with_memory_limit(mut self, bytes: usize) -> Self {
        self.memory_limit = bytes.max(1);
        self
    }

    /// Shares the queue; the handle lets its timer wake scheduled messages.
    pub fn into_arc(self) -> Arc<Queue> {
        Arc::new_cyclic(|me| Queue {
            me: me.clone(),
            ..self
        })
    }

    /// When full, rejects new messages (`amqp:resource-limit-exceeded`) instead of
    /// withholding producer credit.
    pub fn with_reject_when_full(mut self, reject: bool) -> Self {
        self.reject_when_full = reject;
        self
    }

    /// Whether a full queue rejects rather than blocks.
    pub fn rejects_when_full(&self) -> bool {
        self.reject_when_full
    }

    /// Offers released and failed messages again only after `ms` milliseconds.
    pub fn with_redelivery_delay(mut self, ms: u64) -> Self {
        self.redelivery_delay = ms;
        self
    }

    /// Overrides how many failed deliveries send a message to the dead-letter address.
    pub fn with_max_delivery_attempts(mut self, n: u32) -> Self {
        self.max_delivery_attempts = n.max(1);
        self
    }

    /// Sends expired messages to `q` instead of dropping them.
    pub fn with_expiry_queue(mut self, q: Option<Arc<Queue>>) -> Self {
        self.expiry = q;
        self
    }

    /// Makes durable messages persistent in `p`.
    pub fn with_persistence(mut self, p: Option<Persistence>) -> Self {
        self.persistence = p;
        self
    }

    /// Whether `msg` would be written to the journal (durable header on a persistent queue).
    pub fn will_persist(&self, msg: &Message) -> bool {
        self.is_persistent() && msg.header().is_ok_and(|h| h.durable == Some(true))
    }

    /// Whether the queue journals durable messages.
    pub fn is_persistent(&self) -> bool {
        self.persistence.is_some()
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
        let st = self.lock();
        st.ready.len() + st.scheduled.len() + st.pages.as_ref().map_or(0, |p| p.len() as usize)
    }

    /// Messages delivered and not yet settled.
    pub fn unacked(&self) -> usize {
        self.lock().unacked.len()
    }

    /// Whether producers may send more.
    pub fn has_space(&self) -> bool {
        self.lock().bytes < self.max_bytes
    }

    /// The byte bound: memory and page files together (`max_bytes`).
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Bytes the queue holds now (in memory, on loan and paged).
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Bytes of messages held in memory (ready, scheduled, out on loan).
    pub fn memory_bytes(&self) -> usize {
        self.lock().mem_bytes
    }

    /// Messages that expired in this queue so far.
    pub fn expired(&self) -> u64 {
        self.lock().expired_count
    }

    /// Releases the lock, then moves what expired meanwhile to the expiry address (never
    /// while holding this queue's lock: the expiry queue may be this one's DLQ or expiry).
    fn finish(&self, mut st: MutexGuard<'_, State>) {
        let expired = std::mem::take(&mut st.expired);
        drop(st);
        for entry in expired {
            if let Some(q) = &self.expiry {
                q.store(
                    entry.msg.clone(),
                    &Prepared::of(&entry.msg, &*self.clock),
                    None,
                    false,
                );
            }
            self.journal_ack(&entry);
        }
    }
}
