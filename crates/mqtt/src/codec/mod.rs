//! The MQTT wire format: packets of both protocol versions, v5 properties and reason codes,
//! a framer that splits packets off a read buffer, and an encoder that writes straight
//! into an output buffer.
//!
//! Decoding is zero copy: a packet's strings, binaries and PUBLISH payload are `Bytes`
//! slices of the buffer it arrived in. Every length read from the wire is checked against
//! the bytes present before anything is allocated.

mod decode;
mod encode;
mod packet;
mod properties;
pub(crate) mod reason;
mod string;
pub mod varint;

pub use decode::{decode_packet, split_packet, Decoder};
pub use encode::{encode, encode_publish, encode_publish_head, encoded_len, publish_encoded_len};
pub use packet::*;
pub use properties::{Properties, PropertyContext, PropertySet};
pub use reason::ReasonCode;
pub use string::ByteStr;

/// The largest packet the protocol can express: a 1-byte header, a 4-byte remaining
/// length and 268,435,455 bytes of content.
pub const MAX_PACKET_SIZE: u32 = 1 + 4 + varint::MAX;

/// The protocol level in CONNECT; it decides the layout of every later packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// MQTT 3.1.1, protocol level 4.
    V311,
    /// MQTT 5.0, protocol level 5.
    V5,
}

impl Version {
    /// The protocol level byte of CONNECT.
    pub fn level(self) -> u8 {
        match self {
            Version::V311 => 4,
            Version::V5 => 5,
        }
    }
}

/// Quality of service of a message or subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum QoS {
    /// At most once: no acknowledgement.
    #[default]
    AtMostOnce = 0,
    /// At least once: PUBLISH, PUBACK.
    AtLeastOnce = 1,
    /// Exactly once: PUBLISH, PUBREC, PUBREL, PUBCOMP.
    ExactlyOnce = 2,
}

impl QoS {
    /// The QoS for a 2-bit wire value; 3 is not a QoS.
    pub fn from_u8(v: u8) -> Option<QoS> {
        match v {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// Why bytes could not be decoded, with the v5 reason code the receiver must answer with
/// (DISCONNECT after CONNACK, CONNACK before it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{reason:?}: {detail}")]
pub struct DecodeError {
    /// The reason code to close with: usually 0x81 Malformed Packet or 0x82 Protocol
    /// Error; 0x95 Packet too large, 0x90 Topic Name invalid, 0x84 Unsupported Protocol
    /// Version where they apply.
    pub reason: ReasonCode,
    /// What was wrong, for the log.
    pub detail: &'static str,
}

impl DecodeError {
    pub(crate) fn malformed(detail: &'static str) -> Self {
        DecodeError {
            reason: ReasonCode::MalformedPacket,
            detail,
        }
    }
    pub(crate) fn protocol(detail: &'static str) -> Self {
        DecodeError {
            reason: ReasonCode::ProtocolError,
            detail,
        }
    }
    pub(crate) fn new(reason: ReasonCode, detail: &'static str) -> Self {
        DecodeError { reason, detail }
    }
}
