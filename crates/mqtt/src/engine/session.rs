//! Session state that outlives a connection: what a server persists for a client with a
//! session expiry, and hands from an old connection to a new one on takeover.

use crate::codec::Publish;

/// Where an outbound QoS 1/2 message stands in its handshake (the `Publish` is kept
/// inline: with its properties boxed it is small, and boxing it would cost an allocation
/// per outbound QoS 1/2 message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundState {
    /// Sent (or to be sent) and not yet acknowledged: a QoS 1 message awaiting PUBACK or
    /// a QoS 2 message awaiting PUBREC. Resent with DUP on the next connection.
    AwaitingAck(Publish),
    /// QoS 2 after PUBREC: PUBREL sent, awaiting PUBCOMP. PUBREL is resent.
    AwaitingComp,
}

/// One outbound message of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundMessage {
    pub packet_id: u16,
    pub state: OutboundState,
}

/// The protocol part of a session: exported by [`super::Connection::take_session_state`],
/// restored by [`super::Connection::restore_session`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionState {
    /// Outbound QoS 1/2 messages not completed, oldest first (the resend order).
    pub outbound: Vec<OutboundMessage>,
    /// Inbound QoS 2 packet ids answered with PUBREC and awaiting PUBREL: a resent
    /// PUBLISH with one of these ids is not delivered again.
    pub inbound_qos2: Vec<u16>,
}
