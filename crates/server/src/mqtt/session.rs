//! MQTT sessions: a client's subscriptions, kept while it is away when it asked for a
//! persistent session, and the registry that finds a session by client id (resumption,
//! takeover).
//!
//! A subscription receives from *sources* ([`super::source`]). On a topic, every
//! non-shared subscription of the session whose filter matches it shares one
//! subscription queue of the session's own there (so every source knows the topic name
//! to publish on, MQTT's per-topic order is the queue's order, and overlapping filters
//! get one copy); the source is released when the last subscription using it goes. An
//! existing queue address named exactly is consumed directly (its consumers compete),
//! by a source of that subscription's own. A wildcard filter uses a source on every
//! matching topic, and on each matching topic created later (a tenant topic watcher).
//! Shared subscriptions (`$share/GROUP/FILTER`) use one durable subscription per group,
//! filter and topic (`$mqtt-share|GROUP|FILTER|TOPIC`), a source of the subscription's
//! own, so the group's members compete for each message and what it holds for a
//! persistent member that is away survives a restart; the last member out deletes it,
//! and after a restart those no restored session rejoined are deleted.
//!
//! While the client is connected its connection attaches a consumer to every source,
//! with the options [`Session::sources`] gives it; while it is away the queues keep
//! collecting (persistent sessions only).
//!
//! A persistent session (session expiry > 0 at CONNECT, or a 3.1.1 clean-session-0
//! session) survives restarts: its topic sources are durable subscriptions (journaled
//! queues named by [`super::source::durable_name`]), and its subscriptions, expiry and
//! QoS 2 packet-id state are kept in the metadata store, written whenever they change.
//! Durable subscriptions an earlier version made per filter are drained after the
//! restore ([`Session::adopt_legacy`]).

use super::source::{durable_name, legacy_name, shared_name, DeliveryOptions, Source, SourceKind};
use crate::config::MqttConfig;
use crate::wills::Will;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use throng_core::topic::Topic;
use throng_core::{Address, AddressKind, Tenant};
use throng_mqtt::codec::{RetainHandling, SubscriptionOptions};
use throng_mqtt::engine::{OutboundMessage, OutboundState, SessionState};
use throng_mqtt::topic::{has_wildcard, matches};
use throng_mqtt::{ByteStr, QoS};
use throng_store::{BlobTable, Committed};
use tokio::sync::{oneshot, Notify};

pub use super::source::{SESSION_PREFIX, SESSION_TOPIC_PREFIX, SHARED_PREFIX};

/// One SUBSCRIBE filter and what it receives from.
pub struct Subscription {
    /// The filter without a `$share/GROUP/` prefix.
    pub filter: String,
    /// The share group, for `$share/GROUP/FILTER`.
    pub share: Option<String>,
    pub options: SubscriptionOptions,
    /// v5 subscription identifier, sent back with every message.
    pub id: Option<u32>,
    /// The sources of this subscription alone: shared subscriptions', a queue address,
    /// durable subscriptions an earlier version made for this filter. Topic sources of
    /// non-shared subscriptions are the session's, shared by filters
    /// ([`Session::topic_sources`]).
    pub sources: Vec<Source>,
}

/// A session's source on one topic and the non-shared subscriptions that use it.
pub struct TopicSource {
    pub source: Source,
    /// The keys of the subscriptions whose filter matches the topic.
    pub users: BTreeSet<String>,
}

/// Why a filter could not be subscribed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeError {
    /// The filter names an address that does not exist and the tenant does not create
    /// addresses on first use.
    NotFound,
    /// The filter names an address of a type MQTT cannot subscribe to (anycast,
    /// multicast).
    Unsupported,
}

/// A client's session state.
pub struct Session {
    pub tenant: Arc<Tenant>,
    pub client_id: String,
    /// Whether topic sources are durable subscriptions and the session is kept in the
    /// metadata store (decided at CONNECT: session expiry > 0).
    pub persistent: bool,
    /// By the filter as the client gave it (with any `$share/GROUP/` prefix).
    pub subscriptions: BTreeMap<String, Subscription>,
    /// By topic name: the one source on each topic that non-shared subscriptions
    /// matching it share.
    pub topic_sources: BTreeMap<String, TopicSource>,
    next_source: u64,
    /// The tenant topic watcher, while the session has wildcard subscriptions.
    watcher: Option<u64>,
    /// Told when a source is added outside the connection's own calls (a new topic
    /// matched a wildcard filter).
    pub changed: Arc<Notify>,
    /// The engine's protocol state between connections: inbound QoS 2 ids awaiting
    /// PUBREL, outbound QoS 2 ids awaiting PUBCOMP.
    pub protocol: SessionState,
    /// Seconds the session outlives its connection (`u32::MAX`: forever, as MQTT 3.1.1
    /// persistent sessions; 0: ends with the connection).
    pub expiry: u32,
    /// The will of the connection holding the session, or of the last one while its will
    /// delay runs (MQTT 5 counts the will as session state: a resumed session cancels a
    /// delayed will, an ending session publishes it). Boxed: most sessions have none, and
    /// a hundred thousand idle ones should not carry its size.
    pub will: Option<Box<Will>>,
}

impl Session {
    fn new(tenant: Arc<Tenant>, client_id: &str) -> Self {
        Session {
            tenant,
            client_id: client_id.to_string(),
            persistent: false,
            subscriptions: BTreeMap::new(),
            topic_sources: BTreeMap::new(),
            next_source: 1,
            watcher: None,
            changed: Arc::new(Notify::new()),
            protocol: SessionState::default(),
            expiry: 0,
            will: None,
        }
    }

    /// Every source of the session with the options its consumer applies: for a topic
    /// source, those of every subscription using it merged; for a subscription's own
    /// source, that subscription's.
    pub fn sources(&self) -> Vec<(&Source, DeliveryOptions)> {
        let shared = self.topic_sources.values().map(|ts| {
            let users = ts.users.iter().filter_map(|k| self.subscriptions.get(k));
            (&ts.source, DeliveryOptions::merge(users))
        });
        let own = self.subscriptions.values().flat_map(|sub| {
            sub.sources
                .iter()
                .map(move |s| (s, DeliveryOptions::merge([sub])))
        });
        shared.chain(own).collect()
    }

    /// Subscribes `key` (the filter as given); a subscription of that filter replaces the
    /// previous one's options and keeps its sources. Returns whether it already existed.
    pub fn subscribe(
        this: &Arc<Mutex<Session>>,
        key: &str,
        filter: &str,
        share: Option<&str>,
        options: SubscriptionOptions,
        id: Option<u32>,
    ) -> Result<bool, SubscribeError> {
        let tenant = lock(this).tenant.clone();
        // resolved before locking: creating a topic calls the watchers, ours included
        let address = if has_wildcard(filter) {
            None
        } else {
            Some(
                tenant
                    .resolve(filter, AddressKind::Topic)
                    .ok_or(SubscribeError::NotFound)?,
            )
        };
        let mut s = lock(this);
        if let Some(existing) = s.subscriptions.get_mut(key) {
            existing.options = options;
            existing.id = id;
            return Ok(true);
        }
        let mut sub = Subscription {
            filter: filter.to_string(),
            share: share.map(str::to_string),
            options,
            id,
            sources: Vec::new(),
        };
        let topics = match address {
            None => {
                s.ensure_watcher(this);
                // after the watcher: a topic created meanwhile is seen twice, never missed
                tenant
                    .topics()
                    .into_iter()
                    .filter(|t| matches(filter, t.name()))
                    .collect()
            }
            Some(Address::Topic(t)) => vec![t],
            Some(Address::Queue(q)) => {
                let id = s.next_id();
                sub.sources.push(Source {
                    id,
                    topic: ByteStr::from(filter),
                    queue: q,
                    kind: SourceKind::Queue,
                });
                Vec::new()
            }
            Some(_) => return Err(SubscribeError::Unsupported),
        };
        if sub.share.is_some() {
            s.add_shared_sources(&mut sub, &topics);
        } else {
            s.use_topics(key, &topics);
        }
        s.subscriptions.insert(key.to_string(), sub);
        Ok(false)
    }

    /// Ends the subscription `key`; returns the sources nothing uses any more, not yet
    /// released: the connection removes their consumers, then releases them.
    pub fn unsubscribe(&mut self, key: &str) -> Option<Vec<Source>> {
        let sub = self.subscriptions.remove(key)?;
        let mut ended = sub.sources;
        let unused: Vec<String> = self
            .topic_sources
            .iter_mut()
            .filter_map(|(topic, ts)| {
                (ts.users.remove(key) && ts.users.is_empty()).then(|| topic.clone())
            })
            .collect();
        for topic in unused {
            if let Some(ts) = self.topic_sources.remove(&topic) {
                ended.push(ts.source);
            }
        }
        if !self.subscriptions.keys().any(|k| has_wildcard(k)) {
            if let Some(w) = self.watcher.take() {
                self.tenant.unwatch_topics(w);
            }
        }
        Some(ended)
    }

    /// Ends every subscription (the session is over) and forgets the stored session;
    /// returns the will the session still held, to publish (outside any session lock:
    /// publishing may create a topic, which calls the sessions' topic watchers).
    #[must_use = "a will left in an ending session is due now"]
    pub fn clear(&mut self) -> Option<Box<Will>> {
        let keys: Vec<String> = self.subscriptions.keys().cloned().collect();
        for k in keys {
            for s in self.unsubscribe(&k).unwrap_or_default() {
                s.release();
            }
        }
        if let Some(w) = self.watcher.take() {
            self.tenant.unwatch_topics(w);
        }
        self.protocol = SessionState::default();
        if self.persistent {
            self.forget();
        }
        self.will.take()
    }

    /// Deletes the drained sources an earlier version left ([`Session::adopt_legacy`])
    /// once nothing is left in them; returns their ids (the connection removes their
    /// consumers).
    pub fn retire_drained(&mut self) -> Vec<u64> {
        let mut retired = Vec::new();
        for sub in self.subscriptions.values_mut() {
            sub.sources.retain(|s| {
                if s.drains() && s.is_drained() {
                    tracing::info!(topic = %s.topic.as_str(), "durable subscription of an earlier version drained and deleted");
                    s.release();
                    retired.push(s.id);
                    false
                } else {
                    true
                }
            });
        }
        retired
    }

    /// After a restore: takes over the durable subscriptions an earlier version made for
    /// this session, one per filter and topic (`$mqtt|CLIENT|FILTER|TOPIC`). Each stops
    /// receiving (the shared topic source has every new message) and becomes a source of
    /// its filter's subscription until it is drained ([`Session::retire_drained`]); one
    /// already empty is deleted now. So what they held while the client was away is
    /// delivered, once per old subscription as the earlier version would have.
    pub fn adopt_legacy(&mut self) {
        let mut found = Vec::new();
        for (key, sub) in &self.subscriptions {
            if sub.share.is_some() {
                continue;
            }
            for (topic, ts) in &self.topic_sources {
                if !ts.users.contains(key) {
                    continue;
                }
                let name = legacy_name(&self.client_id, &sub.filter, topic);
                let Some(Address::Topic(t)) = self.tenant.lookup(topic) else {
                    continue;
                };
                if let Some(q) = t.durable_subscription(&name) {
                    t.unsubscribe(&q);
                    found.push((key.clone(), topic.clone(), name, q));
                }
            }
        }
        for (key, topic, name, queue) in found {
            let id = self.next_id();
            let source = Source {
                id,
                topic: ByteStr::from(topic.as_str()),
                queue,
                kind: SourceKind::Legacy(self.tenant.clone(), name),
            };
            if source.is_drained() {
                source.release();
                continue;
            }
            tracing::info!(client = %self.client_id, filter = %key, topic = %topic, messages = source.queue.depth(), "draining a durable subscription of an earlier version");
            if let Some(sub) = self.subscriptions.get_mut(&key) {
                sub.sources.push(source);
            }
        }
    }

    /// Writes the session to the metadata store with the protocol state it holds between
    /// connections (persistent sessions; a failure is logged: the session goes on in
    /// memory).
    pub fn persist(&self) {
        let awaiting_comp = self
            .protocol
            .outbound
            .iter()
            .filter(|m| m.state == OutboundState::AwaitingComp)
            .map(|m| m.packet_id)
            .collect();
        self.persist_with(self.protocol.inbound_qos2.clone(), awaiting_comp, None);
    }

    /// Writes the session with the QoS 2 ids of its live connection: inbound ids awaiting
    /// PUBREL and outbound ids awaiting PUBCOMP. The write goes to the metadata store's
    /// group-commit writer; `done` runs once it is on disk, and is dropped uncalled when
    /// nothing is written (a session that ends with its connection).
    pub fn persist_with(
        &self,
        inbound_qos2: Vec<u16>,
        awaiting_comp: Vec<u16>,
        done: Option<Committed>,
    ) {
        if !self.persistent || self.tenant.metadata().is_none() {
            return;
        }
        let stored = StoredSession {
            expiry: self.expiry,
            subscriptions: self
                .subscriptions
                .iter()
                .map(|(key, sub)| StoredSubscription {
                    key: key.clone(),
                    filter: sub.filter.clone(),
                    share: sub.share.clone(),
                    qos: sub.options.qos as u8,
                    no_local: sub.options.no_local,
                    retain_as_published: sub.options.retain_as_published,
                    retain_handling: sub.options.retain_handling as u8,
                    id: sub.id,
                })
                .collect(),
            inbound_qos2,
            awaiting_comp,
        };
        let bytes = match serde_json::to_vec(&stored) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(client = %self.client_id, "cannot encode the mqtt session: {e}");
                return;
            }
        };
        self.tenant
            .store_row(BlobTable::MqttSessions, &self.client_id, Some(bytes), done);
    }

    /// Removes the session from the metadata store.
    fn forget(&self) {
        self.tenant
            .store_row(BlobTable::MqttSessions, &self.client_id, None, None);
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_source;
        self.next_source += 1;
        id
    }

    /// Makes the non-shared subscription `key` a user of the session's source on each of
    /// `topics`, creating the sources it lacks; durable ones (persistent sessions) are
    /// opened together: one wait for the metadata store.
    fn use_topics(&mut self, key: &str, topics: &[Arc<Topic>]) {
        let mut new = Vec::new();
        for t in topics {
            match self.topic_sources.get_mut(t.name()) {
                Some(ts) => {
                    ts.users.insert(key.to_string());
                }
                None => new.push(t.clone()),
            }
        }
        let sources: Vec<(Arc<Topic>, Arc<throng_core::queue::Queue>, SourceKind)> =
            if self.persistent {
                let named: Vec<(Arc<Topic>, String)> = new
                    .into_iter()
                    .map(|t| {
                        let name = durable_name(&self.client_id, t.name());
                        (t, name)
                    })
                    .collect();
                let queues = self.tenant.open_subscriptions(&named, false);
                named
                    .into_iter()
                    .zip(queues)
                    .map(|((t, name), q)| (t, q, SourceKind::Durable(self.tenant.clone(), name)))
                    .collect()
            } else {
                new.into_iter()
                    .map(|t| {
                        let q = t.subscribe();
                        (t.clone(), q, SourceKind::Topic(t))
                    })
                    .collect()
            };
        for (t, queue, kind) in sources {
            let id = self.next_id();
            self.topic_sources.insert(
                t.name().to_string(),
                TopicSource {
                    source: Source {
                        id,
                        topic: ByteStr::from(t.name()),
                        queue,
                        kind,
                    },
                    users: BTreeSet::from([key.to_string()]),
                },
            );
        }
    }

    /// Gives the shared subscription `sub` a source on each of `topics` it has none on:
    /// its group's durable subscriptions, joined together (one wait for the metadata
    /// store).
    fn add_shared_sources(&mut self, sub: &mut Subscription, topics: &[Arc<Topic>]) {
        let Some(group) = sub.share.as_deref() else {
            return;
        };
        let named: Vec<(Arc<Topic>, String)> = topics
            .iter()
            .filter(|t| !sub.sources.iter().any(|s| s.topic.as_str() == t.name()))
            .map(|t| (t.clone(), shared_name(group, &sub.filter, t.name())))
            .collect();
        let queues = self.tenant.open_subscriptions(&named, true);
        for ((t, name), queue) in named.into_iter().zip(queues) {
            let id = self.next_id();
            sub.sources.push(Source {
                id,
                topic: ByteStr::from(t.name()),
                queue,
                kind: SourceKind::Shared(self.tenant.clone(), name),
            });
        }
    }

    fn ensure_watcher(&mut self, this: &Arc<Mutex<Session>>) {
        if self.watcher.is_some() {
            return;
        }
        let weak: Weak<Mutex<Session>> = Arc::downgrade(this);
        self.watcher = Some(self.tenant.watch_topics(Arc::new(move |t: &Arc<Topic>| {
            if let Some(session) = weak.upgrade() {
                lock(&session).topic_created(t);
            }
        })));
    }

    /// A topic was created: every wildcard subscription it matches gets a source.
    fn topic_created(&mut self, t: &Arc<Topic>) {
        let keys: Vec<String> = self
            .subscriptions
            .iter()
            .filter(|(_, s)| has_wildcard(&s.filter) && matches(&s.filter, t.name()))
            .map(|(k, _)| k.clone())
            .collect();
        if keys.is_empty() {
            return;
        }
        for k in keys {
            if let Some(mut sub) = self.subscriptions.remove(&k) {
                if sub.share.is_some() {
                    self.add_shared_sources(&mut sub, std::slice::from_ref(t));
                } else {
                    self.use_topics(&k, std::slice::from_ref(t));
                }
                self.subscriptions.insert(k, sub);
            }
        }
        self.changed.notify_one();
    }
}

/// Locks a session (a panic elsewhere leaves it usable: its state stays consistent).
pub fn lock(s: &Mutex<Session>) -> MutexGuard<'_, Session> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// Who holds a session now.
struct Holder {
    conn: u64,
    /// Closes the holder's connection (session takeover).
    kick: Arc<Notify>,
}

struct Entry {
    session: Arc<Mutex<Session>>,
    holder: Option<Holder>,
    /// Bumped whenever the session is taken or released, so a stale expiry timer or
    /// delayed will can tell it lost the race.
    epoch: u64,
    /// A connection that resumed the session from a live holder waits for the holder to
    /// hand its protocol state over (the holder's connection id, and the signal).
    handover: Option<(u64, oneshot::Sender<()>)>,
}

/// Every MQTT session of the node, by tenant and client id.
pub struct Sessions {
    entries: Mutex<HashMap<(String, String), Entry>>,
    /// The node's MQTT settings, for every connection (TCP and WebSocket).
    pub config: MqttConfig,
}

/// What [`Sessions::open`] found.
pub struct Opened {
    pub session: Arc<Mutex<Session>>,
    /// An earlier session was resumed (CONNACK session-present).
    pub present: bool,
    /// The session was resumed from a live connection (takeover): it ends and hands its
    /// protocol state to the session when this fires; the new connection takes the state
    /// only then.
    pub previous: Option<oneshot::Receiver<()>>,
}

impl Sessions {
    /// An empty registry for a node with these MQTT settings.
    pub fn new(config: MqttConfig) -> Self {
        Sessions {
            entries: Mutex::default(),
            config,
        }
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<(String, String), Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the session of `client_id` for connection `conn`: a connection holding it
    /// is kicked (takeover); `clean` discards any earlier state.
    pub fn open(
        &self,
        tenant: &Arc<Tenant>,
        client_id: &str,
        conn: u64,
        kick: Arc<Notify>,
        clean: bool,
    ) -> Opened {
        let key = (tenant.name().to_string(), client_id.to_string());
        let mut entries = self.entries();
        if let Some(e) = entries.get_mut(&key) {
            let mut previous = None;
            // a connection still waiting for a handover never took the state: the one it
            // waits for still has it, so the new connection waits for that one instead
            // (dropping the sender tells the waiting connection it was superseded)
            let pending = e.handover.take().map(|(from, _)| from);
            let kicked = e.holder.take().map(|h| {
                h.kick.notify_one();
                h.conn
            });
            if let (false, Some(from)) = (clean, pending.or(kicked)) {
                let (tx, rx) = oneshot::channel();
                e.handover = Some((from, tx));
                previous = Some(rx);
            }
            e.epoch += 1;
            e.holder = Some(Holder { conn, kick });
            let due = {
                let mut s = lock(&e.session);
                // the previous connection's will (live, or waiting out its delay) is due
                // now if the session ends here or it has no delay; a resumed session
                // cancels a delayed will (MQTT-3.1.3-9)
                if clean {
                    s.clear()
                } else {
                    match s.will.take() {
                        Some(w) if w.delay > 0 => {
                            w.forget(tenant);
                            None
                        }
                        will => will,
                    }
                }
            };
            if clean {
                e.session = Arc::new(Mutex::new(Session::new(tenant.clone(), client_id)));
            }
            let opened = Opened {
                session: e.session.clone(),
                present: !clean,
                previous,
            };
            drop(entries);
            if let Some(w) = due {
                w.publish(tenant);
            }
            return opened;
        }
        let session = Arc::new(Mutex::new(Session::new(tenant.clone(), client_id)));
        entries.insert(
            key,
            Entry {
                session: session.clone(),
                holder: Some(Holder { conn, kick }),
                epoch: 1,
                handover: None,
            },
        );
        Opened {
            session,
            present: false,
            previous: None,
        }
    }

    /// Connection `conn` is done with the session: it ends now (expiry 0) or after its
    /// expiry interval, unless a connection takes it first. The connection's will is
    /// withdrawn if it ended cleanly (`lost` false); otherwise it is published now, or
    /// after its delay (at the latest when the session ends) unless the client resumes the
    /// session first. A connection that was taken over does nothing: its session, will
    /// included, went to the new connection, which gets `protocol` (the QoS 1/2 state
    /// between client and node) now. `protocol` is `None` for a connection that never
    /// took the session's state (it was not yet accepted).
    pub fn release(
        self: &Arc<Self>,
        tenant: &Arc<Tenant>,
        client_id: &str,
        conn: u64,
        lost: bool,
        protocol: Option<SessionState>,
    ) {
        let key = (tenant.name().to_string(), client_id.to_string());
        let mut entries = self.entries();
        let Some(e) = entries.get_mut(&key) else {
            return;
        };
        if e.holder.as_ref().map(|h| h.conn) != Some(conn) {
            // taken over: the new holder owns the session and waits for our state
            if let Some((_, tx)) = e.handover.take_if(|(from, _)| *from == conn) {
                if let Some(p) = protocol {
                    let mut s = lock(&e.session);
                    s.protocol = p;
                    if e.holder.is_none() && s.expiry != 0 {
                        // the connection that waited for it is gone too
                        s.persist();
                    }
                }
                let _ = tx.send(());
            }
            return;
        }
        e.holder = None;
        e.epoch += 1;
        let epoch = e.epoch;
        let (expiry, mut due) = {
            let mut s = lock(&e.session);
            if let Some(p) = protocol {
                s.protocol = p;
            }
            let due = match s.will.take() {
                Some(w) if !lost => {
                    w.forget(tenant);
                    None
                }
                Some(w) if w.delay.min(s.expiry) > 0 => {
                    self.will_after(key.clone(), epoch, w.delay);
                    s.will = Some(w);
                    None
                }
                will => will,
            };
            if s.expiry != 0 {
                s.persist();
            }
            (s.expiry, due)
        };
        if expiry == 0 {
            if let Some(e) = entries.remove(&key) {
                due = due.or(lock(&e.session).clear());
            }
        } else {
            self.expire_after(key, epoch, expiry);
        }
        drop(entries);
        if let Some(w) = due {
            w.publish(tenant);
        }
    }

    /// Runs `f` after `secs` seconds (with no runtime, never: nothing is timed then).
    fn after(self: &Arc<Self>, secs: u32, f: impl FnOnce(&Self) + Send + 'static) {
        let me = Arc::clone(self);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                tokio::time::sleep(std::time::Duration::from_secs(secs as u64)).await;
                f(&me);
            });
        }
    }

    /// Publishes the will an unheld session holds after `delay` seconds, unless the
    /// session was taken (or ended) meanwhile.
    fn will_after(self: &Arc<Self>, key: (String, String), epoch: u64, delay: u32) {
        self.after(delay, move |me| {
            let due = {
                let entries = me.entries();
                unheld(&entries, &key, epoch).and_then(|e| {
                    let mut s = lock(&e.session);
                    s.will.take().map(|w| (s.tenant.clone(), w))
                })
            };
            if let Some((tenant, w)) = due {
                w.publish(&tenant);
            }
        });
    }

    /// Ends the unheld session `key` after `expiry` seconds unless it is taken meanwhile
    /// (`u32::MAX`: never).
    fn expire_after(self: &Arc<Self>, key: (String, String), epoch: u64, expiry: u32) {
        if expiry != u32::MAX {
            self.after(expiry, move |me| me.expire(&key, epoch));
        }
    }

    /// Brings back the persistent sessions stored before a restart, unheld, their
    /// subscriptions re-made on the durable subscriptions the node already restored;
    /// their expiry counts again from now.
    pub fn restore(
        self: &Arc<Self>,
        node: &throng_core::Node,
        records: &[(String, String, Vec<u8>)],
    ) {
        for (tenant_name, client, bytes) in records {
            let Some(tenant) = node.tenant(tenant_name) else {
                tracing::warn!(tenant = %tenant_name, client = %client, "mqtt session of an unknown tenant skipped");
                continue;
            };
            let stored: StoredSession = match serde_json::from_slice(bytes) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(tenant = %tenant_name, client = %client, "unreadable mqtt session skipped: {e}");
                    continue;
                }
            };
            let mut session = Session::new(tenant.clone(), client);
            session.persistent = true;
            session.expiry = stored.expiry;
            session.protocol = SessionState {
                inbound_qos2: stored.inbound_qos2.clone(),
                outbound: stored
                    .awaiting_comp
                    .iter()
                    .map(|id| OutboundMessage {
                        packet_id: *id,
                        state: OutboundState::AwaitingComp,
                    })
                    .collect(),
            };
            let session = Arc::new(Mutex::new(session));
            for sub in &stored.subscriptions {
                let options = SubscriptionOptions {
                    qos: QoS::from_u8(sub.qos).unwrap_or(QoS::AtMostOnce),
                    no_local: sub.no_local,
                    retain_as_published: sub.retain_as_published,
                    retain_handling: match sub.retain_handling {
                        1 => RetainHandling::OnNewSubscription,
                        2 => RetainHandling::Never,
                        _ => RetainHandling::OnSubscribe,
                    },
                };
                if let Err(e) = Session::subscribe(
                    &session,
                    &sub.key,
                    &sub.filter,
                    sub.share.as_deref(),
                    options,
                    sub.id,
                ) {
                    tracing::warn!(client = %client, filter = %sub.key, "mqtt subscription not restored: {e:?}");
                }
            }
            // what an earlier version stored per filter is delivered, not lost
            lock(&session).adopt_legacy();
            let key = (tenant_name.clone(), client.clone());
            self.entries().insert(
                key.clone(),
                Entry {
                    session,
                    holder: None,
                    epoch: 1,
                    handover: None,
                },
            );
            self.expire_after(key, 1, stored.expiry);
        }
        if !records.is_empty() {
            tracing::info!(sessions = records.len(), "mqtt sessions restored");
        }
        // shared subscriptions whose members all ended with the node
        for tenant in node.tenants() {
            tenant.close_unjoined_shared_subscriptions(|name| name.starts_with(SHARED_PREFIX));
        }
    }

    fn expire(&self, key: &(String, String), epoch: u64) {
        let mut entries = self.entries();
        if unheld(&entries, key, epoch).is_some() {
            if let Some(e) = entries.remove(key) {
                drop(entries);
                let mut s = lock(&e.session);
                let due = s.clear();
                let tenant = s.tenant.clone();
                drop(s);
                // the session ends before the will delay did: the will is due (MQTT-3.1.3-9)
                if let Some(w) = due {
                    w.publish(&tenant);
                }
            }
        }
    }

    /// Takes the wills stored before a restart: each belonged to a connection the node
    /// lost, so it is published now — unless it is an MQTT will with a delay whose
    /// persistent session came back, which then waits out its delay (from now, at most
    /// the session's expiry) and is cancelled if the client resumes the session first.
    pub fn restore_wills(self: &Arc<Self>, wills: Vec<(Arc<Tenant>, Will)>) {
        let mut published = 0;
        for (tenant, w) in wills {
            let key = (tenant.name().to_string(), w.client_id.clone());
            let entries = self.entries();
            // the will back, unless its restored session keeps it for its delay
            let due = match entries.get(&key) {
                Some(e) if w.mqtt && w.delay > 0 => {
                    let mut s = lock(&e.session);
                    if w.delay.min(s.expiry) > 0 && s.will.is_none() {
                        self.will_after(key.clone(), e.epoch, w.delay);
                        s.will = Some(Box::new(w));
                        None
                    } else {
                        Some(w)
                    }
                }
                _ => Some(w),
            };
            drop(entries);
            if let Some(w) = due {
                w.publish(&tenant);
                published += 1;
            }
        }
        if published > 0 {
            tracing::info!(
                wills = published,
                "wills of connections lost in the last run published"
            );
        }
    }
}

/// The entry of `key` if no connection has taken or released it since `epoch` (a timer
/// set at `epoch` still applies).
fn unheld<'a>(
    entries: &'a HashMap<(String, String), Entry>,
    key: &(String, String),
    epoch: u64,
) -> Option<&'a Entry> {
    entries
        .get(key)
        .filter(|e| e.holder.is_none() && e.epoch == epoch)
}

/// A persistent session as the metadata store keeps it (JSON).
#[derive(Debug, Serialize, Deserialize)]
struct StoredSession {
    expiry: u32,
    subscriptions: Vec<StoredSubscription>,
    inbound_qos2: Vec<u16>,
    awaiting_comp: Vec<u16>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredSubscription {
    key: String,
    filter: String,
    share: Option<String>,
    qos: u8,
    no_local: bool,
    retain_as_published: bool,
    retain_handling: u8,
    id: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use throng_amqp::message::Message;

    /// A session registry, a tenant without a metadata store, and a persistent session
    /// for client `c` held by connection 1.
    fn held_by_first() -> (Arc<Sessions>, Arc<Tenant>, Opened) {
        let sessions = Arc::new(Sessions::new(MqttConfig::default()));
        let tenant = Arc::new(Tenant::new("t", true, vec![]));
        let first = sessions.open(&tenant, "c", 1, Arc::new(Notify::new()), true);
        lock(&first.session).expiry = 300;
        (sessions, tenant, first)
    }

    fn resume(sessions: &Sessions, tenant: &Arc<Tenant>, conn: u64) -> Opened {
        sessions.open(tenant, "c", conn, Arc::new(Notify::new()), false)
    }

    /// The QoS 2 state connection 1 holds: packet id 9 awaiting PUBREL.
    fn awaiting_pubrel() -> SessionState {
        SessionState {
            inbound_qos2: vec![9],
            ..SessionState::default()
        }
    }

    fn superseded(rx: &mut oneshot::Receiver<()>) -> bool {
        rx.try_recv() == Err(oneshot::error::TryRecvError::Closed)
    }

    #[test]
    fn a_takeover_of_a_waiting_connection_waits_for_the_one_with_the_state() {
        let (sessions, tenant, _first) = held_by_first();
        let mut second = resume(&sessions, &tenant, 2)
            .previous
            .expect("2 waits for 1");
        let third = resume(&sessions, &tenant, 3);
        let mut waits = third.previous.expect("3 waits too");
        assert!(superseded(&mut second), "2 learns it was taken over");
        // 2 ends without ever having taken the state; then 1 hands its state over
        sessions.release(&tenant, "c", 2, true, None);
        assert!(waits.try_recv().is_err(), "2 had nothing to hand over");
        sessions.release(&tenant, "c", 1, true, Some(awaiting_pubrel()));
        assert_eq!(waits.try_recv(), Ok(()));
        assert_eq!(lock(&third.session).protocol, awaiting_pubrel());
    }

    #[test]
    fn a_clean_start_takeover_ends_a_pending_handover() {
        let (sessions, tenant, _first) = held_by_first();
        let mut second = resume(&sessions, &tenant, 2)
            .previous
            .expect("2 waits for 1");
        let clean = sessions.open(&tenant, "c", 3, Arc::new(Notify::new()), true);
        assert!(clean.previous.is_none() && !clean.present);
        assert!(superseded(&mut second));
        sessions.release(&tenant, "c", 1, true, Some(awaiting_pubrel()));
        assert_eq!(
            lock(&clean.session).protocol,
            SessionState::default(),
            "the old state stays out of the new session"
        );
    }

    #[test]
    fn a_resume_after_the_waiting_connection_left_still_gets_the_state() {
        let (sessions, tenant, _first) = held_by_first();
        let _second = resume(&sessions, &tenant, 2)
            .previous
            .expect("2 waits for 1");
        sessions.release(&tenant, "c", 2, true, None);
        let fourth = resume(&sessions, &tenant, 4);
        let mut waits = fourth
            .previous
            .expect("1 still has the state: 4 waits for it");
        sessions.release(&tenant, "c", 1, true, Some(awaiting_pubrel()));
        assert_eq!(waits.try_recv(), Ok(()));
        assert_eq!(lock(&fourth.session).protocol, awaiting_pubrel());
    }

    #[test]
    fn state_handed_over_after_everyone_left_stays_in_the_session() {
        let (sessions, tenant, _first) = held_by_first();
        let session = resume(&sessions, &tenant, 2).session;
        sessions.release(&tenant, "c", 2, true, None);
        sessions.release(&tenant, "c", 1, true, Some(awaiting_pubrel()));
        assert_eq!(lock(&session).protocol, awaiting_pubrel());
        let back = resume(&sessions, &tenant, 5);
        assert!(back.present && back.previous.is_none());
        assert_eq!(lock(&back.session).protocol, awaiting_pubrel());
    }

    /// A session of client `c` on tenant `tenant` (persistent or not) subscribed to
    /// `ov/#` (id 1) and `ov/x` (id 2) at QoS 1.
    fn overlapping(tenant: &Arc<Tenant>, persistent: bool) -> Arc<Mutex<Session>> {
        let mut s = Session::new(tenant.clone(), "c");
        s.persistent = persistent;
        let s = Arc::new(Mutex::new(s));
        let qos1 = SubscriptionOptions::qos(QoS::AtLeastOnce);
        for (filter, id) in [("ov/#", 1), ("ov/x", 2)] {
            Session::subscribe(&s, filter, filter, None, qos1, Some(id)).expect("subscribe");
        }
        s
    }

    fn topic(tenant: &Tenant, name: &str) -> Arc<Topic> {
        match tenant.resolve(name, AddressKind::Topic) {
            Some(Address::Topic(t)) => t,
            _ => panic!("no topic {name}"),
        }
    }

    #[test]
    fn overlapping_filters_share_one_source_until_the_last_goes() {
        let tenant = Arc::new(Tenant::new("t", true, vec![]));
        let t = topic(&tenant, "ov/x");
        let session = overlapping(&tenant, false);
        let mut s = lock(&session);
        assert_eq!(
            t.subscriber_count(),
            1,
            "one queue on the topic for both filters"
        );
        let sources = s.sources();
        assert_eq!(sources.len(), 1);
        assert_eq!(sources[0].1.subscription_ids, vec![1, 2]);
        drop(sources);
        let ended = s.unsubscribe("ov/x").expect("subscribed");
        assert!(ended.is_empty(), "ov/# still uses the source");
        assert_eq!(s.sources()[0].1.subscription_ids, vec![1]);
        let ended = s.unsubscribe("ov/#").expect("subscribed");
        assert_eq!(ended.len(), 1, "the last filter out ends it");
        ended.iter().for_each(Source::release);
        assert_eq!(t.subscriber_count(), 0);
    }

    #[test]
    fn a_restored_session_drains_what_an_earlier_version_stored_per_filter() {
        let tenant = Arc::new(Tenant::new("t", true, vec![]));
        let t = topic(&tenant, "ov/x");
        // what an earlier version left: one durable subscription per filter and topic
        let held = tenant.open_subscription(&t, &legacy_name("c", "ov/#", "ov/x"));
        let bytes = super::super::bridge::to_amqp(
            "ov/x",
            QoS::AtLeastOnce,
            false,
            &throng_mqtt::Properties::default(),
            bytes::Bytes::from_static(b"kept"),
            "p",
        );
        held.restore(1, Message::parse(bytes).expect("message"), 0);
        let empty_name = legacy_name("c", "ov/x", "ov/x");
        tenant.open_subscription(&t, &empty_name);
        let session = overlapping(&tenant, true);
        let mut s = lock(&session);
        s.adopt_legacy();
        assert!(
            tenant.subscription_topic(&empty_name).is_none(),
            "an empty one is deleted at once"
        );
        let fed = t.subscription_queues();
        assert_eq!(
            fed.len(),
            1,
            "only the session's new source gets new messages"
        );
        assert!(!fed.iter().any(|q| Arc::ptr_eq(q, &held)));
        let sources = s.sources();
        assert_eq!(sources.len(), 2, "the shared source and the one draining");
        let (old, options) = sources
            .iter()
            .find(|(src, _)| Arc::ptr_eq(&src.queue, &held))
            .expect("the old subscription is a source");
        assert!(old.drains());
        assert_eq!(
            options.subscription_ids,
            vec![1],
            "its own filter's options"
        );
        assert_eq!(held.depth(), 1, "its message is still there");
        drop(sources);
        // drained: deleted
        assert!(s.retire_drained().is_empty(), "not drained yet");
        held.purge();
        assert_eq!(s.retire_drained().len(), 1);
        assert!(tenant
            .subscription_topic(&legacy_name("c", "ov/#", "ov/x"))
            .is_none());
    }
}
