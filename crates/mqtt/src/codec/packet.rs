//! The packets of MQTT 3.1.1 and 5.0. Fields that exist only in v5 (properties, most
//! reason codes) are ignored when encoding for v3 and default when decoding v3.

use super::properties::Properties;
use super::reason::ReasonCode;
use super::string::ByteStr;
use super::{QoS, Version};
use bytes::Bytes;

/// Any MQTT control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Connect(Box<Connect>),
    ConnAck(ConnAck),
    Publish(Publish),
    PubAck(PubResponse),
    PubRec(PubResponse),
    PubRel(PubResponse),
    PubComp(PubResponse),
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    UnsubAck(UnsubAck),
    PingReq,
    PingResp,
    Disconnect(Disconnect),
    /// MQTT 5 only.
    Auth(Auth),
}

impl Packet {
    /// The packet type (upper nibble of the first byte), for logs and dispatch.
    pub fn packet_type(&self) -> u8 {
        match self {
            Packet::Connect(_) => 1,
            Packet::ConnAck(_) => 2,
            Packet::Publish(_) => 3,
            Packet::PubAck(_) => 4,
            Packet::PubRec(_) => 5,
            Packet::PubRel(_) => 6,
            Packet::PubComp(_) => 7,
            Packet::Subscribe(_) => 8,
            Packet::SubAck(_) => 9,
            Packet::Unsubscribe(_) => 10,
            Packet::UnsubAck(_) => 11,
            Packet::PingReq => 12,
            Packet::PingResp => 13,
            Packet::Disconnect(_) => 14,
            Packet::Auth(_) => 15,
        }
    }

    /// The packet's properties, if it has a property block.
    pub fn properties_mut(&mut self) -> Option<&mut Properties> {
        match self {
            Packet::Connect(c) => Some(&mut c.properties),
            Packet::ConnAck(c) => Some(&mut c.properties),
            Packet::Publish(p) => Some(&mut p.properties),
            Packet::PubAck(p) | Packet::PubRec(p) | Packet::PubRel(p) | Packet::PubComp(p) => {
                Some(&mut p.properties)
            }
            Packet::Subscribe(s) => Some(&mut s.properties),
            Packet::SubAck(s) => Some(&mut s.properties),
            Packet::Unsubscribe(u) => Some(&mut u.properties),
            Packet::UnsubAck(u) => Some(&mut u.properties),
            Packet::Disconnect(d) => Some(&mut d.properties),
            Packet::Auth(a) => Some(&mut a.properties),
            Packet::PingReq | Packet::PingResp => None,
        }
    }
}

/// The will message a client leaves in CONNECT, published when it goes away uncleanly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    pub topic: ByteStr,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// Will properties (v5): delay interval, expiry, content type, response topic, ….
    pub properties: Properties,
}

/// CONNECT: opens a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// The protocol level the client asked for; every later packet uses its layout.
    pub version: Version,
    /// Clean session (v3) / clean start (v5).
    pub clean_start: bool,
    /// Seconds; 0 turns keep-alive off.
    pub keep_alive: u16,
    /// May be empty (the server assigns one).
    pub client_id: ByteStr,
    pub will: Option<Will>,
    pub username: Option<ByteStr>,
    pub password: Option<Bytes>,
    pub properties: Properties,
}

impl Connect {
    /// A CONNECT with clean start, no will, no credentials and keep-alive 60 s.
    pub fn new(version: Version, client_id: impl Into<ByteStr>) -> Self {
        Connect {
            version,
            clean_start: true,
            keep_alive: 60,
            client_id: client_id.into(),
            will: None,
            username: None,
            password: None,
            properties: Properties::default(),
        }
    }
}

/// CONNACK: the server's answer to CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    pub session_present: bool,
    /// v3 return codes map onto reason codes (see [`ReasonCode::from_v3_connack`]).
    pub reason: ReasonCode,
    pub properties: Properties,
}

/// PUBLISH: an application message. `topic` and `payload` are slices of the received
/// packet, so a PUBLISH can be forwarded without copying its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// Set on re-delivery of a QoS 1/2 message.
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// Empty when a v5 topic alias stands in for the name.
    pub topic: ByteStr,
    /// 0 for QoS 0, non-zero otherwise.
    pub packet_id: u16,
    /// The v5 topic alias (written first in the property block). It is a detail of one
    /// connection, not of the message, so it lives beside the properties: the engine
    /// resolves an inbound one and assigns an outbound one without touching them.
    pub topic_alias: Option<u16>,
    pub properties: Properties,
    pub payload: Bytes,
}

impl Publish {
    /// A QoS 0 message without properties.
    pub fn new(topic: impl Into<ByteStr>, payload: impl Into<Bytes>) -> Self {
        Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: topic.into(),
            packet_id: 0,
            topic_alias: None,
            properties: Properties::default(),
            payload: payload.into(),
        }
    }

    /// The same message at another QoS.
    pub fn with_qos(mut self, qos: QoS) -> Self {
        self.qos = qos;
        self
    }
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP: the steps of QoS 1 and 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubResponse {
    pub packet_id: u16,
    /// Always `Success` in v3.
    pub reason: ReasonCode,
    pub properties: Properties,
}

impl PubResponse {
    /// A successful response without properties.
    pub fn new(packet_id: u16) -> Self {
        PubResponse {
            packet_id,
            reason: ReasonCode::Success,
            properties: Properties::default(),
        }
    }
}

/// Retain handling of a subscription (v5): when retained messages are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RetainHandling {
    /// Send retained messages at subscribe time.
    #[default]
    OnSubscribe = 0,
    /// Send them only if the subscription did not exist.
    OnNewSubscription = 1,
    /// Never send them.
    Never = 2,
}

/// The options byte of one SUBSCRIBE entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubscriptionOptions {
    /// Maximum QoS the client wants.
    pub qos: QoS,
    /// v5: do not deliver the client's own publications back to it.
    pub no_local: bool,
    /// v5: keep the retain flag as published.
    pub retain_as_published: bool,
    pub retain_handling: RetainHandling,
}

impl SubscriptionOptions {
    /// Options asking for a QoS, everything else default.
    pub fn qos(qos: QoS) -> Self {
        SubscriptionOptions {
            qos,
            ..Default::default()
        }
    }
}

/// SUBSCRIBE: one or more topic filters with their options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub packet_id: u16,
    pub properties: Properties,
    /// Not validated as filters by the codec (the server answers invalid ones per entry).
    pub filters: Vec<(ByteStr, SubscriptionOptions)>,
}

/// SUBACK: one reason code per SUBSCRIBE entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    pub packet_id: u16,
    pub properties: Properties,
    pub reasons: Vec<ReasonCode>,
}

/// UNSUBSCRIBE: topic filters to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    pub packet_id: u16,
    pub properties: Properties,
    pub filters: Vec<ByteStr>,
}

/// UNSUBACK: one reason code per filter in v5, none in v3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    pub packet_id: u16,
    pub properties: Properties,
    /// Empty in v3.
    pub reasons: Vec<ReasonCode>,
}

/// DISCONNECT: the end of a connection (client to server in v3; both ways in v5).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disconnect {
    pub reason: ReasonCode,
    pub properties: Properties,
}

/// AUTH (v5): a step of enhanced authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    pub reason: ReasonCode,
    pub properties: Properties,
}
