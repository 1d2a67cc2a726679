//! The connection state machine: CONNECT/CONNACK, keep-alive, QoS 1/2 both ways with
//! receive maximum, topic aliases, maximum packet size, session export and resend.

use super::session::{OutboundMessage, OutboundState, SessionState};
use super::types::*;
use crate::codec::{
    self, reason, Auth, ByteStr, ConnAck, Connect, DecodeError, Decoder, Disconnect, Packet,
    Properties, PubResponse, Publish, QoS, ReasonCode, SubAck, Subscribe, UnsubAck, Unsubscribe,
    Version, MAX_PACKET_SIZE,
};
use bytes::BytesMut;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};
use throng_idmap::IdMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Server: waiting for CONNECT.
    AwaitConnect,
    /// Server: CONNECT received, waiting for the application's verdict.
    AwaitAccept,
    /// Client: CONNECT sent, waiting for CONNACK.
    AwaitConnAck,
    Connected,
    Closed,
}

/// An inbound QoS 1/2 message not yet completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inbound {
    /// QoS 1, emitted, waiting for the application's ack.
    Qos1,
    /// QoS 2, emitted, waiting for the application's ack (then PUBREC).
    Qos2Pending,
    /// QoS 2, PUBREC sent, waiting for PUBREL.
    Qos2Received,
}

/// An outbound QoS 1/2 message not yet completed.
struct Inflight {
    /// Order of first send, for resending in order.
    seq: u64,
    /// False for restored messages still waiting for send credit.
    sent: bool,
    state: OutboundState,
}

/// One MQTT connection's protocol state. See the module documentation.
pub struct Connection {
    config: Config,
    version: Version,
    phase: Phase,
    decoder: Decoder,
    input: BytesMut,
    out: BytesMut,
    events: VecDeque<Event>,
    now: Instant,
    created: Instant,
    last_received: Instant,
    last_sent: Instant,
    ping_sent: Option<Instant>,
    /// Zero when keep-alive is off.
    keep_alive: Duration,
    // Limits we announced.
    our_receive_max: u16,
    our_topic_alias_max: u16,
    our_max_qos: QoS,
    our_retain_available: bool,
    // Limits the peer announced.
    peer_receive_max: u16,
    peer_max_packet: u32,
    peer_topic_alias_max: u16,
    peer_max_qos: QoS,
    peer_retain_available: bool,
    /// Whether the peer wants reason strings and user properties on acks (v5 request
    /// problem information).
    peer_problem_info: bool,
    /// Session expiry from CONNECT: a DISCONNECT may not raise it from 0.
    connect_session_expiry: u32,
    inbound: IdMap<u16, Inbound>,
    /// Bumped whenever an inbound QoS 2 id starts or stops awaiting PUBREL.
    inbound_qos2_changes: u64,
    inbound_aliases: IdMap<u16, ByteStr>,
    inflight: IdMap<u16, Inflight>,
    /// Inflight entries with `sent == false`.
    unsent: usize,
    next_seq: u64,
    next_id: u16,
    /// Outbound topic → alias.
    aliases: HashMap<ByteStr, u16>,
    /// Client: ids of SUBSCRIBE/UNSUBSCRIBE awaiting their ack.
    pending_acks: Vec<u16>,
}

impl Connection {
    fn base(config: Config, version: Version, now: Instant) -> Self {
        Connection {
            decoder: Decoder::new(version, config.max_packet_size),
            version,
            phase: Phase::AwaitConnect,
            input: BytesMut::new(),
            out: BytesMut::new(),
            events: VecDeque::new(),
            now,
            created: now,
            last_received: now,
            last_sent: now,
            ping_sent: None,
            keep_alive: Duration::ZERO,
            our_receive_max: u16::MAX,
            our_topic_alias_max: 0,
            our_max_qos: QoS::ExactlyOnce,
            our_retain_available: true,
            peer_receive_max: u16::MAX,
            peer_max_packet: MAX_PACKET_SIZE,
            peer_topic_alias_max: 0,
            peer_max_qos: QoS::ExactlyOnce,
            peer_retain_available: true,
            peer_problem_info: true,
            connect_session_expiry: 0,
            inbound: IdMap::default(),
            inbound_qos2_changes: 0,
            inbound_aliases: IdMap::default(),
            inflight: IdMap::default(),
            unsent: 0,
            next_seq: 0,
            next_id: 1,
            aliases: HashMap::new(),
            pending_acks: Vec::new(),
            config,
        }
    }

    /// A server-side connection waiting for CONNECT.
    pub fn server(mut config: Config, now: Instant) -> Self {
        config.role = Role::Server;
        Connection::base(config, Version::V311, now)
    }

    /// A client-side connection; the CONNECT is written at once. In v5 our receive
    /// maximum, topic alias maximum and maximum packet size from `config` are added to its
    /// properties unless already set there.
    pub fn client(mut config: Config, mut connect: Connect, now: Instant) -> Self {
        config.role = Role::Client;
        let mut c = Connection::base(config, connect.version, now);
        if connect.version == Version::V5 {
            let p = &mut connect.properties;
            if p.receive_maximum.is_none() && c.config.receive_maximum != u16::MAX {
                p.receive_maximum = Some(c.config.receive_maximum.max(1));
            }
            if p.topic_alias_maximum.is_none() && c.config.topic_alias_maximum > 0 {
                p.topic_alias_maximum = Some(c.config.topic_alias_maximum);
            }
            if p.maximum_packet_size.is_none() && c.config.max_packet_size < MAX_PACKET_SIZE {
                p.maximum_packet_size = Some(c.config.max_packet_size.max(1));
            }
            c.our_receive_max = p.receive_maximum.unwrap_or(u16::MAX);
            c.our_topic_alias_max = p.topic_alias_maximum.unwrap_or(0);
            c.connect_session_expiry = p.session_expiry_interval.unwrap_or(0);
        }
        c.keep_alive = Duration::from_secs(connect.keep_alive.into());
        c.phase = Phase::AwaitConnAck;
        codec::encode(&Packet::Connect(Box::new(connect)), c.version, &mut c.out);
        c
    }

    // ---- I/O surface ------------------------------------------------------------------

    /// Bytes to write to the peer; the caller drains (e.g. `split()`) what it wrote.
    pub fn output(&mut self) -> &mut BytesMut {
        &mut self.out
    }

    /// Moves the pending output into `buf` (a swap when `buf` is empty); returns whether
    /// there was any.
    pub fn poll_transmit(&mut self, buf: &mut BytesMut) -> bool {
        if self.out.is_empty() {
            return false;
        }
        if buf.is_empty() {
            std::mem::swap(buf, &mut self.out);
        } else {
            buf.extend_from_slice(&self.out);
            self.out.clear();
        }
        true
    }

    /// Whether there is anything to write.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Size of the unwritten output, for back-pressure decisions.
    pub fn output_len(&self) -> usize {
        self.out.len()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Whether the connection is over (write out the remaining output, then close).
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Whether CONNECT/CONNACK completed and the connection is open.
    pub fn is_connected(&self) -> bool {
        self.phase == Phase::Connected
    }

    /// The protocol version (for a server, known once CONNECT arrived).
    pub fn version(&self) -> Version {
        self.version
    }

    /// Which end this engine plays.
    pub fn role(&self) -> Role {
        self.config.role
    }

    /// The keep-alive in force (CONNECT's, or the server keep-alive).
    pub fn keep_alive(&self) -> Duration {
        self.keep_alive
    }

    /// Feeds bytes read from the peer.
    pub fn handle_input(&mut self, data: &[u8], now: Instant) {
        if self.phase == Phase::Closed || data.is_empty() {
            return;
        }
        self.input.extend_from_slice(data);
        self.process_input(now);
    }

    /// The read buffer, to read into directly (avoids a copy); then call
    /// [`Self::process_input`]. PUBLISH payloads become slices of it.
    pub fn input_buffer(&mut self) -> &mut BytesMut {
        &mut self.input
    }

    /// Processes bytes appended through [`Self::input_buffer`].
    pub fn process_input(&mut self, now: Instant) {
        self.now = now;
        if self.phase == Phase::Closed {
            self.input.clear();
            return;
        }
        self.last_received = now;
        self.process();
    }

    /// Tells the engine the transport is gone (EOF or error): emits `Closed` with
    /// `publish_will` set if the connection had been accepted.
    pub fn transport_closed(&mut self, now: Instant) {
        self.now = now;
        if self.phase == Phase::Closed {
            return;
        }
        let will = self.phase == Phase::Connected;
        self.close_with(
            ReasonCode::UnspecifiedError,
            Initiator::Peer,
            will,
            "connection lost",
            None,
        );
    }

    /// When [`Self::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::AwaitConnect | Phase::AwaitConnAck => {
                self.config.connect_timeout.map(|t| self.created + t)
            }
            Phase::Connected if !self.keep_alive.is_zero() => Some(match self.config.role {
                Role::Server => self.last_received + self.keep_alive * 3 / 2,
                Role::Client => match self.ping_sent {
                    Some(t) => t + self.keep_alive,
                    None => self.last_sent + self.keep_alive,
                },
            }),
            _ => None,
        }
    }

    /// Lets time pass: a server closes a client silent for 1.5× its keep-alive (v5:
    /// DISCONNECT 0x8D first); a client sends PINGREQ and closes when no PINGRESP comes
    /// back within the keep-alive.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        match self.phase {
            Phase::AwaitConnect | Phase::AwaitConnAck => {
                if let Some(t) = self.config.connect_timeout {
                    if now >= self.created + t {
                        self.close_with(
                            ReasonCode::MaximumConnectTime,
                            Initiator::Local,
                            false,
                            "connect timeout",
                            None,
                        );
                    }
                }
            }
            Phase::Connected if !self.keep_alive.is_zero() => match self.config.role {
                Role::Server => {
                    if now >= self.last_received + self.keep_alive * 3 / 2 {
                        self.fail(ReasonCode::KeepAliveTimeout, "keep-alive timeout");
                    }
                }
                Role::Client => match self.ping_sent {
                    Some(t) if now >= t + self.keep_alive => {
                        self.fail(ReasonCode::KeepAliveTimeout, "no PINGRESP");
                    }
                    None if now >= self.last_sent + self.keep_alive => {
                        self.write(Packet::PingReq);
                        self.ping_sent = Some(now);
                    }
                    _ => {}
                },
            },
            _ => {}
        }
    }

    // ---- input ------------------------------------------------------------------------

    fn process(&mut self) {
        while self.phase != Phase::Closed {
            if self.phase == Phase::AwaitAccept {
                // Nothing but AUTH is processed before the application accepts.
                match self.input.first() {
                    Some(b) if b >> 4 == 15 => {}
                    _ => break,
                }
            }
            match self.decoder.decode(&mut self.input) {
                Ok(Some(p)) => self.handle_packet(p),
                Ok(None) => break,
                Err(e) => self.decode_failed(e),
            }
        }
        if self.phase == Phase::Closed {
            self.input.clear();
        }
    }

    fn decode_failed(&mut self, e: DecodeError) {
        if self.phase == Phase::AwaitConnect && e.reason == ReasonCode::UnsupportedProtocolVersion {
            // Answer in the 3.1.1 layout, which every version understands: 0x01.
            self.out.extend_from_slice(&[0x20, 0x02, 0x00, 0x01]);
            self.close_with(e.reason, Initiator::Local, false, e.detail, None);
            return;
        }
        self.fail(e.reason, e.detail);
    }

    /// Closes because of a violation or timeout: in v5, after CONNACK, a DISCONNECT with
    /// the reason goes out first.
    fn fail(&mut self, reason: ReasonCode, detail: &'static str) {
        if self.phase == Phase::Closed {
            return;
        }
        let may_disconnect = self.version == Version::V5
            && (self.phase == Phase::Connected
                || (self.config.role == Role::Client && self.phase == Phase::AwaitConnAck));
        if may_disconnect {
            let r = if reason::DISCONNECT.contains(&reason) {
                reason
            } else {
                ReasonCode::UnspecifiedError
            };
            // the detail is the reason string (dropped if it would not fit the peer's
            // maximum packet size)
            let mut properties = Properties::default();
            properties.reason_string = Some(ByteStr::from(detail));
            self.write(Packet::Disconnect(Disconnect {
                reason: r,
                properties,
            }));
        }
        let will = self.phase == Phase::Connected;
        self.close_with(reason, Initiator::Local, will, detail, None);
    }

    fn close_with(
        &mut self,
        reason: ReasonCode,
        initiator: Initiator,
        publish_will: bool,
        detail: &'static str,
        disconnect: Option<Disconnect>,
    ) {
        self.phase = Phase::Closed;
        self.input.clear();
        self.events.push_back(Event::Closed(Closed {
            reason,
            initiator,
            publish_will,
            detail,
            disconnect,
        }));
    }

    fn handle_packet(&mut self, p: Packet) {
        let server = self.config.role == Role::Server;
        match (self.phase, p) {
            (Phase::AwaitConnect, Packet::Connect(c)) if server => self.on_connect(c),
            (Phase::AwaitConnect, _) => {
                self.fail(ReasonCode::ProtocolError, "first packet is not CONNECT")
            }
            (_, Packet::Connect(_)) => self.fail(ReasonCode::ProtocolError, "second CONNECT"),
            (Phase::AwaitConnAck, Packet::ConnAck(c)) => self.on_connack(c),
            (_, Packet::ConnAck(_)) => self.fail(ReasonCode::ProtocolError, "unexpected CONNACK"),
            (Phase::AwaitAccept | Phase::AwaitConnAck | Phase::Connected, Packet::Auth(a)) => {
                self.events.push_back(Event::Auth(a))
            }
            (Phase::Connected, p) => self.on_packet(p),
            _ => self.fail(
                ReasonCode::ProtocolError,
                "packet before the connection is accepted",
            ),
        }
    }

    fn on_connect(&mut self, c: Box<Connect>) {
        self.version = c.version;
        self.keep_alive = Duration::from_secs(c.keep_alive.into());
        if c.version == Version::V5 {
            let p = &c.properties;
            self.peer_receive_max = p.receive_maximum.unwrap_or(u16::MAX);
            self.peer_max_packet = p.maximum_packet_size.unwrap_or(MAX_PACKET_SIZE);
            self.peer_topic_alias_max = p.topic_alias_maximum.unwrap_or(0);
            self.peer_problem_info = p.request_problem_information.unwrap_or(true);
            self.connect_session_expiry = p.session_expiry_interval.unwrap_or(0);
        }
        self.phase = Phase::AwaitAccept;
        self.events.push_back(Event::Connect(c));
    }

    fn on_connack(&mut self, c: ConnAck) {
        if c.reason != ReasonCode::Success {
            let reason = c.reason;
            self.events.push_back(Event::ConnAck(c));
            self.close_with(reason, Initiator::Peer, false, "connection refused", None);
            return;
        }
        if self.version == Version::V5 {
            let p = &c.properties;
            self.peer_receive_max = p.receive_maximum.unwrap_or(u16::MAX);
            self.peer_max_packet = p.maximum_packet_size.unwrap_or(MAX_PACKET_SIZE);
            self.peer_topic_alias_max = p.topic_alias_maximum.unwrap_or(0);
            self.peer_max_qos = p.maximum_qos.unwrap_or(QoS::ExactlyOnce);
            self.peer_retain_available = p.retain_available.unwrap_or(true);
            if let Some(k) = p.server_keep_alive {
                self.keep_alive = Duration::from_secs(k.into());
            }
        }
        self.phase = Phase::Connected;
        if !c.session_present {
            // The server has no session: what we restored is void.
            self.inflight.clear();
            self.unsent = 0;
            self.inbound.clear();
        }
        self.events.push_back(Event::ConnAck(c));
        self.send_unsent();
    }

    fn on_packet(&mut self, p: Packet) {
        let server = self.config.role == Role::Server;
        match p {
            Packet::Publish(p) => self.on_publish(p),
            Packet::PubAck(r) => self.on_puback(r),
            Packet::PubRec(r) => self.on_pubrec(r),
            Packet::PubRel(r) => self.on_pubrel(r),
            Packet::PubComp(r) => self.on_pubcomp(r),
            Packet::Subscribe(s) if server => self.events.push_back(Event::Subscribe(s)),
            Packet::Unsubscribe(u) if server => self.events.push_back(Event::Unsubscribe(u)),
            Packet::SubAck(s) if !server => {
                self.pending_acks.retain(|id| *id != s.packet_id);
                self.events.push_back(Event::SubAck(s));
            }
            Packet::UnsubAck(u) if !server => {
                self.pending_acks.retain(|id| *id != u.packet_id);
                self.events.push_back(Event::UnsubAck(u));
            }
            Packet::PingReq if server => self.write(Packet::PingResp),
            Packet::PingResp if !server => self.ping_sent = None,
            Packet::Disconnect(d) => self.on_disconnect(d),
            _ => self.fail(
                ReasonCode::ProtocolError,
                "packet not allowed in this direction",
            ),
        }
    }

    fn on_disconnect(&mut self, d: Disconnect) {
        let server = self.config.role == Role::Server;
        if server
            && self.version == Version::V5
            && self.connect_session_expiry == 0
            && d.properties.session_expiry_interval.unwrap_or(0) != 0
        {
            self.fail(
                ReasonCode::ProtocolError,
                "DISCONNECT sets a session expiry after CONNECT had none",
            );
            return;
        }
        let will = if server {
            self.version == Version::V5 && d.reason != ReasonCode::Success
        } else {
            true
        };
        self.close_with(
            d.reason,
            Initiator::Peer,
            will,
            "DISCONNECT received",
            Some(d),
        );
    }

    fn on_publish(&mut self, mut p: Publish) {
        if self.version == Version::V5 {
            if self.config.role == Role::Server && !p.properties.subscription_identifiers.is_empty()
            {
                return self.fail(
                    ReasonCode::ProtocolError,
                    "subscription identifier in a client's PUBLISH",
                );
            }
            if let Some(a) = p.topic_alias.take() {
                if a == 0 || a > self.our_topic_alias_max {
                    return self.fail(ReasonCode::TopicAliasInvalid, "topic alias out of range");
                }
                if p.topic.is_empty() {
                    match self.inbound_aliases.get(&a) {
                        Some(t) => p.topic = t.clone(),
                        None => return self.fail(ReasonCode::ProtocolError, "unknown topic alias"),
                    }
                } else {
                    self.inbound_aliases.insert(a, p.topic.clone());
                }
            }
            if p.qos > self.our_max_qos {
                return self.fail(ReasonCode::QoSNotSupported, "QoS above the maximum QoS");
            }
            if p.retain && !self.our_retain_available {
                return self.fail(ReasonCode::RetainNotSupported, "retain not available");
            }
        }
        let kind = match p.qos {
            QoS::AtMostOnce => {
                self.events.push_back(Event::Publish(p));
                return;
            }
            QoS::AtLeastOnce => Inbound::Qos1,
            QoS::ExactlyOnce => Inbound::Qos2Pending,
        };
        match self.inbound.get(&p.packet_id) {
            Some(Inbound::Qos2Received) if kind == Inbound::Qos2Pending => {
                // A resend of a message we already took: answer again, deliver nothing.
                self.write_response(5, p.packet_id, ReasonCode::Success);
            }
            Some(_) => {} // a resend while the application still holds it
            None => {
                if self.version == Version::V5
                    && self.inbound.len() >= self.our_receive_max as usize
                {
                    return self.fail(
                        ReasonCode::ReceiveMaximumExceeded,
                        "more unacknowledged QoS 1/2 messages than the receive maximum",
                    );
                }
                self.inbound.insert(p.packet_id, kind);
                self.events.push_back(Event::Publish(p));
            }
        }
    }

    fn on_puback(&mut self, r: PubResponse) {
        let is_qos1 = matches!(
            self.inflight.get(&r.packet_id),
            Some(Inflight { state: OutboundState::AwaitingAck(p), sent: true, .. }) if p.qos == QoS::AtLeastOnce
        );
        if is_qos1 {
            self.inflight.remove(&r.packet_id);
            self.events.push_back(Event::Acked {
                packet_id: r.packet_id,
                qos: QoS::AtLeastOnce,
                reason: r.reason,
            });
            self.send_unsent();
        }
    }

    fn on_pubrec(&mut self, r: PubResponse) {
        let id = r.packet_id;
        match self.inflight.get_mut(&id) {
            Some(f) if f.sent => match &f.state {
                OutboundState::AwaitingAck(p) if p.qos == QoS::ExactlyOnce => {
                    if r.reason.is_error() {
                        self.inflight.remove(&id);
                        self.events.push_back(Event::Acked {
                            packet_id: id,
                            qos: QoS::ExactlyOnce,
                            reason: r.reason,
                        });
                        self.send_unsent();
                    } else {
                        f.state = OutboundState::AwaitingComp;
                        self.write_response(6, id, ReasonCode::Success);
                    }
                }
                OutboundState::AwaitingComp => self.write_response(6, id, ReasonCode::Success),
                _ => {}
            },
            _ => {
                if self.version == Version::V5 {
                    self.write_response(6, id, ReasonCode::PacketIdentifierNotFound);
                }
            }
        }
    }

    fn on_pubrel(&mut self, r: PubResponse) {
        let id = r.packet_id;
        match self.inbound.get(&id) {
            Some(Inbound::Qos2Received) => {
                self.inbound.remove(&id);
                self.inbound_qos2_changes += 1;
                self.write_response(7, id, ReasonCode::Success);
            }
            Some(_) => self.fail(ReasonCode::ProtocolError, "PUBREL before PUBREC"),
            None => {
                let reason = if self.version == Version::V5 {
                    ReasonCode::PacketIdentifierNotFound
                } else {
                    ReasonCode::Success
                };
                self.write_response(7, id, reason);
            }
        }
    }

    fn on_pubcomp(&mut self, r: PubResponse) {
        let done = matches!(
            self.inflight.get(&r.packet_id),
            Some(Inflight {
                state: OutboundState::AwaitingComp,
                sent: true,
                ..
            })
        );
        if done {
            self.inflight.remove(&r.packet_id);
            self.events.push_back(Event::Acked {
                packet_id: r.packet_id,
                qos: QoS::ExactlyOnce,
                reason: r.reason,
            });
            self.send_unsent();
        }
    }

    // ---- output -----------------------------------------------------------------------

    /// Writes a control packet; in v5 drops reason string and user properties when the
    /// peer asked for no problem information or when they would exceed its maximum
    /// packet size.
    fn write(&mut self, mut p: Packet) {
        if self.version == Version::V5 {
            let strip_always = !self.peer_problem_info
                && !matches!(
                    p,
                    Packet::Publish(_) | Packet::ConnAck(_) | Packet::Disconnect(_)
                );
            if strip_always || codec::encoded_len(&p, self.version) > self.peer_max_packet as usize
            {
                if let Some(props) = p.properties_mut() {
                    props.strip_diagnostics();
                }
            }
        }
        codec::encode(&p, self.version, &mut self.out);
        self.last_sent = self.now;
    }

    /// PUBACK (4), PUBREC (5), PUBREL (6) or PUBCOMP (7) without properties.
    fn write_response(&mut self, ptype: u8, packet_id: u16, reason: ReasonCode) {
        self.write_response_with(ptype, packet_id, reason, Properties::default());
    }

    fn write_response_with(
        &mut self,
        ptype: u8,
        packet_id: u16,
        reason: ReasonCode,
        properties: Properties,
    ) {
        let r = PubResponse {
            packet_id,
            reason,
            properties,
        };
        self.write(match ptype {
            4 => Packet::PubAck(r),
            5 => Packet::PubRec(r),
            6 => Packet::PubRel(r),
            _ => Packet::PubComp(r),
        });
    }

    fn ensure_connected(&self) -> Result<(), EngineError> {
        match self.phase {
            Phase::Connected => Ok(()),
            Phase::Closed => Err(EngineError::Closed),
            _ => Err(EngineError::NotConnected),
        }
    }

    // ---- the application's side: connection -----------------------------------------

    /// Server: accepts the client's CONNECT with a CONNACK. `properties` (v5) go into the
    /// CONNACK as given, after our receive maximum, topic alias maximum and maximum packet
    /// size from the config are filled in where unset; the engine then enforces what they
    /// say (a server keep-alive replaces the client's). Restored session messages are
    /// resent (DUP) and input the client pipelined after CONNECT is processed.
    pub fn accept(
        &mut self,
        session_present: bool,
        mut properties: Properties,
    ) -> Result<(), EngineError> {
        if self.config.role != Role::Server || self.phase != Phase::AwaitAccept {
            return Err(EngineError::InvalidState);
        }
        if self.version == Version::V5 {
            let p = &mut properties;
            if p.receive_maximum.is_none() && self.config.receive_maximum != u16::MAX {
                p.receive_maximum = Some(self.config.receive_maximum.max(1));
            }
            if p.topic_alias_maximum.is_none() && self.config.topic_alias_maximum > 0 {
                p.topic_alias_maximum = Some(self.config.topic_alias_maximum);
            }
            if p.maximum_packet_size.is_none() && self.config.max_packet_size < MAX_PACKET_SIZE {
                p.maximum_packet_size = Some(self.config.max_packet_size.max(1));
            }
            self.our_receive_max = p.receive_maximum.unwrap_or(u16::MAX);
            self.our_topic_alias_max = p.topic_alias_maximum.unwrap_or(0);
            self.our_max_qos = p.maximum_qos.unwrap_or(QoS::ExactlyOnce);
            self.our_retain_available = p.retain_available.unwrap_or(true);
            if let Some(m) = p.maximum_packet_size {
                self.decoder.max_packet_size = m;
            }
            if let Some(k) = p.server_keep_alive {
                self.keep_alive = Duration::from_secs(k.into());
            }
        } else {
            properties = Properties::default();
        }
        self.write(Packet::ConnAck(ConnAck {
            session_present,
            reason: ReasonCode::Success,
            properties,
        }));
        self.phase = Phase::Connected;
        self.last_received = self.now;
        self.send_unsent();
        self.process();
        Ok(())
    }

    /// Server: refuses the client's CONNECT with a CONNACK carrying `reason` (mapped to
    /// the 3.1.1 return code for v3 clients) and closes; the will is not published.
    pub fn refuse(
        &mut self,
        reason: ReasonCode,
        properties: Properties,
    ) -> Result<(), EngineError> {
        if self.config.role != Role::Server || self.phase != Phase::AwaitAccept {
            return Err(EngineError::InvalidState);
        }
        let reason = if reason::CONNACK.contains(&reason) && reason.is_error() {
            reason
        } else {
            ReasonCode::UnspecifiedError
        };
        self.write(Packet::ConnAck(ConnAck {
            session_present: false,
            reason,
            properties,
        }));
        self.close_with(reason, Initiator::Local, false, "connection refused", None);
        Ok(())
    }

    /// Closes the connection on the application's behalf. A client sends DISCONNECT
    /// (0x00 discards its will, 0x04 asks the server to publish it); a v5 server sends
    /// DISCONNECT with `reason` (e.g. 0x8E session taken over, 0x8B shutting down); a v3
    /// server just closes.
    pub fn disconnect(&mut self, reason: ReasonCode, properties: Properties) {
        if self.phase == Phase::Closed {
            return;
        }
        let client = self.config.role == Role::Client;
        let reason = if reason::DISCONNECT.contains(&reason) {
            reason
        } else {
            ReasonCode::UnspecifiedError
        };
        if self.phase == Phase::Connected && (client || self.version == Version::V5) {
            self.write(Packet::Disconnect(Disconnect { reason, properties }));
        }
        let will = self.phase == Phase::Connected && !(client && reason == ReasonCode::Success);
        self.close_with(
            reason,
            Initiator::Local,
            will,
            "closed by the application",
            None,
        );
    }

    /// v5: sends an AUTH step (enhanced authentication), before or after CONNACK.
    pub fn auth(&mut self, reason: ReasonCode, properties: Properties) -> Result<(), EngineError> {
        if self.version != Version::V5 || matches!(self.phase, Phase::Closed | Phase::AwaitConnect)
        {
            return Err(EngineError::InvalidState);
        }
        if !reason::AUTH.contains(&reason) {
            return Err(EngineError::InvalidReasonCode);
        }
        self.write(Packet::Auth(Auth { reason, properties }));
        Ok(())
    }

    // ---- the application's side: inbound messages ----------------------------------

    /// Acknowledges an inbound QoS 1/2 message (the `packet_id` of its `Event::Publish`):
    /// PUBACK for QoS 1, PUBREC for QoS 2 (PUBCOMP then follows PUBREL by itself). Call
    /// it once the message is safe — e.g. after the journal's fsync; acks may follow
    /// completion order. 3.1.1 has no negative acknowledgement, and a plain one would
    /// tell the peer a message that was not taken is safe: there an error reason closes
    /// the connection instead (MQTT-3.3.5-2), so the peer sends the message again.
    pub fn ack_publish(&mut self, packet_id: u16, reason: ReasonCode) -> Result<(), EngineError> {
        self.ack_publish_with(packet_id, reason, Properties::default())
    }

    /// [`Self::ack_publish`] with v5 properties in the PUBACK / PUBREC: a reason string
    /// saying why a message was refused (sent unless the client asked for no problem
    /// information or it would exceed the client's maximum packet size).
    pub fn ack_publish_with(
        &mut self,
        packet_id: u16,
        reason: ReasonCode,
        properties: Properties,
    ) -> Result<(), EngineError> {
        if self.phase == Phase::Closed {
            return Err(EngineError::Closed);
        }
        if !reason::PUBACK.contains(&reason) {
            return Err(EngineError::InvalidReasonCode);
        }
        if !self.inbound.contains_key(&packet_id) {
            return Err(EngineError::UnknownPacketId(packet_id));
        }
        let reason = match (self.version, reason.is_error()) {
            (Version::V5, _) => reason,
            (_, false) => ReasonCode::Success,
            (_, true) => {
                let server = self.config.role == Role::Server;
                self.close_with(
                    reason,
                    Initiator::Local,
                    server,
                    "a 3.1.1 publish cannot be refused: connection closed",
                    None,
                );
                return Ok(());
            }
        };
        match self.inbound.get(&packet_id) {
            Some(Inbound::Qos1) => {
                self.inbound.remove(&packet_id);
                self.write_response_with(4, packet_id, reason, properties);
            }
            Some(Inbound::Qos2Pending) => {
                if reason.is_error() {
                    self.inbound.remove(&packet_id);
                } else {
                    self.inbound.insert(packet_id, Inbound::Qos2Received);
                    self.inbound_qos2_changes += 1;
                }
                self.write_response_with(5, packet_id, reason, properties);
            }
            _ => return Err(EngineError::UnknownPacketId(packet_id)),
        }
        Ok(())
    }

    /// Inbound QoS 1/2 messages not yet completed (counted against our receive maximum).
    pub fn inbound_unacked(&self) -> usize {
        self.inbound.len()
    }

    /// Counts changes to the inbound QoS 2 ids awaiting PUBREL ([`Self::inbound_qos2_ids`]).
    /// An application that keeps them durably writes them when this moves and before it
    /// sends the output: the PUBREC or PUBCOMP in it must not reach the client ahead of the
    /// state it stands for (a crash would then take a new message with a reused id for a
    /// duplicate, and drop it).
    pub fn inbound_qos2_changes(&self) -> u64 {
        self.inbound_qos2_changes
    }

    /// Inbound QoS 2 ids acknowledged with PUBREC and awaiting PUBREL, in order.
    pub fn inbound_qos2_ids(&self) -> Vec<u16> {
        let mut ids: Vec<u16> = self
            .inbound
            .iter()
            .filter(|(_, s)| **s == Inbound::Qos2Received)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Outbound QoS 2 ids whose PUBREL was sent (or is due) and that await PUBCOMP.
    pub fn awaiting_comp_ids(&self) -> Vec<u16> {
        let mut ids: Vec<u16> = self
            .inflight
            .iter()
            .filter(|(_, f)| f.state == OutboundState::AwaitingComp)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }

    // ---- the application's side: outbound messages ---------------------------------

    /// Whether a QoS 1/2 message may be sent now (the peer's receive maximum is not
    /// reached). QoS 0 messages are never limited.
    pub fn can_send(&self) -> bool {
        self.phase == Phase::Connected && self.send_credit() > 0
    }

    /// How many more QoS 1/2 messages may be sent before an ack comes back.
    pub fn send_credit(&self) -> usize {
        (self.peer_receive_max as usize).saturating_sub(self.inflight.len())
    }

    /// Outbound QoS 1/2 messages not yet completed.
    pub fn inflight_len(&self) -> usize {
        self.inflight.len()
    }

    /// The peer's receive maximum (65535 unless it announced one).
    pub fn peer_receive_maximum(&self) -> u16 {
        self.peer_receive_max
    }

    /// The largest packet the peer accepts.
    pub fn peer_maximum_packet_size(&self) -> u32 {
        self.peer_max_packet
    }

    /// Sends a message. For QoS 1/2 a packet id is allocated when `packet_id` is 0 (else
    /// the given one is used) and returned; completion comes as `Event::Acked`. Fails
    /// with `NoCredit` at the peer's receive maximum (nothing is sent: apply
    /// back-pressure) and with `PacketTooLarge` when the packet exceeds the peer's maximum
    /// packet size — the message is then discarded, which the spec says to treat as
    /// delivered. Topic aliases are applied when enabled; any alias in `p` is ignored.
    pub fn publish(&mut self, mut p: Publish) -> Result<u16, EngineError> {
        self.ensure_connected()?;
        if p.qos > self.peer_max_qos {
            return Err(EngineError::QoSNotSupported);
        }
        if p.retain && !self.peer_retain_available {
            return Err(EngineError::RetainNotSupported);
        }
        p.dup = false;
        clear_topic_alias(&mut p);
        if p.qos == QoS::AtMostOnce {
            p.packet_id = 0;
        } else {
            if self.send_credit() == 0 {
                return Err(EngineError::NoCredit);
            }
            if p.packet_id == 0 {
                p.packet_id = self.allocate_id().ok_or(EngineError::NoCredit)?;
            } else if self.id_in_use(p.packet_id) {
                return Err(EngineError::PacketIdInUse(p.packet_id));
            }
        }
        // Topic alias: reuse one, or take a free one, when enabled.
        let mut alias = None;
        if self.config.outbound_topic_aliases
            && self.version == Version::V5
            && self.peer_topic_alias_max > 0
        {
            if let Some(&a) = self.aliases.get(&p.topic) {
                alias = Some((a, true));
            } else if self.aliases.len() < self.peer_topic_alias_max as usize {
                alias = Some((self.aliases.len() as u16 + 1, false));
            }
        }
        let full_topic = p.topic.clone();
        if let Some((a, known)) = alias {
            p.topic_alias = Some(a);
            if known {
                p.topic = ByteStr::new();
            }
        }
        let size = codec::publish_encoded_len(&p, self.version);
        if size > self.peer_max_packet as usize {
            return Err(EngineError::PacketTooLarge {
                size,
                max: self.peer_max_packet,
            });
        }
        if let Some((a, false)) = alias {
            self.aliases.insert(full_topic.clone(), a);
        }
        codec::encode_publish(&p, self.version, &mut self.out);
        self.last_sent = self.now;
        let id = p.packet_id;
        if p.qos != QoS::AtMostOnce {
            p.topic = full_topic;
            clear_topic_alias(&mut p);
            let seq = self.next_seq;
            self.next_seq += 1;
            self.inflight.insert(
                id,
                Inflight {
                    seq,
                    sent: true,
                    state: OutboundState::AwaitingAck(p),
                },
            );
        }
        Ok(id)
    }

    fn id_in_use(&self, id: u16) -> bool {
        self.inflight.contains_key(&id) || self.pending_acks.contains(&id)
    }

    fn allocate_id(&mut self) -> Option<u16> {
        for _ in 0..u16::MAX {
            let id = self.next_id;
            self.next_id = self.next_id.checked_add(1).unwrap_or(1);
            if !self.id_in_use(id) {
                return Some(id);
            }
        }
        None
    }

    /// Sends restored messages still waiting, oldest first, while the peer's receive
    /// maximum allows.
    fn send_unsent(&mut self) {
        if self.unsent == 0 || self.phase != Phase::Connected {
            return;
        }
        let sent = self.inflight.len() - self.unsent;
        let room = (self.peer_receive_max as usize).saturating_sub(sent);
        if room == 0 {
            return;
        }
        let mut waiting: Vec<(u64, u16)> = self
            .inflight
            .iter()
            .filter(|(_, f)| !f.sent)
            .map(|(id, f)| (f.seq, *id))
            .collect();
        waiting.sort_unstable();
        for (_, id) in waiting.into_iter().take(room) {
            self.resend(id);
        }
    }

    fn resend(&mut self, id: u16) {
        let Some(f) = self.inflight.get_mut(&id) else {
            return;
        };
        f.sent = true;
        self.unsent -= 1;
        match &mut f.state {
            OutboundState::AwaitingAck(p) => {
                p.dup = true;
                p.packet_id = id;
                let size = codec::publish_encoded_len(p, self.version);
                if size > self.peer_max_packet as usize {
                    self.inflight.remove(&id);
                    self.events.push_back(Event::Dropped {
                        packet_id: id,
                        reason: ReasonCode::PacketTooLarge,
                    });
                    return;
                }
                codec::encode_publish(p, self.version, &mut self.out);
                self.last_sent = self.now;
            }
            OutboundState::AwaitingComp => self.write_response(6, id, ReasonCode::Success),
        }
    }

    // ---- the application's side: subscriptions ---------------------------------------

    /// Server: answers a SUBSCRIBE with one reason code per filter (granted QoS or a
    /// failure such as 0x87, 0x8F, 0x9E, 0xA1, 0xA2; v3 clients see 0x80 for failures).
    pub fn suback(
        &mut self,
        packet_id: u16,
        reasons: Vec<ReasonCode>,
        properties: Properties,
    ) -> Result<(), EngineError> {
        self.ensure_connected()?;
        if reasons.iter().any(|r| !reason::SUBACK.contains(r)) {
            return Err(EngineError::InvalidReasonCode);
        }
        self.write(Packet::SubAck(SubAck {
            packet_id,
            properties,
            reasons,
        }));
        Ok(())
    }

    /// Server: answers an UNSUBSCRIBE (v5: one reason code per filter; v3 sends none).
    pub fn unsuback(
        &mut self,
        packet_id: u16,
        reasons: Vec<ReasonCode>,
        properties: Properties,
    ) -> Result<(), EngineError> {
        self.ensure_connected()?;
        if reasons.iter().any(|r| !reason::UNSUBACK.contains(r)) {
            return Err(EngineError::InvalidReasonCode);
        }
        self.write(Packet::UnsubAck(UnsubAck {
            packet_id,
            properties,
            reasons,
        }));
        Ok(())
    }

    /// Client: sends SUBSCRIBE (a packet id is allocated when `packet_id` is 0) and
    /// returns its packet id; the answer comes as `Event::SubAck`.
    pub fn subscribe(&mut self, mut s: Subscribe) -> Result<u16, EngineError> {
        self.ensure_connected()?;
        if self.config.role != Role::Client {
            return Err(EngineError::InvalidState);
        }
        s.packet_id = self.control_id(s.packet_id)?;
        let id = s.packet_id;
        self.write(Packet::Subscribe(s));
        Ok(id)
    }

    /// Client: sends UNSUBSCRIBE and returns its packet id; the answer comes as
    /// `Event::UnsubAck`.
    pub fn unsubscribe(&mut self, mut u: Unsubscribe) -> Result<u16, EngineError> {
        self.ensure_connected()?;
        if self.config.role != Role::Client {
            return Err(EngineError::InvalidState);
        }
        u.packet_id = self.control_id(u.packet_id)?;
        let id = u.packet_id;
        self.write(Packet::Unsubscribe(u));
        Ok(id)
    }

    fn control_id(&mut self, id: u16) -> Result<u16, EngineError> {
        let id = if id == 0 {
            self.allocate_id().ok_or(EngineError::NoCredit)?
        } else if self.id_in_use(id) {
            return Err(EngineError::PacketIdInUse(id));
        } else {
            id
        };
        self.pending_acks.push(id);
        Ok(id)
    }

    // ---- session state ----------------------------------------------------------------

    /// Takes the session's protocol state out of this connection (for persistence or a
    /// takeover): outbound messages not completed, oldest first, and inbound QoS 2 ids
    /// awaiting PUBREL. Messages emitted but not yet acknowledged by the application are
    /// not included (the client resends them).
    pub fn take_session_state(&mut self) -> SessionState {
        let mut out: Vec<(u64, OutboundMessage)> = self
            .inflight
            .drain()
            .map(|(packet_id, f)| {
                (
                    f.seq,
                    OutboundMessage {
                        packet_id,
                        state: f.state,
                    },
                )
            })
            .collect();
        out.sort_unstable_by_key(|(seq, _)| *seq);
        self.unsent = 0;
        let inbound_qos2 = self.inbound_qos2_ids();
        for id in &inbound_qos2 {
            self.inbound.remove(id);
        }
        SessionState {
            outbound: out.into_iter().map(|(_, m)| m).collect(),
            inbound_qos2,
        }
    }

    /// Restores a session taken from an earlier connection. Outbound messages are resent
    /// (PUBLISH with DUP, or PUBREL) once connected — server: at `accept`; client: at a
    /// CONNACK with session present (without it the state is discarded) — within the
    /// peer's receive maximum, the rest as acks free room.
    pub fn restore_session(&mut self, state: SessionState) {
        for m in state.outbound {
            if m.packet_id == 0 || self.inflight.contains_key(&m.packet_id) {
                continue;
            }
            let seq = self.next_seq;
            self.next_seq += 1;
            self.inflight.insert(
                m.packet_id,
                Inflight {
                    seq,
                    sent: false,
                    state: m.state,
                },
            );
            self.unsent += 1;
        }
        for id in state.inbound_qos2 {
            if id != 0 {
                self.inbound.insert(id, Inbound::Qos2Received);
                self.inbound_qos2_changes += 1;
            }
        }
        self.send_unsent();
    }
}

/// Drops a publish's topic alias (an application's alias is never sent: the engine
/// assigns its own).
fn clear_topic_alias(p: &mut Publish) {
    p.topic_alias = None;
}
