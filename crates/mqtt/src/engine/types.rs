//! The engine's public vocabulary: roles, configuration, events and errors.

use crate::codec::{
    Auth, ConnAck, Connect, Disconnect, Publish, QoS, ReasonCode, SubAck, Subscribe, UnsubAck,
    Unsubscribe, MAX_PACKET_SIZE,
};
use std::time::Duration;

/// Which end of the connection the engine plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Accepts CONNECT (the broker side, for devices).
    Server,
    /// Sends CONNECT (benchmark, tests, bridges).
    Client,
}

/// Limits and behaviour of one connection.
#[derive(Debug, Clone)]
pub struct Config {
    pub role: Role,
    /// Largest packet we accept (announced to v5 peers); larger ones close the connection
    /// with 0x95 before they are buffered.
    pub max_packet_size: u32,
    /// Inbound QoS 1/2 messages the peer may have unacknowledged (announced to v5
    /// peers); more is a 0x93 protocol violation.
    pub receive_maximum: u16,
    /// Inbound topic aliases we accept (announced to v5 peers).
    pub topic_alias_maximum: u16,
    /// Whether outbound PUBLISHes use topic aliases when the peer allows them.
    pub outbound_topic_aliases: bool,
    /// Server: time allowed between the connection's start and its CONNECT. Client: time
    /// allowed for the CONNACK.
    pub connect_timeout: Option<Duration>,
}

impl Config {
    /// Server defaults: 1 MiB packets, receive maximum 100, 16 topic aliases, 10 s to
    /// connect.
    pub fn server() -> Self {
        Config {
            role: Role::Server,
            max_packet_size: 1024 * 1024,
            receive_maximum: 100,
            topic_alias_maximum: 16,
            outbound_topic_aliases: false,
            connect_timeout: Some(Duration::from_secs(10)),
        }
    }

    /// Client defaults: any packet size, receive maximum 65535, no inbound aliases,
    /// outbound aliases on.
    pub fn client() -> Self {
        Config {
            role: Role::Client,
            max_packet_size: MAX_PACKET_SIZE,
            receive_maximum: u16::MAX,
            topic_alias_maximum: 0,
            outbound_topic_aliases: true,
            connect_timeout: Some(Duration::from_secs(30)),
        }
    }
}

/// Who ended the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Initiator {
    /// This engine (a violation by the peer, a timeout, or the application's request).
    Local,
    /// The peer (DISCONNECT, refused CONNACK, or the transport went away).
    Peer,
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    pub reason: ReasonCode,
    pub initiator: Initiator,
    /// Whether the server must publish the client's will: true unless the client sent
    /// DISCONNECT with 0x00 (v5) / any DISCONNECT (v3), or the connection never got
    /// accepted.
    pub publish_will: bool,
    /// A short explanation for the log.
    pub detail: &'static str,
    /// The peer's DISCONNECT, if it sent one (session expiry, reason string, server
    /// reference).
    pub disconnect: Option<Disconnect>,
}

/// What happened on the connection; the application reacts to each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Server: the client's CONNECT. Answer with [`super::Connection::accept`] or
    /// [`super::Connection::refuse`]; until then only AUTH is read.
    Connect(Box<Connect>),
    /// Client: the server's CONNACK (a refusal is followed by `Closed`).
    ConnAck(ConnAck),
    /// An inbound message, topic alias resolved. For QoS 1/2, answer with
    /// [`super::Connection::ack_publish`] when it is safe (e.g. durable); duplicates of a
    /// message not yet completed are not emitted again.
    Publish(Publish),
    /// An outbound QoS 1/2 message is complete (PUBACK, PUBCOMP, or a PUBREC with an
    /// error code): settle it upstream. Frees one unit of send credit.
    Acked {
        packet_id: u16,
        qos: QoS,
        reason: ReasonCode,
    },
    /// A restored outbound message exceeded the peer's maximum packet size on resend
    /// and was discarded (as the spec says: treat it as completed).
    Dropped { packet_id: u16, reason: ReasonCode },
    /// Server: SUBSCRIBE; answer with [`super::Connection::suback`].
    Subscribe(Subscribe),
    /// Server: UNSUBSCRIBE; answer with [`super::Connection::unsuback`].
    Unsubscribe(Unsubscribe),
    /// Client: the answer to a SUBSCRIBE.
    SubAck(SubAck),
    /// Client: the answer to an UNSUBSCRIBE.
    UnsubAck(UnsubAck),
    /// v5 enhanced authentication step; answer with [`super::Connection::auth`], or
    /// refuse/disconnect (e.g. 0x8C bad authentication method).
    Auth(Auth),
    /// The connection is over; write out any remaining output, then close the socket.
    Closed(Closed),
}

/// Why an application call could not be carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("not connected")]
    NotConnected,
    #[error("connection closed")]
    Closed,
    #[error("no send credit: the peer's receive maximum is reached")]
    NoCredit,
    #[error("packet of {size} bytes exceeds the peer's maximum packet size {max}")]
    PacketTooLarge { size: usize, max: u32 },
    #[error("packet identifier {0} unknown")]
    UnknownPacketId(u16),
    #[error("packet identifier {0} in use")]
    PacketIdInUse(u16),
    #[error("QoS above the peer's maximum QoS")]
    QoSNotSupported,
    #[error("the peer does not support retained messages")]
    RetainNotSupported,
    #[error("operation not valid in this state or role")]
    InvalidState,
    #[error("reason code not valid for this packet")]
    InvalidReasonCode,
}
