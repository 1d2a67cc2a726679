//! The per-connection task: socket ⇄ engine ⇄ router core.
//!
//! One task owns the engine, reads into the engine's input buffer, writes the engine's
//! output in batches (one `write` for everything produced since the last one), and applies
//! the commands addresses put in its [`Outbox`]. Reading pauses while unwritten output
//! is above a high-water mark, so a client that does not read cannot make the node buffer
//! without bound, and a slow client only ever stalls its own task.

use super::links::{ConsumerLink, ProducerLink};
use super::verdict::link as link_of;
use crate::auth::{self, Principal};
use crate::socket_buffers::sleep_until;
use crate::socket_buffers::SocketBuffers;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use throng_amqp::definitions::{condition, Error};
use throng_amqp::engine::{Connection, ConnectionConfig, Event, IdMap, LinkId};
use throng_core::{Command, Node, Outbox};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::{debug, info, warn};

/// Read buffer of a quiet connection: small, so ten thousand idle clients cost little.
const SMALL_READ: usize = 4 * 1024;

/// Per-connection protocol limits.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    pub idle_timeout: Duration,
    pub max_frame_size: u32,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            idle_timeout: Duration::from_secs(60),
            max_frame_size: 65536,
        }
    }
}

/// State of one client connection.
pub(super) struct Conn {
    pub id: u64,
    pub peer: SocketAddr,
    pub node: Arc<Node>,
    pub engine: Connection,
    pub outbox: Arc<Outbox>,
    pub principal: Option<Principal>,
    /// The client's container-id (names durable subscriptions).
    pub container_id: String,
    /// Open local transactions.
    pub txns: super::transactions::Transactions,
    pub consumers: IdMap<LinkId, ConsumerLink>,
    pub producers: IdMap<LinkId, ProducerLink>,
    /// The will registered on `$lwt` (also in the metadata store while registered).
    pub will: Option<crate::wills::Will>,
    /// The peer closed the connection cleanly (close without error): no will.
    pub clean_close: bool,
}

enum Wake {
    Read(std::io::Result<usize>),
    Wrote(std::io::Result<usize>),
    Commands,
    Timer,
}

/// Serves one AMQP client until it closes or fails.
pub async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    node: Arc<Node>,
    limits: ConnectionLimits,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let id = node.next_connection_id();
    let mut cfg = ConnectionConfig::server(format!("throng-{id}"));
    cfg.idle_timeout = Some(limits.idle_timeout);
    cfg.max_frame_size = limits.max_frame_size;
    cfg.offered_capabilities = vec!["ANONYMOUS-RELAY".into()];
    let mut conn = Conn {
        id,
        peer,
        node,
        engine: Connection::new(cfg, Instant::now()),
        outbox: Arc::new(Outbox::new()),
        principal: None,
        container_id: String::new(),
        txns: Default::default(),
        consumers: IdMap::default(),
        producers: IdMap::default(),
        will: None,
        clean_close: false,
    };
    debug!(conn = id, %peer, "connection accepted");
    conn.run(stream).await;
    conn.release_all_links();
    if let (Some(will), Some(p)) = (conn.will.take(), &conn.principal) {
        if conn.clean_close {
            will.forget(&p.tenant);
        } else {
            info!(conn = id, %peer, "connection lost without a clean close: publishing its will");
            will.publish(&p.tenant);
        }
    }
    debug!(conn = id, %peer, "connection finished");
}

impl Conn {
    async fn run<S: AsyncRead + AsyncWrite + Unpin>(&mut self, stream: S) {
        let (mut rd, mut wr) = tokio::io::split(stream);
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
                _ = outbox.notified(), if io.below_high_water() => Wake::Commands,
                _ = sleep_until(deadline), if deadline.is_some() => Wake::Timer,
            };
            match wake {
                Wake::Wrote(Ok(n)) => io.wrote(n),
                Wake::Wrote(Err(e)) => {
                    debug!(conn = self.id, "write failed: {e}");
                    return;
                }
                Wake::Read(Ok(0)) => {
                    if !self.engine.is_closed() {
                        debug!(conn = self.id, peer = %self.peer, "peer closed the socket without close");
                    }
                    return;
                }
                Wake::Read(Ok(n)) => {
                    io.after_read(n, room);
                    self.engine.process_input_at(Instant::now());
                    self.handle_events();
                    io.release_idle(self.engine.input_buffer());
                }
                Wake::Read(Err(e)) => {
                    debug!(conn = self.id, "read failed: {e}");
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
            }
        }
    }

    fn handle_events(&mut self) {
        while let Some(ev) = self.engine.poll_event() {
            match ev {
                Event::SaslInit {
                    mechanism,
                    initial_response,
                    hostname,
                } => {
                    match auth::authenticate(
                        &self.node,
                        mechanism.as_str(),
                        initial_response.as_deref(),
                        hostname.as_deref(),
                    ) {
                        Ok(p) => {
                            debug!(conn = self.id, tenant = p.tenant.name(), user = ?p.user.as_ref().map(|u| &u.name), "authenticated");
                            self.principal = Some(p);
                            self.engine.sasl_outcome(true);
                        }
                        Err(_)
                            if mechanism.as_str() == "ANONYMOUS"
                                && auth::anonymous_waits_for_open(
                                    &self.node,
                                    hostname.as_deref(),
                                ) =>
                        {
                            // the open's hostname picks the tenant (see `Event::Opened`)
                            self.engine.sasl_outcome(true);
                        }
                        Err(reason) => {
                            warn!(conn = self.id, peer = %self.peer, mechanism = %mechanism, "authentication refused: {reason}");
                            self.engine.sasl_outcome(false);
                        }
                    }
                }
                Event::Opened(open) => {
                    self.container_id = open.container_id.clone();
                    if self.principal.is_none() {
                        match auth::anonymous_without_sasl(&self.node, open.hostname.as_deref()) {
                            Ok(p) => self.principal = Some(p),
                            Err(reason) => {
                                warn!(conn = self.id, peer = %self.peer, "connection refused: {reason}");
                                self.engine.close(Some(Error::new(
                                    condition::UNAUTHORIZED_ACCESS,
                                    reason,
                                )));
                            }
                        }
                    }
                    if let Some(p) = &self.principal {
                        info!(conn = self.id, peer = %self.peer, tenant = p.tenant.name(), container = %open.container_id, "connection opened");
                    }
                }
                Event::AttachRequested { link, attach, .. } => self.on_attach(link, *attach),
                Event::Flow {
                    link,
                    credit,
                    drain,
                    ..
                } => self.on_flow(link, credit, drain),
                Event::Delivery {
                    link,
                    delivery_id,
                    payload,
                    settled,
                    state,
                    ..
                } => self.on_delivery(link, delivery_id, payload, settled, state),
                Event::Disposition {
                    link,
                    delivery_id,
                    state,
                    settled,
                } => self.on_disposition(link, delivery_id, state, settled),
                Event::Detached {
                    link,
                    error,
                    closed,
                } => {
                    if let Some(e) = error {
                        debug!(conn = self.id, "peer detached link with {}", e.condition);
                    }
                    self.release_link(link, closed);
                }
                Event::Closed { error, by_peer } => match (error, by_peer) {
                    (Some(e), true) => {
                        info!(conn = self.id, peer = %self.peer, "closed by peer with {}: {:?}", e.condition, e.description)
                    }
                    (Some(e), false) => {
                        warn!(conn = self.id, peer = %self.peer, "closing connection: {}: {}", e.condition, e.description.unwrap_or_default())
                    }
                    (None, by_peer) => {
                        self.clean_close = by_peer;
                        info!(conn = self.id, peer = %self.peer, "connection closed")
                    }
                },
                Event::SessionBegun(_) | Event::SessionEnded { .. } | Event::Attached { .. } => {}
            }
        }
    }

    fn apply(&mut self, cmd: Command) {
        match cmd {
            Command::Deliver {
                link,
                msg,
                token,
                settled,
                delivery_count,
                ..
            } => self.deliver(link_of(link), msg, token, settled, delivery_count),
            Command::Verdict {
                link,
                delivery,
                verdict,
            } => {
                let link = link_of(link);
                let state = match self.producers.get(&link) {
                    Some(p) if super::transactions::is_coordinator(&p.target) => {
                        super::transactions::discharge_state(verdict)
                    }
                    Some(_) => super::verdict::delivery_state(verdict),
                    None => return,
                };
                self.engine.disposition(link, delivery, Some(state), true);
            }
            Command::SetCredit { link, credit } => {
                let link = link_of(link);
                if let Some(p) = self.producers.get_mut(&link) {
                    p.credit = credit;
                    let _ = self.engine.flow(link, credit, false);
                }
            }
            Command::Unblocked { link } => {
                let link = link_of(link);
                if let Some(p) = self.producers.get_mut(&link) {
                    p.blocked = false;
                }
                self.top_up(link);
            }
            Command::Drained { link } => {
                let link = link_of(link);
                if self.consumers.contains_key(&link) {
                    let _ = self.engine.drained(link);
                }
            }
        }
    }
}
