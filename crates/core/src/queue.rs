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

use crate::link::{ConsumerKey, CreditWindow, Handle, Outcome, Refusal};
use crate::outbox::{Command, Outbox};
use crate::ready::{ReadyList, LEVELS};
use std::sync::{Arc, Mutex, MutexGuard};
use throng_amqp::definitions::Header;
use throng_amqp::message::Message;
use throng_idmap::IdMap;
use throng_selector::Selector;
pub use throng_store::Written;
use throng_store::{Journal, PageStore, PagedMeta, Record, DEFAULT_PAGE_FILE_BYTES};

/// Messages a dispatch with selectors looks at, at most, before it yields (bounds the
/// time a queue lock is held when consumers' selectors match little).
const SELECTOR_SCAN_LIMIT: usize = 10_000;

/// Runs once a durable message is on disk (settles its producer), or with
/// [`Written::Failed`] if the journal failed before it was (the producer is then told the
/// store failed instead of waiting for ever).
pub type OnDurable = throng_store::OnWritten;

/// Makes the [`OnDurable`] callback, called only for a message that is journaled, so
/// non-durable messages cost no allocation.
pub type MakeOnDurable<'a> = &'a dyn Fn() -> OnDurable;

/// What [`Queue::publish_durably`] did with a message.
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
/// Bytes read back from page files at a time.
const PAGE_IN_BATCH: usize = 1024 * 1024;
/// Largest message-annotations section a `modified` outcome's merge may leave a message
/// with (a consumer could otherwise grow a message at every redelivery).
pub const MAX_MODIFIED_ANNOTATIONS: usize = 64 * 1024;

/// A message waiting in (or out on loan from) a queue.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) seq: u64,
    pub(crate) msg: Message,
    pub(crate) delivery_count: u32,
    /// Whether the entry is in the journal (acks must be journaled too).
    pub(crate) durable: bool,
    /// Header priority, 0–9 (default 4).
    pub(crate) priority: u8,
    /// Not to be delivered before this time, ms since the Unix epoch (message annotation
    /// `x-opt-delivery-time`, or arrival + `x-opt-delivery-delay`).
    pub(crate) deliver_at: Option<u64>,
    /// When it expires, in ms since the Unix epoch (header ttl from arrival, or the
    /// properties' absolute-expiry-time, whichever is sooner).
    pub(crate) expires_at: Option<u64>,
    /// The consumers that settled it `modified` with `undeliverable-here`: it is not
    /// offered to them again. A boxed slice: one pointer, and no allocation, for the
    /// messages nobody refused (rebuilt on the rare refusal).
    pub(crate) not_to: Option<Box<[ConsumerKey]>>,
}

/// What a queue needs to know of a message besides its bytes — header facts, expiry,
/// scheduled time — read once per publish: a topic hands the same one to every
/// subscription queue instead of each decoding the message again (each decode also
/// touches the message buffer's shared reference count).
#[derive(Debug, Clone)]
pub struct Prepared {
    durable: bool,
    priority: u8,
    expires_at: Option<u64>,
    deliver_at: Option<u64>,
}

impl Prepared {
    /// Reads `msg`'s header, expiry and scheduling annotations.
    pub fn of(msg: &Message) -> Prepared {
        Self::with_header(msg, &msg.header().unwrap_or_default())
    }

    fn with_header(msg: &Message, header: &Header) -> Prepared {
        let mut now = Clock::lazy();
        let by_ttl = header.ttl.map(|t| now.ms() + t as u64);
        let absolute = msg
            .absolute_expiry_time()
            .ok()
            .flatten()
            .filter(|t| *t > 0)
            .map(|t| t as u64);
        let expires_at = match (by_ttl, absolute) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let deliver_at = if msg.has_message_annotations() {
            scheduled_time(msg, &mut now)
        } else {
            None
        };
        Prepared {
            durable: header.durable == Some(true),
            priority: header.priority.unwrap_or(4).min(LEVELS as u8 - 1),
            expires_at,
            deliver_at,
        }
    }

    /// Whether the header says `durable`.
    pub fn durable(&self) -> bool {
        self.durable
    }
}

impl Entry {
    /// A fresh entry from the message and what was read of it.
    fn new(seq: u64, msg: Message, prep: &Prepared, delivery_count: u32, durable: bool) -> Entry {
        Entry {
            seq,
            msg,
            delivery_count,
            durable,
            priority: prep.priority,
            expires_at: prep.expires_at,
            deliver_at: prep.deliver_at,
            not_to: None,
        }
    }

    fn expired(&self, now: &mut Clock) -> bool {
        self.expires_at.is_some_and(|t| t <= now.ms())
    }

    /// Whether it may go to consumer `key` (none refused it).
    fn deliverable_to(&self, key: ConsumerKey) -> bool {
        self.not_to.as_ref().is_none_or(|keys| !keys.contains(&key))
    }
}

/// The delivery time a message asks for in its annotations (`x-opt-delivery-time`, a
/// timestamp, or `x-opt-delivery-delay`, milliseconds from `now`), if in the future.
fn scheduled_time(msg: &Message, now: &mut Clock) -> Option<u64> {
    // one pass, no allocation for the annotations it does not want (MQTT messages always
    // carry a few)
    let [time, delay] = msg
        .find_annotations(["x-opt-delivery-time", "x-opt-delivery-delay"])
        .ok()?;
    let at = match (time, delay) {
        (Some(throng_amqp::Value::Timestamp(t)), _) => Some(t as u64),
        (Some(v), _) => v.as_i64().map(|t| t as u64),
        (None, Some(v)) => v.as_i64().filter(|d| *d > 0).map(|d| now.ms() + d as u64),
        (None, None) => return None,
    };
    at.filter(|t| *t > now.ms())
}

/// The time, read at most once per dispatch pass or message, and only if a message has an
/// expiry or a delivery time: most have neither, and reading the clock is a measurable
/// share of a small message's cost.
struct Clock(Option<u64>);

impl Clock {
    fn lazy() -> Self {
        Clock(None)
    }

    fn ms(&mut self) -> u64 {
        *self.0.get_or_insert_with(now_ms)
    }
}

/// Milliseconds since the Unix epoch: the clock expiry and delivery times are kept in
/// (adapters that report a message's remaining lifetime read the same one).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

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

    /// Keeps `entry` until `due`, arming the wake-up timer if it is the earliest.
    fn schedule(&self, st: &mut State, entry: Entry, due: u64) {
        st.scheduled.insert((due, entry.seq), entry);
        if st.timer_at.is_some_and(|t| t <= due) {
            return;
        }
        let (Some(me), Ok(rt)) = (self.me.upgrade(), tokio::runtime::Handle::try_current()) else {
            return; // no runtime (unit tests): due messages move on the next dispatch
        };
        st.timer_at = Some(due);
        let wait = std::time::Duration::from_millis(due.saturating_sub(now_ms()));
        rt.spawn(async move {
            tokio::time::sleep(wait).await;
            me.wake_scheduled();
        });
    }

    /// Timer expiry: due messages become ready; the timer is re-armed for the next one.
    fn wake_scheduled(&self) {
        let mut st = self.lock();
        st.timer_at = None;
        self.dispatch(&mut st);
        if let Some((&(due, seq), _)) = st.scheduled.first_key_value() {
            if let Some(e) = st.scheduled.remove(&(due, seq)) {
                self.schedule(&mut st, e, due);
            }
        }
        self.finish(st);
    }

    /// Moves scheduled messages that are due to the ready list.
    fn release_due(st: &mut State, now: u64) {
        while let Some(entry) = st.scheduled.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let e = entry.remove();
            st.ready.requeue(e);
        }
    }

    /// Returns a released or failed message, after the redelivery delay if there is one.
    fn redeliver(&self, st: &mut State, entry: Entry) {
        if self.redelivery_delay > 0 {
            let due = now_ms() + self.redelivery_delay;
            self.schedule(st, entry, due);
        } else {
            st.ready.requeue(entry);
        }
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

    /// Messages that expired in this queue so far.
    pub fn expired(&self) -> u64 {
        self.lock().expired_count
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

    /// Puts a message recovered from the journal back, before any client attaches.
    pub fn restore(&self, seq: u64, msg: Message, delivery_count: u32) {
        let mut st = self.lock();
        st.bytes += msg.len();
        st.next_seq = st.next_seq.max(seq + 1);
        let prep = Prepared::of(&msg);
        let entry = Entry::new(seq, msg, &prep, delivery_count, true);
        self.admit(&mut st, entry, true);
    }

    /// Puts a new entry (already counted in `bytes`) where it belongs: the scheduled
    /// set, the page files (memory full, or older messages wait there), or the ready
    /// list. `in_order` says its sequence number is the highest yet.
    fn admit(&self, st: &mut State, entry: Entry, in_order: bool) {
        if let Some(due) = entry.deliver_at {
            st.mem_bytes += entry.msg.len();
            self.schedule(st, entry, due);
            return;
        }
        let entry = if self.must_page(st, entry.msg.len()) {
            match self.page_out(st, entry) {
                None => return,
                Some(entry) => entry,
            }
        } else {
            entry
        };
        st.mem_bytes += entry.msg.len();
        if in_order {
            st.ready.push(entry);
        } else {
            st.ready.requeue(entry);
        }
    }

    /// Whether a new message of `len` bytes goes to disk: older messages already wait
    /// there (order), or it would take memory past the limit.
    fn must_page(&self, st: &State, len: usize) -> bool {
        self.persistence.is_some()
            && (st.pages.as_ref().is_some_and(|p| !p.is_empty())
                || st.mem_bytes + len > self.memory_limit)
    }

    /// The queue's page directory, under the journal's.
    fn page_dir(&self) -> Option<std::path::PathBuf> {
        let p = self.persistence.as_ref()?;
        Some(p.journal.pages_dir().join(page_dir_name(&p.key)))
    }

    /// Writes an entry to the page files. Gives it back if that fails: it then stays in
    /// memory, so nothing is lost (the failure is logged once).
    fn page_out(&self, st: &mut State, entry: Entry) -> Option<Entry> {
        if st.pages.is_none() {
            let Some(dir) = self.page_dir() else {
                return Some(entry);
            };
            match PageStore::create(dir, DEFAULT_PAGE_FILE_BYTES) {
                Ok(p) => st.pages = Some(p),
                Err(e) => {
                    self.page_failed(st, &e);
                    return Some(entry);
                }
            }
        }
        let meta = PagedMeta {
            seq: entry.seq,
            delivery_count: entry.delivery_count,
            expires_at: entry.expires_at,
            priority: entry.priority,
            durable: entry.durable,
        };
        let result = match st.pages.as_mut() {
            Some(pages) => pages.append(meta, entry.msg.bytes()),
            None => return Some(entry),
        };
        match result {
            Ok(()) => None,
            Err(e) => {
                self.page_failed(st, &e);
                Some(entry)
            }
        }
    }

    fn page_failed(&self, st: &mut State, e: &std::io::Error) {
        if !std::mem::replace(&mut st.page_error_logged, true) {
            tracing::error!(queue = %self.name, "cannot write page files, keeping messages in memory past the limit: {e}");
        }
    }

    /// Reads paged messages back: while memory is under half its limit, or — `force` —
    /// one batch (a consumer with credit is waiting, nothing else is ready, and memory
    /// is under its limit: the limit is exceeded by at most one batch).
    fn page_in(&self, st: &mut State, force: bool) {
        let State {
            pages,
            mem_bytes,
            ready,
            bytes,
            ..
        } = st;
        let Some(store) = pages.as_mut() else {
            return;
        };
        let mut forced = force;
        while !store.is_empty() && (forced || *mem_bytes < self.memory_limit / 2) {
            forced = false;
            let want = (self.memory_limit * 3 / 4)
                .saturating_sub(*mem_bytes)
                .clamp(1, PAGE_IN_BATCH);
            let batch = match store.read(want) {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::error!(queue = %self.name, lost = store.len(), "page files unreadable; their messages are dropped (durable ones come back from the journal on restart): {e}");
                    *bytes = bytes.saturating_sub(store.bytes() as usize);
                    *pages = None;
                    return;
                }
            };
            for m in batch {
                let len = m.message.len();
                match Message::parse(m.message) {
                    Ok(msg) => {
                        *mem_bytes += len;
                        ready.requeue(Entry {
                            seq: m.meta.seq,
                            msg,
                            delivery_count: m.meta.delivery_count,
                            durable: m.meta.durable,
                            priority: m.meta.priority.min(LEVELS as u8 - 1),
                            deliver_at: None,
                            expires_at: m.meta.expires_at,
                            not_to: None,
                        });
                    }
                    Err(e) => {
                        tracing::warn!(queue = %self.name, seq = m.meta.seq, "paged message unparseable, dropped: {e}");
                        *bytes = bytes.saturating_sub(len);
                    }
                }
            }
        }
    }

    /// Messages waiting in page files, and their bytes.
    pub fn paged(&self) -> (u64, u64) {
        let st = self.lock();
        st.pages.as_ref().map_or((0, 0), |p| (p.len(), p.bytes()))
    }

    /// Bytes of messages held in memory (ready, scheduled, out on loan).
    pub fn memory_bytes(&self) -> usize {
        self.lock().mem_bytes
    }

    /// Removes every message waiting in the queue, in memory and paged; messages out on
    /// loan to consumers stay theirs. Returns how many were removed.
    pub fn purge(&self) -> u64 {
        let mut st = self.lock();
        let mut gone = Vec::with_capacity(st.ready.len() + st.scheduled.len());
        while let Some(e) = st.ready.pop_first() {
            gone.push(e);
        }
        gone.extend(std::mem::take(&mut st.scheduled).into_values());
        let mut removed = gone.len() as u64;
        for e in &gone {
            self.forget(&mut st, e);
        }
        if let Some(mut pages) = st.pages.take() {
            loop {
                match pages.read(PAGE_IN_BATCH) {
                    Ok(batch) if !batch.is_empty() => {
                        for m in batch {
                            removed += 1;
                            st.bytes = st.bytes.saturating_sub(m.message.len());
                            if let (true, Some(p)) = (m.meta.durable, &self.persistence) {
                                let _ = p.journal.append(
                                    Record::Ack {
                                        queue: p.key.clone(),
                                        seq: m.meta.seq,
                                    },
                                    None,
                                );
                            }
                        }
                    }
                    Ok(_) => break,
                    Err(e) => {
                        tracing::error!(queue = %self.name, "purge: page files unreadable: {e}");
                        st.bytes = st.bytes.saturating_sub(pages.bytes() as usize);
                        break;
                    }
                }
            }
        }
        self.unblock_if_room(&mut st);
        self.finish(st);
        removed
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

    /// Stores a message and hands it to a consumer with credit, if there is one; a durable
    /// message is also journaled and `on_durable` runs once it is on disk. Returns what
    /// happened and whether the queue still has room. Producers reach this through
    /// [`crate::Tenant::publish`], which decides what they are told.
    pub(crate) fn publish_durably(
        &self,
        msg: Message,
        on_durable: Option<MakeOnDurable<'_>>,
    ) -> (Stored, bool) {
        let prep = Prepared::of(&msg);
        self.store(msg, &prep, on_durable, true)
    }

    /// Like [`Queue::publish_durably`] with the message already read (a topic reads it
    /// once for all its subscriptions).
    pub(crate) fn publish_prepared(
        &self,
        msg: Message,
        prep: &Prepared,
        on_durable: Option<MakeOnDurable<'_>>,
    ) -> (Stored, bool) {
        self.store(msg, prep, on_durable, true)
    }

    /// Stores a message; without `expires`, it never expires here (a message moved to an
    /// expiry address must not expire again).
    fn store(
        &self,
        msg: Message,
        prep: &Prepared,
        on_durable: Option<MakeOnDurable<'_>>,
        expires: bool,
    ) -> (Stored, bool) {
        let durable = self.is_persistent() && prep.durable;
        let mut st = self.lock();
        if self.reject_when_full && st.bytes >= self.max_bytes {
            return (Stored::Full, false);
        }
        let seq = st.next_seq;
        let stored = match self.journal_enqueue(&mut st, durable, seq, &msg, on_durable) {
            Ok(true) => Stored::WhenDurable,
            Ok(false) => Stored::Now,
            Err(()) => return (Stored::Failed, st.bytes < self.max_bytes),
        };
        st.next_seq += 1;
        st.bytes += msg.len();
        let mut entry = Entry::new(seq, msg, prep, 0, durable);
        if !expires {
            entry.expires_at = None;
        }
        self.admit(&mut st, entry, true);
        self.dispatch(&mut st);
        let room = st.bytes < self.max_bytes;
        self.finish(st);
        (stored, room)
    }

    /// Takes a transaction's message in without showing it to consumers: counted against
    /// the byte bound (refused when it does not fit, whatever the full policy: a commit
    /// never takes a queue past its bound) and journaled when durable, `on_durable`
    /// running once it is on disk. Returns the entry and whether it was journaled;
    /// [`Queue::admit_staged`] shows it once the whole transaction is safe,
    /// [`Queue::abandon_staged`] takes it back.
    pub(crate) fn stage(
        &self,
        msg: Message,
        prep: &Prepared,
        on_durable: Option<MakeOnDurable<'_>>,
    ) -> Result<(Entry, bool), Refusal> {
        let durable = self.is_persistent() && prep.durable;
        let mut st = self.lock();
        if st.bytes.saturating_add(msg.len()) > self.max_bytes {
            return Err(Refusal::Full);
        }
        let seq = st.next_seq;
        let journaled = self
            .journal_enqueue(&mut st, durable, seq, &msg, on_durable)
            .map_err(|()| Refusal::StoreFailed)?;
        st.next_seq += 1;
        st.bytes += msg.len();
        Ok((Entry::new(seq, msg, prep, 0, durable), journaled))
    }

    /// Appends the `Enqueue` record of a durable message under the queue lock (journal
    /// order is queue order), `on_durable` running once it is on disk. `Ok(false)`: not
    /// journaled (not durable, or no journal); `Err`: the journal refused it (logged once
    /// per queue).
    fn journal_enqueue(
        &self,
        st: &mut State,
        durable: bool,
        seq: u64,
        msg: &Message,
        on_durable: Option<MakeOnDurable<'_>>,
    ) -> Result<bool, ()> {
        let (true, Some(p)) = (durable, &self.persistence) else {
            return Ok(false);
        };
        let rec = Record::Enqueue {
            queue: p.key.clone(),
            seq,
            message: msg.bytes().clone(),
        };
        match p.journal.append(rec, on_durable.map(|make| make())) {
            Ok(()) => Ok(true),
            Err(e) => {
                if !std::mem::replace(&mut st.journal_error_logged, true) {
                    tracing::error!(queue = %self.name, "journal append failed: {e}; durable messages are refused");
                }
                Err(())
            }
        }
    }

    /// Shows staged entries to consumers (a committed transaction's messages).
    pub(crate) fn admit_staged(&self, entries: Vec<Entry>) {
        let mut st = self.lock();
        for e in entries {
            self.admit(&mut st, e, false);
        }
        self.dispatch(&mut st);
        self.finish(st);
    }

    /// Takes staged entries back (a transaction that could not commit): their bytes are
    /// freed and the journaled ones acknowledged, so a restart does not bring them back.
    pub(crate) fn abandon_staged(&self, entries: Vec<Entry>) {
        let mut st = self.lock();
        for e in &entries {
            st.bytes = st.bytes.saturating_sub(e.msg.len());
        }
        self.unblock_if_room(&mut st);
        drop(st);
        for e in &entries {
            self.journal_ack(e);
        }
    }

    /// Releases the lock, then moves what expired meanwhile to the expiry address (never
    /// while holding this queue's lock: the expiry queue may be this one's DLQ or expiry).
    fn finish(&self, mut st: MutexGuard<'_, State>) {
        let expired = std::mem::take(&mut st.expired);
        drop(st);
        for entry in expired {
            if let Some(q) = &self.expiry {
                q.store(entry.msg.clone(), &Prepared::of(&entry.msg), None, false);
            }
            self.journal_ack(&entry);
        }
    }

    /// Takes an expired entry out of circulation (its ack is journaled in `finish`, after
    /// the copy to the expiry address).
    fn expire(&self, st: &mut State, entry: Entry) {
        st.expired_count += 1;
        self.release_bytes(st, &entry);
        st.expired.push(entry);
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

    /// Asks for a [`Command::Unblocked`] on `link` once the queue has room for `need`
    /// more bytes (at once if it has now); asking again while waiting changes nothing.
    pub(crate) fn notify_when_room(&self, outbox: Arc<Outbox>, link: Handle, need: usize) {
        let mut st = self.lock();
        let need = need.max(1);
        if st.bytes.saturating_add(need) <= self.max_bytes {
            outbox.push(Command::Unblocked { link });
        } else if let Some(b) = st
            .blocked
            .iter_mut()
            .find(|(o, l, _)| *l == link && Arc::ptr_eq(o, &outbox))
        {
            b.2 = b.2.max(need);
        } else {
            st.blocked.push((outbox, link, need));
        }
    }

    /// Forgets a blocked producer (its link is gone).
    pub fn remove_producer(&self, outbox: &Arc<Outbox>, link: Handle) {
        self.lock()
            .blocked
            .retain(|(o, l, _)| !(Arc::ptr_eq(o, outbox) && *l == link));
    }

    /// Registers a consumer; it gets messages once it grants credit.
    pub fn add_consumer(&self, outbox: Arc<Outbox>, link: Handle, presettled: bool) -> ConsumerKey {
        self.add_consumer_selecting(outbox, link, presettled, None)
    }

    /// Registers a consumer that only takes messages matching `selector`; messages it
    /// skips stay in the queue, in order, for other consumers.
    pub fn add_consumer_selecting(
        &self,
        outbox: Arc<Outbox>,
        link: Handle,
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
            browse_from: None,
        });
        key
    }

    /// Registers a browser: it receives presettled copies of the waiting messages, in
    /// arrival order, then of new ones, and takes nothing from the queue.
    pub fn add_browser(
        &self,
        outbox: Arc<Outbox>,
        link: Handle,
        selector: Option<Selector>,
    ) -> ConsumerKey {
        let key = ConsumerKey::fresh();
        self.lock().consumers.push(Consumer {
            key,
            outbox,
            link,
            presettled: true,
            credit: CreditWindow::new(),
            selector: selector.map(Arc::new),
            browse_from: Some(0),
        });
        key
    }

    /// Updates a consumer's credit: `limit` is the deliveries its connection took from the
    /// address so far plus the credit the link has now (see [`CreditWindow`]).
    pub fn flow(&self, key: ConsumerKey, limit: u32, drain: bool) {
        let mut st = self.lock();
        if let Some(c) = st.consumers.iter_mut().find(|c| c.key == key) {
            c.credit.limit = limit;
            c.credit.drain = drain;
        }
        self.dispatch(&mut st);
        self.finish(st);
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
            st.ready.requeue(e);
        }
        self.dispatch(&mut st);
        self.finish(st);
    }

    /// Applies a consumer's outcome for the delivery `token`.
    pub fn settle(&self, key: ConsumerKey, token: u64, outcome: Outcome) {
        let mut dead: Option<Entry> = None;
        let mut guard = self.lock();
        {
            let st = &mut *guard;
            let Some((owner, mut entry)) = st.unacked.remove(&token) else {
                return;
            };
            if owner != key {
                st.unacked.insert(token, (owner, entry));
                return;
            }
            if let Outcome::Modified {
                undeliverable_here,
                annotations,
                ..
            } = &outcome
            {
                self.modify(
                    st,
                    &mut entry,
                    key,
                    *undeliverable_here,
                    annotations.as_ref(),
                );
            }
            match outcome {
                Outcome::Accepted => self.forget(st, &entry),
                Outcome::Released | Outcome::Modified { failed: false, .. } => {
                    self.redeliver(st, entry)
                }
                Outcome::Modified { failed: true, .. } => {
                    entry.delivery_count += 1;
                    if entry.delivery_count >= self.max_delivery_attempts {
                        self.release_bytes(st, &entry);
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
                        self.redeliver(st, entry);
                    }
                }
                Outcome::Rejected(_) => {
                    self.release_bytes(st, &entry);
                    dead = Some(entry);
                }
            }
            self.dispatch(st);
        }
        // releases the lock, then moves anything that expired during dispatch
        self.finish(guard);
        if let Some(entry) = dead {
            // into the DLQ first, then gone from here: a crash in between duplicates
            if let Some(dlq) = &self.dead_letter {
                dlq.publish_durably(entry.msg.clone(), None);
            }
            self.journal_ack(&entry);
        }
    }

    /// What a `modified` outcome changes besides the count: the annotations it carries
    /// are merged into the message's (the bare message is kept byte for byte; a merge
    /// that fails, or would make the annotations larger than [`MAX_MODIFIED_ANNOTATIONS`],
    /// is skipped), and with `undeliverable_here` the consumer never gets it again.
    fn modify(
        &self,
        st: &mut State,
        entry: &mut Entry,
        key: ConsumerKey,
        undeliverable_here: bool,
        annotations: Option<&throng_amqp::codec::Fields>,
    ) {
        if let Some(extra) = annotations {
            match entry.msg.with_annotations(extra) {
                Ok(m) if m.message_annotations_len() <= MAX_MODIFIED_ANNOTATIONS => {
                    let (old, new) = (entry.msg.len(), m.len());
                    st.bytes = (st.bytes + new).saturating_sub(old);
                    st.mem_bytes = (st.mem_bytes + new).saturating_sub(old);
                    entry.msg = m;
                }
                Ok(_) => {
                    tracing::debug!(queue = %self.name, seq = entry.seq, "modified: annotations too large, not merged")
                }
                Err(e) => {
                    tracing::debug!(queue = %self.name, seq = entry.seq, "modified: annotations not merged: {e}")
                }
            }
        }
        if undeliverable_here {
            let mut keys = entry.not_to.take().map(Vec::from).unwrap_or_default();
            // only consumers still attached: a client cycling links cannot grow it
            keys.retain(|k| st.consumers.iter().any(|c| c.key == *k));
            keys.push(key);
            entry.not_to = Some(keys.into_boxed_slice());
        }
    }

    /// Puts a delivery the connection could not send back at the head, unchanged.
    pub fn undeliverable(&self, key: ConsumerKey, token: u64) {
        let mut st = self.lock();
        if let Some((owner, entry)) = st.unacked.remove(&token) {
            if owner == key {
                st.ready.requeue(entry);
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

    /// An entry held in memory leaves the queue.
    fn release_bytes(&self, st: &mut State, entry: &Entry) {
        st.bytes = st.bytes.saturating_sub(entry.msg.len());
        st.mem_bytes = st.mem_bytes.saturating_sub(entry.msg.len());
        self.unblock_if_room(st);
    }

    /// Gives blocked producers their credit back once the queue has room for them.
    fn unblock_if_room(&self, st: &mut State) {
        if st.bytes < self.max_bytes && !st.blocked.is_empty() {
            let (bytes, max) = (st.bytes, self.max_bytes);
            st.blocked.retain(|(outbox, link, need)| {
                let fits = bytes.saturating_add(*need) <= max;
                if fits {
                    outbox.push(Command::Unblocked { link: *link });
                }
                !fits
            });
        }
    }

    fn dispatch(&self, st: &mut State) {
        if !st.scheduled.is_empty() {
            Self::release_due(st, now_ms());
        }
        if st.pages.is_some() {
            self.page_in(st, false);
        }
        if st.consumers.iter().any(|c| c.browse_from.is_some()) {
            self.dispatch_browsers(st);
        }
        if st
            .consumers
            .iter()
            .any(|c| c.selector.is_some() && c.browse_from.is_none())
        {
            self.dispatch_selecting(st);
        } else {
            self.dispatch_in_order(st);
        }
        // presettled dispatch may have freed room
        self.unblock_if_room(st);
    }

    /// No selectors: the head of the queue goes to the next consumer with credit.
    fn dispatch_in_order(&self, st: &mut State) {
        let n = st.consumers.len();
        let mut now = Clock::lazy();
        // messages that every consumer with credit refused (undeliverable-here): they keep
        // their place, the ones behind them go on
        let mut aside: Vec<Entry> = Vec::new();
        loop {
            if n == 0 {
                break;
            }
            if st.ready.is_empty() {
                if st.mem_bytes >= self.memory_limit || !st.consumers.iter().any(|c| c.can_take()) {
                    break;
                }
                // a consumer waits and nothing else is ready: read the next batch back
                self.page_in(st, true);
                if st.ready.is_empty() {
                    break;
                }
            }
            let Some(idx) = (0..n)
                .map(|i| (st.next_consumer + i) % n)
                .find(|&idx| st.consumers[idx].can_take())
            else {
                break;
            };
            let Some(entry) = st.ready.pop_first() else {
                break;
            };
            if entry.expired(&mut now) {
                self.expire(st, entry);
                continue;
            }
            let idx = match entry.not_to {
                None => idx,
                Some(_) => match (0..n).map(|i| (st.next_consumer + i) % n).find(|&i| {
                    st.consumers[i].can_take() && entry.deliverable_to(st.consumers[i].key)
                }) {
                    Some(i) => i,
                    None => {
                        aside.push(entry);
                        if aside.len() >= SELECTOR_SCAN_LIMIT {
                            break;
                        }
                        continue;
                    }
                },
            };
            st.next_consumer = (idx + 1) % n;
            self.hand_over(st, idx, entry);
        }
        let nothing_left = st.ready.is_empty();
        for entry in aside {
            st.ready.requeue(entry);
        }
        // a drain completes when nothing more can be had now: paged messages that memory
        // has no room for (consumers hold it all unsettled) count as not available, and so
        // do messages the draining consumer refused
        if nothing_left
            && (st.pages.as_ref().is_none_or(|p| p.is_empty()) || st.mem_bytes >= self.memory_limit)
        {
            Self::complete_drains(st, false);
        }
    }

    /// Some consumers select: each message, in delivery order, goes to the next consumer
    /// (round robin) with credit whose selector it matches; unmatched messages wait.
    fn dispatch_selecting(&self, st: &mut State) {
        let n = st.consumers.len();
        let mut now = Clock::lazy();
        let mut scanned = 0;
        let mut complete = true;
        'lanes: for lane in (0..LEVELS).rev() {
            let mut index = 0;
            while index < st.ready.lane_len(lane) {
                if scanned >= SELECTOR_SCAN_LIMIT || !st.consumers.iter().any(|c| c.can_take()) {
                    complete = false;
                    break 'lanes;
                }
                scanned += 1;
                let Some(entry) = st.ready.get(lane, index) else {
                    break;
                };
                if entry.expired(&mut now) {
                    if let Some(e) = st.ready.remove(lane, index) {
                        self.expire(st, e);
                    }
                    continue;
                }
                let msg = &entry.msg;
                let chosen = (0..n).map(|i| (st.next_consumer + i) % n).find(|&idx| {
                    let c = &st.consumers[idx];
                    c.can_take()
                        && entry.deliverable_to(c.key)
                        && c.selector.as_ref().is_none_or(|s| s.matches(msg))
                });
                match chosen {
                    Some(idx) => {
                        st.next_consumer = (idx + 1) % n;
                        if let Some(e) = st.ready.remove(lane, index) {
                            self.hand_over(st, idx, e);
                        }
                    }
                    None => index += 1,
                }
            }
        }
        // every remaining message was looked at: a draining consumer matched none
        if complete {
            Self::complete_drains(st, false);
        }
    }

    /// Browsers get presettled copies of what they have not seen, in arrival order.
    fn dispatch_browsers(&self, st: &mut State) {
        let mut now = Clock::lazy();
        for idx in 0..st.consumers.len() {
            loop {
                let c = &st.consumers[idx];
                let Some(from) = c.browse_from else { break };
                if c.credit.available() == 0 {
                    break;
                }
                let Some((lane, index)) = st.ready.first_from(from) else {
                    break;
                };
                let Some(entry) = st.ready.get(lane, index) else {
                    break;
                };
                let (seq, msg, count, expires_at) = (
                    entry.seq,
                    entry.msg.clone(),
                    entry.delivery_count,
                    entry.expires_at,
                );
                let expired = entry.expired(&mut now);
                let c = &mut st.consumers[idx];
                c.browse_from = Some(seq + 1);
                if expired || c.selector.as_ref().is_some_and(|s| !s.matches(&msg)) {
                    continue;
                }
                c.credit.dispatched = c.credit.dispatched.wrapping_add(1);
                c.outbox.push(Command::Deliver {
                    link: c.link,
                    msg,
                    token: seq,
                    settled: true,
                    delivery_count: count,
                    expires_at,
                });
            }
        }
        Self::complete_drains(st, true);
    }

    /// Completes the drain of every draining consumer (or browser) that still has credit.
    fn complete_drains(st: &mut State, browsers: bool) {
        for c in st.consumers.iter_mut() {
            if c.browse_from.is_some() == browsers && c.credit.drain && c.credit.available() > 0 {
                c.credit.complete_drain();
                c.outbox.push(Command::Drained { link: c.link });
            }
        }
    }

    /// Hands an entry taken from the ready list to consumer `idx`.
    fn hand_over(&self, st: &mut State, idx: usize, entry: Entry) {
        let c = &mut st.consumers[idx];
        c.credit.dispatched = c.credit.dispatched.wrapping_add(1);
        let (link, settled, key) = (c.link, c.presettled, c.key);
        let deliver = |msg| Command::Deliver {
            link,
            msg,
            token: entry.seq,
            settled,
            delivery_count: entry.delivery_count,
            expires_at: entry.expires_at,
        };
        if settled {
            // the queue is done with it: the message moves to the outbox
            st.bytes = st.bytes.saturating_sub(entry.msg.len());
            st.mem_bytes = st.mem_bytes.saturating_sub(entry.msg.len());
            self.journal_ack(&entry);
            let command = deliver(entry.msg);
            st.consumers[idx].outbox.push(command);
        } else {
            c.outbox.push(deliver(entry.msg.clone()));
            st.unacked.insert(entry.seq, (key, entry));
        }
    }
}

/// A file-system-safe directory name for a queue's journal key (`tenant/address`):
/// letters, digits, `.`, `_` and `-` kept, every other byte as `%XX`; a long name is cut
/// and made unique with a hash of the whole.
fn page_dir_name(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-') || (b == b'.' && !out.is_empty()) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.len() > 200 {
        // FNV-1a: stable across runs, unlike the std hasher
        let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
        });
        out.truncate(180);
        while !out.is_char_boundary(out.len()) {
            out.pop();
        }
        out.push_str(&format!("~{hash:016x}"));
    }
    out
}
