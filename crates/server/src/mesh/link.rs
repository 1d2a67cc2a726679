//! One inter-router connection: our AMQP engine at both ends (either may have dialled),
//! authenticated by the mesh secret (SASL PLAIN; ANONYMOUS only in a mesh without a
//! secret, which `settings.rs` allows only on loopback).
//!
//! Once open, each side attaches two senders on its own session and accepts the peer's
//! two as receivers:
//! - `$mesh/control` — the routing protocol's messages, presettled, each the data
//!   section of one AMQP message;
//! - `$mesh/data` — forwarded messages, unsettled: the receiving node settles each with
//!   the outcome its consumer (or the next hop) gave, which goes back to the remote
//!   consumer in the core and from there to the producer.
//!
//! The task is the AMQP client connection task's shape (socket ⇄ engine ⇄ core through
//! the connection's outbox): the core's deliveries to remote consumers bound to this
//! connection arrive as `Command::Deliver`; verdicts of forwarded messages this node
//! published arrive as `Command::Verdict`.

use super::hop::{self, Route, MAX_HOPS};
use super::{Forward, Input, Mesh};
use crate::amqp::verdict;
use crate::socket_buffers::sleep_until;
use crate::socket_buffers::SocketBuffers;
use bytes::{Bytes, BytesMut};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use throng_amqp::definitions::{
    condition, DeliveryState, Error, Role, SenderSettleMode, Source, Target, TargetTerminus,
};
use throng_amqp::engine::{
    Connection, ConnectionConfig, Event, LinkId as EngineLink, LinkSpec, SaslClient, SaslServer,
};
use throng_amqp::message::{Body, Message, MessageBuilder};
use throng_amqp::Symbol;
use throng_core::{Command, Handle, Outbox, Outcome, Producer, Reach, Reply, Target as CoreTarget};
use throng_mesh::LinkId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

const CONTROL: &str = "$mesh/control";
const DATA: &str = "$mesh/data";
/// Credit each side grants the other's data sender, topped up at half.
const DATA_CREDIT: u32 = 10_000;
/// Credit for the control link (presettled protocol messages), topped up at half.
const CONTROL_CREDIT: u32 = 1_000;
/// A neighbour whose connection is silent this long is closed (the routing protocol
/// has noticed long before, from missing hellos).
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
const SMALL_READ: usize = 16 * 1024;

/// Dials `address` for ever: a dropped connection is dialled again, after a pause that
/// doubles from 100 ms up to 2 s while attempts fail (and starts over after a
/// connection that lasted).
pub(super) async fn dial(mesh: Arc<Mesh>, address: String, cost: u32) {
    let mut pause = Duration::from_millis(100);
    let mut failing = false;
    loop {
        match TcpStream::connect(&address).await {
            Ok(stream) => {
                failing = false;
                let _ = stream.set_nodelay(true);
                let peer = stream
                    .peer_addr()
                    .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
                let started = Instant::now();
                serve(mesh.clone(), stream, peer, Some(cost)).await;
                if started.elapsed() > Duration::from_secs(5) {
                    pause = Duration::from_millis(100);
                }
            }
            Err(e) => {
                if !failing {
                    info!(%address, "cannot reach the mesh node: {e}; trying again");
                }
                failing = true;
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// Serves one inter-router connection until it ends; `dialled` is the configured cost
/// when this node dialled (the accepting side claims 1: a link's cost is the larger
/// claim).
pub(super) async fn serve(
    mesh: Arc<Mesh>,
    stream: TcpStream,
    peer: SocketAddr,
    dialled: Option<u32>,
) {
    let id = mesh.id.as_str().to_string();
    let secret = mesh.settings.secret.clone();
    let mut cfg = match dialled {
        Some(_) => {
            let mut c = ConnectionConfig::client(id.clone());
            c.sasl_client = match &secret {
                Some(s) => SaslClient::Plain {
                    username: id.clone(),
                    password: s.clone(),
                },
                None => SaslClient::Anonymous,
            };
            c
        }
        None => {
            let mut c = ConnectionConfig::server(id.clone());
            c.sasl_server = Some(SaslServer {
                mechanisms: vec![Symbol::new(if secret.is_some() {
                    "PLAIN"
                } else {
                    "ANONYMOUS"
                })],
                allow_skip: false,
            });
            c
        }
    };
    cfg.idle_timeout = Some(IDLE_TIMEOUT);
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let mut link = Link {
        id: mesh.fresh_link(),
        mesh,
        peer,
        engine: Connection::new(cfg, Instant::now()),
        outbox: Arc::new(Outbox::new()),
        cost: dialled.unwrap_or(1),
        control_tx: Some(control_tx),
        control_out: None,
        data_out: None,
        control_in: None,
        data_in: None,
        pending_control: VecDeque::new(),
        forwards: HashMap::new(),
        inflight: HashMap::new(),
        scratch: BytesMut::with_capacity(256),
        up: false,
        bad_control: false,
    };
    link.run(stream, control_rx).await;
    link.finish();
}

struct Link {
    mesh: Arc<Mesh>,
    id: LinkId,
    peer: SocketAddr,
    engine: Connection,
    outbox: Arc<Outbox>,
    cost: u32,
    /// Handed to the driver with `LinkUp`.
    control_tx: Option<mpsc::UnboundedSender<Bytes>>,
    control_out: Option<EngineLink>,
    data_out: Option<EngineLink>,
    control_in: Option<EngineLink>,
    data_in: Option<EngineLink>,
    /// Protocol messages waiting for the control link's credit.
    pending_control: VecDeque<Bytes>,
    /// The remote consumers seen on this connection, by handle (looked up once).
    forwards: HashMap<Handle, Arc<Forward>>,
    /// Forwarded messages the next node has not settled: delivery id → (remote
    /// consumer, the core's token).
    inflight: HashMap<u32, (Arc<Forward>, u64)>,
    /// Where the route of each forwarded message is encoded (reused).
    scratch: BytesMut,
    /// `LinkUp` was told to the driver.
    up: bool,
    bad_control: bool,
}

enum Wake {
    Read(std::io::Result<usize>),
    Wrote(std::io::Result<usize>),
    Commands,
    Control(Option<Bytes>),
    Timer,
}

impl Link {
    async fn run(&mut self, stream: TcpStream, mut control_rx: mpsc::UnboundedReceiver<Bytes>) {
        let (mut rd, mut wr) = stream.into_split();
        let mut io = SocketBuffers::new(SMALL_READ);
        let mut cmds: Vec<Command> = Vec::new();
        let outbox = self.outbox.clone();
        loop {
            if self.engine.has_output() {
                io.take_output(self.engine.output());
            }
            if self.engine.is_closed() && io.out.is_empty() {
                let _ = wr.shutdown().await;
                return;
            }
            let deadline = self.engine.poll_timeout();
            let can_read = io.below_high_water() && !self.engine.is_closed();
            let input = self.engine.input_buffer();
            let room = io.prepare_read(input);
            let wake = tokio::select! {
                biased;
                r = wr.write(&io.out), if !io.out.is_empty() => Wake::Wrote(r),
                r = rd.read_buf(input), if can_read => Wake::Read(r),
                m = control_rx.recv() => Wake::Control(m),
                _ = outbox.notified(), if io.below_high_water() => Wake::Commands,
                _ = sleep_until(deadline), if deadline.is_some() => Wake::Timer,
            };
            match wake {
                Wake::Wrote(Ok(n)) => io.wrote(n),
                Wake::Read(Ok(0)) | Wake::Wrote(Err(_)) | Wake::Read(Err(_)) => return,
                Wake::Read(Ok(n)) => {
                    io.after_read(n, room);
                    self.engine.process_input_at(Instant::now());
                    self.handle_events();
                    io.release_idle(self.engine.input_buffer());
                }
                Wake::Control(Some(m)) => {
                    self.pending_control.push_back(m);
                    while let Ok(m) = control_rx.try_recv() {
                        self.pending_control.push_back(m);
                    }
                    self.send_control();
                }
                // the driver is gone: the node is stopping
                Wake::Control(None) => return,
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
            }
        }
    }

    /// The connection is over: the driver hears it (the routes move at once), and every
    /// forwarded message not settled yet goes back to its producer as failed — it may
    /// or may not have reached its consumer.
    fn finish(&mut self) {
        if self.up {
            self.mesh.input(Input::LinkDown { link: self.id });
        }
        for (_, (f, token)) in self.inflight.drain() {
            f.direct.settle(f.key, token, failed());
        }
        // deliveries the core handed over that were never sent
        let mut cmds = Vec::new();
        self.outbox.drain_into(&mut cmds);
        for cmd in cmds {
            if let Command::Deliver { link, token, .. } = cmd {
                if let Some(f) = self.forward(link) {
                    f.direct.settle(f.key, token, Outcome::Released);
                }
            }
        }
        debug!(link = self.id.0, peer = %self.peer, "inter-router connection finished");
    }

    fn handle_events(&mut self) {
        while let Some(ev) = self.engine.poll_event() {
            match ev {
                Event::SaslInit {
                    mechanism,
                    initial_response,
                    ..
                } => {
                    let ok = self.check_secret(mechanism.as_str(), initial_response.as_deref());
                    if !ok {
                        warn!(peer = %self.peer, mechanism = %mechanism, "inter-router connection refused: it did not prove the mesh secret");
                    }
                    self.engine.sasl_outcome(ok);
                }
                Event::Opened(open) => self.on_opened(&open.container_id),
                Event::AttachRequested { link, attach, .. } => {
                    let name = attach.name.clone();
                    let is_sender = attach.role == Role::Sender;
                    let spec = LinkSpec {
                        role: Role::Receiver,
                        source: attach.source.clone(),
                        target: attach.target.clone(),
                        snd_settle_mode: attach.snd_settle_mode.unwrap_or_default(),
                        ..LinkSpec::default()
                    };
                    let slot = match (is_sender, name.as_str()) {
                        (true, CONTROL) if self.control_in.is_none() => {
                            Some((&mut self.control_in, CONTROL_CREDIT))
                        }
                        (true, DATA) if self.data_in.is_none() => {
                            Some((&mut self.data_in, DATA_CREDIT))
                        }
                        _ => None,
                    };
                    match slot {
                        Some((slot, credit)) if self.engine.accept_link(link, spec).is_ok() => {
                            *slot = Some(link);
                            let _ = self.engine.flow(link, credit, false);
                        }
                        _ => {
                            let _ = self.engine.refuse_link(
                                link,
                                Error::new(condition::NOT_FOUND, "not a mesh link"),
                            );
                        }
                    }
                }
                Event::Flow { link, .. } if Some(link) == self.control_out => self.send_control(),
                Event::Flow { .. } => {}
                Event::Delivery {
                    link,
                    delivery_id,
                    payload,
                    settled,
                    ..
                } => {
                    if Some(link) == self.control_in {
                        self.on_control(payload);
                        top_up(&mut self.engine, link, CONTROL_CREDIT);
                    } else if Some(link) == self.data_in {
                        self.on_forwarded(link, delivery_id, payload, settled);
                        top_up(&mut self.engine, link, DATA_CREDIT);
                    }
                }
                Event::Disposition {
                    link,
                    delivery_id,
                    state,
                    settled,
                } if Some(link) == self.data_out => {
                    let outcome = match state.as_ref().and_then(verdict::outcome) {
                        Some(o) => o,
                        None if settled => Outcome::Released,
                        None => continue,
                    };
                    if let Some((f, token)) = self.inflight.remove(&delivery_id) {
                        f.direct.settle(f.key, token, outcome);
                    }
                }
                Event::Disposition { .. } => {}
                Event::Detached { .. } => {
                    // a mesh connection is its four links: without one it is no use
                    self.engine.close(Some(Error::new(
                        condition::INTERNAL_ERROR,
                        "a mesh link was detached",
                    )));
                }
                Event::Closed { error, by_peer } => {
                    if let Some(e) = error {
                        info!(link = self.id.0, peer = %self.peer, by_peer, "inter-router connection closed: {}", e.condition);
                    }
                }
                Event::SessionBegun(_) | Event::SessionEnded { .. } | Event::Attached { .. } => {}
            }
        }
    }

    /// The accepting side's check of the dialler: PLAIN with the mesh secret (compared
    /// in time that depends on neither value), or ANONYMOUS in a mesh without one.
    fn check_secret(&self, mechanism: &str, response: Option<&[u8]>) -> bool {
        match (&self.mesh.settings.secret, mechanism) {
            (None, "ANONYMOUS") => true,
            (Some(secret), "PLAIN") => {
                let mut parts = response.unwrap_or_default().split(|b| *b == 0);
                match (parts.next(), parts.next(), parts.next(), parts.next()) {
                    (Some(_), Some(_), Some(pass), None) => same_secret(secret.as_bytes(), pass),
                    _ => false,
                }
            }
            _ => false,
        }
    }

    fn on_opened(&mut self, peer_container: &str) {
        let Ok(session) = self.engine.begin_session() else {
            return;
        };
        for (name, settle) in [
            (CONTROL, SenderSettleMode::Settled),
            (DATA, SenderSettleMode::Unsettled),
        ] {
            let spec = LinkSpec {
                name: name.into(),
                role: Role::Sender,
                source: Some(Source::default()),
                target: Some(TargetTerminus::Target(Target {
                    address: Some(name.into()),
                    ..Target::default()
                })),
                snd_settle_mode: settle,
                ..LinkSpec::default()
            };
            match self.engine.attach(session, spec) {
                Ok(l) if name == CONTROL => self.control_out = Some(l),
                Ok(l) => self.data_out = Some(l),
                Err(e) => debug!(link = self.id.0, "cannot attach {name}: {e}"),
            }
        }
        if let Some(control) = self.control_tx.take() {
            info!(link = self.id.0, peer = %self.peer, node = peer_container, cost = self.cost, "inter-router connection open");
            self.up = true;
            self.mesh.input(Input::LinkUp {
                link: self.id,
                cost: self.cost,
                outbox: self.outbox.clone(),
                control,
            });
        }
    }

    fn send_control(&mut self) {
        let Some(link) = self.control_out else {
            return;
        };
        while self.engine.credit(link) > 0 {
            let Some(m) = self.pending_control.pop_front() else {
                break;
            };
            if self.engine.send(link, b"", &[&m], true).is_err() {
                break;
            }
        }
    }

    fn on_control(&mut self, payload: Bytes) {
        let decoded = Message::parse(payload)
            .ok()
            .and_then(|m| match m.body() {
                Ok(Body::Data(b)) => Some(b),
                _ => None,
            })
            .and_then(|b| throng_mesh::Message::decode(&b).ok());
        match decoded {
            Some(msg) => self.mesh.input(Input::Received { link: self.id, msg }),
            None => {
                if !self.bad_control {
                    warn!(link = self.id.0, peer = %self.peer, "undecodable mesh control message: closing the connection");
                }
                self.bad_control = true;
                self.engine.close(Some(Error::new(
                    condition::DECODE_ERROR,
                    "malformed mesh control message",
                )));
            }
        }
    }

    /// A message the neighbour forwarded: handed to the tenant for this node's
    /// consumers, or on towards its destination; settled with the verdict.
    fn on_forwarded(&mut self, link: EngineLink, delivery: u32, payload: Bytes, settled: bool) {
        let answer = |engine: &mut Connection, state: DeliveryState| {
            if !settled {
                engine.disposition(link, delivery, Some(state), true);
            }
        };
        let msg = match Message::parse(payload) {
            Ok(m) => m,
            Err(_) => {
                let state = verdict::rejected(condition::DECODE_ERROR, "malformed message");
                return answer(&mut self.engine, state);
            }
        };
        let mut hold = None;
        let route = match hop::read_route(&msg, &mut hold) {
            Ok(r) => r,
            Err(e) => {
                let state = verdict::rejected(condition::INVALID_FIELD, e.to_string());
                return answer(&mut self.engine, state);
            }
        };
        let Some(tenant) = self.mesh.node.tenant(route.tenant) else {
            let refusal = throng_core::Verdict::Refused(throng_core::Refusal::NotFound);
            return answer(&mut self.engine, verdict::delivery_state(refusal));
        };
        let reach = if route.dest == self.mesh.id.as_str() {
            Reach::Local
        } else {
            match (route.hops < MAX_HOPS)
                .then(|| self.mesh.via(route.tenant, route.address, route.dest))
                .flatten()
            {
                Some(key) => Reach::Via(key),
                // no way on from here (routes are changing): back to where it came from
                None => return answer(&mut self.engine, DeliveryState::Released),
            }
        };
        let published = tenant.publish(
            msg,
            CoreTarget::Mesh(route.address, reach),
            Some(Producer {
                outbox: &self.outbox,
                link: Handle(link.0),
            }),
            if settled {
                Reply::None
            } else {
                Reply::Delivery(delivery)
            },
            None,
        );
        if let Some(v) = published.verdict {
            answer(&mut self.engine, verdict::delivery_state(v));
        }
    }

    fn apply(&mut self, cmd: Command) {
        match cmd {
            Command::Deliver {
                link,
                msg,
                token,
                settled,
                ..
            } => self.forward_message(link, msg, token, settled),
            Command::Verdict {
                link,
                delivery,
                verdict,
            } => {
                if self.data_in.map(|l| l.0) == Some(link.0) {
                    let state = verdict::delivery_state(verdict);
                    self.engine
                        .disposition(EngineLink(link.0), delivery, Some(state), true);
                }
            }
            // the data link is no registered producer: credit and room are not its
            Command::SetCredit { .. } | Command::Unblocked { .. } | Command::Drained { .. } => {}
        }
    }

    fn forward(&mut self, handle: Handle) -> Option<Arc<Forward>> {
        if let Some(f) = self.forwards.get(&handle) {
            return Some(f.clone());
        }
        let f = self.mesh.forward(handle)?;
        self.forwards.insert(handle, f.clone());
        Some(f)
    }

    /// Sends a delivery of a remote consumer to the neighbour, with its route: unsettled
    /// for anycast (the far consumer's outcome comes back), presettled for a multicast
    /// copy (at most once: without room on the link it is dropped, as a multicast copy
    /// for a consumer without credit is).
    fn forward_message(&mut self, handle: Handle, msg: Message, token: u64, settled: bool) {
        // a consumer the driver removed already: the core settled its deliveries then
        let Some(f) = self.forward(handle) else {
            return;
        };
        let Some(data) = self.data_out.filter(|l| self.engine.credit(*l) > 0) else {
            f.direct.settle(f.key, token, Outcome::Released);
            return;
        };
        let hops = match hop::read_route(&msg, &mut None) {
            Ok(r) => r.hops.saturating_add(1),
            Err(_) => 0,
        };
        let route = Route {
            tenant: &f.tenant,
            address: &f.address,
            dest: f.dest.as_str(),
            hops,
        };
        if hop::encode_route(&mut self.scratch, &route).is_err() {
            f.direct.settle(f.key, token, Outcome::Released);
            return;
        }
        let [before, after] = msg.hop_parts();
        let tag = token.to_be_bytes();
        match self
            .engine
            .send(data, &tag, &[before, &self.scratch, after], settled)
        {
            Ok(_) if settled => {}
            Ok(id) => {
                self.inflight.insert(id, (f, token));
            }
            Err(e) => {
                debug!(link = self.id.0, "forward not sent ({e}); released");
                f.direct.settle(f.key, token, Outcome::Released);
            }
        }
    }
}

/// What a forwarded message lost with its connection is settled as: it may have been
/// delivered, so the producer is told it failed (AMQP `modified`, delivery-failed).
fn failed() -> Outcome {
    Outcome::Modified {
        failed: true,
        undeliverable_here: false,
        annotations: None,
    }
}

fn top_up(engine: &mut Connection, link: EngineLink, window: u32) {
    if engine.credit(link) < window / 2 {
        let _ = engine.flow(link, window, false);
    }
}

/// Whether `presented` is the secret, in time that depends only on their lengths'
/// maximum (no early exit on the first differing byte).
fn same_secret(secret: &[u8], presented: &[u8]) -> bool {
    let n = secret.len().max(presented.len());
    let mut diff = (secret.len() != presented.len()) as u8;
    for i in 0..n {
        let a = secret.get(i).copied().unwrap_or(0);
        let b = presented.get(i).copied().unwrap_or(0);
        diff |= a ^ b;
    }
    diff == 0
}

/// A protocol message as the data section of an AMQP message, for the control link.
pub(super) fn control_message(msg: &throng_mesh::Message) -> Bytes {
    let mut out = Vec::with_capacity(64);
    msg.encode(&mut out);
    MessageBuilder::new().data(Bytes::from(out)).encode()
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn the_secret_must_match_exactly() {
        assert!(same_secret(b"s3cret", b"s3cret"));
        assert!(!same_secret(b"s3cret", b"s3cres"));
        assert!(!same_secret(b"s3cret", b"s3cret!"));
        assert!(!same_secret(b"s3cret", b""));
        assert!(!same_secret(b"", b"x"));
    }
}
