//! The performatives, SASL frames, delivery states, termini and error conditions of
//! AMQP 1.0 parts 2, 3 and 5, each encoded and decoded field by field.

use crate::codec::{
    self, encode, DecodeError, Decoder, Field, FieldValue, Fields, Symbol, Timestamp, Value,
};
use crate::composite;
use bytes::{Bytes, BytesMut};

/// Maps a symbolic descriptor to its numeric code.
pub fn code_by_name(name: &str) -> Option<u64> {
    Some(match name {
        "amqp:open:list" => 0x10,
        "amqp:begin:list" => 0x11,
        "amqp:attach:list" => 0x12,
        "amqp:flow:list" => 0x13,
        "amqp:transfer:list" => 0x14,
        "amqp:disposition:list" => 0x15,
        "amqp:detach:list" => 0x16,
        "amqp:end:list" => 0x17,
        "amqp:close:list" => 0x18,
        "amqp:error:list" => 0x1d,
        "amqp:received:list" => 0x23,
        "amqp:accepted:list" => 0x24,
        "amqp:rejected:list" => 0x25,
        "amqp:released:list" => 0x26,
        "amqp:modified:list" => 0x27,
        "amqp:source:list" => 0x28,
        "amqp:target:list" => 0x29,
        "amqp:delete-on-close:list" => 0x2b,
        "amqp:delete-on-no-links:list" => 0x2c,
        "amqp:delete-on-no-messages:list" => 0x2d,
        "amqp:delete-on-no-links-or-messages:list" => 0x2e,
        "amqp:coordinator:list" => 0x30,
        "amqp:declare:list" => 0x31,
        "amqp:discharge:list" => 0x32,
        "amqp:declared:list" => 0x33,
        "amqp:transactional-state:list" => 0x34,
        "amqp:sasl-mechanisms:list" => 0x40,
        "amqp:sasl-init:list" => 0x41,
        "amqp:sasl-challenge:list" => 0x42,
        "amqp:sasl-response:list" => 0x43,
        "amqp:sasl-outcome:list" => 0x44,
        "amqp:header:list" => 0x70,
        "amqp:delivery-annotations:map" => 0x71,
        "amqp:message-annotations:map" => 0x72,
        "amqp:properties:list" => 0x73,
        "amqp:application-properties:map" => 0x74,
        "amqp:data:binary" => 0x75,
        "amqp:amqp-sequence:list" => 0x76,
        "amqp:amqp-value:*" => 0x77,
        "amqp:footer:map" => 0x78,
        _ => return None,
    })
}

/// Which end of a link: the sender (`false` on the wire) or the receiver (`true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    #[default]
    Sender,
    Receiver,
}

impl FieldValue for Role {
    fn read_opt(d: &mut Decoder) -> Result<Option<Self>, DecodeError> {
        Ok(d.read_bool_opt()?
            .map(|b| if b { Role::Receiver } else { Role::Sender }))
    }
    fn write(&self, buf: &mut BytesMut) {
        encode::boolean(buf, *self == Role::Receiver)
    }
}

/// How the sending end settles: unsettled (0), settled (1) or mixed (2, the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SenderSettleMode {
    Unsettled,
    Settled,
    #[default]
    Mixed,
}

impl FieldValue for SenderSettleMode {
    fn read_opt(d: &mut Decoder) -> Result<Option<Self>, DecodeError> {
        Ok(match u8::read_opt(d)? {
            None => None,
            Some(0) => Some(SenderSettleMode::Unsettled),
            Some(1) => Some(SenderSettleMode::Settled),
            Some(2) => Some(SenderSettleMode::Mixed),
            Some(_) => return Err(DecodeError::Invalid("invalid sender-settle-mode")),
        })
    }
    fn write(&self, buf: &mut BytesMut) {
        encode::ubyte(buf, *self as u8)
    }
}

/// How the receiving end settles: first (0) or second (1, which Throng refuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReceiverSettleMode {
    #[default]
    First,
    Second,
}

impl FieldValue for ReceiverSettleMode {
    fn read_opt(d: &mut Decoder) -> Result<Option<Self>, DecodeError> {
        Ok(match u8::read_opt(d)? {
            None => None,
            Some(0) => Some(ReceiverSettleMode::First),
            Some(1) => Some(ReceiverSettleMode::Second),
            Some(_) => return Err(DecodeError::Invalid("invalid receiver-settle-mode")),
        })
    }
    fn write(&self, buf: &mut BytesMut) {
        encode::ubyte(buf, *self as u8)
    }
}

crate::composite_mandatory!(Role);

composite! {
    /// An error condition with a description (part 2 §2.8.14).
    pub struct Error (0x1d, "amqp:error:list") {
        pub condition: Symbol,
        pub description: Option<String>,
        pub info: Option<Fields>,
    }
}

impl Error {
    /// An error with a condition and a description.
    pub fn new(condition: &str, description: impl Into<String>) -> Self {
        Error {
            condition: Symbol::new(condition),
            description: Some(description.into()),
            info: None,
        }
    }
}

/// The standard error conditions (part 2 §2.8.15–2.8.18).
pub mod condition {
    pub const INTERNAL_ERROR: &str = "amqp:internal-error";
    pub const NOT_FOUND: &str = "amqp:not-found";
    pub const UNAUTHORIZED_ACCESS: &str = "amqp:unauthorized-access";
    pub const DECODE_ERROR: &str = "amqp:decode-error";
    pub const RESOURCE_LIMIT_EXCEEDED: &str = "amqp:resource-limit-exceeded";
    pub const NOT_ALLOWED: &str = "amqp:not-allowed";
    pub const INVALID_FIELD: &str = "amqp:invalid-field";
    pub const NOT_IMPLEMENTED: &str = "amqp:not-implemented";
    pub const RESOURCE_LOCKED: &str = "amqp:resource-locked";
    pub const PRECONDITION_FAILED: &str = "amqp:precondition-failed";
    pub const RESOURCE_DELETED: &str = "amqp:resource-deleted";
    pub const ILLEGAL_STATE: &str = "amqp:illegal-state";
    pub const FRAME_SIZE_TOO_SMALL: &str = "amqp:frame-size-too-small";
    pub const CONNECTION_FORCED: &str = "amqp:connection:forced";
    pub const FRAMING_ERROR: &str = "amqp:connection:framing-error";
    pub const CONNECTION_REDIRECT: &str = "amqp:connection:redirect";
    pub const WINDOW_VIOLATION: &str = "amqp:session:window-violation";
    pub const ERRANT_LINK: &str = "amqp:session:errant-link";
    pub const HANDLE_IN_USE: &str = "amqp:session:handle-in-use";
    pub const UNATTACHED_HANDLE: &str = "amqp:session:unattached-handle";
    pub const DETACH_FORCED: &str = "amqp:link:detach-forced";
    pub const TRANSFER_LIMIT_EXCEEDED: &str = "amqp:link:transfer-limit-exceeded";
    pub const MESSAGE_SIZE_EXCEEDED: &str = "amqp:link:message-size-exceeded";
    pub const LINK_REDIRECT: &str = "amqp:link:redirect";
    pub const STOLEN: &str = "amqp:link:stolen";
}

composite! {
    /// Opens a connection (part 2 §2.7.1).
    pub struct Open (0x10, "amqp:open:list") {
        pub container_id: String,
        pub hostname: Option<String>,
        pub max_frame_size: Option<u32>,
        pub channel_max: Option<u16>,
        pub idle_time_out: Option<u32>,
        pub outgoing_locales: Option<Vec<Symbol>>,
        pub incoming_locales: Option<Vec<Symbol>>,
        pub offered_capabilities: Option<Vec<Symbol>>,
        pub desired_capabilities: Option<Vec<Symbol>>,
        pub properties: Option<Fields>,
    }
}

composite! {
    /// Begins a session (part 2 §2.7.2).
    pub struct Begin (0x11, "amqp:begin:list") {
        pub remote_channel: Option<u16>,
        pub next_outgoing_id: u32,
        pub incoming_window: u32,
        pub outgoing_window: u32,
        pub handle_max: Option<u32>,
        pub offered_capabilities: Option<Vec<Symbol>>,
        pub desired_capabilities: Option<Vec<Symbol>>,
        pub properties: Option<Fields>,
    }
}

composite! {
    /// Attaches a link (part 2 §2.7.3).
    pub struct Attach (0x12, "amqp:attach:list") {
        pub name: String,
        pub handle: u32,
        pub role: Role,
        pub snd_settle_mode: Option<SenderSettleMode>,
        pub rcv_settle_mode: Option<ReceiverSettleMode>,
        pub source: Option<Source>,
        pub target: Option<TargetTerminus>,
        pub unsettled: Option<Value>,
        pub incomplete_unsettled: Option<bool>,
        pub initial_delivery_count: Option<u32>,
        pub max_message_size: Option<u64>,
        pub offered_capabilities: Option<Vec<Symbol>>,
        pub desired_capabilities: Option<Vec<Symbol>>,
        pub properties: Option<Fields>,
    }
}

composite! {
    /// Updates session and link flow state (part 2 §2.7.4).
    pub struct Flow (0x13, "amqp:flow:list") {
        pub next_incoming_id: Option<u32>,
        pub incoming_window: u32,
        pub next_outgoing_id: u32,
        pub outgoing_window: u32,
        pub handle: Option<u32>,
        pub delivery_count: Option<u32>,
        pub link_credit: Option<u32>,
        pub available: Option<u32>,
        pub drain: Option<bool>,
        pub echo: Option<bool>,
        pub properties: Option<Fields>,
    }
}

composite! {
    /// Carries (part of) a message (part 2 §2.7.5).
    pub struct Transfer (0x14, "amqp:transfer:list") {
        pub handle: u32,
        pub delivery_id: Option<u32>,
        pub delivery_tag: Option<Bytes>,
        pub message_format: Option<u32>,
        pub settled: Option<bool>,
        pub more: Option<bool>,
        pub rcv_settle_mode: Option<ReceiverSettleMode>,
        pub state: Option<DeliveryState>,
        pub resume: Option<bool>,
        pub aborted: Option<bool>,
        pub batchable: Option<bool>,
    }
}

composite! {
    /// Settles or updates a range of deliveries (part 2 §2.7.6).
    pub struct Disposition (0x15, "amqp:disposition:list") {
        pub role: Role,
        pub first: u32,
        pub last: Option<u32>,
        pub settled: Option<bool>,
        pub state: Option<DeliveryState>,
        pub batchable: Option<bool>,
    }
}

composite! {
    /// Detaches a link (part 2 §2.7.7).
    pub struct Detach (0x16, "amqp:detach:list") {
        pub handle: u32,
        pub closed: Option<bool>,
        pub error: Option<Error>,
    }
}

composite! {
    /// Ends a session (part 2 §2.7.8).
    pub struct End (0x17, "amqp:end:list") {
        pub error: Option<Error>,
    }
}

composite! {
    /// Closes the connection (part 2 §2.7.9).
    pub struct Close (0x18, "amqp:close:list") {
        pub error: Option<Error>,
    }
}

composite! {
    /// The server's offered SASL mechanisms (part 5 §5.3.3.1).
    pub struct SaslMechanisms (0x40, "amqp:sasl-mechanisms:list") {
        pub sasl_server_mechanisms: Vec<Symbol>,
    }
}

composite! {
    /// The client's chosen mechanism and initial response (part 5 §5.3.3.2).
    pub struct SaslInit (0x41, "amqp:sasl-init:list") {
        pub mechanism: Symbol,
        pub initial_response: Option<Bytes>,
        pub hostname: Option<String>,
    }
}

composite! {
    /// A SASL challenge (part 5 §5.3.3.3).
    pub struct SaslChallenge (0x42, "amqp:sasl-challenge:list") {
        pub challenge: Bytes,
    }
}

composite! {
    /// A SASL response (part 5 §5.3.3.4).
    pub struct SaslResponse (0x43, "amqp:sasl-response:list") {
        pub response: Bytes,
    }
}

composite! {
    /// The SASL outcome: 0 ok, 1 auth, 2 sys, 3 sys-perm, 4 sys-temp (part 5 §5.3.3.6).
    pub struct SaslOutcome (0x44, "amqp:sasl-outcome:list") {
        pub code: u8,
        pub additional_data: Option<Bytes>,
    }
}

composite! {
    /// Where messages come from (part 3 §3.5.3).
    pub struct Source (0x28, "amqp:source:list") {
        pub address: Option<String>,
        pub durable: Option<u32>,
        pub expiry_policy: Option<Symbol>,
        pub timeout: Option<u32>,
        pub dynamic: Option<bool>,
        pub dynamic_node_properties: Option<Fields>,
        pub distribution_mode: Option<Symbol>,
        pub filter: Option<Fields>,
        pub default_outcome: Option<DeliveryState>,
        pub outcomes: Option<Vec<Symbol>>,
        pub capabilities: Option<Vec<Symbol>>,
    }
}

composite! {
    /// Where messages go (part 3 §3.5.4).
    pub struct Target (0x29, "amqp:target:list") {
        pub address: Option<String>,
        pub durable: Option<u32>,
        pub expiry_policy: Option<Symbol>,
        pub timeout: Option<u32>,
        pub dynamic: Option<bool>,
        pub dynamic_node_properties: Option<Fields>,
        pub capabilities: Option<Vec<Symbol>>,
    }
}

composite! {
    /// The transaction coordinator target (part 4 §4.5.1).
    pub struct Coordinator (0x30, "amqp:coordinator:list") {
        pub capabilities: Option<Vec<Symbol>>,
    }
}

/// An attach's target: a node address or the transaction coordinator.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetTerminus {
    Target(Target),
    Coordinator(Coordinator),
}

impl Default for TargetTerminus {
    fn default() -> Self {
        TargetTerminus::Target(Target::default())
    }
}

impl TargetTerminus {
    /// The target when it is an ordinary node target.
    pub fn as_target(&self) -> Option<&Target> {
        match self {
            TargetTerminus::Target(t) => Some(t),
            TargetTerminus::Coordinator(_) => None,
        }
    }
}

impl FieldValue for TargetTerminus {
    fn read_opt(d: &mut Decoder) -> Result<Option<Self>, DecodeError> {
        if d.take_null()? {
            return Ok(None);
        }
        match d.read_descriptor(code_by_name)? {
            Target::CODE => Ok(Some(TargetTerminus::Target(Target::decode_body(d)?))),
            Coordinator::CODE => Ok(Some(TargetTerminus::Coordinator(Coordinator::decode_body(
                d,
            )?))),
            _ => Err(DecodeError::Invalid("expected a target or coordinator")),
        }
    }
    fn write(&self, buf: &mut BytesMut) {
        match self {
            TargetTerminus::Target(t) => t.encode(buf),
            TargetTerminus::Coordinator(c) => c.encode(buf),
        }
    }
}

composite! {
    /// Partial receipt state, for resuming (part 3 §3.4.1).
    pub struct Received (0x23, "amqp:received:list") {
        pub section_number: u32,
        pub section_offset: u64,
    }
}

composite! {
    /// A rejected delivery's reason (part 3 §3.4.3).
    pub struct Rejected (0x25, "amqp:rejected:list") {
        pub error: Option<Error>,
    }
}

composite! {
    /// A modified delivery (part 3 §3.4.5).
    pub struct Modified (0x27, "amqp:modified:list") {
        pub delivery_failed: Option<bool>,
        pub undeliverable_here: Option<bool>,
        pub message_annotations: Option<Fields>,
    }
}

/// The state of a delivery: the outcomes of part 3 §3.4 and the transactional states.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryState {
    Received(Received),
    Accepted,
    Rejected(Rejected),
    Released,
    Modified(Modified),
    /// Transactional states (declared, transactional-state), kept as their raw value.
    Other(u64, Value),
}

impl DeliveryState {
    /// Whether this is a terminal outcome (not `received`).
    pub fn is_outcome(&self) -> bool {
        !matches!(self, DeliveryState::Received(_))
    }
}

impl FieldValue for DeliveryState {
    fn read_opt(d: &mut Decoder) -> Result<Option<Self>, DecodeError> {
        if d.take_null()? {
            return Ok(None);
        }
        let code = d.read_descriptor(code_by_name)?;
        Ok(Some(match code {
            0x23 => DeliveryState::Received(Received::decode_body(d)?),
            0x24 | 0x26 => {
                let (_, end) = d.read_list_header()?;
                d.skip_to(end)?;
                if code == 0x24 {
                    DeliveryState::Accepted
                } else {
                    DeliveryState::Released
                }
            }
            0x25 => DeliveryState::Rejected(Rejected::decode_body(d)?),
            0x27 => DeliveryState::Modified(Modified::decode_body(d)?),
            0x33 | 0x34 => DeliveryState::Other(code, d.read_value()?),
            _ => return Err(DecodeError::Invalid("unknown delivery state")),
        }))
    }
    fn write(&self, buf: &mut BytesMut) {
        match self {
            DeliveryState::Received(r) => r.encode(buf),
            DeliveryState::Accepted => {
                encode::descriptor(buf, 0x24);
                bytes::BufMut::put_u8(buf, codec::format::LIST0);
            }
            DeliveryState::Rejected(r) => r.encode(buf),
            DeliveryState::Released => {
                encode::descriptor(buf, 0x26);
                bytes::BufMut::put_u8(buf, codec::format::LIST0);
            }
            DeliveryState::Modified(m) => m.encode(buf),
            DeliveryState::Other(code, v) => {
                encode::descriptor(buf, *code);
                encode::value(buf, v);
            }
        }
    }
}

composite! {
    /// The message header section (part 3 §3.2.1).
    pub struct Header (0x70, "amqp:header:list") {
        pub durable: Option<bool>,
        pub priority: Option<u8>,
        pub ttl: Option<u32>,
        pub first_acquirer: Option<bool>,
        pub delivery_count: Option<u32>,
    }
}

composite! {
    /// The message properties section (part 3 §3.2.4).
    pub struct Properties (0x73, "amqp:properties:list") {
        pub message_id: Option<Value>,
        pub user_id: Option<Bytes>,
        pub to: Option<String>,
        pub subject: Option<String>,
        pub reply_to: Option<String>,
        pub correlation_id: Option<Value>,
        pub content_type: Option<Symbol>,
        pub content_encoding: Option<Symbol>,
        pub absolute_expiry_time: Option<Timestamp>,
        pub creation_time: Option<Timestamp>,
        pub group_id: Option<String>,
        pub group_sequence: Option<u32>,
        pub reply_to_group_id: Option<String>,
    }
}

/// Every frame body that can travel on an AMQP (not SASL) frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Performative {
    Open(Open),
    Begin(Begin),
    /// Boxed: an attach is several times larger than the frequent performatives (flow,
    /// transfer, disposition), which would otherwise all be moved at its size.
    Attach(Box<Attach>),
    Flow(Flow),
    Transfer(Transfer),
    Disposition(Disposition),
    Detach(Detach),
    End(End),
    Close(Close),
}

impl Performative {
    /// Decodes a performative from the start of a frame body.
    pub fn decode(d: &mut Decoder) -> Result<Self, DecodeError> {
        Ok(match d.read_descriptor(code_by_name)? {
            Open::CODE => Performative::Open(Open::decode_body(d)?),
            Begin::CODE => Performative::Begin(Begin::decode_body(d)?),
            Attach::CODE => Performative::Attach(Box::new(Attach::decode_body(d)?)),
            Flow::CODE => Performative::Flow(Flow::decode_body(d)?),
            Transfer::CODE => Performative::Transfer(Transfer::decode_body(d)?),
            Disposition::CODE => Performative::Disposition(Disposition::decode_body(d)?),
            Detach::CODE => Performative::Detach(Detach::decode_body(d)?),
            End::CODE => Performative::End(End::decode_body(d)?),
            Close::CODE => Performative::Close(Close::decode_body(d)?),
            _ => return Err(DecodeError::Invalid("unknown performative")),
        })
    }

    /// Encodes the performative.
    pub fn encode(&self, buf: &mut BytesMut) {
        match self {
            Performative::Open(p) => p.encode(buf),
            Performative::Begin(p) => p.encode(buf),
            Performative::Attach(p) => p.encode(buf),
            Performative::Flow(p) => p.encode(buf),
            Performative::Transfer(p) => p.encode(buf),
            Performative::Disposition(p) => p.encode(buf),
            Performative::Detach(p) => p.encode(buf),
            Performative::End(p) => p.encode(buf),
            Performative::Close(p) => p.encode(buf),
        }
    }
}

/// Every frame body that can travel on a SASL frame.
#[derive(Debug, Clone, PartialEq)]
pub enum SaslFrame {
    Mechanisms(SaslMechanisms),
    Init(SaslInit),
    Challenge(SaslChallenge),
    Response(SaslResponse),
    Outcome(SaslOutcome),
}

impl SaslFrame {
    /// Decodes a SASL frame body.
    pub fn decode(d: &mut Decoder) -> Result<Self, DecodeError> {
        Ok(match d.read_descriptor(code_by_name)? {
            SaslMechanisms::CODE => SaslFrame::Mechanisms(SaslMechanisms::decode_body(d)?),
            SaslInit::CODE => SaslFrame::Init(SaslInit::decode_body(d)?),
            SaslChallenge::CODE => SaslFrame::Challenge(SaslChallenge::decode_body(d)?),
            SaslResponse::CODE => SaslFrame::Response(SaslResponse::decode_body(d)?),
            SaslOutcome::CODE => SaslFrame::Outcome(SaslOutcome::decode_body(d)?),
            _ => return Err(DecodeError::Invalid("unknown SASL frame")),
        })
    }

    /// Encodes the SASL frame body.
    pub fn encode(&self, buf: &mut BytesMut) {
        match self {
            SaslFrame::Mechanisms(p) => p.encode(buf),
            SaslFrame::Init(p) => p.encode(buf),
            SaslFrame::Challenge(p) => p.encode(buf),
            SaslFrame::Response(p) => p.encode(buf),
            SaslFrame::Outcome(p) => p.encode(buf),
        }
    }
}

// keep the Field trait in scope for the macro-generated code
#[allow(unused_imports)]
use Field as _;
