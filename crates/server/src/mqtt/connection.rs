//! The per-connection task of an MQTT client: socket ⇄ MQTT engine ⇄ router core.
//!
//! Same shape as the AMQP task: one task owns the engine, reads into its input buffer,
//! writes its output in batches, and applies the commands addresses put in its
//! [`Outbox`]. Publishes are translated to AMQP once ([`super::bridge`]) and routed to
//! the address named by the topic; a QoS 1/2 publish is acknowledged when the address
//! has stored it (after the fsync for a durable copy). Subscriptions are consumers on
//! the session's sources ([`super::session`]); deliveries are published with QoS
//! `min(source, message)`, the source's options being those of every subscription using
//! it merged ([`super::source::DeliveryOptions`]), and settled upstream on PUBACK/PUBREC
//! (QoS 0: when written). Flow control: each consumer gets a credit window (for QoS > 0
//! twice the client's receive maximum, capped at [`QOS12_WINDOW`]: one window in flight,
//! the next waiting, so each PUBACK sends the next message at once); deliveries beyond
//! the engine's send credit wait in that bounded list; reading pauses while a full queue
//! withholds room, and while output is above the high-water mark.

use super::bridge;
use super::session::{self, Session, Sessions, SubscribeError};
use super::source::DeliveryOptions;
use crate::auth::{self, Principal};
use crate::socket_buffers::sleep_until;
use crate::socket_buffers::SocketBuffers;
use crate::wills::Will;
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use throng_amqp::message::Message;
use throng_core::queue::Queue;
use throng_core::{
    AddressKind, Command, ConsumerKey, Handle, Node, Op, Outbox, Outcome, Producer, Published,
    Refusal, Reply, Target, Verdict,
};
use throng_idmap::IdMap;
use throng_mqtt::codec::{Connect, RetainHandling, Subscribe, Unsubscribe};
use throng_mqtt::engine::{Closed, Config, Connection, Event};
use throng_mqtt::topic::{matches, overlaps, parse_filter};
use throng_mqtt::{ByteStr, Properties, Publish, QoS, ReasonCode, Version};
use throng_store::Committed;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{oneshot, Notify};
use tracing::{debug, info, warn};

/// Read buffer of a quiet connection: devices mostly send small packets, and a hundred
/// thousand idle clients must cost little (it grows to `LARGE_READ` while reads fill it).
const SMALL_READ: usize = 1024;
/// Credit window of a QoS 0 subscription's consumer.
const QOS0_WINDOW: u32 = 256;
/// Credit window of a QoS 1/2 subscription's consumer when the client's receive maximum
/// is larger (65,535 unless it announces one): every unacknowledged delivery holds a
/// queue entry and an engine in-flight record, so a window of the full 65,535 per
/// subscription let a fan-out hold gigabytes in flight for no gain in throughput.
const QOS12_WINDOW: u32 = 1024;
/// How long a connection that took a session over waits for the previous connection to
/// hand the session's protocol state over before it goes on without it.
const HANDOVER_TIMEOUT: Duration = Duration::from_secs(5);
/// The core's handle for this connection's inbound publishes (their verdicts, the wait
/// for a full address); subscription consumers are numbered from 1.
const INBOUND: Handle = Handle(0);
/// Receive maximum the node announces: QoS 1/2 publishes a client may have unacked.
const RECEIVE_MAXIMUM: u16 = 1024;

/// A consumer on one source of the session.
struct Consumer {
    source: u64,
    queue: Arc<Queue>,
    key: ConsumerKey,
    topic: ByteStr,
    /// What each delivery carries (every subscription using the source, merged).
    options: DeliveryOptions,
    /// The source is drained and then deleted (a durable subscription of an earlier
    /// version).
    drains: bool,
    /// Credit granted at each top-up: for QoS 1/2 twice what may be in flight, so that
    /// while a window is out the next one waits in `pending` and every PUBACK lets one
    /// out at once (a top-up per freed slot would take the queue lock per message).
    credit: u32,
    /// Completions between top-ups.
    step: u32,
    /// Deliveries completed (written for QoS 0, acknowledged for QoS 1/2).
    completed: u32,
    /// The credit limit last granted.
    limit: u32,
}

/// Something the connection waits for with its output and reading held.
struct Wait {
    done: oneshot::Receiver<()>,
    then: Then,
}

enum Then {
    /// The metadata store has the last write that must precede the output: the will
    /// and session before the CONNACK, the session before the SUBACK, the QoS 2 ids
    /// before the PUBREC / PUBCOMP.
    Stored,
    /// The connection this one took the session from has ended and handed its state
    /// over: accept the CONNECT (or on the deadline, accept without it).
    Handover(Box<Accepting>, Instant),
}

/// A CONNECT that is accepted once the session's previous connection is gone.
struct Accepting {
    present: bool,
    props: Properties,
    will: Option<Will>,
}

/// An outbound delivery waiting for engine send credit.
struct Pending {
    link: Handle,
    msg: Message,
    token: u64,
    settled: bool,
    /// When it expires (ms since the epoch): v5 deliveries carry the time left.
    expires_at: Option<u64>,
}

struct Conn {
    id: u64,
    peer: SocketAddr,
    node: Arc<Node>,
    sessions: Arc<Sessions>,
    engine: Connection,
    outbox: Arc<Outbox>,
    /// Shared, so each publish takes it with a reference count rather than copying the
    /// user and its permissions.
    principal: Option<Arc<Principal>>,
    client_id: String,
    session: Option<Arc<Mutex<Session>>>,
    /// Wakes this task: session takeover (another connection took the client id).
    kick: Arc<Notify>,
    /// The session's notification that a source was added (a new matching topic).
    changed: Option<Arc<Notify>>,
    /// A newer connection took the session over (it may happen in any phase).
    taken_over: bool,
    /// The engine's `inbound_qos2_changes` when the session was last written.
    qos2_persisted: u64,
    consumers: IdMap<Handle, Consumer>,
    next_link: u32,
    /// Outbound QoS 1/2 packet id → (consumer link, queue token); `None` for retained
    /// messages sent on subscribe (nothing upstream to settle).
    inflight: IdMap<u16, Option<(Handle, u64)>>,
    pending: VecDeque<Pending>,
    /// The connection ended without a clean DISCONNECT (or with v5 reason 0x04): its
    /// will is due. How it ended, not a phase: true until the engine says otherwise.
    will_due: bool,
    /// What output and reading are held for (a session handover, a metadata write).
    /// Independent of `blocked`: a publish read in the same batch as a SUBSCRIBE may
    /// find its address full while the SUBSCRIBE's write holds the output.
    wait: Option<Wait>,
    /// A metadata write that held the output failed: what the output says (a PUBACK, a
    /// CONNACK) is not true, so it is never sent and the connection closes.
    store_failed: Arc<std::sync::atomic::AtomicBool>,
    /// How far the CONNECT has got.
    phase: Phase,
    /// Reading pauses until an address with no room has room again.
    blocked: bool,
    /// The queues this connection's publishes were registered with to hear of room:
    /// told when the connection ends first, so that no queue keeps waiting for it.
    waits_in: Vec<Arc<Queue>>,
}

/// How far a connection's CONNECT has got; it only moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No CONNECT accepted yet (one may wait for the session's previous connection to
    /// hand its state over).
    Connecting,
    /// The CONNECT is accepted: the engine holds the session's protocol state; the
    /// CONNACK has not left the engine yet.
    Accepted,
    /// The CONNACK has left the engine: the client may hear of anything now (a failed
    /// store is told with a DISCONNECT, never before a CONNACK).
    Live,
}

impl Phase {
    /// Whether the engine holds the session's protocol state (it goes back to the
    /// session when the connection ends).
    fn accepted(self) -> bool {
        self != Phase::Connecting
    }
}

enum Wake {
    Read(std::io::Result<usize>),
    Wrote(std::io::Result<usize>),
    Commands,
    Timer,
    SessionChanged,
    Kicked,
    /// What the connection waited for happened; `true`: a newer connection took the
    /// session over while this one waited for its handover.
    Waited(bool),
}

/// Serves one MQTT client until it disconnects or fails.
pub async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    node: Arc<Node>,
    sessions: Arc<Sessions>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let id = node.next_connection_id();
    let mut cfg = Config::server();
    cfg.receive_maximum = RECEIVE_MAXIMUM;
    let mut conn = Conn {
        id,
        peer,
        node,
        sessions,
        engine: Connection::server(cfg, Instant::now()),
        outbox: Arc::new(Outbox::new()),
        principal: None,
        client_id: String::new(),
        session: None,
        kick: Arc::new(Notify::new()),
        changed: None,
        taken_over: false,
        qos2_persisted: 0,
        consumers: IdMap::default(),
        next_link: 1,
        inflight: IdMap::default(),
        pending: VecDeque::new(),
        will_due: true,
        wait: None,
        store_failed: Arc::default(),
        phase: Phase::Connecting,
        blocked: false,
        waits_in: Vec::new(),
    };
    debug!(conn = id, %peer, "mqtt connection accepted");
    conn.run(stream).await;
    conn.finish();
    debug!(conn = id, %peer, "mqtt connection finished");
}

impl Conn {
    async fn run<S: AsyncRead + AsyncWrite + Unpin>(&mut self, stream: S) {
        let (mut rd, mut wr) = tokio::io::split(stream);
        let mut io = SocketBuffers::new(SMALL_READ);
        let mut cmds: Vec<Command> = Vec::new();
        let outbox = self.outbox.clone();
        let kick = self.kick.clone();
        loop {
            let held = self.wait.is_some();
            if self.engine.has_output() && !held {
                io.take_output(self.engine.output());
                if self.phase == Phase::Accepted {
                    self.phase = Phase::Live;
                }
            }
            let storing = matches!(
                &self.wait,
                Some(Wait {
                    then: Then::Stored,
                    ..
                })
            );
            if self.engine.is_closed() && io.out.is_empty() && !storing {
                let _ = wr.shutdown().await;
                return;
            }
            let deadline = self.engine.poll_timeout();
            let can_read =
                io.below_high_water() && !self.engine.is_closed() && !self.blocked && !held;
            let input = self.engine.input_buffer();
            let room = io.prepare_read(input);
            let wake = tokio::select! {
                biased;
                r = wr.write(&io.out), if !io.out.is_empty() => Wake::Wrote(r),
                _ = kick.notified() => Wake::Kicked,
                _ = outbox.notified(), if io.below_high_water() => Wake::Commands,
                r = rd.read_buf(input), if can_read => Wake::Read(r),
                _ = wait_changed(self.changed.as_deref()) => Wake::SessionChanged,
                // not while held: the client's packets (PINGREQ too) wait unread in the
                // socket then, and a slow disk must not time the client out
                _ = sleep_until(deadline), if deadline.is_some() && !held => Wake::Timer,
                superseded = waited(&mut self.wait), if held => Wake::Waited(superseded),
            };
            match wake {
                Wake::Wrote(Ok(n)) => io.wrote(n),
                Wake::Wrote(Err(e)) => {
                    debug!(conn = self.id, "write failed: {e}");
                    self.engine.transport_closed(Instant::now());
                    self.handle_events();
                    return;
                }
                Wake::Read(Ok(0)) => {
                    self.engine.transport_closed(Instant::now());
                    self.handle_events();
                    return;
                }
                Wake::Read(Ok(n)) => {
                    io.after_read(n, room);
                    self.engine.process_input(Instant::now());
                    self.handle_events();
                    io.release_idle(self.engine.input_buffer());
                }
                Wake::Read(Err(e)) => {
                    debug!(conn = self.id, "read failed: {e}");
                    self.engine.transport_closed(Instant::now());
                    self.handle_events();
                    return;
                }
                Wake::Commands => {
                    outbox.drain_into(&mut cmds);
                    for cmd in cmds.drain(..) {
                        self.apply(cmd);
                    }
                    self.handle_events();
                }
                Wake::Timer => {
                    self.engine.handle_timeout(Instant::now());
                    self.handle_events();
                }
                Wake::SessionChanged => self.attach_sources(),
                Wake::Waited(superseded) => {
                    let wait = self.wait.take();
                    if self.store_failed.load(std::sync::atomic::Ordering::Acquire) {
                        self.store_failed_close();
                        continue;
                    }
                    if let Some(Wait {
                        then: Then::Handover(a, _),
                        ..
                    }) = wait
                    {
                        if superseded || self.taken_over {
                            // never accepted: its will was never registered, and the
                            // kick closes it
                            continue;
                        }
                        self.accept(*a);
                        self.handle_events();
                    }
                }
                Wake::Kicked => {
                    info!(conn = self.id, client = %self.client_id, "session taken over by a new connection");
                    self.taken_over = true;
                    self.engine.disconnect(
                        ReasonCode::SessionTakenOver,
                        why("another connection took this session over"),
                    );
                    self.handle_events();
                }
            }
        }
    }

    fn handle_events(&mut self) {
        while let Some(ev) = self.engine.poll_event() {
            match ev {
                Event::Connect(c) => self.on_connect(*c),
                Event::Publish(p) => self.on_publish(p),
                Event::Acked { packet_id, .. } => self.on_acked(packet_id),
                Event::Dropped { packet_id, .. } => self.on_acked(packet_id),
                Event::Subscribe(s) => self.on_subscribe(s),
                Event::Unsubscribe(u) => self.on_unsubscribe(u),
                Event::Auth(_) => {
                    self.engine.disconnect(
                        ReasonCode::BadAuthenticationMethod,
                        why("enhanced authentication (AUTH) is not supported"),
                    );
                }
                Event::Closed(c) => self.on_closed(c),
                Event::ConnAck(_) | Event::SubAck(_) | Event::UnsubAck(_) => {}
            }
        }
        self.send_pending();
        if self.engine.inbound_qos2_changes() != self.qos2_persisted {
            // before the PUBRECs / PUBCOMPs that stand for the change are written
            self.persist_session();
        }
    }

    /// Acknowledges an inbound QoS 1/2 publish; a refusal carries a reason string saying
    /// why (v5).
    fn ack(&mut self, packet_id: u16, reason: ReasonCode, text: Option<&str>) {
        let props = text.map(why).unwrap_or_default();
        // a 3.1.1 refusal closes the connection (the engine: MQTT-3.3.5-2)
        let _ = self.engine.ack_publish_with(packet_id, reason, props);
    }

    /// Holds output and reading until the metadata write given the returned callback is
    /// on disk (or failed: then the output is dropped, see `store_failed_close`); a
    /// write not made (the callback dropped) holds nothing. Writes commit in submission
    /// order, so waiting for the latest is waiting for all.
    fn hold_output(&mut self) -> Committed {
        let (tx, rx) = oneshot::channel();
        self.wait = Some(Wait {
            done: rx,
            then: Then::Stored,
        });
        let failed = self.store_failed.clone();
        Box::new(move |r| {
            if r.is_err() {
                failed.store(true, std::sync::atomic::Ordering::Release);
            }
            let _ = tx.send(());
        })
    }

    /// A metadata write the held output waited for failed (the store logged why): the
    /// output is dropped unsent — the client never hears its publish acknowledged or its
    /// CONNECT accepted, so it sends again — and the connection closes.
    fn store_failed_close(&mut self) {
        warn!(conn = self.id, client = %self.client_id, "closing: the metadata store failed a write this connection's answers depended on");
        self.engine.output().clear();
        if self.phase == Phase::Live {
            self.engine.disconnect(
                ReasonCode::UnspecifiedError,
                why("the message store failed"),
            );
        } else {
            // no DISCONNECT before a CONNACK (MQTT-3.14.0-1): the socket just closes
            self.engine.transport_closed(Instant::now());
        }
        self.handle_events();
    }

    /// Writes a persistent session with its live QoS 2 state, so that after a crash a
    /// resent PUBLISH of a stored message is not stored twice and a released id is free.
    /// One write per batch of events (shared with other connections' by the metadata
    /// store's group commit); output waits for it. Sessions that end with their
    /// connection write nothing.
    fn persist_session(&mut self) {
        self.qos2_persisted = self.engine.inbound_qos2_changes();
        if let Some(s) = self.session.clone() {
            let s = session::lock(&s);
            if s.persistent {
                let done = self.hold_output();
                s.persist_with(
                    self.engine.inbound_qos2_ids(),
                    self.engine.awaiting_comp_ids(),
                    Some(done),
                );
            }
        }
    }

    fn on_connect(&mut self, c: Connect) {
        let creds = c
            .username
            .as_ref()
            .map(|u| (u.as_str(), c.password.as_deref().unwrap_or_default()));
        let principal = match auth::authenticate_password(&self.node, None, creds) {
            Ok(p) => p,
            Err(reason) => {
                warn!(conn = self.id, peer = %self.peer, client = %c.client_id.as_str(), "mqtt connection refused: {reason}");
                let (code, text) = if creds.is_some() {
                    (
                        ReasonCode::BadUserNameOrPassword,
                        "unknown user or wrong password",
                    )
                } else {
                    (
                        ReasonCode::NotAuthorized,
                        "this tenant needs a user name and password",
                    )
                };
                let _ = self.engine.refuse(code, why(text));
                return;
            }
        };
        let mut props = Properties::default();
        let client_id = if c.client_id.is_empty() {
            if !c.clean_start {
                // 3.1.1: a zero-length id requires a clean session
                let _ = self.engine.refuse(
                    ReasonCode::ClientIdentifierNotValid,
                    why("an empty client id needs a clean session"),
                );
                return;
            }
            let id = format!("throng-{}", self.id);
            props.assigned_client_identifier = Some(ByteStr::from(id.as_str()));
            id
        } else {
            c.client_id.as_str().to_string()
        };
        let mut will = None;
        if let Some(w) = &c.will {
            if !principal.may(Op::Send, w.topic.as_str()) {
                warn!(conn = self.id, client = %client_id, topic = %w.topic.as_str(), "will refused: no send permission");
                let _ = self.engine.refuse(
                    ReasonCode::NotAuthorized,
                    why("no send permission for the will's topic"),
                );
                return;
            }
            let bytes = bridge::to_amqp(
                w.topic.as_str(),
                w.qos,
                w.retain,
                &w.properties,
                w.payload.clone(),
                &client_id,
            );
            match Message::parse(bytes) {
                Ok(message) => {
                    will = Some(Will {
                        key: Will::key(self.id),
                        address: w.topic.as_str().to_string(),
                        mqtt: true,
                        retain: w.retain,
                        delay: w.properties.will_delay_interval.unwrap_or(0),
                        client_id: client_id.clone(),
                        message,
                    })
                }
                Err(e) => warn!(conn = self.id, client = %client_id, "will not kept: {e}"),
            }
        }
        let expiry = match c.version {
            Version::V5 => c.properties.session_expiry_interval.unwrap_or(0),
            _ if c.clean_start => 0,
            _ => u32::MAX,
        };
        let opened = self.sessions.open(
            &principal.tenant,
            &client_id,
            self.id,
            self.kick.clone(),
            c.clean_start,
        );
        {
            let mut s = session::lock(&opened.session);
            s.expiry = expiry;
            s.persistent |= expiry > 0;
            self.changed = Some(s.changed.clone());
        }
        info!(conn = self.id, peer = %self.peer, tenant = principal.tenant.name(), client = %client_id, version = ?c.version, resumed = opened.present, "mqtt connection opened");
        self.client_id = client_id;
        self.principal = Some(Arc::new(principal));
        self.session = Some(opened.session);
        props.retain_available = Some(true);
        props.wildcard_subscription_available = Some(true);
        props.shared_subscription_available = Some(true);
        props.subscription_identifier_available = Some(true);
        let max_keep_alive = self.sessions.config.max_keep_alive;
        if c.version == Version::V5
            && max_keep_alive > 0
            && (c.keep_alive == 0 || c.keep_alive > max_keep_alive)
        {
            // MQTT-3.2.2-21: the client uses ours; the engine enforces it
            props.server_keep_alive = Some(max_keep_alive);
        }
        let accepting = Accepting {
            present: opened.present,
            props,
            will,
        };
        match opened.previous {
            // taken from a live connection: its QoS 2 state comes when it has ended
            Some(done) => {
                self.wait = Some(Wait {
                    done,
                    then: Then::Handover(Box::new(accepting), Instant::now() + HANDOVER_TIMEOUT),
                })
            }
            None => self.accept(accepting),
        }
    }

    /// Accepts the CONNECT: the session's protocol state goes to the engine (QoS 2
    /// handshakes in flight when the client left: PUBRELs resent, PUBLISH duplicates of
    /// released ids not delivered twice), the will is stored, and the CONNACK waits for
    /// it and the session to be on disk.
    fn accept(&mut self, a: Accepting) {
        let (Some(session), Some(principal)) = (self.session.clone(), self.principal.clone())
        else {
            return;
        };
        let protocol = {
            let mut s = session::lock(&session);
            if let Some(w) = &a.will {
                // stored before the CONNACK: a crash from then on still publishes it
                w.remember(&principal.tenant, Some(self.hold_output()));
            }
            s.will = a.will.map(Box::new);
            std::mem::take(&mut s.protocol)
        };
        if a.present {
            self.engine.restore_session(protocol);
        }
        if self.engine.accept(a.present, a.props).is_err() {
            return;
        }
        self.phase = Phase::Accepted;
        self.persist_session();
        self.attach_sources();
    }

    /// Brings the consumers in line with the session's sources: a consumer for every
    /// source that has none yet, none for a source that is gone, and new options for
    /// the rest (after a subscription using a shared source came or went). A consumer
    /// whose QoS crosses 0 must change whether it is presettled: it is attached again
    /// (its unsettled messages go back to the queue first, and are delivered again).
    fn attach_sources(&mut self) {
        let Some(s) = self.session.clone() else {
            return;
        };
        let wanted: Vec<(u64, Arc<Queue>, ByteStr, DeliveryOptions, bool)> = {
            let s = session::lock(&s);
            s.sources()
                .into_iter()
                .map(|(src, o)| {
                    (
                        src.id,
                        src.queue.clone(),
                        src.topic.clone(),
                        o,
                        src.drains(),
                    )
                })
                .collect()
        };
        let live: HashSet<u64> = wanted.iter().map(|w| w.0).collect();
        let gone: Vec<u64> = self
            .consumers
            .values()
            .map(|c| c.source)
            .filter(|id| !live.contains(id))
            .collect();
        self.detach_sources(&gone);
        let attached: HashMap<u64, Handle> =
            self.consumers.iter().map(|(l, c)| (c.source, *l)).collect();
        for (id, queue, topic, options, drains) in wanted {
            let Some(link) = attached.get(&id).copied() else {
                self.attach(id, queue, topic, options, drains);
                continue;
            };
            let Some(c) = self.consumers.get_mut(&link) else {
                continue;
            };
            if c.options.presettled() == options.presettled() {
                c.options = options;
                continue;
            }
            if let Some(old) = self.consumers.remove(&link) {
                old.queue.remove_consumer(old.key);
                self.inflight
                    .retain(|_, v| !matches!(v, Some((l, _)) if *l == link));
                let new = self.attach(id, old.queue, old.topic, options, drains);
                // presettled deliveries waiting to be sent left the queue: they go out on
                // the new consumer; unsettled ones went back to the queue
                self.pending.retain_mut(|p| {
                    if p.link != link {
                        return true;
                    }
                    p.link = new;
                    p.settled
                });
            }
        }
    }

    /// Adds a consumer on a source and grants it its credit window; returns its link.
    fn attach(
        &mut self,
        source: u64,
        queue: Arc<Queue>,
        topic: ByteStr,
        options: DeliveryOptions,
        drains: bool,
    ) -> Handle {
        let link = Handle(self.next_link);
        self.next_link = self.next_link.checked_add(1).unwrap_or(1);
        let peer_max = self.in_flight_window() as u32;
        let presettled = options.presettled();
        let key = queue.add_consumer(self.outbox.clone(), link, presettled);
        // QoS 1/2: the in-flight window and as many again waiting behind it
        let (credit, step) = match presettled {
            true => (QOS0_WINDOW, QOS0_WINDOW / 2),
            false => (peer_max * 2, (peer_max / 2).max(1)),
        };
        self.consumers.insert(
            link,
            Consumer {
                source,
                queue: queue.clone(),
                key,
                topic,
                options,
                drains,
                credit,
                step,
                completed: 0,
                limit: credit,
            },
        );
        queue.flow(key, credit, false);
        link
    }

    fn on_subscribe(&mut self, sub: Subscribe) {
        let Some(session) = self.session.clone() else {
            return;
        };
        let v5 = self.engine.version() == Version::V5;
        let id = sub.properties.subscription_identifiers.first().copied();
        let mut reasons = Vec::with_capacity(sub.filters.len());
        // why each refused filter was refused: the SUBACK's reason string
        let mut refusals: Vec<String> = Vec::new();
        let mut retained_for: Vec<(String, QoS)> = Vec::new();
        for (raw, options) in &sub.filters {
            let spec = match parse_filter(raw.as_str()) {
                Ok(spec) => spec,
                Err(e) => {
                    refusals.push(format!("{}: {e}", raw.as_str()));
                    reasons.push(e.filter_reason());
                    continue;
                }
            };
            let allowed = self.principal.as_ref().is_some_and(|p| {
                p.may(Op::Recv, spec.filter)
                    && !p
                        .tenant
                        .denied_filters()
                        .iter()
                        .any(|d| overlaps(d, spec.filter))
            });
            if !allowed {
                warn!(conn = self.id, client = %self.client_id, filter = %raw.as_str(), "subscription refused: no recv permission, or a filter the tenant denies");
                refusals.push(format!(
                    "{}: no receive permission, or a filter the tenant denies",
                    raw.as_str()
                ));
                reasons.push(ReasonCode::NotAuthorized);
                continue;
            }
            match Session::subscribe(
                &session,
                raw.as_str(),
                spec.filter,
                spec.share_group,
                *options,
                id,
            ) {
                Ok(existed) => {
                    let send_retained = spec.share_group.is_none()
                        && match options.retain_handling {
                            RetainHandling::OnSubscribe => true,
                            RetainHandling::OnNewSubscription => !existed,
                            RetainHandling::Never => false,
                        };
                    if send_retained {
                        retained_for.push((spec.filter.to_string(), options.qos));
                    }
                    reasons.push(ReasonCode::granted(options.qos));
                }
                Err(SubscribeError::NotFound) => {
                    warn!(conn = self.id, client = %self.client_id, filter = %raw.as_str(), "subscription refused: no such address");
                    refusals.push(format!("{}: no such address", raw.as_str()));
                    reasons.push(ReasonCode::UnspecifiedError);
                }
                Err(SubscribeError::Unsupported) => {
                    warn!(conn = self.id, client = %self.client_id, filter = %raw.as_str(), "subscription refused: address type not available to MQTT");
                    refusals.push(format!(
                        "{}: the address's type is not available to MQTT",
                        raw.as_str()
                    ));
                    reasons.push(ReasonCode::ImplementationSpecificError);
                }
            }
        }
        self.persist_session();
        let props = if refusals.is_empty() {
            Properties::default()
        } else {
            why(&refusals.join("; "))
        };
        let _ = self.engine.suback(sub.packet_id, reasons, props);
        self.attach_sources();
        // retained messages after the SUBACK
        let Some(tenant) = self.principal.as_ref().map(|p| p.tenant.clone()) else {
            return;
        };
        for (filter, qos) in retained_for {
            for (topic, msg) in tenant.retained_matching(|t| matches(&filter, t)) {
                let mut out = bridge::to_mqtt(&msg, &ByteStr::from(topic.as_str()), qos, v5);
                out.retain = true;
                if let Some(i) = id.filter(|_| v5) {
                    out.properties.subscription_identifiers = vec![i];
                }
                let q = out.qos;
                match self.engine.publish(out) {
                    Ok(pid) if q != QoS::AtMostOnce => {
                        self.inflight.insert(pid, None);
                    }
                    Ok(_) => {}
                    Err(e) => debug!(conn = self.id, "retained message not sent: {e}"),
                }
            }
        }
    }

    fn on_unsubscribe(&mut self, u: Unsubscribe) {
        let Some(session) = self.session.clone() else {
            return;
        };
        let mut reasons = Vec::with_capacity(u.filters.len());
        for f in &u.filters {
            let ended = session::lock(&session).unsubscribe(f.as_str());
            match ended {
                Some(sources) => {
                    // consumers first: their unsettled messages go back before the queue
                    let ids: Vec<u64> = sources.iter().map(|s| s.id).collect();
                    self.detach_sources(&ids);
                    for s in sources {
                        s.release();
                    }
                    reasons.push(ReasonCode::Success);
                }
                None => reasons.push(ReasonCode::NoSubscriptionExisted),
            }
        }
        // sources another filter still uses: their options without this one
        self.attach_sources();
        self.persist_session();
        let _ = self
            .engine
            .unsuback(u.packet_id, reasons, Properties::default());
    }

    /// Removes the consumers of the given sources (their unsettled messages go back).
    fn detach_sources(&mut self, ids: &[u64]) {
        let links: Vec<Handle> = self
            .consumers
            .iter()
            .filter(|(_, c)| ids.contains(&c.source))
            .map(|(l, _)| *l)
            .collect();
        for l in links {
            if let Some(c) = self.consumers.remove(&l) {
                c.queue.remove_consumer(c.key);
            }
            self.inflight
                .retain(|_, v| !matches!(v, Some((link, _)) if *link == l));
            self.pending.retain(|p| p.link != l);
        }
    }

    fn on_publish(&mut self, p: Publish) {
        let Some(principal) = self.principal.clone() else {
            return;
        };
        let topic = p.topic.as_str();
        let qos = p.qos;
        let bytes = bridge::to_amqp(
            topic,
            qos,
            p.retain,
            &p.properties,
            p.payload.clone(),
            &self.client_id,
        );
        let msg = match Message::parse(bytes) {
            Ok(m) => m,
            Err(e) => {
                warn!(conn = self.id, "cannot build the AMQP message: {e}");
                if qos != QoS::AtMostOnce {
                    self.ack(p.packet_id, ReasonCode::UnspecifiedError, None);
                }
                return;
            }
        };
        let reply = match qos {
            QoS::AtMostOnce => Reply::None,
            _ => Reply::Delivery(p.packet_id as u32),
        };
        let Published { verdict, wait } = principal.tenant.publish(
            msg,
            Target::Named(topic, AddressKind::Topic),
            Some(Producer {
                outbox: &self.outbox,
                link: INBOUND,
            }),
            reply,
            principal.user.as_ref(),
        );
        if let Some(q) = wait {
            self.blocked = true;
            if !self.waits_in.iter().any(|w| Arc::ptr_eq(w, &q)) {
                self.waits_in.push(q);
            }
        }
        match verdict {
            Some(Verdict::Refused(r)) => {
                warn!(conn = self.id, client = %self.client_id, topic, "publish refused: {}", r.describe());
                if qos != QoS::AtMostOnce || r == Refusal::StoreFailed {
                    self.tell(p.packet_id, Verdict::Refused(r));
                }
            }
            Some(v) if qos != QoS::AtMostOnce => self.tell(p.packet_id, v),
            _ => {}
        }
    }

    /// Tells a publisher the core's verdict on its publish `packet_id`: the PUBACK (or
    /// PUBREC) reason code. A failed store closes the connection (v5: DISCONNECT 0x80)
    /// instead: the node cannot keep what it would acknowledge, and the client sends
    /// again once reconnected.
    fn tell(&mut self, packet_id: u16, v: Verdict) {
        let (reason, text) = match &v {
            Verdict::Accepted => (ReasonCode::Success, None),
            Verdict::Released | Verdict::Modified { .. } => {
                (ReasonCode::NoMatchingSubscribers, None)
            }
            Verdict::RejectedByConsumer(_) => (
                ReasonCode::UnspecifiedError,
                Some("the consumer did not accept the message"),
            ),
            Verdict::Refused(r) => {
                let reason = match r {
                    Refusal::Full | Refusal::TooLarge => ReasonCode::QuotaExceeded,
                    Refusal::NotPermitted => ReasonCode::NotAuthorized,
                    Refusal::NotFound | Refusal::NoAddress => ReasonCode::TopicNameInvalid,
                    Refusal::NoConsumer => ReasonCode::NoMatchingSubscribers,
                    Refusal::StoreFailed => {
                        warn!(conn = self.id, client = %self.client_id, "closing: the message store failed");
                        self.engine
                            .disconnect(ReasonCode::UnspecifiedError, why(r.describe()));
                        return;
                    }
                };
                (reason, Some(r.describe()))
            }
        };
        self.ack(packet_id, reason, text);
    }

    fn apply(&mut self, cmd: Command) {
        match cmd {
            Command::Deliver {
                link,
                msg,
                token,
                settled,
                expires_at,
                ..
            } => {
                self.pending.push_back(Pending {
                    link,
                    msg,
                    token,
                    settled,
                    expires_at,
                });
            }
            Command::Verdict {
                link: INBOUND,
                delivery,
                verdict,
            } => self.tell(delivery as u16, verdict),
            Command::Unblocked { link: INBOUND } => self.blocked = false,
            Command::Verdict { .. }
            | Command::Unblocked { .. }
            | Command::SetCredit { .. }
            | Command::Drained { .. } => {}
        }
    }

    /// QoS 1/2 deliveries that may be unacknowledged at once: the client's receive
    /// maximum, capped at [`QOS12_WINDOW`].
    fn in_flight_window(&self) -> usize {
        (self.engine.peer_receive_maximum().max(1) as u32).min(QOS12_WINDOW) as usize
    }

    /// Publishes waiting deliveries while the engine has send credit.
    fn send_pending(&mut self) {
        let v5 = self.engine.version() == Version::V5;
        while let Some(front) = self.pending.front() {
            let Some(c) = self.consumers.get(&front.link) else {
                self.pending.pop_front();
                continue;
            };
            if c.options.no_local
                && bridge::publisher(&front.msg).as_deref() == Some(self.client_id.as_str())
            {
                // the client's own message: consumed without sending it back
                if let Some(p) = self.pending.pop_front() {
                    self.complete(p.link, p.token, p.settled);
                }
                continue;
            }
            // at most one window in flight: the rest of the credit waits here, so that
            // each acknowledgement sends the next message at once (MQTT 3.1.1 announces
            // no receive maximum; with everything in flight the client's batched,
            // Nagle-held acknowledgements waited for a delayed ACK). Checked before the
            // message is converted: with a full window this runs for every arrival.
            if c.options.qos != QoS::AtMostOnce
                && (!self.engine.can_send() || self.inflight.len() >= self.in_flight_window())
                && bridge::qos_of(&front.msg) != QoS::AtMostOnce
            {
                return;
            }
            let mut publish = bridge::to_mqtt(&front.msg, &c.topic, c.options.qos, v5);
            if !c.options.retain_as_published {
                publish.retain = false;
            }
            // a write through `properties` allocates the property set: only when there
            // is something to write
            if v5 && !c.options.subscription_ids.is_empty() {
                publish
                    .properties
                    .subscription_identifiers
                    .clone_from(&c.options.subscription_ids);
            }
            if let (true, Some(at)) = (v5, front.expires_at) {
                // MQTT-3.3.2-6: the interval received minus the time spent here
                let now = match &self.principal {
                    Some(p) => p.tenant.clock().now_ms(),
                    None => throng_core::clock::system().now_ms(),
                };
                let left_ms = at.saturating_sub(now);
                publish.properties.message_expiry_interval =
                    Some(left_ms.div_ceil(1000).max(1) as u32);
            }
            let qos = publish.qos;
            let Some(p) = self.pending.pop_front() else {
                return;
            };
            match self.engine.publish(publish) {
                Ok(pid) if qos != QoS::AtMostOnce => {
                    self.inflight.insert(pid, Some((p.link, p.token)));
                }
                Ok(_) => self.complete(p.link, p.token, p.settled),
                Err(throng_mqtt::engine::EngineError::PacketTooLarge { size, max }) => {
                    // MQTT-3.1.2-25: a message too large for the client is discarded
                    // as if delivered
                    debug!(
                        conn = self.id,
                        size, max, "message larger than the client accepts, dropped"
                    );
                    self.complete(p.link, p.token, p.settled);
                }
                Err(e) => {
                    debug!(conn = self.id, "delivery not sent: {e}");
                    if let Some(c) = self.consumers.get(&p.link) {
                        if !p.settled {
                            c.queue.settle(c.key, p.token, Outcome::Released);
                        }
                    }
                }
            }
        }
    }

    /// A delivery is done: settle it upstream and top the consumer's credit up once
    /// `step` deliveries completed since the last top-up.
    fn complete(&mut self, link: Handle, token: u64, settled: bool) {
        let Some(c) = self.consumers.get_mut(&link) else {
            return;
        };
        if !settled {
            c.queue.settle(c.key, token, Outcome::Accepted);
        }
        c.completed = c.completed.wrapping_add(1);
        if c.limit.wrapping_sub(c.completed) <= c.credit - c.step {
            c.limit = c.completed.wrapping_add(c.credit);
            c.queue.flow(c.key, c.limit, false);
        }
        if c.drains && c.queue.depth() == 0 && c.queue.unacked() == 0 {
            self.retire_drained(link);
        }
    }

    /// A source that drains (an earlier version's durable subscription) may be empty
    /// now: once none of its deliveries waits here either, the session deletes it and
    /// its consumer goes.
    fn retire_drained(&mut self, link: Handle) {
        if self.pending.iter().any(|p| p.link == link) {
            return;
        }
        let Some(s) = self.session.clone() else {
            return;
        };
        let retired = session::lock(&s).retire_drained();
        self.detach_sources(&retired);
    }

    fn on_acked(&mut self, packet_id: u16) {
        if let Some(Some((link, token))) = self.inflight.remove(&packet_id) {
            self.complete(link, token, false);
        }
    }

    fn on_closed(&mut self, c: Closed) {
        match c.initiator {
            throng_mqtt::engine::Initiator::Peer => {
                debug!(conn = self.id, client = %self.client_id, reason = ?c.reason, "mqtt client disconnected: {}", c.detail)
            }
            throng_mqtt::engine::Initiator::Local => {
                info!(conn = self.id, peer = %self.peer, client = %self.client_id, reason = ?c.reason, "mqtt connection closed: {}", c.detail)
            }
        }
        if let (Some(d), Some(s)) = (&c.disconnect, &self.session) {
            if let Some(e) = d.properties.session_expiry_interval {
                session::lock(s).expiry = e;
            }
        }
        self.will_due = c.publish_will;
    }

    /// The connection is over: consumers go (their unsettled messages return to their
    /// queues), the session ends or waits for the client, the will is published.
    fn finish(&mut self) {
        // the protocol state goes with the session: a QoS 2 message the client has
        // acknowledged with PUBREC is the client's (settled here; only PUBREL is resent);
        // messages not acknowledged at all go back to their queues below
        let mut protocol = self.engine.take_session_state();
        protocol
            .outbound
            .retain(|m| m.state == throng_mqtt::engine::OutboundState::AwaitingComp);
        for m in &protocol.outbound {
            if let Some(Some((link, token))) = self.inflight.remove(&m.packet_id) {
                self.complete(link, token, false);
            }
        }
        for q in self.waits_in.drain(..) {
            q.remove_producer(&self.outbox, INBOUND);
        }
        let links: Vec<Handle> = self.consumers.keys().copied().collect();
        for l in links {
            if let Some(c) = self.consumers.remove(&l) {
                c.queue.remove_consumer(c.key);
            }
        }
        if let Some(principal) = &self.principal {
            self.sessions.release(
                &principal.tenant,
                &self.client_id,
                self.id,
                self.will_due,
                self.phase.accepted().then_some(protocol),
            );
        }
    }
}

/// Resolves when what the connection waits for has happened (or, for a handover, its
/// deadline has passed), with `true` if the handover will never come because a newer
/// connection took the session over meanwhile (its sender was dropped).
async fn waited(wait: &mut Option<Wait>) -> bool {
    match wait {
        Some(Wait {
            done,
            then: Then::Handover(_, deadline),
        }) => {
            let deadline = tokio::time::Instant::from_std(*deadline);
            matches!(tokio::time::timeout_at(deadline, done).await, Ok(Err(_)))
        }
        Some(Wait { done, .. }) => {
            let _ = done.await;
            false
        }
        None => std::future::pending().await,
    }
}

async fn wait_changed(n: Option<&Notify>) {
    match n {
        Some(n) => n.notified().await,
        None => std::future::pending().await,
    }
}

/// v5 properties carrying only a reason string: the human-readable why of a refusal
/// (the engine leaves it out where the client asked for no problem information).
fn why(text: &str) -> Properties {
    let mut p = Properties::default();
    p.reason_string = Some(ByteStr::from(text));
    p
}
