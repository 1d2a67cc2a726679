//! A store-and-forward topic: every subscription is a queue of its own that receives a
//! copy (a reference to the same bytes) of each message published after it was created.
//!
//! A subscription is non-durable (it ends with its link) or durable: named, it outlives
//! its consumers and keeps collecting messages while they are away; its queue journals
//! durable messages under the key `tenant/topic::sub::name`.

use crate::clock::SharedClock;
use crate::queue::{MakeOnDurable, OnDurable, Persistence, Prepared, Queue, Stored, Written};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use throng_amqp::message::Message;
use throng_store::{Journal, Record};

/// Infix of a durable subscription's queue name: `topic::sub::name`.
pub const SUBSCRIPTION_INFIX: &str = "::sub::";

/// A topic and its subscriptions.
pub struct Topic {
    name: String,
    max_bytes: usize,
    /// Bytes each durable subscription keeps in memory before paging.
    memory_limit: usize,
    subscriptions: Mutex<Vec<Arc<Queue>>>,
    durable: Mutex<HashMap<String, Arc<Queue>>>,
    /// Non-durable shared subscriptions: queue and number of attached consumers.
    shared: Mutex<HashMap<String, (Arc<Queue>, usize)>>,
    /// The journal and the tenant name, for durable subscriptions' queues.
    journal: Option<(Journal, String)>,
    /// The clock of the tenant, handed to every subscription queue.
    clock: SharedClock,
}

impl Topic {
    /// A topic with no subscribers.
    pub fn new(name: impl Into<String>) -> Self {
        Topic {
            name: name.into(),
            max_bytes: crate::queue::DEFAULT_MAX_BYTES,
            memory_limit: crate::queue::DEFAULT_MEMORY_LIMIT,
            subscriptions: Mutex::new(Vec::new()),
            durable: Mutex::new(HashMap::new()),
            shared: Mutex::new(HashMap::new()),
            journal: None,
            clock: crate::clock::system(),
        }
    }

    /// Reads time from `clock`, as its subscription queues do.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Journals durable messages of durable subscriptions (tenant `tenant`).
    pub fn with_journal(mut self, journal: Option<Journal>, tenant: &str) -> Self {
        self.journal = journal.map(|j| (j, tenant.to_string()));
        self
    }

    fn durable_key(&self, name: &str) -> Option<(Journal, String)> {
        self.journal.as_ref().map(|(j, tenant)| {
            (
                j.clone(),
                format!("{tenant}/{}{SUBSCRIPTION_INFIX}{name}", self.name),
            )
        })
    }

    /// The queues of every current subscription, durable or not (for management).
    pub fn subscription_queues(&self) -> Vec<Arc<Queue>> {
        crate::sync::lock(&self.subscriptions).clone()
    }

    /// The durable subscription `name`, if it exists.
    pub fn durable_subscription(&self, name: &str) -> Option<Arc<Queue>> {
        crate::sync::lock(&self.durable).get(name).cloned()
    }

    /// The durable subscription `name`, created if needed; tells whether it was created.
    pub fn subscribe_durable(&self, name: &str) -> (Arc<Queue>, bool) {
        let mut durable = crate::sync::lock(&self.durable);
        if let Some(q) = durable.get(name) {
            return (q.clone(), false);
        }
        let persistence = self
            .durable_key(name)
            .map(|(journal, key)| Persistence { journal, key });
        let q = Queue::new(format!("{}{SUBSCRIPTION_INFIX}{name}", self.name), None)
            .with_max_bytes(self.max_bytes)
            .with_memory_limit(self.memory_limit)
            .with_persistence(persistence)
            .with_clock(self.clock.clone())
            .into_arc();
        durable.insert(name.to_string(), q.clone());
        crate::sync::lock(&self.subscriptions).push(q.clone());
        (q, true)
    }

    /// Joins the non-durable shared subscription `name` (created by its first consumer);
    /// its consumers compete for its messages.
    pub fn join_shared(&self, name: &str) -> Arc<Queue> {
        let mut shared = crate::sync::lock(&self.shared);
        let entry = shared
            .entry(name.to_string())
            .or_insert_with(|| (self.subscribe(), 0));
        entry.1 += 1;
        entry.0.clone()
    }

    /// Leaves a non-durable shared subscription; the last consumer out ends it.
    pub fn leave_shared(&self, name: &str) {
        let mut shared = crate::sync::lock(&self.shared);
        let Some(entry) = shared.get_mut(name) else {
            return;
        };
        entry.1 -= 1;
        if entry.1 == 0 {
            if let Some((q, _)) = shared.remove(name) {
                self.unsubscribe(&q);
            }
        }
    }

    /// Deletes a durable subscription and what it held (journal included).
    pub fn unsubscribe_durable(&self, name: &str) {
        let Some(q) = crate::sync::lock(&self.durable).remove(name) else {
            return;
        };
        self.unsubscribe(&q);
        if let Some((journal, key)) = self.durable_key(name) {
            let _ = journal.append(Record::DropQueue { queue: key }, None);
        }
    }

    /// Sets how many bytes each durable subscription keeps in memory before paging.
    pub fn with_memory_limit(mut self, bytes: usize) -> Self {
        self.memory_limit = bytes;
        self
    }

    /// Overrides each subscription's byte bound.
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// The byte bound of each subscription.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Creates a subscription; the caller attaches its consumer to the returned queue and
    /// calls [`Topic::unsubscribe`] when the subscriber goes.
    pub fn subscribe(&self) -> Arc<Queue> {
        let q = Queue::new(format!("{}::sub", self.name), None)
            .with_max_bytes(self.max_bytes)
            .with_clock(self.clock.clone())
            .into_arc();
        crate::sync::lock(&self.subscriptions).push(q.clone());
        q
    }

    /// Drops a subscription and whatever it still held.
    pub fn unsubscribe(&self, sub: &Arc<Queue>) {
        crate::sync::lock(&self.subscriptions).retain(|q| !Arc::ptr_eq(q, sub));
    }

    /// A subscription that has no room left, if any (subscriptions block when full): a
    /// producer attaching now waits for it.
    pub fn full_subscription(&self) -> Option<Arc<Queue>> {
        crate::sync::lock(&self.subscriptions)
            .iter()
            .find(|q| !q.has_space())
            .cloned()
    }

    /// Number of live subscriptions.
    pub fn subscriber_count(&self) -> usize {
        crate::sync::lock(&self.subscriptions).len()
    }

    /// Copies the message to every subscription; when durable subscriptions journal it,
    /// `on_durable` runs once every copy is on disk. Returns what happened and the
    /// subscription that is full, if any, so the producer can wait for it. Producers reach
    /// this through [`crate::Tenant::publish`].
    pub(crate) fn publish_durably(
        &self,
        msg: Message,
        prep: &Prepared,
        on_durable: Option<MakeOnDurable<'_>>,
    ) -> (Stored, Option<Arc<Queue>>) {
        // lock order: topic, then subscription queue (a queue never locks its topic)
        let subs = crate::sync::lock(&self.subscriptions);
        let durable = prep.durable();
        let persisting = if durable {
            subs.iter().filter(|q| q.is_persistent()).count()
        } else {
            0
        };
        let countdown = match (persisting, on_durable) {
            (0, _) | (_, None) => None,
            (n, Some(make)) => Some(Arc::new(Countdown::new(n, make()))),
        };
        let one_copy_done = || -> OnDurable {
            let c = countdown.clone();
            Box::new(move |w| {
                if let Some(c) = c {
                    c.one_done(w)
                }
            })
        };
        let mut full = None;
        let mut stored = if countdown.is_some() {
            Stored::WhenDurable
        } else {
            Stored::Now
        };
        for q in subs.iter() {
            let cb = countdown
                .as_ref()
                .map(|_| &one_copy_done as MakeOnDurable<'_>);
            let (s, room) = q.publish_prepared(msg.clone(), prep, cb);
            if s == Stored::Failed {
                stored = Stored::Failed;
            }
            if !room {
                full = Some(q.clone());
            }
        }
        (stored, full)
    }
}

/// Runs a callback when the last of several writes is durable (a topic's journaled
/// copies; a retained message's metadata write and its journaled copies).
pub struct Countdown {
    remaining: AtomicUsize,
    /// Whether one of the writes failed: then so did the whole.
    failed: std::sync::atomic::AtomicBool,
    done: Mutex<Option<OnDurable>>,
}

impl Countdown {
    /// A countdown from `writes` that runs `done` when it reaches zero: with
    /// [`Written::Durable`] if every write was, else [`Written::Failed`].
    pub fn new(writes: usize, done: OnDurable) -> Self {
        Countdown {
            remaining: AtomicUsize::new(writes),
            failed: std::sync::atomic::AtomicBool::new(false),
            done: Mutex::new(Some(done)),
        }
    }

    /// The journal callback of one of the writes.
    pub(crate) fn one_write(self: &Arc<Self>) -> OnDurable {
        let c = self.clone();
        Box::new(move |w| c.one_done(w))
    }

    /// The metadata store's callback of one of the writes (a retained message's row).
    pub(crate) fn one_row(self: &Arc<Self>) -> throng_store::Committed {
        let c = self.clone();
        Box::new(move |r| {
            c.one_done(match r {
                Ok(()) => Written::Durable,
                Err(_) => Written::Failed,
            })
        })
    }

    /// One more write to wait for (counted before it is started).
    pub(crate) fn add_one(&self) {
        self.remaining.fetch_add(1, Ordering::AcqRel);
    }

    /// One of the writes is done, as `w` says.
    pub fn one_done(&self, w: Written) {
        if w == Written::Failed {
            self.failed.store(true, Ordering::Release);
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Some(cb) = crate::sync::lock(&self.done).take() {
                let failed = self.failed.load(Ordering::Acquire);
                cb(if failed {
                    Written::Failed
                } else {
                    Written::Durable
                });
            }
        }
    }
}
