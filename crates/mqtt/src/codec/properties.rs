//! MQTT 5 properties: one flat struct for every packet, decoded in one pass with the
//! per-packet allowed set, repetition rules and value ranges checked.

use super::decode::Reader;
use super::string::ByteStr;
use super::{varint, DecodeError, QoS};
use bytes::{BufMut, Bytes};

const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
const CONTENT_TYPE: u8 = 0x03;
const RESPONSE_TOPIC: u8 = 0x08;
const CORRELATION_DATA: u8 = 0x09;
const SUBSCRIPTION_IDENTIFIER: u8 = 0x0b;
const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
const SERVER_KEEP_ALIVE: u8 = 0x13;
const AUTHENTICATION_METHOD: u8 = 0x15;
const AUTHENTICATION_DATA: u8 = 0x16;
const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
const WILL_DELAY_INTERVAL: u8 = 0x18;
const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
const RESPONSE_INFORMATION: u8 = 0x1a;
const SERVER_REFERENCE: u8 = 0x1c;
const REASON_STRING: u8 = 0x1f;
const RECEIVE_MAXIMUM: u8 = 0x21;
const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
pub(crate) const TOPIC_ALIAS: u8 = 0x23;
const MAXIMUM_QOS: u8 = 0x24;
const RETAIN_AVAILABLE: u8 = 0x25;
const USER_PROPERTY: u8 = 0x26;
const MAXIMUM_PACKET_SIZE: u8 = 0x27;
const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2a;

/// Which packet a property block belongs to: it fixes the properties allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropertyContext {
    Connect,
    Will,
    ConnAck,
    Publish,
    /// PUBACK, PUBREC, PUBREL, PUBCOMP.
    PubResponse,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth,
}

const fn bits(ids: &[u8]) -> u64 {
    let mut m = 1u64 << USER_PROPERTY;
    let mut i = 0;
    while i < ids.len() {
        m |= 1u64 << ids[i];
        i += 1;
    }
    m
}

impl PropertyContext {
    fn allowed(self) -> u64 {
        use PropertyContext::*;
        match self {
            Connect => bits(&[
                SESSION_EXPIRY_INTERVAL,
                AUTHENTICATION_METHOD,
                AUTHENTICATION_DATA,
                REQUEST_PROBLEM_INFORMATION,
                REQUEST_RESPONSE_INFORMATION,
                RECEIVE_MAXIMUM,
                TOPIC_ALIAS_MAXIMUM,
                MAXIMUM_PACKET_SIZE,
            ]),
            Will => bits(&[
                PAYLOAD_FORMAT_INDICATOR,
                MESSAGE_EXPIRY_INTERVAL,
                CONTENT_TYPE,
                RESPONSE_TOPIC,
                CORRELATION_DATA,
                WILL_DELAY_INTERVAL,
            ]),
            ConnAck => bits(&[
                SESSION_EXPIRY_INTERVAL,
                ASSIGNED_CLIENT_IDENTIFIER,
                SERVER_KEEP_ALIVE,
                AUTHENTICATION_METHOD,
                AUTHENTICATION_DATA,
                RESPONSE_INFORMATION,
                SERVER_REFERENCE,
                REASON_STRING,
                RECEIVE_MAXIMUM,
                TOPIC_ALIAS_MAXIMUM,
                MAXIMUM_QOS,
                RETAIN_AVAILABLE,
                MAXIMUM_PACKET_SIZE,
                WILDCARD_SUBSCRIPTION_AVAILABLE,
                SUBSCRIPTION_IDENTIFIER_AVAILABLE,
                SHARED_SUBSCRIPTION_AVAILABLE,
            ]),
            Publish => bits(&[
                PAYLOAD_FORMAT_INDICATOR,
                MESSAGE_EXPIRY_INTERVAL,
                CONTENT_TYPE,
                RESPONSE_TOPIC,
                CORRELATION_DATA,
                SUBSCRIPTION_IDENTIFIER,
                TOPIC_ALIAS,
            ]),
            PubResponse | SubAck | UnsubAck => bits(&[REASON_STRING]),
            Subscribe => bits(&[SUBSCRIPTION_IDENTIFIER]),
            Unsubscribe => bits(&[]),
            Disconnect => bits(&[SESSION_EXPIRY_INTERVAL, SERVER_REFERENCE, REASON_STRING]),
            Auth => bits(&[AUTHENTICATION_METHOD, AUTHENTICATION_DATA, REASON_STRING]),
        }
    }
}

/// A packet's MQTT 5 properties, as small as a pointer: most packets (nearly every
/// PUBLISH, every v3 packet) carry none, and packets are moved several times between the
/// decoder, the engine and the application, so the [`PropertySet`] is boxed and only
/// allocated once a property is set. Reads of an empty one see [`PropertySet::EMPTY`];
/// a write through `DerefMut` allocates it — even a write of `None`, so hot paths write
/// only the properties that are present.
#[derive(Clone, Default)]
pub struct Properties(Option<Box<PropertySet>>);

static EMPTY_SET: PropertySet = PropertySet::EMPTY;

impl std::ops::Deref for Properties {
    type Target = PropertySet;
    fn deref(&self) -> &PropertySet {
        self.0.as_deref().unwrap_or(&EMPTY_SET)
    }
}

impl std::ops::DerefMut for Properties {
    fn deref_mut(&mut self) -> &mut PropertySet {
        self.0.get_or_insert_with(Box::default)
    }
}

impl PartialEq for Properties {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for Properties {}

impl std::fmt::Debug for Properties {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

impl From<PropertySet> for Properties {
    fn from(set: PropertySet) -> Self {
        Properties(Some(Box::new(set)))
    }
}

impl Properties {
    /// Whether no property is set.
    pub fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|s| s.is_empty())
    }

    /// The properties by value, to take fields out of them.
    pub fn into_set(self) -> PropertySet {
        self.0.map(|s| *s).unwrap_or_default()
    }

    /// The size of the properties without their length prefix.
    pub fn content_len(&self) -> usize {
        self.0.as_ref().map_or(0, |s| s.content_len())
    }

    /// The size of the property block: length prefix plus properties.
    pub fn encoded_len(&self) -> usize {
        self.0.as_ref().map_or(1, |s| s.encoded_len())
    }

    /// Writes the property block (length prefix plus properties).
    pub fn encode(&self, out: &mut impl BufMut) {
        match &self.0 {
            None => out.put_u8(0),
            Some(s) => s.encode(out),
        }
    }

    /// Removes the diagnostic properties (reason string, user properties) a sender drops
    /// when a packet would exceed the peer's maximum packet size.
    pub fn strip_diagnostics(&mut self) {
        if let Some(s) = &mut self.0 {
            s.strip_diagnostics();
        }
    }

    /// Writes the properties without their length prefix.
    pub(crate) fn encode_content(&self, out: &mut impl BufMut) {
        if let Some(s) = &self.0 {
            s.encode_content(out);
        }
    }

    /// Decodes a property block (length + properties) for any packet but a PUBLISH.
    pub(crate) fn decode(
        r: &mut Reader<'_>,
        ctx: PropertyContext,
    ) -> Result<Properties, DecodeError> {
        debug_assert!(ctx != PropertyContext::Publish);
        let len = r.varint()? as usize;
        let pr = r.sub(len)?;
        if pr.is_empty() {
            return Ok(Properties::default());
        }
        PropertySet::decode(pr, ctx, &mut None).map(Properties::from)
    }

    /// Decodes a PUBLISH's property block: the properties and the topic alias. A block
    /// holding only an alias — what a client using aliases sends with every message —
    /// allocates nothing.
    pub(crate) fn decode_publish(
        r: &mut Reader<'_>,
    ) -> Result<(Properties, Option<u16>), DecodeError> {
        let len = r.varint()? as usize;
        let pr = r.sub(len)?;
        match pr.unread() {
            [] => return Ok((Properties::default(), None)),
            [TOPIC_ALIAS, hi, lo] => {
                return Ok((Properties::default(), Some(u16::from_be_bytes([*hi, *lo]))))
            }
            _ => {}
        }
        let mut alias = None;
        let set = PropertySet::decode(pr, PropertyContext::Publish, &mut alias)?;
        let props = if set.is_empty() {
            Properties::default()
        } else {
            Properties::from(set)
        };
        Ok((props, alias))
    }
}

/// Every MQTT 5 property. A packet uses the subset its [`PropertyContext`] allows; absent
/// properties are `None` / empty (an empty `Vec` does not allocate), strings and binaries
/// are slices of the received packet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PropertySet {
    /// 0 = unspecified bytes, 1 = UTF-8 payload (PUBLISH, will).
    pub payload_format_indicator: Option<u8>,
    /// Seconds until the message expires (PUBLISH, will).
    pub message_expiry_interval: Option<u32>,
    pub content_type: Option<ByteStr>,
    pub response_topic: Option<ByteStr>,
    pub correlation_data: Option<Bytes>,
    /// One per matching subscription in a server's PUBLISH; at most one in SUBSCRIBE.
    pub subscription_identifiers: Vec<u32>,
    pub session_expiry_interval: Option<u32>,
    pub assigned_client_identifier: Option<ByteStr>,
    pub server_keep_alive: Option<u16>,
    pub authentication_method: Option<ByteStr>,
    pub authentication_data: Option<Bytes>,
    pub request_problem_information: Option<bool>,
    pub will_delay_interval: Option<u32>,
    pub request_response_information: Option<bool>,
    pub response_information: Option<ByteStr>,
    pub server_reference: Option<ByteStr>,
    pub reason_string: Option<ByteStr>,
    pub receive_maximum: Option<u16>,
    pub topic_alias_maximum: Option<u16>,
    /// 0 or 1 only (absence means 2).
    pub maximum_qos: Option<QoS>,
    pub retain_available: Option<bool>,
    /// Name/value pairs, repeatable, in wire order.
    pub user_properties: Vec<(ByteStr, ByteStr)>,
    pub maximum_packet_size: Option<u32>,
    pub wildcard_subscription_available: Option<bool>,
    pub subscription_identifier_available: Option<bool>,
    pub shared_subscription_available: Option<bool>,
}

fn flag(r: &mut Reader<'_>) -> Result<bool, DecodeError> {
    match r.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(DecodeError::protocol("property value must be 0 or 1")),
    }
}

impl PropertySet {
    /// No property set: what an empty [`Properties`] reads as.
    pub const EMPTY: PropertySet = PropertySet {
        payload_format_indicator: None,
        message_expiry_interval: None,
        content_type: None,
        response_topic: None,
        correlation_data: None,
        subscription_identifiers: Vec::new(),
        session_expiry_interval: None,
        assigned_client_identifier: None,
        server_keep_alive: None,
        authentication_method: None,
        authentication_data: None,
        request_problem_information: None,
        will_delay_interval: None,
        request_response_information: None,
        response_information: None,
        server_reference: None,
        reason_string: None,
        receive_maximum: None,
        topic_alias_maximum: None,
        maximum_qos: None,
        retain_available: None,
        user_properties: Vec::new(),
        maximum_packet_size: None,
        wildcard_subscription_available: None,
        subscription_identifier_available: None,
        shared_subscription_available: None,
    };

    /// Whether no property is set.
    pub fn is_empty(&self) -> bool {
        self.content_len() == 0
    }

    /// Removes the diagnostic properties (reason string, user properties) a sender drops
    /// when a packet would exceed the peer's maximum packet size.
    pub fn strip_diagnostics(&mut self) {
        self.reason_string = None;
        self.user_properties = Vec::new();
    }

    /// Decodes the properties of a non-empty property block (`pr` holds them, without
    /// the length prefix). A PUBLISH's topic alias goes to `alias`: it belongs to the
    /// connection, not to the message, so it is kept outside the set.
    fn decode(
        mut pr: Reader<'_>,
        ctx: PropertyContext,
        alias: &mut Option<u16>,
    ) -> Result<PropertySet, DecodeError> {
        let mut p = PropertySet::default();
        let allowed = ctx.allowed();
        let mut seen = 0u64;
        while !pr.is_empty() {
            let id = pr.varint()?;
            if id >= 64 || allowed & (1u64 << id) == 0 {
                return Err(DecodeError::malformed(
                    "property not allowed in this packet",
                ));
            }
            let id = id as u8;
            let repeatable = id == USER_PROPERTY
                || (id == SUBSCRIPTION_IDENTIFIER && ctx == PropertyContext::Publish);
            if !repeatable {
                if seen & (1u64 << id) != 0 {
                    return Err(DecodeError::protocol("property repeated"));
                }
                seen |= 1u64 << id;
            }
            match id {
                PAYLOAD_FORMAT_INDICATOR => {
                    let v = pr.u8()?;
                    if v > 1 {
                        return Err(DecodeError::protocol("payload format indicator not 0 or 1"));
                    }
                    p.payload_format_indicator = Some(v);
                }
                MESSAGE_EXPIRY_INTERVAL => p.message_expiry_interval = Some(pr.u32()?),
                CONTENT_TYPE => p.content_type = Some(pr.string()?),
                RESPONSE_TOPIC => {
                    let t = pr.string()?;
                    if t.is_empty() || t.contains(['+', '#']) {
                        return Err(DecodeError::protocol("response topic is not a topic name"));
                    }
                    p.response_topic = Some(t);
                }
                CORRELATION_DATA => p.correlation_data = Some(pr.binary()?),
                SUBSCRIPTION_IDENTIFIER => {
                    let v = pr.varint()?;
                    if v == 0 {
                        return Err(DecodeError::protocol("subscription identifier 0"));
                    }
                    p.subscription_identifiers.push(v);
                }
                SESSION_EXPIRY_INTERVAL => p.session_expiry_interval = Some(pr.u32()?),
                ASSIGNED_CLIENT_IDENTIFIER => p.assigned_client_identifier = Some(pr.string()?),
                SERVER_KEEP_ALIVE => p.server_keep_alive = Some(pr.u16()?),
                AUTHENTICATION_METHOD => p.authentication_method = Some(pr.string()?),
                AUTHENTICATION_DATA => p.authentication_data = Some(pr.binary()?),
                REQUEST_PROBLEM_INFORMATION => p.request_problem_information = Some(flag(&mut pr)?),
                WILL_DELAY_INTERVAL => p.will_delay_interval = Some(pr.u32()?),
                REQUEST_RESPONSE_INFORMATION => {
                    p.request_response_information = Some(flag(&mut pr)?)
                }
                RESPONSE_INFORMATION => p.response_information = Some(pr.string()?),
                SERVER_REFERENCE => p.server_reference = Some(pr.string()?),
                REASON_STRING => p.reason_string = Some(pr.string()?),
                RECEIVE_MAXIMUM => {
                    let v = pr.u16()?;
                    if v == 0 {
                        return Err(DecodeError::protocol("receive maximum 0"));
                    }
                    p.receive_maximum = Some(v);
                }
                TOPIC_ALIAS_MAXIMUM => p.topic_alias_maximum = Some(pr.u16()?),
                TOPIC_ALIAS => *alias = Some(pr.u16()?),
                MAXIMUM_QOS => {
                    p.maximum_qos = Some(match pr.u8()? {
                        0 => QoS::AtMostOnce,
                        1 => QoS::AtLeastOnce,
                        _ => return Err(DecodeError::protocol("maximum QoS not 0 or 1")),
                    })
                }
                RETAIN_AVAILABLE => p.retain_available = Some(flag(&mut pr)?),
                USER_PROPERTY => {
                    let k = pr.string()?;
                    let v = pr.string()?;
                    p.user_properties.push((k, v));
                }
                MAXIMUM_PACKET_SIZE => {
                    let v = pr.u32()?;
                    if v == 0 {
                        return Err(DecodeError::protocol("maximum packet size 0"));
                    }
                    p.maximum_packet_size = Some(v);
                }
                WILDCARD_SUBSCRIPTION_AVAILABLE => {
                    p.wildcard_subscription_available = Some(flag(&mut pr)?)
                }
                SUBSCRIPTION_IDENTIFIER_AVAILABLE => {
                    p.subscription_identifier_available = Some(flag(&mut pr)?)
                }
                SHARED_SUBSCRIPTION_AVAILABLE => {
                    p.shared_subscription_available = Some(flag(&mut pr)?)
                }
                _ => return Err(DecodeError::malformed("unknown property")),
            }
        }
        Ok(p)
    }

    /// The size of the properties without their length prefix.
    pub fn content_len(&self) -> usize {
        let s = |o: &Option<ByteStr>| o.as_ref().map_or(0, |v| 3 + v.len());
        let b = |o: &Option<Bytes>| o.as_ref().map_or(0, |v| 3 + v.len());
        let n = |present: bool, size: usize| if present { 1 + size } else { 0 };
        let mut len = n(self.payload_format_indicator.is_some(), 1)
            + n(self.message_expiry_interval.is_some(), 4)
            + s(&self.content_type)
            + s(&self.response_topic)
            + b(&self.correlation_data)
            + n(self.session_expiry_interval.is_some(), 4)
            + s(&self.assigned_client_identifier)
            + n(self.server_keep_alive.is_some(), 2)
            + s(&self.authentication_method)
            + b(&self.authentication_data)
            + n(self.request_problem_information.is_some(), 1)
            + n(self.will_delay_interval.is_some(), 4)
            + n(self.request_response_information.is_some(), 1)
            + s(&self.response_information)
            + s(&self.server_reference)
            + s(&self.reason_string)
            + n(self.receive_maximum.is_some(), 2)
            + n(self.topic_alias_maximum.is_some(), 2)
            + n(self.maximum_qos.is_some(), 1)
            + n(self.retain_available.is_some(), 1)
            + n(self.maximum_packet_size.is_some(), 4)
            + n(self.wildcard_subscription_available.is_some(), 1)
            + n(self.subscription_identifier_available.is_some(), 1)
            + n(self.shared_subscription_available.is_some(), 1);
        for id in &self.subscription_identifiers {
            len += 1 + varint::len(*id);
        }
        for (k, v) in &self.user_properties {
            len += 1 + 4 + k.len() + v.len();
        }
        len
    }

    /// The size of the property block: length prefix plus properties.
    pub fn encoded_len(&self) -> usize {
        let c = self.content_len();
        varint::len(c as u32) + c
    }

    /// Writes the property block (length prefix plus properties, in identifier order;
    /// user properties keep their order).
    pub fn encode(&self, out: &mut impl BufMut) {
        varint::write(out, self.content_len() as u32);
        self.encode_content(out);
    }

    /// Writes the properties without their length prefix.
    fn encode_content(&self, out: &mut impl BufMut) {
        fn u8p(out: &mut impl BufMut, id: u8, v: Option<u8>) {
            if let Some(v) = v {
                out.put_u8(id);
                out.put_u8(v);
            }
        }
        fn u16p(out: &mut impl BufMut, id: u8, v: Option<u16>) {
            if let Some(v) = v {
                out.put_u8(id);
                out.put_u16(v);
            }
        }
        fn u32p(out: &mut impl BufMut, id: u8, v: Option<u32>) {
            if let Some(v) = v {
                out.put_u8(id);
                out.put_u32(v);
            }
        }
        fn binp(out: &mut impl BufMut, id: u8, v: Option<&[u8]>) {
            if let Some(v) = v {
                out.put_u8(id);
                out.put_u16(v.len() as u16);
                out.put_slice(v);
            }
        }
        fn sp(o: &Option<ByteStr>) -> Option<&[u8]> {
            o.as_ref().map(|v| v.as_str().as_bytes())
        }
        let bool8 = |o: Option<bool>| o.map(u8::from);
        u8p(out, PAYLOAD_FORMAT_INDICATOR, self.payload_format_indicator);
        u32p(out, MESSAGE_EXPIRY_INTERVAL, self.message_expiry_interval);
        binp(out, CONTENT_TYPE, sp(&self.content_type));
        binp(out, RESPONSE_TOPIC, sp(&self.response_topic));
        binp(out, CORRELATION_DATA, self.correlation_data.as_deref());
        for id in &self.subscription_identifiers {
            out.put_u8(SUBSCRIPTION_IDENTIFIER);
            varint::write(out, *id);
        }
        u32p(out, SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        binp(
            out,
            ASSIGNED_CLIENT_IDENTIFIER,
            sp(&self.assigned_client_identifier),
        );
        u16p(out, SERVER_KEEP_ALIVE, self.server_keep_alive);
        binp(out, AUTHENTICATION_METHOD, sp(&self.authentication_method));
        binp(
            out,
            AUTHENTICATION_DATA,
            self.authentication_data.as_deref(),
        );
        u8p(
            out,
            REQUEST_PROBLEM_INFORMATION,
            bool8(self.request_problem_information),
        );
        u32p(out, WILL_DELAY_INTERVAL, self.will_delay_interval);
        u8p(
            out,
            REQUEST_RESPONSE_INFORMATION,
            bool8(self.request_response_information),
        );
        binp(out, RESPONSE_INFORMATION, sp(&self.response_information));
        binp(out, SERVER_REFERENCE, sp(&self.server_reference));
        binp(out, REASON_STRING, sp(&self.reason_string));
        u16p(out, RECEIVE_MAXIMUM, self.receive_maximum);
        u16p(out, TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        u8p(out, MAXIMUM_QOS, self.maximum_qos.map(|q| q as u8));
        u8p(out, RETAIN_AVAILABLE, bool8(self.retain_available));
        for (k, v) in &self.user_properties {
            out.put_u8(USER_PROPERTY);
            out.put_u16(k.len() as u16);
            out.put_slice(k.as_bytes());
            out.put_u16(v.len() as u16);
            out.put_slice(v.as_bytes());
        }
        u32p(out, MAXIMUM_PACKET_SIZE, self.maximum_packet_size);
        u8p(
            out,
            WILDCARD_SUBSCRIPTION_AVAILABLE,
            bool8(self.wildcard_subscription_available),
        );
        u8p(
            out,
            SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            bool8(self.subscription_identifier_available),
        );
        u8p(
            out,
            SHARED_SUBSCRIPTION_AVAILABLE,
            bool8(self.shared_subscription_available),
        );
    }
}
