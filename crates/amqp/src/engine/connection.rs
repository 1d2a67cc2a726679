//! The connection state machine: protocol headers, SASL, open/close, sessions with their
//! windows, links with credit, and deliveries.

use super::types::*;
use crate::codec::{encode, Symbol};
use crate::definitions::{
    condition, Attach, Begin, Close, DeliveryState, Detach, Disposition, End, Error, Flow, Open,
    Performative, Role, SaslFrame, SaslInit, SaslMechanisms, SaslOutcome, SenderSettleMode,
    Transfer,
};
use crate::frame::{self, Frame, FrameError, AMQP_HEADER, SASL_HEADER};
use bytes::{BufMut, Bytes, BytesMut};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use throng_idmap::IdMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Server: waiting for the client's protocol header.
    AwaitHeader,
    /// Server: waiting for sasl-init.
    SaslInit,
    /// Server: waiting for the application's verdict on the credentials.
    SaslVerdict,
    /// Client: waiting for the server's SASL header.
    SaslHeader,
    /// Client: waiting for sasl-mechanisms.
    SaslMechanisms,
    /// Client: waiting for sasl-outcome.
    SaslOutcome,
    /// Waiting for the peer's AMQP header.
    AmqpHeader,
    /// Exchanging AMQP frames.
    Frames,
    /// Done: nothing more is read.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkState {
    /// We sent attach and wait for the peer's.
    AttachSent,
    /// The peer attached and we have not answered.
    AttachReceived,
    Attached,
    /// We sent detach and wait for the peer's.
    DetachSent,
}

struct Partial {
    delivery_id: u32,
    tag: Bytes,
    buf: BytesMut,
    settled: bool,
    message_format: u32,
    state: Option<DeliveryState>,
}

struct Link {
    session: u16,
    handle: u32,
    remote_handle: Option<u32>,
    name: String,
    role: Role,
    state: LinkState,
    /// Sender: deliveries sent. Receiver: the sender's delivery-count as we know it.
    delivery_count: u32,
    credit: u32,
    /// Receiver: deliveries still accepted after we lowered the credit.
    grace: u32,
    drain: bool,
    available: u32,
    /// Sender: the peer's max-message-size (0 = none).
    max_message_size: u64,
    partial: Option<Partial>,
}

struct Session {
    remote_channel: Option<u16>,
    ended_sent: bool,
    next_outgoing_id: u32,
    next_delivery_id: u32,
    next_incoming_id: u32,
    incoming_window: u32,
    remote_incoming_window: u32,
    remote_outgoing_window: u32,
    handles: IdMap<u32, LinkId>,
    remote_handles: IdMap<u32, LinkId>,
    /// Deliveries we sent that the peer has not settled.
    sent_unsettled: IdMap<u32, LinkId>,
    /// Deliveries we received that we have not settled.
    received_unsettled: IdMap<u32, LinkId>,
    /// Transfer frames waiting for the peer's incoming window.
    blocked: VecDeque<Bytes>,
    /// Last delivery id received, for multi-frame transfers that omit it.
    last_incoming_delivery: Option<u32>,
}

/// A pending disposition, coalesced with its neighbours before it is written.
struct PendingDisposition {
    channel: u16,
    role: Role,
    first: u32,
    last: u32,
    settled: bool,
    state: Option<DeliveryState>,
}

/// One AMQP connection's protocol state. See the module documentation.
pub struct Connection {
    config: ConnectionConfig,
    phase: Phase,
    input: BytesMut,
    out: BytesMut,
    events: VecDeque<Event>,
    sessions: Vec<Option<Session>>,
    /// Remote channel → local channel.
    remote_channels: IdMap<u16, u16>,
    links: IdMap<u32, Link>,
    next_link_id: u32,
    remote_open: Option<Box<Open>>,
    /// Largest frame we may send.
    peer_max_frame: u32,
    peer_channel_max: u16,
    peer_idle_timeout: Option<Duration>,
    close_sent: bool,
    close_received: bool,
    now: Instant,
    last_received: Instant,
    last_sent: Instant,
    pending_dispositions: Vec<PendingDisposition>,
    /// Whether SASL completed successfully.
    sasl_done: bool,
    /// Whether our open went out; frames the application writes earlier wait in `deferred`.
    open_sent: bool,
    deferred: BytesMut,
}

fn err(cond: &str, desc: impl Into<String>) -> Error {
    Error::new(cond, desc)
}

impl Connection {
    /// Creates a connection; a client writes its protocol header at once.
    pub fn new(config: ConnectionConfig, now: Instant) -> Self {
        let mut c = Connection {
            phase: Phase::AwaitHeader,
            input: BytesMut::new(),
            out: BytesMut::new(),
            events: VecDeque::new(),
            sessions: Vec::new(),
            remote_channels: IdMap::default(),
            links: IdMap::default(),
            next_link_id: 0,
            remote_open: None,
            peer_max_frame: frame::MIN_MAX_FRAME_SIZE,
            peer_channel_max: 0,
            peer_idle_timeout: None,
            close_sent: false,
            close_received: false,
            now,
            last_received: now,
            last_sent: now,
            pending_dispositions: Vec::new(),
            sasl_done: false,
            open_sent: false,
            deferred: BytesMut::new(),
            config,
        };
        if c.config.side == Side::Client {
            if c.config.sasl_client == SaslClient::None {
                c.out.put_slice(&AMQP_HEADER);
                c.send_open();
                c.phase = Phase::AmqpHeader;
            } else {
                c.out.put_slice(&SASL_HEADER);
                c.phase = Phase::SaslHeader;
            }
        }
        c
    }

    // ---- I/O surface ------------------------------------------------------------------

    /// Bytes to write to the peer; the caller drains (e.g. `split()`) what it wrote.
    pub fn output(&mut self) -> &mut BytesMut {
        self.flush_dispositions();
        if !self.out.is_empty() {
            self.last_sent = self.now;
        }
        &mut self.out
    }

    /// Whether there is anything to write.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty() || !self.pending_dispositions.is_empty()
    }

    /// Size of the unwritten output, for back-pressure decisions.
    pub fn output_len(&self) -> usize {
        self.out.len()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Whether the connection is finished (closed both ways, or failed).
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// The peer's open, once received.
    pub fn remote_open(&self) -> Option<&Open> {
        self.remote_open.as_deref()
    }

    /// Feeds bytes read from the peer.
    pub fn handle_input(&mut self, data: &[u8], now: Instant) {
        self.now = now;
        if self.phase == Phase::Closed || data.is_empty() {
            return;
        }
        self.last_received = now;
        self.input.extend_from_slice(data);
        self.process_input();
    }

    /// Feeds bytes already in a `BytesMut` (avoids a copy when the buffer is empty).
    pub fn input_buffer(&mut self) -> &mut BytesMut {
        &mut self.input
    }

    /// Processes bytes appended through [`Self::input_buffer`].
    pub fn process_input_at(&mut self, now: Instant) {
        self.now = now;
        self.last_received = now;
        self.process_input();
    }

    /// When [`Self::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.phase != Phase::Frames {
            return None;
        }
        let dead = self.config.idle_timeout.map(|t| self.last_received + t);
        let beat = self.peer_idle_timeout.map(|t| self.last_sent + t / 2);
        match (dead, beat) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Lets time pass: sends heartbeats, closes a silent peer.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if self.phase != Phase::Frames {
            return;
        }
        if let Some(t) = self.config.idle_timeout {
            if now >= self.last_received + t {
                self.fail(err(
                    condition::RESOURCE_LIMIT_EXCEEDED,
                    "local-idle-timeout expired",
                ));
                return;
            }
        }
        if let Some(t) = self.peer_idle_timeout {
            if now >= self.last_sent + t / 2 && self.out.is_empty() {
                frame::write_empty(&mut self.out);
                self.last_sent = now;
            }
        }
    }

    fn process_input(&mut self) {
        loop {
            if self.phase == Phase::Closed {
                self.input.clear();
                return;
            }
            match self.phase {
                Phase::AwaitHeader | Phase::SaslHeader | Phase::AmqpHeader => {
                    if self.input.len() < 8 {
                        return;
                    }
                    let header = self.input.split_to(8);
                    self.on_header(&header);
                }
                Phase::SaslVerdict => return,
                _ => {
                    let max = self.config.max_frame_size;
                    match frame::decode_frame(&mut self.input, max) {
                        Ok(None) => return,
                        Ok(Some(f)) => self.on_frame(f),
                        Err(e) => {
                            let cond = match e {
                                FrameError::Decode(_) => condition::DECODE_ERROR,
                                FrameError::TooLarge { .. } => condition::FRAMING_ERROR,
                                _ => condition::FRAMING_ERROR,
                            };
                            self.fail(err(cond, e.to_string()));
                        }
                    }
                }
            }
        }
    }

    fn on_header(&mut self, header: &[u8]) {
        match self.phase {
            Phase::AwaitHeader => {
                let sasl = self.config.sasl_server.clone();
                if header == SASL_HEADER && sasl.is_some() {
                    self.out.put_slice(&SASL_HEADER);
                    let mechs = sasl.map(|s| s.mechanisms).unwrap_or_default();
                    frame::write_sasl(
                        &mut self.out,
                        &SaslFrame::Mechanisms(SaslMechanisms {
                            sasl_server_mechanisms: mechs,
                        }),
                    );
                    self.phase = Phase::SaslInit;
                } else if header == AMQP_HEADER && sasl.as_ref().is_none_or(|s| s.allow_skip) {
                    self.out.put_slice(&AMQP_HEADER);
                    self.send_open();
                    self.phase = Phase::Frames;
                } else {
                    // answer with the header we do support, then stop (part 2 §2.2)
                    self.out.put_slice(if sasl.is_some() {
                        &SASL_HEADER
                    } else {
                        &AMQP_HEADER
                    });
                    self.close_silently(err(condition::NOT_ALLOWED, "unsupported protocol header"));
                }
            }
            Phase::SaslHeader => {
                if header == SASL_HEADER {
                    self.phase = Phase::SaslMechanisms;
                } else {
                    self.close_silently(err(condition::NOT_ALLOWED, "peer does not speak SASL"));
                }
            }
            Phase::AmqpHeader => {
                if header == AMQP_HEADER {
                    self.phase = Phase::Frames;
                } else {
                    self.close_silently(err(condition::NOT_ALLOWED, "unexpected protocol header"));
                }
            }
            _ => {}
        }
    }

    /// Ends the connection without a close frame (before the AMQP layer is up).
    fn close_silently(&mut self, e: Error) {
        self.phase = Phase::Closed;
        self.events.push_back(Event::Closed {
            error: Some(e),
            by_peer: false,
        });
    }

    fn on_frame(&mut self, f: Frame) {
        match f {
            Frame::Sasl(_) if self.phase == Phase::Frames => self.fail(err(
                condition::FRAMING_ERROR,
                "SASL frame after the AMQP header",
            )),
            Frame::Sasl(s) => self.on_sasl(s),
            Frame::Empty { .. } => {}
            Frame::Amqp {
                channel,
                performative,
                payload,
            } => {
                if !matches!(self.phase, Phase::Frames) {
                    return self.fail(err(condition::FRAMING_ERROR, "AMQP frame during SASL"));
                }
                if channel > self.config.channel_max {
                    // part 2 §2.7.1: a channel outside the supported range is a framing error
                    return self.fail(err(condition::FRAMING_ERROR, "channel above channel-max"));
                }
                if self.close_sent && !matches!(performative, Performative::Close(_)) {
                    return; // after our close only the peer's close matters
                }
                if self.remote_open.is_none() && !matches!(performative, Performative::Open(_)) {
                    return self.fail(err(condition::ILLEGAL_STATE, "first frame must be open"));
                }
                match performative {
                    Performative::Open(o) => self.on_open(o),
                    Performative::Begin(b) => self.on_begin(channel, b),
                    Performative::Attach(a) => self.on_attach(channel, a),
                    Performative::Flow(fl) => self.on_flow(channel, fl),
                    Performative::Transfer(t) => self.on_transfer(channel, t, payload),
                    Performative::Disposition(d) => self.on_disposition(channel, d),
                    Performative::Detach(d) => self.on_detach(channel, d),
                    Performative::End(e) => self.on_end(channel, e),
                    Performative::Close(c) => self.on_close(c),
                }
            }
        }
    }

    // ---- SASL --------------------------------------------------------------------------

    fn on_sasl(&mut self, s: SaslFrame) {
        match (self.phase, s) {
            (Phase::SaslInit, SaslFrame::Init(init)) => {
                self.phase = Phase::SaslVerdict;
                self.events.push_back(Event::SaslInit {
                    mechanism: init.mechanism,
                    initial_response: init.initial_response,
                    hostname: init.hostname,
                });
            }
            (Phase::SaslMechanisms, SaslFrame::Mechanisms(m)) => {
                let (mech, response) = match &self.config.sasl_client {
                    SaslClient::Plain { username, password } => {
                        let mut r = BytesMut::new();
                        r.put_u8(0);
                        r.put_slice(username.as_bytes());
                        r.put_u8(0);
                        r.put_slice(password.as_bytes());
                        ("PLAIN", Some(r.freeze()))
                    }
                    _ => ("ANONYMOUS", Some(Bytes::from_static(b"anonymous"))),
                };
                if !m.sasl_server_mechanisms.iter().any(|s| s.as_str() == mech) {
                    return self.close_silently(err(
                        condition::NOT_ALLOWED,
                        format!("server does not offer SASL {mech}"),
                    ));
                }
                let init = SaslInit {
                    mechanism: Symbol::new(mech),
                    initial_response: response,
                    hostname: self.config.hostname.clone(),
                };
                frame::write_sasl(&mut self.out, &SaslFrame::Init(init));
                self.phase = Phase::SaslOutcome;
            }
            (Phase::SaslOutcome, SaslFrame::Outcome(o)) => {
                if o.code == 0 {
                    self.sasl_done = true;
                    self.out.put_slice(&AMQP_HEADER);
                    self.send_open();
                    self.phase = Phase::AmqpHeader;
                } else {
                    self.close_silently(err(
                        condition::UNAUTHORIZED_ACCESS,
                        format!("SASL authentication failed (code {})", o.code),
                    ));
                }
            }
            (_, SaslFrame::Challenge(_)) if self.phase == Phase::SaslOutcome => {
                self.close_silently(err(
                    condition::NOT_IMPLEMENTED,
                    "SASL challenges are not supported",
                ));
            }
            _ => self.close_silently(err(condition::ILLEGAL_STATE, "unexpected SASL frame")),
        }
    }

    /// (Server) answers a [`Event::SaslInit`]: `true` lets the client in.
    pub fn sasl_outcome(&mut self, ok: bool) {
        if self.phase != Phase::SaslVerdict {
            return;
        }
        let code = if ok { 0 } else { 1 };
        frame::write_sasl(
            &mut self.out,
            &SaslFrame::Outcome(SaslOutcome {
                code,
                additional_data: None,
            }),
        );
        if ok {
            self.sasl_done = true;
            self.phase = Phase::AmqpHeader;
            // the client sends its AMQP header next; we answer it with ours and our open
            self.phase = Phase::AwaitHeader;
            self.config.sasl_server = None;
        } else {
            self.close_silently(err(condition::UNAUTHORIZED_ACCESS, "authentication failed"));
        }
        self.process_input();
    }

    /// Whether SASL completed successfully on this connection.
    pub fn authenticated(&self) -> bool {
        self.sasl_done
    }

    // ---- open / close ------------------------------------------------------------------

    fn send_open(&mut self) {
        let c = &self.config;
        let open = Open {
            container_id: c.container_id.clone(),
            hostname: c.hostname.clone(),
            max_frame_size: Some(c.max_frame_size),
            channel_max: Some(c.channel_max),
            // part 2 §2.4.5: announce half the threshold we close at, so a peer that
            // sends at the announced interval is never timed out spuriously
            idle_time_out: c
                .idle_timeout
                .map(|d| (d.as_millis() / 2).min(u32::MAX as u128) as u32),
            offered_capabilities: if c.offered_capabilities.is_empty() {
                None
            } else {
                Some(c.offered_capabilities.clone())
            },
            properties: c.properties.clone(),
            ..Open::default()
        };
        frame::write_performative(&mut self.out, 0, &Performative::Open(open));
        self.open_sent = true;
        let deferred = std::mem::take(&mut self.deferred);
        self.out.put_slice(&deferred);
    }

    fn on_open(&mut self, o: Open) {
        if self.remote_open.is_some() {
            return self.fail(err(condition::ILLEGAL_STATE, "second open"));
        }
        let mf = o.max_frame_size.unwrap_or(u32::MAX);
        if mf < frame::MIN_MAX_FRAME_SIZE {
            return self.fail(err(condition::INVALID_FIELD, "max-frame-size below 512"));
        }
        self.peer_max_frame = mf.min(1 << 24);
        self.peer_channel_max = o.channel_max.unwrap_or(u16::MAX);
        self.peer_idle_timeout = match o.idle_time_out {
            Some(ms) if ms > 0 => Some(Duration::from_millis(ms.max(100) as u64)),
            _ => None,
        };
        let boxed = Box::new(o);
        self.remote_open = Some(boxed.clone());
        self.events.push_back(Event::Opened(boxed));
    }

    /// Closes the connection, optionally with an error.
    pub fn close(&mut self, error: Option<Error>) {
        if self.close_sent || self.phase == Phase::Closed {
            return;
        }
        if self.phase != Phase::Frames {
            self.close_silently(
                error.unwrap_or_else(|| err(condition::CONNECTION_FORCED, "closed")),
            );
            return;
        }
        self.write(0, &Performative::Close(Close { error }));
        self.close_sent = true;
        if self.close_received {
            self.phase = Phase::Closed;
        }
    }

    /// Fails the connection because of something the peer did: close with `e`, report it,
    /// and tear down every link and session.
    fn fail(&mut self, e: Error) {
        if self.phase == Phase::Closed {
            return;
        }
        if self.phase == Phase::Frames && !self.close_sent {
            // we may not have sent our open yet on the server side; it always was, but a
            // close must follow an open, which send_open guarantees once in Frames
            self.write(
                0,
                &Performative::Close(Close {
                    error: Some(e.clone()),
                }),
            );
            self.close_sent = true;
        }
        self.teardown();
        self.phase = Phase::Closed;
        self.events.push_back(Event::Closed {
            error: Some(e),
            by_peer: false,
        });
    }

    fn teardown(&mut self) {
        let mut ids: Vec<u32> = self.links.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            self.links.remove(&id);
            self.events.push_back(Event::Detached {
                link: LinkId(id),
                closed: false,
                error: None,
            });
        }
        for (ch, s) in self.sessions.iter_mut().enumerate() {
            if s.take().is_some() {
                self.events.push_back(Event::SessionEnded {
                    session: SessionId(ch as u16),
                    error: None,
                });
            }
        }
        self.remote_channels.clear();
    }

    fn on_close(&mut self, c: Close) {
        self.close_received = true;
        if !self.close_sent {
            self.write(0, &Performative::Close(Close { error: None }));
            self.close_sent = true;
        }
        self.teardown();
        self.phase = Phase::Closed;
        self.events.push_back(Event::Closed {
            error: c.error,
            by_peer: true,
        });
    }

    fn write(&mut self, channel: u16, p: &Performative) {
        self.flush_dispositions();
        if self.open_sent {
            frame::write_performative(&mut self.out, channel, p);
        } else {
            frame::write_performative(&mut self.deferred, channel, p);
        }
    }

    // ---- sessions ----------------------------------------------------------------------

    fn new_session(&mut self, remote_channel: Option<u16>) -> Result<u16, EngineError> {
        let limit = self.config.channel_max.min(if self.remote_open.is_some() {
            self.peer_channel_max
        } else {
            u16::MAX
        });
        let ch = match self.sessions.iter().position(Option::is_none) {
            Some(i) => i,
            None => self.sessions.len(),
        };
        if ch > limit as usize {
            return Err(EngineError::NoChannel);
        }
        if ch == self.sessions.len() {
            self.sessions.push(None);
        }
        let window = self.config.session_window;
        self.sessions[ch] = Some(Session {
            remote_channel,
            ended_sent: false,
            next_outgoing_id: 0,
            next_delivery_id: 0,
            next_incoming_id: 0,
            incoming_window: window,
            remote_incoming_window: 0,
            remote_outgoing_window: 0,
            handles: IdMap::default(),
            remote_handles: IdMap::default(),
            sent_unsettled: IdMap::default(),
            received_unsettled: IdMap::default(),
            blocked: VecDeque::new(),
            last_incoming_delivery: None,
        });
        Ok(ch as u16)
    }

    /// Begins a session.
    pub fn begin_session(&mut self) -> Result<SessionId, EngineError> {
        if self.close_sent || self.phase == Phase::Closed {
            return Err(EngineError::Closed);
        }
        let ch = self.new_session(None)?;
        let window = self.config.session_window;
        self.write(
            ch,
            &Performative::Begin(Begin {
                remote_channel: None,
                next_outgoing_id: 0,
                incoming_window: window,
                outgoing_window: u32::MAX,
                handle_max: Some(u32::MAX),
                ..Begin::default()
            }),
        );
        Ok(SessionId(ch))
    }

    fn local_channel(&self, remote: u16) -> Option<u16> {
        self.remote_channels.get(&remote).copied()
    }

    fn on_begin(&mut self, channel: u16, b: Begin) {
        if self.remote_channels.contains_key(&channel) {
            return self.fail(err(condition::ILLEGAL_STATE, "channel already in use"));
        }
        let local = match b.remote_channel {
            Some(ours) => {
                let known = self
                    .sessions
                    .get(ours as usize)
                    .and_then(|s| s.as_ref())
                    .is_some_and(|s| s.remote_channel.is_none());
                if !known {
                    return self.fail(err(
                        condition::ILLEGAL_STATE,
                        "begin answers no session of ours",
                    ));
                }
                ours
            }
            None => match self.new_session(Some(channel)) {
                Ok(ch) => {
                    let window = self.config.session_window;
                    self.write(
                        ch,
                        &Performative::Begin(Begin {
                            remote_channel: Some(channel),
                            next_outgoing_id: 0,
                            incoming_window: window,
                            outgoing_window: u32::MAX,
                            handle_max: Some(u32::MAX),
                            ..Begin::default()
                        }),
                    );
                    ch
                }
                Err(_) => {
                    return self.fail(err(condition::RESOURCE_LIMIT_EXCEEDED, "no free channel"))
                }
            },
        };
        self.remote_channels.insert(channel, local);
        if let Some(Some(s)) = self.sessions.get_mut(local as usize) {
            s.remote_channel = Some(channel);
            s.next_incoming_id = b.next_outgoing_id;
            s.remote_incoming_window = b.incoming_window;
            s.remote_outgoing_window = b.outgoing_window;
        }
        self.events.push_back(Event::SessionBegun(SessionId(local)));
    }

    /// Ends a session (its links go with it).
    pub fn end_session(&mut self, session: SessionId, error: Option<Error>) {
        let Some(Some(s)) = self.sessions.get_mut(session.0 as usize) else {
            return;
        };
        if s.ended_sent {
            return;
        }
        s.ended_sent = true;
        self.write(session.0, &Performative::End(End { error }));
    }

    fn on_end(&mut self, channel: u16, e: End) {
        let Some(local) = self.local_channel(channel) else {
            return self.fail(err(condition::ILLEGAL_STATE, "end on an unknown channel"));
        };
        self.remote_channels.remove(&channel);
        let ended_sent = self.sessions[local as usize]
            .as_ref()
            .is_some_and(|s| s.ended_sent);
        if !ended_sent {
            self.write(local, &Performative::End(End { error: None }));
        }
        self.drop_session(local, e.error);
    }

    fn drop_session(&mut self, local: u16, error: Option<Error>) {
        let Some(s) = self.sessions[local as usize].take() else {
            return;
        };
        let mut ids: Vec<LinkId> = s.handles.values().copied().collect();
        for id in s.remote_handles.values() {
            if !ids.contains(id) {
                ids.push(*id);
            }
        }
        ids.sort_unstable();
        for id in ids {
            if self.links.remove(&id.0).is_some() {
                self.events.push_back(Event::Detached {
                    link: id,
                    closed: false,
                    error: None,
                });
            }
        }
        self.pending_dispositions.retain(|d| d.channel != local);
        self.events.push_back(Event::SessionEnded {
            session: SessionId(local),
            error,
        });
    }

    fn session_error(&mut self, local: u16, e: Error) {
        if let Some(Some(s)) = self.sessions.get_mut(local as usize) {
            if let Some(rc) = s.remote_channel {
                self.remote_channels.remove(&rc);
            }
            if !s.ended_sent {
                s.ended_sent = true;
                self.write(
                    local,
                    &Performative::End(End {
                        error: Some(e.clone()),
                    }),
                );
            }
        }
        self.drop_session(local, Some(e));
    }

    // ---- links -------------------------------------------------------------------------

    fn alloc_link(
        &mut self,
        session: u16,
        name: String,
        role: Role,
        state: LinkState,
    ) -> Result<LinkId, EngineError> {
        let s = self
            .sessions
            .get_mut(session as usize)
            .and_then(|s| s.as_mut())
            .ok_or(EngineError::UnknownSession)?;
        let mut handle = s.handles.len() as u32;
        while s.handles.contains_key(&handle) {
            handle = handle.wrapping_add(1);
        }
        let id = LinkId(self.next_link_id);
        self.next_link_id = self.next_link_id.wrapping_add(1);
        s.handles.insert(handle, id);
        self.links.insert(
            id.0,
            Link {
                session,
                handle,
                remote_handle: None,
                name,
                role,
                state,
                delivery_count: 0,
                credit: 0,
                grace: 0,
                drain: false,
                available: 0,
                max_message_size: 0,
                partial: None,
            },
        );
        Ok(id)
    }

    fn attach_frame(&self, link: &Link, spec: &LinkSpec) -> Attach {
        Attach {
            name: link.name.clone(),
            handle: link.handle,
            role: link.role,
            snd_settle_mode: Some(spec.snd_settle_mode),
            rcv_settle_mode: Some(spec.rcv_settle_mode),
            source: spec.source.clone(),
            target: spec.target.clone(),
            initial_delivery_count: if link.role == Role::Sender {
                Some(link.delivery_count)
            } else {
                None
            },
            max_message_size: if link.role == Role::Receiver {
                Some(self.config.max_message_size)
            } else {
                None
            },
            offered_capabilities: spec.offered_capabilities.clone(),
            desired_capabilities: spec.desired_capabilities.clone(),
            properties: spec.properties.clone(),
            ..Attach::default()
        }
    }

    /// Attaches a new link from our side.
    pub fn attach(&mut self, session: SessionId, spec: LinkSpec) -> Result<LinkId, EngineError> {
        if self.close_sent || self.phase == Phase::Closed {
            return Err(EngineError::Closed);
        }
        let id = self.alloc_link(
            session.0,
            spec.name.clone(),
            spec.role,
            LinkState::AttachSent,
        )?;
        let attach = self.attach_frame(&self.links[&id.0], &spec);
        self.write(session.0, &Performative::Attach(Box::new(attach)));
        Ok(id)
    }

    fn on_attach(&mut self, channel: u16, a: Box<Attach>) {
        let Some(local) = self.local_channel(channel) else {
            return self.fail(err(
                condition::ILLEGAL_STATE,
                "attach on an unknown channel",
            ));
        };
        let Some(Some(s)) = self.sessions.get(local as usize) else {
            return;
        };
        if s.remote_handles.contains_key(&a.handle) {
            return self.session_error(local, err(condition::HANDLE_IN_USE, "handle in use"));
        }
        let our_role = if a.role == Role::Sender {
            Role::Receiver
        } else {
            Role::Sender
        };
        // is it the answer to an attach of ours?
        let pending = s.handles.values().copied().find(|id| {
            self.links.get(&id.0).is_some_and(|l| {
                l.state == LinkState::AttachSent && l.name == a.name && l.role == our_role
            })
        });
        let id = match pending {
            Some(id) => id,
            None => {
                match self.alloc_link(local, a.name.clone(), our_role, LinkState::AttachReceived) {
                    Ok(id) => id,
                    Err(_) => return,
                }
            }
        };
        if let Some(Some(s)) = self.sessions.get_mut(local as usize) {
            s.remote_handles.insert(a.handle, id);
        }
        let Some(link) = self.links.get_mut(&id.0) else {
            return;
        };
        link.remote_handle = Some(a.handle);
        if our_role == Role::Receiver {
            link.delivery_count = a.initial_delivery_count.unwrap_or(0);
        } else {
            link.max_message_size = a.max_message_size.unwrap_or(0);
        }
        if pending.is_some() {
            link.state = LinkState::Attached;
            self.events.push_back(Event::Attached {
                link: id,
                attach: a,
            });
        } else {
            self.events.push_back(Event::AttachRequested {
                link: id,
                session: SessionId(local),
                attach: a,
            });
        }
    }

    /// Answers a peer's attach, completing the link. `spec.role` and `spec.name` are
    /// taken from the link itself.
    pub fn accept_link(&mut self, link: LinkId, spec: LinkSpec) -> Result<(), EngineError> {
        let l = self
            .links
            .get_mut(&link.0)
            .ok_or(EngineError::UnknownLink)?;
        if l.state != LinkState::AttachReceived {
            return Err(EngineError::UnknownLink);
        }
        l.state = LinkState::Attached;
        let session = l.session;
        let attach = self.attach_frame(&self.links[&link.0], &spec);
        self.write(session, &Performative::Attach(Box::new(attach)));
        Ok(())
    }

    /// Refuses a peer's attach: answers with a null terminus, then detaches with `error`.
    pub fn refuse_link(&mut self, link: LinkId, error: Error) -> Result<(), EngineError> {
        let l = self.links.get(&link.0).ok_or(EngineError::UnknownLink)?;
        if l.state != LinkState::AttachReceived {
            return Err(EngineError::UnknownLink);
        }
        let spec = LinkSpec {
            role: l.role,
            ..LinkSpec::default()
        };
        let attach = self.attach_frame(l, &spec);
        let session = l.session;
        self.write(session, &Performative::Attach(Box::new(attach)));
        self.detach(link, true, Some(error))
    }

    /// Detaches (or, with `closed`, closes) a link.
    pub fn detach(
        &mut self,
        link: LinkId,
        closed: bool,
        error: Option<Error>,
    ) -> Result<(), EngineError> {
        let l = self
            .links
            .get_mut(&link.0)
            .ok_or(EngineError::UnknownLink)?;
        if l.state == LinkState::DetachSent {
            return Ok(());
        }
        l.state = LinkState::DetachSent;
        let (session, handle) = (l.session, l.handle);
        self.write(
            session,
            &Performative::Detach(Detach {
                handle,
                closed: Some(closed),
                error,
            }),
        );
        Ok(())
    }

    fn link_by_remote(&self, local: u16, handle: u32) -> Option<LinkId> {
        self.sessions
            .get(local as usize)?
            .as_ref()?
            .remote_handles
            .get(&handle)
            .copied()
    }

    fn on_detach(&mut self, channel: u16, d: Detach) {
        let Some(local) = self.local_channel(channel) else {
            return self.fail(err(
                condition::ILLEGAL_STATE,
                "detach on an unknown channel",
            ));
        };
        let Some(id) = self.link_by_remote(local, d.handle) else {
            return self.session_error(
                local,
                err(
                    condition::UNATTACHED_HANDLE,
                    "detach of an unattached handle",
                ),
            );
        };
        let Some(link) = self.links.remove(&id.0) else {
            return;
        };
        if link.state != LinkState::DetachSent {
            self.write(
                local,
                &Performative::Detach(Detach {
                    handle: link.handle,
                    closed: d.closed,
                    error: None,
                }),
            );
        }
        if let Some(Some(s)) = self.sessions.get_mut(local as usize) {
            s.handles.remove(&link.handle);
            s.remote_handles.remove(&d.handle);
            s.sent_unsettled.retain(|_, l| *l != id);
            s.received_unsettled.retain(|_, l| *l != id);
        }
        self.events.push_back(Event::Detached {
            link: id,
            closed: d.closed.unwrap_or(false),
            error: d.error,
        });
    }

    // ---- flow --------------------------------------------------------------------------

    fn session_flow_fields(s: &Session, window: u32) -> Flow {
        Flow {
            next_incoming_id: s.remote_channel.map(|_| s.next_incoming_id),
            incoming_window: window,
            next_outgoing_id: s.next_outgoing_id,
            outgoing_window: u32::MAX,
            ..Flow::default()
        }
    }

    fn write_link_flow(&mut self, id: LinkId, echo: bool) {
        let Some(l) = self.links.get(&id.0) else {
            return;
        };
        let Some(Some(s)) = self.sessions.get(l.session as usize) else {
            return;
        };
        let mut f = Self::session_flow_fields(s, s.incoming_window);
        f.handle = Some(l.handle);
        f.delivery_count = Some(l.delivery_count);
        f.link_credit = Some(l.credit);
        f.drain = Some(l.drain);
        if l.role == Role::Sender {
            f.available = Some(l.available);
        }
        f.echo = if echo { Some(true) } else { None };
        let ch = l.session;
        self.write(ch, &Performative::Flow(f));
    }

    /// (Receiver) grants `credit` on a link, optionally asking the sender to drain it.
    pub fn flow(&mut self, link: LinkId, credit: u32, drain: bool) -> Result<(), EngineError> {
        let l = self
            .links
            .get_mut(&link.0)
            .ok_or(EngineError::UnknownLink)?;
        if l.role != Role::Receiver {
            return Err(EngineError::NotReceiver);
        }
        if credit < l.credit {
            l.grace = l.grace.saturating_add(l.credit - credit);
        }
        l.credit = credit;
        l.drain = drain;
        self.write_link_flow(link, false);
        Ok(())
    }

    /// (Sender) the credit we may use on a link.
    pub fn credit(&self, link: LinkId) -> u32 {
        self.links.get(&link.0).map_or(0, |l| {
            if l.role == Role::Sender && l.state == LinkState::Attached {
                l.credit
            } else {
                0
            }
        })
    }

    /// (Sender) the drain flag last set by the receiver.
    pub fn drain_requested(&self, link: LinkId) -> bool {
        self.links.get(&link.0).is_some_and(|l| l.drain)
    }

    /// (Sender) completes a drain: uses up the remaining credit without sending.
    pub fn drained(&mut self, link: LinkId) -> Result<(), EngineError> {
        let l = self
            .links
            .get_mut(&link.0)
            .ok_or(EngineError::UnknownLink)?;
        if l.role != Role::Sender {
            return Err(EngineError::NotSender);
        }
        if !l.drain {
            return Ok(());
        }
        l.delivery_count = l.delivery_count.wrapping_add(l.credit);
        l.credit = 0;
        self.write_link_flow(link, false);
        Ok(())
    }

    /// (Sender) tells the receiver how many messages are waiting.
    pub fn set_available(&mut self, link: LinkId, available: u32) {
        if let Some(l) = self.links.get_mut(&link.0) {
            l.available = available;
        }
    }

    fn on_flow(&mut self, channel: u16, f: Flow) {
        let Some(local) = self.local_channel(channel) else {
            return self.fail(err(condition::ILLEGAL_STATE, "flow on an unknown channel"));
        };
        let Some(Some(s)) = self.sessions.get_mut(local as usize) else {
            return;
        };
        let next_in = f.next_incoming_id.unwrap_or(0);
        s.remote_incoming_window = next_in
            .wrapping_add(f.incoming_window)
            .wrapping_sub(s.next_outgoing_id);
        s.remote_outgoing_window = f.outgoing_window;
        self.release_blocked(local);
        let Some(handle) = f.handle else {
            if f.echo == Some(true) {
                if let Some(Some(s)) = self.sessions.get(local as usize) {
                    let fl = Self::session_flow_fields(s, s.incoming_window);
                    self.write(local, &Performative::Flow(fl));
                }
            }
            return;
        };
        let Some(id) = self.link_by_remote(local, handle) else {
            return self.session_error(
                local,
                err(
                    condition::UNATTACHED_HANDLE,
                    "flow for an unattached handle",
                ),
            );
        };
        let Some(l) = self.links.get_mut(&id.0) else {
            return;
        };
        l.drain = f.drain.unwrap_or(false);
        if l.role == Role::Sender {
            let their_count = f.delivery_count.unwrap_or(0);
            let limit = their_count.wrapping_add(f.link_credit.unwrap_or(0));
            l.credit = limit.wrapping_sub(l.delivery_count);
            if l.credit > i32::MAX as u32 {
                l.credit = 0; // the peer's view is behind ours: deliveries in flight used it
            }
        } else {
            if let Some(dc) = f.delivery_count {
                // the sender advanced its count (e.g. drained): our credit shrinks by as much
                let advanced = dc.wrapping_sub(l.delivery_count);
                if advanced <= l.credit {
                    l.credit -= advanced;
                    l.delivery_count = dc;
                }
            }
            l.available = f.available.unwrap_or(0);
        }
        let (credit, drain, available) = (l.credit, l.drain, l.available);
        self.events.push_back(Event::Flow {
            link: id,
            credit,
            drain,
            available,
        });
        if f.echo == Some(true) {
            self.write_link_flow(id, false);
        }
    }

    fn release_blocked(&mut self, local: u16) {
        let Some(Some(s)) = self.sessions.get_mut(local as usize) else {
            return;
        };
        while s.remote_incoming_window > 0 {
            let Some(frame) = s.blocked.pop_front() else {
                break;
            };
            s.remote_incoming_window -= 1;
            s.next_outgoing_id = s.next_outgoing_id.wrapping_add(1);
            self.out.put_slice(&frame);
        }
    }

    // ---- transfers ---------------------------------------------------------------------

    /// (Sender) sends one message, whose encoding is the concatenation of `parts`. Returns
    /// the delivery id. Splits into frames by the peer's max-frame-size; queues frames the
    /// peer's session window does not admit yet.
    pub fn send(
        &mut self,
        link: LinkId,
        tag: &[u8],
        parts: &[&[u8]],
        settled: bool,
    ) -> Result<u32, EngineError> {
        let peer_max = self.peer_max_frame as usize;
        let l = self
            .links
            .get_mut(&link.0)
            .ok_or(EngineError::UnknownLink)?;
        if l.role != Role::Sender || l.state != LinkState::Attached {
            return Err(EngineError::NotSender);
        }
        if l.credit == 0 {
            return Err(EngineError::NoCredit);
        }
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if l.max_message_size > 0 && total as u64 > l.max_message_size {
            return Err(EngineError::MessageTooLarge);
        }
        l.credit -= 1;
        l.delivery_count = l.delivery_count.wrapping_add(1);
        let (ch, handle) = (l.session, l.handle);
        let s = self
            .sessions
            .get_mut(ch as usize)
            .and_then(|s| s.as_mut())
            .ok_or(EngineError::UnknownSession)?;
        let delivery_id = s.next_delivery_id;
        s.next_delivery_id = s.next_delivery_id.wrapping_add(1);
        if !settled {
            s.sent_unsettled.insert(delivery_id, link);
        }
        // flush coalesced dispositions first so the peer sees them in order
        if !self.pending_dispositions.is_empty() {
            self.flush_dispositions();
        }
        let s = self.sessions[ch as usize]
            .as_mut()
            .ok_or(EngineError::UnknownSession)?;
        let mut offset = 0usize;
        let mut part = 0usize;
        let mut part_off = 0usize;
        let mut first = true;
        loop {
            let direct = s.blocked.is_empty() && s.remote_incoming_window > 0;
            let mut tmp = BytesMut::new();
            let buf: &mut BytesMut = if direct { &mut self.out } else { &mut tmp };
            let start = frame::begin_frame(buf, frame::TYPE_AMQP, ch);
            // room for the payload in this frame, after the transfer performative
            let perf_start = buf.len();
            write_transfer(
                buf,
                handle,
                first.then_some((delivery_id, tag)),
                settled,
                true,
            );
            let perf_len = buf.len() - perf_start;
            let room = peer_max.saturating_sub(8 + perf_len).max(1);
            let more = total - offset > room;
            if !more {
                // rewrite without `more`
                buf.truncate(perf_start);
                write_transfer(
                    buf,
                    handle,
                    first.then_some((delivery_id, tag)),
                    settled,
                    false,
                );
            }
            let mut n = room.min(total - offset);
            offset += n;
            while n > 0 {
                let p = parts[part];
                let take = (p.len() - part_off).min(n);
                buf.put_slice(&p[part_off..part_off + take]);
                part_off += take;
                n -= take;
                if part_off == p.len() {
                    part += 1;
                    part_off = 0;
                }
            }
            while part < parts.len() && parts[part].is_empty() {
                part += 1;
            }
            frame::end_frame(buf, start);
            if direct {
                s.remote_incoming_window -= 1;
                s.next_outgoing_id = s.next_outgoing_id.wrapping_add(1);
            } else {
                s.blocked.push_back(tmp.freeze());
            }
            first = false;
            if !more {
                break;
            }
        }
        Ok(delivery_id)
    }

    fn on_transfer(&mut self, channel: u16, t: Transfer, payload: Bytes) {
        let Some(local) = self.local_channel(channel) else {
            return self.fail(err(
                condition::ILLEGAL_STATE,
                "transfer on an unknown channel",
            ));
        };
        let window = self.config.session_window;
        let Some(Some(s)) = self.sessions.get_mut(local as usize) else {
            return;
        };
        if s.incoming_window == 0 {
            return self.session_error(
                local,
                err(
                    condition::WINDOW_VIOLATION,
                    "transfer beyond the incoming window",
                ),
            );
        }
        s.incoming_window -= 1;
        s.next_incoming_id = s.next_incoming_id.wrapping_add(1);
        // (at least one short of full, or a window of one would never be refilled)
        let refill = s.incoming_window < (window / 2).max(1);
        if refill {
            s.incoming_window = window;
            let fl = Self::session_flow_fields(s, window);
            self.write(local, &Performative::Flow(fl));
        }
        let Some(id) = self.link_by_remote(local, t.handle) else {
            return self.session_error(
                local,
                err(
                    condition::UNATTACHED_HANDLE,
                    "transfer on an unattached handle",
                ),
            );
        };
        let max_msg = self.config.max_message_size;
        let Some(l) = self.links.get_mut(&id.0) else {
            return;
        };
        if l.role != Role::Receiver {
            return self.session_error(
                local,
                err(condition::ERRANT_LINK, "transfer on a sending link"),
            );
        }
        let s = self.sessions[local as usize]
            .as_mut()
            .expect("session checked above");
        let more = t.more.unwrap_or(false);
        let aborted = t.aborted.unwrap_or(false);
        if l.partial.is_none() {
            // first frame of a delivery
            let delivery_id = match t
                .delivery_id
                .or(s.last_incoming_delivery.map(|d| d.wrapping_add(1)))
            {
                Some(d) => d,
                None => {
                    return self.session_error(
                        local,
                        err(condition::INVALID_FIELD, "transfer without delivery-id"),
                    )
                }
            };
            s.last_incoming_delivery = Some(delivery_id);
            if l.credit == 0 {
                if l.grace > 0 {
                    l.grace -= 1;
                } else if !self.config.strict_credit {
                    // tolerated (RabbitMQ 3.10 overshoots credit): take it, keep credit at 0
                } else {
                    let _ = self.detach(
                        id,
                        true,
                        Some(err(
                            condition::TRANSFER_LIMIT_EXCEEDED,
                            "transfer without link credit",
                        )),
                    );
                    return;
                }
            } else {
                l.credit -= 1;
            }
            l.delivery_count = l.delivery_count.wrapping_add(1);
            let settled = t.settled.unwrap_or(false);
            let tag = t.delivery_tag.unwrap_or_default();
            let message_format = t.message_format.unwrap_or(0);
            let state = t.state;
            if aborted {
                return;
            }
            if !more {
                if !settled {
                    s.received_unsettled.insert(delivery_id, id);
                }
                self.events.push_back(Event::Delivery {
                    link: id,
                    delivery_id,
                    tag,
                    payload,
                    settled,
                    message_format,
                    state,
                });
                return;
            }
            let mut buf = BytesMut::with_capacity(payload.len() * 2);
            buf.put_slice(&payload);
            l.partial = Some(Partial {
                delivery_id,
                tag,
                buf,
                settled,
                message_format,
                state,
            });
            return;
        }
        // continuation frame
        if aborted {
            l.partial = None;
            return;
        }
        let Some(p) = l.partial.as_mut() else { return };
        if t.settled == Some(true) {
            p.settled = true;
        }
        if (p.buf.len() + payload.len()) as u64 > max_msg {
            l.partial = None;
            let _ = self.detach(
                id,
                true,
                Some(err(
                    condition::MESSAGE_SIZE_EXCEEDED,
                    "message exceeds max-message-size",
                )),
            );
            return;
        }
        p.buf.put_slice(&payload);
        if more {
            return;
        }
        let Some(p) = l.partial.take() else { return };
        if !p.settled {
            s.received_unsettled.insert(p.delivery_id, id);
        }
        self.events.push_back(Event::Delivery {
            link: id,
            delivery_id: p.delivery_id,
            tag: p.tag,
            payload: p.buf.freeze(),
            settled: p.settled,
            message_format: p.message_format,
            state: p.state,
        });
    }

    // ---- dispositions ------------------------------------------------------------------

    /// (Receiver) updates or settles a delivery received on `link`. Consecutive
    /// dispositions with the same state are coalesced into one frame.
    pub fn disposition(
        &mut self,
        link: LinkId,
        delivery_id: u32,
        state: Option<DeliveryState>,
        settled: bool,
    ) {
        let Some(l) = self.links.get(&link.0) else {
            return;
        };
        let ch = l.session;
        let role = l.role;
        if let Some(Some(s)) = self.sessions.get_mut(ch as usize) {
            if settled {
                let known = if role == Role::Receiver {
                    s.received_unsettled.remove(&delivery_id).is_some()
                } else {
                    s.sent_unsettled.remove(&delivery_id).is_some()
                };
                if !known {
                    return;
                }
            }
        }
        self.queue_disposition(ch, role, delivery_id, settled, state);
    }

    fn queue_disposition(
        &mut self,
        channel: u16,
        role: Role,
        id: u32,
        settled: bool,
        state: Option<DeliveryState>,
    ) {
        if let Some(last) = self.pending_dispositions.last_mut() {
            if last.channel == channel
                && last.role == role
                && last.settled == settled
                && last.last.wrapping_add(1) == id
                && last.state == state
            {
                last.last = id;
                return;
            }
        }
        if self.pending_dispositions.len() >= 64 {
            self.flush_dispositions();
        }
        self.pending_dispositions.push(PendingDisposition {
            channel,
            role,
            first: id,
            last: id,
            settled,
            state,
        });
    }

    fn flush_dispositions(&mut self) {
        for d in std::mem::take(&mut self.pending_dispositions) {
            let p = Performative::Disposition(Disposition {
                role: d.role,
                first: d.first,
                last: if d.last != d.first {
                    Some(d.last)
                } else {
                    None
                },
                settled: Some(d.settled),
                state: d.state,
                batchable: None,
            });
            frame::write_performative(&mut self.out, d.channel, &p);
        }
    }

    fn on_disposition(&mut self, channel: u16, d: Disposition) {
        let Some(local) = self.local_channel(channel) else {
            return self.fail(err(
                condition::ILLEGAL_STATE,
                "disposition on an unknown channel",
            ));
        };
        let Some(Some(s)) = self.sessions.get_mut(local as usize) else {
            return;
        };
        let last = d.last.unwrap_or(d.first);
        let settled = d.settled.unwrap_or(false);
        // the peer's role names whose deliveries these are: a receiver speaks of ours
        let map = if d.role == Role::Receiver {
            &mut s.sent_unsettled
        } else {
            &mut s.received_unsettled
        };
        let span = last.wrapping_sub(d.first) as u64 + 1;
        let mut hits: Vec<(u32, LinkId)> = Vec::new();
        if span <= map.len() as u64 {
            let mut id = d.first;
            loop {
                if let Some(l) = map.get(&id) {
                    hits.push((id, *l));
                }
                if id == last {
                    break;
                }
                id = id.wrapping_add(1);
            }
        } else {
            hits.extend(
                map.iter()
                    .filter(|(id, _)| (id.wrapping_sub(d.first) as u64) < span)
                    .map(|(id, l)| (*id, *l)),
            );
            hits.sort_unstable_by_key(|(id, _)| id.wrapping_sub(d.first));
        }
        // an outcome from a receiver that did not settle is settled by us (mode first)
        let auto_settle = d.role == Role::Receiver
            && !settled
            && d.state.as_ref().is_some_and(|s| s.is_outcome());
        for (id, _) in &hits {
            if settled || auto_settle {
                map.remove(id);
            }
        }
        for (id, link) in hits {
            self.events.push_back(Event::Disposition {
                link,
                delivery_id: id,
                state: d.state.clone(),
                settled: settled || auto_settle,
            });
            if auto_settle {
                self.queue_disposition(local, Role::Sender, id, true, d.state.clone());
            }
        }
    }

    /// The number of deliveries we sent on the session of `link` still unsettled.
    pub fn unsettled_sent(&self, link: LinkId) -> usize {
        self.links
            .get(&link.0)
            .and_then(|l| self.sessions.get(l.session as usize)?.as_ref())
            .map_or(0, |s| s.sent_unsettled.len())
    }

    /// The link's session.
    pub fn link_session(&self, link: LinkId) -> Option<SessionId> {
        self.links.get(&link.0).map(|l| SessionId(l.session))
    }

    /// The link's role on our side.
    pub fn link_role(&self, link: LinkId) -> Option<Role> {
        self.links.get(&link.0).map(|l| l.role)
    }

    /// Whether the link exists and is attached.
    pub fn is_attached(&self, link: LinkId) -> bool {
        self.links
            .get(&link.0)
            .is_some_and(|l| l.state == LinkState::Attached)
    }
}

/// Writes a transfer performative; `first` carries the delivery id and tag of the first
/// frame of a delivery (continuation frames omit them).
fn write_transfer(
    buf: &mut BytesMut,
    handle: u32,
    first: Option<(u32, &[u8])>,
    settled: bool,
    more: bool,
) {
    encode::descriptor(buf, Transfer::CODE);
    let start = encode::begin_compound(buf, crate::codec::format::LIST32);
    let mut count = 1;
    encode::uint(buf, handle);
    if let Some((id, tag)) = first {
        encode::uint(buf, id);
        encode::binary(buf, tag);
        encode::uint(buf, 0);
        encode::boolean(buf, settled);
        count = 5;
    }
    if more {
        if first.is_none() {
            buf.put_slice(&[0x40, 0x40, 0x40, 0x40]);
        }
        encode::boolean(buf, true);
        count = 6;
    }
    encode::end_compound(buf, start, count, crate::codec::format::LIST8);
}

#[allow(dead_code)]
fn _assert_send() {
    fn is_send<T: Send>() {}
    is_send::<Connection>();
    let _ = SenderSettleMode::Mixed;
}
