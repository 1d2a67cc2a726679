//! Tenants (address spaces) and the node that holds them. A tenant owns its addresses and
//! users; two tenants may both have an address `orders` and never meet.

use crate::address::{Address, AddressKind};
use crate::anycast::Anycast;
use crate::clock::SharedClock;
use crate::multicast::Multicast;
use crate::queue::{Persistence, Queue};
use crate::topic::Topic;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use throng_amqp::message::Message;

/// Per-address settings of a queue (or topic); `None` keeps the default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressOptions {
    /// Bytes held (memory and page files together) before producers stop getting
    /// credit or are rejected: the disk limit. Default 4 GiB with a journal, 256 MiB
    /// without (then everything is in memory).
    pub max_bytes: Option<usize>,
    /// Bytes of messages kept in memory before new ones are paged to disk (default
    /// 32 MiB; only queues with a journal page).
    pub memory_limit: Option<usize>,
    /// Where rejected and too-often-failed messages go (default: the tenant's `DLQ`).
    pub dead_letter_address: Option<String>,
    /// Failed deliveries (`modified` with `delivery-failed`) before dead-lettering
    /// (default 10).
    pub max_delivery_attempts: Option<u32>,
    /// Where expired messages go (default: dropped).
    pub expiry_address: Option<String>,
    /// Delay before a released or failed message is offered again, ms (default 0).
    pub redelivery_delay_ms: Option<u64>,
    /// When full: reject new messages (`true`) or withhold producer credit (default).
    pub reject_when_full: Option<bool>,
}

/// Name of each tenant's dead-letter queue.
pub const DEAD_LETTER_ADDRESS: &str = "DLQ";

/// Prefix of the names of dynamic reply addresses ([`Tenant::create_dynamic`]); such a
/// name exists only while its link does and is never created on first use.
pub const DYNAMIC_PREFIX: &str = "$dynamic/";

/// A number that tells this start of the node from every earlier one: the clock, mixed
/// with the process's random hash keys (a clock set back cannot repeat it).
fn start_nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(nanos);
    h.finish()
}

/// An operation a permission grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Send,
    Recv,
    View,
    Manage,
}

impl Op {
    /// Parses the config spelling.
    pub fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "send" => Op::Send,
            "recv" => Op::Recv,
            "view" => Op::View,
            "manage" => Op::Manage,
            _ => return None,
        })
    }
}

/// Operations allowed on addresses matching a pattern (`*` matches any suffix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    pub pattern: String,
    pub ops: Vec<Op>,
}

impl Permission {
    /// Whether the pattern matches `address`.
    pub fn matches(&self, address: &str) -> bool {
        match self.pattern.strip_suffix('*') {
            Some(prefix) => address.starts_with(prefix),
            None => self.pattern == address,
        }
    }
}

/// A user of a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub password: String,
    pub permissions: Vec<Permission>,
}

impl User {
    /// Whether the user may do `op` on `address`.
    pub fn may(&self, op: Op, address: &str) -> bool {
        self.permissions
            .iter()
            .any(|p| p.ops.contains(&op) && p.matches(address))
    }

    /// Compares a presented password in time independent of where it differs.
    pub fn password_matches(&self, presented: &[u8]) -> bool {
        let expected = self.password.as_bytes();
        if expected.len() != presented.len() {
            return false;
        }
        expected
            .iter()
            .zip(presented)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// A tenant: its addresses and users.
pub struct Tenant {
    name: String,
    auto_create: bool,
    users: Vec<User>,
    addresses: RwLock<HashMap<String, Address>>,
    dead_letter: Arc<Queue>,
    next_dynamic: AtomicU64,
    /// Tells this start of the node from every earlier one: part of every dynamic name,
    /// so none repeats after a restart.
    start: u64,
    journal: Option<throng_store::Journal>,
    metadata: Option<Arc<throng_store::MetadataStore>>,
    /// Durable subscriptions by name → their topic.
    subscriptions: std::sync::Mutex<HashMap<String, String>>,
    /// Members of each shared durable subscription, by its name (lock before
    /// `subscriptions`).
    shared_members: std::sync::Mutex<HashMap<String, usize>>,
    /// Told about every topic created from now on (MQTT wildcard subscriptions).
    topic_watchers: std::sync::Mutex<Vec<(u64, TopicWatcher)>>,
    next_watcher: AtomicU64,
    /// The retained message of each topic that has one.
    retained: std::sync::Mutex<std::collections::BTreeMap<String, Message>>,
    /// MQTT topic filters the tenant refuses subscriptions to (matched by the MQTT
    /// adapter, which knows filter syntax).
    denied_filters: Vec<String>,
    /// Where the tenant's addresses read time and arm timers.
    clock: SharedClock,
    /// Where its direct addresses tell the mesh of their consumers (empty outside one).
    advertiser: crate::remote::AdvertiserSlot,
}

/// Called with each topic created in a tenant, after it is in the address table.
pub type TopicWatcher = Arc<dyn Fn(&Arc<Topic>) + Send + Sync>;

impl Tenant {
    /// A tenant with only its dead-letter queue.
    pub fn new(name: impl Into<String>, auto_create: bool, users: Vec<User>) -> Self {
        Self::with_journal(name, auto_create, users, None)
    }

    /// A tenant whose queues keep durable messages in `journal`.
    pub fn with_journal(
        name: impl Into<String>,
        auto_create: bool,
        users: Vec<User>,
        journal: Option<throng_store::Journal>,
    ) -> Self {
        Self::with_clock(name, auto_create, users, journal, crate::clock::system())
    }

    /// A tenant whose addresses read time from, and arm timers on, `clock` (tests run
    /// the core on a [`crate::clock::ManualClock`]).
    pub fn with_clock(
        name: impl Into<String>,
        auto_create: bool,
        users: Vec<User>,
        journal: Option<throng_store::Journal>,
        clock: SharedClock,
    ) -> Self {
        let name = name.into();
        let dead_letter = Queue::new(DEAD_LETTER_ADDRESS, None)
            .with_persistence(Self::persistence_for(&journal, &name, DEAD_LETTER_ADDRESS))
            .with_clock(clock.clone())
            .into_arc();
        let mut map = HashMap::new();
        map.insert(
            DEAD_LETTER_ADDRESS.to_string(),
            Address::Queue(dead_letter.clone()),
        );
        Tenant {
            name,
            journal,
            auto_create,
            users,
            addresses: RwLock::new(map),
            dead_letter,
            next_dynamic: AtomicU64::new(1),
            start: start_nonce(),
            metadata: None,
            subscriptions: std::sync::Mutex::new(HashMap::new()),
            shared_members: std::sync::Mutex::new(HashMap::new()),
            topic_watchers: std::sync::Mutex::new(Vec::new()),
            next_watcher: AtomicU64::new(1),
            retained: std::sync::Mutex::new(std::collections::BTreeMap::new()),
            denied_filters: Vec::new(),
            clock,
            advertiser: Default::default(),
        }
    }

    /// Joins the node's mesh: from now on the tenant's direct addresses (those that
    /// exist already too) tell `advertiser` what consumers this node has for them. Set
    /// once; a second call changes nothing and says so.
    pub fn advertise_to(&self, advertiser: Arc<dyn crate::remote::Advertiser>) -> bool {
        let first = self.advertiser.set(advertiser).is_ok();
        if first {
            // addresses created before: tell what they have now
            for a in self
                .addresses
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .values()
            {
                match a {
                    Address::Anycast(a) => a.readvertise(),
                    Address::Multicast(m) => m.readvertise(),
                    _ => {}
                }
            }
        }
        first
    }

    /// The clock the tenant's addresses read time from (adapters that report a message's
    /// remaining lifetime read the same one).
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Refuses MQTT subscriptions to filters these match (config `deny_filters`).
    pub fn with_denied_filters(mut self, filters: Vec<String>) -> Self {
        self.denied_filters = filters;
        self
    }

    /// The MQTT topic filters the tenant refuses subscriptions to.
    pub fn denied_filters(&self) -> &[String] {
        &self.denied_filters
    }

    /// Calls `watcher` with every topic created from now on; returns the id to stop it
    /// with. The caller lists existing topics with [`Tenant::topics`] *after* this, so no
    /// topic is missed (one created meanwhile may be seen twice).
    pub fn watch_topics(&self, watcher: TopicWatcher) -> u64 {
        let id = self.next_watcher.fetch_add(1, Ordering::Relaxed);
        crate::sync::lock(&self.topic_watchers).push((id, watcher));
        id
    }

    /// Stops a watcher.
    pub fn unwatch_topics(&self, id: u64) {
        crate::sync::lock(&self.topic_watchers).retain(|(i, _)| *i != id);
    }

    /// Every topic of the tenant.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.addresses
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter_map(|a| match a {
                Address::Topic(t) => Some(t.clone()),
                _ => None,
            })
            .collect()
    }

    /// Stores (or with `None` removes) row `name` of one of the tenant's tables in the
    /// node's metadata store, through its group-commit writer
    /// ([`throng_store::MetadataStore::submit`]): `done` runs once the row is on disk, at
    /// once when the node keeps no metadata.
    pub fn store_row(
        &self,
        table: throng_store::BlobTable,
        name: &str,
        value: Option<Vec<u8>>,
        done: Option<throng_store::Committed>,
    ) {
        match &self.metadata {
            Some(m) => {
                let write = throng_store::BlobWrite {
                    table,
                    tenant: self.name.clone(),
                    name: name.to_string(),
                    value,
                };
                if m.backlog_full() {
                    // the disk is behind: this producer waits (its connection reads
                    // nothing meanwhile), the node's other connections go on
                    crate::sync::off_worker(|| m.submit(write, done))
                } else {
                    m.submit(write, done)
                }
            }
            None => {
                if let Some(done) = done {
                    done(Ok(()));
                }
            }
        }
    }

    /// Sets (or with `None` clears) the retained message of `topic`; kept in the metadata
    /// store when the node has one, so it survives restarts. The store's write goes to its
    /// group-commit writer: `done` runs once it is on disk (at once without a store), for
    /// a producer that is acknowledged only then.
    pub fn set_retained(
        &self,
        topic: &str,
        msg: Option<Message>,
        done: Option<throng_store::Committed>,
    ) {
        let mut retained = crate::sync::lock(&self.retained);
        // written under the lock: the store sees a topic's changes in the memory's order
        self.store_row(
            throng_store::BlobTable::Retained,
            topic,
            msg.as_ref().map(|m| m.bytes().to_vec()),
            done,
        );
        match msg {
            Some(m) => {
                retained.insert(topic.to_string(), m);
            }
            None => {
                retained.remove(topic);
            }
        }
    }

    /// The retained message of `topic`, if it has one.
    pub fn retained(&self, topic: &str) -> Option<Message> {
        crate::sync::lock(&self.retained).get(topic).cloned()
    }

    /// Writes the retained-message row of `topic` without changing what the topic retains
    /// in memory (a transaction's, shown only once its commit is safe).
    pub(crate) fn store_retained_row(
        &self,
        topic: &str,
        msg: Option<&Message>,
        done: throng_store::Committed,
    ) {
        let _order = crate::sync::lock(&self.retained);
        self.store_row(
            throng_store::BlobTable::Retained,
            topic,
            msg.map(|m| m.bytes().to_vec()),
            Some(done),
        );
    }

    /// The retained messages whose topic `matches` accepts.
    pub fn retained_matching(&self, matches: impl Fn(&str) -> bool) -> Vec<(String, Message)> {
        crate::sync::lock(&self.retained)
            .iter()
            .filter(|(t, _)| matches(t))
            .map(|(t, m)| (t.clone(), m.clone()))
            .collect()
    }

    /// Puts back the retained messages remembered before a restart.
    pub fn restore_retained(&self, records: &[(String, String, Vec<u8>)]) {
        let mut retained = crate::sync::lock(&self.retained);
        for (_, topic, bytes) in records.iter().filter(|r| r.0 == self.name) {
            match Message::parse(bytes::Bytes::copy_from_slice(bytes)) {
                Ok(m) => {
                    retained.insert(topic.clone(), m);
                }
                Err(e) => {
                    tracing::warn!(tenant = %self.name, topic = %topic, "unreadable retained message skipped: {e}")
                }
            }
        }
    }

    /// The metadata store, when the node has one (protocol adapters keep their own
    /// durable state there, e.g. MQTT sessions).
    pub fn metadata(&self) -> Option<&Arc<throng_store::MetadataStore>> {
        self.metadata.as_ref()
    }

    /// Remembers durable subscriptions in `metadata` (survive restarts).
    pub fn with_metadata(mut self, metadata: Option<Arc<throng_store::MetadataStore>>) -> Self {
        self.metadata = metadata;
        self
    }

    /// Recreates the addresses created on first use before a restart.
    pub fn restore_addresses(&self, records: &[(String, String, String)]) {
        for (_, name, kind) in records.iter().filter(|r| r.0 == self.name) {
            match AddressKind::parse(kind) {
                // an earlier version created these on first use: they ended with their link
                Some(_) if name.starts_with(DYNAMIC_PREFIX) => {
                    tracing::warn!(tenant = %self.name, address = %name, "dynamic address in the metadata store not restored")
                }
                Some(k) if self.lookup(name).is_none() => {
                    self.create(name, k);
                }
                Some(_) => {}
                None => {
                    tracing::warn!(tenant = %self.name, address = %name, kind = %kind, "unknown address type in the metadata store")
                }
            }
        }
    }

    /// Recreates the durable subscriptions remembered before a restart (their topics are
    /// created if they are not configured).
    pub fn restore_subscriptions(&self, records: &[throng_store::SubscriptionRecord]) {
        for r in records.iter().filter(|r| r.tenant == self.name) {
            match self
                .lookup(&r.topic)
                .unwrap_or_else(|| self.create(&r.topic, AddressKind::Topic))
            {
                Address::Topic(t) => {
                    t.subscribe_durable(&r.name);
                    crate::sync::lock(&self.subscriptions).insert(r.name.clone(), r.topic.clone());
                }
                other => tracing::warn!(
                    tenant = %self.name, subscription = %r.name, topic = %r.topic, kind = other.kind().as_str(),
                    "durable subscription's topic is no longer a topic; not restored"
                ),
            }
        }
    }

    /// The topic of durable subscription `name`.
    pub fn subscription_topic(&self, name: &str) -> Option<String> {
        crate::sync::lock(&self.subscriptions).get(name).cloned()
    }

    /// Opens durable subscription `name` on `topic` (creating and remembering it).
    pub fn open_subscription(&self, topic: &Arc<Topic>, name: &str) -> Arc<Queue> {
        self.open_subscriptions(&[(topic.clone(), name.to_string())], false)
            .remove(0)
    }

    /// Opens (creating and remembering) durable subscriptions, each `(topic, name)`, or
    /// with `shared` joins them as shared subscriptions (see
    /// [`Tenant::join_shared_subscription`]); one wait for the metadata store whatever
    /// their number (a wildcard subscription over thousands of topics). Their queues, in
    /// order.
    pub fn open_subscriptions(
        &self,
        subs: &[(Arc<Topic>, String)],
        shared: bool,
    ) -> Vec<Arc<Queue>> {
        if shared {
            let mut members = crate::sync::lock(&self.shared_members);
            for (_, name) in subs {
                *members.entry(name.clone()).or_insert(0) += 1;
            }
        }
        let mut records = Vec::new();
        let queues = subs
            .iter()
            .map(|(topic, name)| {
                let (q, created) = topic.subscribe_durable(name);
                if created {
                    crate::sync::lock(&self.subscriptions)
                        .insert(name.clone(), topic.name().to_string());
                    records.push(throng_store::SubscriptionRecord {
                        tenant: self.name.clone(),
                        name: name.clone(),
                        topic: topic.name().to_string(),
                    });
                }
                q
            })
            .collect();
        if let (Some(m), false) = (&self.metadata, records.is_empty()) {
            if let Err(e) = crate::sync::blocking(m, || m.put_subscriptions(&records)) {
                tracing::error!(tenant = %self.name, subscriptions = records.len(), "cannot remember subscriptions: {e}");
            }
        }
        queues
    }

    /// Joins the shared durable subscription `name` on `topic` (created by its first
    /// member): one durable subscription its members compete for, journaled and restored
    /// after a restart like any other, so what it held for members that are away (MQTT
    /// persistent sessions) survives.
    pub fn join_shared_subscription(&self, topic: &Arc<Topic>, name: &str) -> Arc<Queue> {
        self.open_subscriptions(&[(topic.clone(), name.to_string())], true)
            .remove(0)
    }

    /// Leaves a shared durable subscription; the last member out deletes it and what it
    /// held.
    pub fn leave_shared_subscription(&self, name: &str) {
        let mut members = crate::sync::lock(&self.shared_members);
        let last = match members.get_mut(name) {
            Some(n) => {
                *n = n.saturating_sub(1);
                *n == 0
            }
            None => true,
        };
        if last {
            members.remove(name);
            // under the members lock: a member joining now finds it gone and recreates it
            self.close_subscription(name);
        }
    }

    /// After a restart, once the members that outlive a restart (persistent sessions)
    /// have joined again: deletes the shared durable subscriptions (names for which
    /// `is_shared` holds) that nobody joined — their members ended with the node.
    pub fn close_unjoined_shared_subscriptions(&self, is_shared: impl Fn(&str) -> bool) {
        let members = crate::sync::lock(&self.shared_members);
        let orphans: Vec<String> = crate::sync::lock(&self.subscriptions)
            .keys()
            .filter(|n| is_shared(n) && !members.contains_key(n.as_str()))
            .cloned()
            .collect();
        for name in orphans {
            self.close_subscription(&name);
        }
    }

    /// Deletes durable subscription `name` and its messages.
    pub fn close_subscription(&self, name: &str) {
        let Some(topic) = crate::sync::lock(&self.subscriptions).remove(name) else {
            return;
        };
        if let Some(Address::Topic(t)) = self.lookup(&topic) {
            t.unsubscribe_durable(name);
        }
        if let Some(m) = &self.metadata {
            if let Err(e) = crate::sync::blocking(m, || m.remove_subscription(&self.name, name)) {
                tracing::error!(tenant = %self.name, subscription = %name, "cannot forget subscription: {e}");
            }
        }
    }

    /// The journal key of a queue: `tenant/address`.
    pub fn journal_key(tenant: &str, address: &str) -> String {
        format!("{tenant}/{address}")
    }

    fn persistence_for(
        journal: &Option<throng_store::Journal>,
        tenant: &str,
        address: &str,
    ) -> Option<Persistence> {
        journal.as_ref().map(|j| Persistence {
            journal: j.clone(),
            key: Self::journal_key(tenant, address),
        })
    }

    /// The journal durable messages go to, if the node has one.
    pub fn journal(&self) -> Option<&throng_store::Journal> {
        self.journal.as_ref()
    }

    /// The tenant's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether attaching to an unknown address creates it.
    pub fn auto_create(&self) -> bool {
        self.auto_create
    }

    /// Whether clients must authenticate (the tenant has users).
    pub fn requires_auth(&self) -> bool {
        !self.users.is_empty()
    }

    /// Finds a user by name.
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    /// Looks an address up.
    pub fn lookup(&self, name: &str) -> Option<Address> {
        self.addresses
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Creates an address of `kind`, or returns the existing one of that name.
    pub fn create(&self, name: &str, kind: AddressKind) -> Address {
        self.create_bounded(name, kind, None)
    }

    /// Creates an address whose queue (or each topic subscription) holds at most
    /// `max_bytes` before producers stop getting credit; `None` keeps the default.
    pub fn create_bounded(
        &self,
        name: &str,
        kind: AddressKind,
        max_bytes: Option<usize>,
    ) -> Address {
        self.create_with(
            name,
            kind,
            &AddressOptions {
                max_bytes,
                ..AddressOptions::default()
            },
        )
    }

    /// Creates an address with per-address settings (config `[[tenant.address]]`).
    pub fn create_with(&self, name: &str, kind: AddressKind, opts: &AddressOptions) -> Address {
        // resolve the queues this one forwards to first: the address table lock is not
        // reentrant
        let side_queue = |target: &Option<String>| -> Option<Arc<Queue>> {
            let target = target.as_deref().filter(|t| *t != name)?;
            match self
                .lookup(target)
                .unwrap_or_else(|| self.create(target, AddressKind::Queue))
            {
                Address::Queue(q) => Some(q),
                _ => None,
            }
        };
        let dead_letter = match &opts.dead_letter_address {
            Some(_) => side_queue(&opts.dead_letter_address),
            None => Some(self.dead_letter.clone()),
        };
        let expiry = side_queue(&opts.expiry_address);
        let max_bytes = opts.max_bytes.unwrap_or(if self.journal.is_some() {
            crate::queue::DEFAULT_MAX_DISK_BYTES
        } else {
            crate::queue::DEFAULT_MAX_BYTES
        });
        let memory_limit = opts
            .memory_limit
            .unwrap_or(crate::queue::DEFAULT_MEMORY_LIMIT);
        let mut created = false;
        let mut map = self.addresses.write().unwrap_or_else(|e| e.into_inner());
        let address =
            map.entry(name.to_string())
                .or_insert_with(|| {
                    created = true;
                    match kind {
                        AddressKind::Queue => {
                            let mut q = Queue::new(name, dead_letter)
                                .with_max_bytes(max_bytes)
                                .with_memory_limit(memory_limit)
                                .with_expiry_queue(expiry)
                                .with_clock(self.clock.clone())
                                .with_persistence(Self::persistence_for(
                                    &self.journal,
                                    &self.name,
                                    name,
                                ));
                            if let Some(n) = opts.max_delivery_attempts {
                                q = q.with_max_delivery_attempts(n);
                            }
                            if let Some(ms) = opts.redelivery_delay_ms {
                                q = q.with_redelivery_delay(ms);
                            }
                            if let Some(r) = opts.reject_when_full {
                                q = q.with_reject_when_full(r);
                            }
                            Address::Queue(q.into_arc())
                        }
                        AddressKind::Topic => Address::Topic(Arc::new(
                            Topic::new(name)
                                .with_clock(self.clock.clone())
                                .with_max_bytes(max_bytes)
                                .with_memory_limit(memory_limit)
                                .with_journal(self.journal.clone(), &self.name),
                        )),
                        AddressKind::Anycast => Address::Anycast(Arc::new(Anycast::advertised(
                            name,
                            &self.name,
                            self.advertiser.clone(),
                        ))),
                        AddressKind::Multicast => Address::Multicast(Arc::new(
                            Multicast::advertised(name, &self.name, self.advertiser.clone()),
                        )),
                    }
                })
                .clone();
        drop(map);
        if let (true, Address::Topic(t)) = (created, &address) {
            let watchers: Vec<TopicWatcher> = crate::sync::lock(&self.topic_watchers)
                .iter()
                .map(|(_, w)| w.clone())
                .collect();
            for w in watchers {
                w(t);
            }
        }
        address
    }

    /// Looks an address up, creating it as `kind` when the tenant auto-creates (never a
    /// dynamic name: its link is gone, and a new address would collect its replies).
    pub fn resolve(&self, name: &str, kind: AddressKind) -> Option<Address> {
        match self.lookup(name) {
            Some(a) => Some(a),
            None if self.auto_create && !name.starts_with(DYNAMIC_PREFIX) => {
                let a = self.create(name, kind);
                // remembered, so the address outlives a restart like a configured one
                if let Some(m) = &self.metadata {
                    if let Err(e) =
                        crate::sync::blocking(m, || m.put_address(&self.name, name, kind.as_str()))
                    {
                        tracing::error!(tenant = %self.name, address = %name, "cannot remember address: {e}");
                    }
                }
                Some(a)
            }
            None => None,
        }
    }

    /// Creates a temporary anycast address with a name never given before, also not
    /// before a restart (dynamic receivers): `$dynamic/<start>/<connection>/<n>`.
    pub fn create_dynamic(&self, connection: u64) -> (String, Address) {
        let n = self.next_dynamic.fetch_add(1, Ordering::Relaxed);
        let name = format!("{DYNAMIC_PREFIX}{:016x}/{connection:x}/{n}", self.start);
        let addr = self.create(&name, AddressKind::Anycast);
        (name, addr)
    }

    /// Removes an address.
    pub fn remove(&self, name: &str) {
        self.addresses
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    /// Names and types of all addresses.
    pub fn addresses(&self) -> Vec<(String, AddressKind)> {
        let map = self.addresses.read().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = map.iter().map(|(k, a)| (k.clone(), a.kind())).collect();
        v.sort();
        v
    }
}

/// A node: the set of tenants it serves.
pub struct Node {
    tenants: HashMap<String, Arc<Tenant>>,
    default_tenant: Option<Arc<Tenant>>,
    next_connection: AtomicU64,
}

impl Node {
    /// A node serving `tenants`; the one named `default` (or the only one) serves clients
    /// that name no tenant.
    pub fn new(tenants: Vec<Tenant>) -> Self {
        let tenants: HashMap<String, Arc<Tenant>> = tenants
            .into_iter()
            .map(|t| (t.name().to_string(), Arc::new(t)))
            .collect();
        let default_tenant = tenants.get("default").cloned().or_else(|| {
            if tenants.len() == 1 {
                tenants.values().next().cloned()
            } else {
                None
            }
        });
        Node {
            tenants,
            default_tenant,
            next_connection: AtomicU64::new(1),
        }
    }

    /// A tenant by name.
    pub fn tenant(&self, name: &str) -> Option<Arc<Tenant>> {
        self.tenants.get(name).cloned()
    }

    /// The tenant for clients that name none.
    pub fn default_tenant(&self) -> Option<Arc<Tenant>> {
        self.default_tenant.clone()
    }

    /// All tenants.
    pub fn tenants(&self) -> impl Iterator<Item = &Arc<Tenant>> {
        self.tenants.values()
    }

    /// A fresh connection number (logs, dynamic address names).
    pub fn next_connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }
}
