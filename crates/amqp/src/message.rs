//! Messages as the bytes they arrived as, plus a lazy view (part 3 §3.2).
//!
//! [`Message::parse`] only walks section boundaries; header, annotations, properties and
//! application-properties are decoded when asked for. Intermediaries forward
//! [`Message::bytes`] unchanged, or a fresh header followed by the original bytes after
//! the old one ([`Message::with_header`]), or the message with merged annotations
//! ([`Message::with_annotations`]); the bare message is never re-encoded.

use crate::codec::{encode, DecodeError, Decoder, Field, FieldValue, Fields, Symbol, Value};
use crate::definitions::{code_by_name, Header, Properties};
use bytes::{Bytes, BytesMut};
use std::ops::Range;

/// Section descriptor codes.
pub mod section {
    pub const HEADER: u64 = 0x70;
    pub const DELIVERY_ANNOTATIONS: u64 = 0x71;
    pub const MESSAGE_ANNOTATIONS: u64 = 0x72;
    pub const PROPERTIES: u64 = 0x73;
    pub const APPLICATION_PROPERTIES: u64 = 0x74;
    pub const DATA: u64 = 0x75;
    pub const AMQP_SEQUENCE: u64 = 0x76;
    pub const AMQP_VALUE: u64 = 0x77;
    pub const FOOTER: u64 = 0x78;
}

/// Byte ranges of the sections found in a message (u32 offsets keep the view small).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Sections {
    header: Option<(u32, u32)>,
    delivery_annotations: Option<(u32, u32)>,
    message_annotations: Option<(u32, u32)>,
    properties: Option<(u32, u32)>,
    application_properties: Option<(u32, u32)>,
    bare_start: u32,
    bare_end: u32,
}

/// The properties [`Message::reply_properties`] reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplyProperties {
    /// Where replies go.
    pub reply_to: Option<String>,
    /// What a reply carries to match its request.
    pub correlation_id: Option<Value>,
    /// The MIME type of the body.
    pub content_type: Option<Symbol>,
}

/// An AMQP message: its encoded bytes and where its sections lie.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    bytes: Bytes,
    sections: Sections,
}

fn range(r: (u32, u32)) -> Range<usize> {
    r.0 as usize..r.1 as usize
}

impl Message {
    /// Finds the sections of an encoded message; fails on anything that is not a sequence
    /// of well-formed sections in the order the specification gives.
    pub fn parse(bytes: Bytes) -> Result<Message, DecodeError> {
        if bytes.len() > u32::MAX as usize {
            return Err(DecodeError::Invalid("message too large"));
        }
        let mut s = Sections::default();
        let mut d = Decoder::new(&bytes);
        let mut last = 0u64;
        let mut bare_start = None;
        let mut bare_end = bytes.len() as u32;
        while d.remaining() > 0 {
            let start = d.position() as u32;
            let code = d.read_descriptor(code_by_name)?;
            d.skip_value()?;
            let end = d.position() as u32;
            if !(section::HEADER..=section::FOOTER).contains(&code) {
                return Err(DecodeError::Invalid("unknown message section"));
            }
            let body_section = matches!(code, section::DATA | section::AMQP_SEQUENCE);
            if code < last || (code == last && !body_section) {
                return Err(DecodeError::Invalid("message sections out of order"));
            }
            last = code;
            let r = Some((start, end));
            match code {
                section::HEADER => s.header = r,
                section::DELIVERY_ANNOTATIONS => s.delivery_annotations = r,
                section::MESSAGE_ANNOTATIONS => s.message_annotations = r,
                section::PROPERTIES => s.properties = r,
                section::APPLICATION_PROPERTIES => s.application_properties = r,
                section::FOOTER => bare_end = start,
                _ => {}
            }
            if (section::PROPERTIES..=section::AMQP_VALUE).contains(&code) && bare_start.is_none() {
                bare_start = Some(start);
            }
        }
        s.bare_start = bare_start.unwrap_or(bare_end);
        s.bare_end = bare_end;
        Ok(Message { bytes, sections: s })
    }

    /// The message exactly as it arrived.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Encoded size in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the message has no sections at all.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The bare message (properties, application-properties, body), byte for byte.
    pub fn bare(&self) -> Bytes {
        self.bytes
            .slice(self.sections.bare_start as usize..self.sections.bare_end as usize)
    }

    fn decode_section<T>(
        &self,
        r: Option<(u32, u32)>,
        f: fn(&mut Decoder) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        match r {
            None => Ok(None),
            Some(r) => {
                let mut d = Decoder::window(&self.bytes, range(r));
                d.read_descriptor(code_by_name)?;
                f(&mut d).map(Some)
            }
        }
    }

    /// The header section, or the defaults when there is none.
    pub fn header(&self) -> Result<Header, DecodeError> {
        Ok(self
            .decode_section(self.sections.header, Header::decode_body)?
            .unwrap_or_default())
    }

    /// Whether the message carries message annotations.
    pub fn has_message_annotations(&self) -> bool {
        self.sections.message_annotations.is_some()
    }

    /// Whether the message carries a header section.
    pub fn has_header(&self) -> bool {
        self.sections.header.is_some()
    }

    /// The properties section.
    pub fn properties(&self) -> Result<Option<Properties>, DecodeError> {
        self.decode_section(self.sections.properties, Properties::decode_body)
    }

    /// The message annotations.
    pub fn message_annotations(&self) -> Result<Option<Fields>, DecodeError> {
        self.decode_section(self.sections.message_annotations, |d| {
            Ok(<Fields as FieldValue>::read_opt(d)?.unwrap_or_default())
        })
    }

    /// The values of the message annotations named `keys` (symbols), in one pass over
    /// the section and allocating only for the values found: for hot paths that look at
    /// one or two annotations of every message (scheduling, the MQTT bridge).
    pub fn find_annotations<const N: usize>(
        &self,
        keys: [&str; N],
    ) -> Result<[Option<Value>; N], DecodeError> {
        self.find_in(self.sections.message_annotations, keys)
    }

    /// The values of the delivery annotations named `keys` (symbols), like
    /// [`Message::find_annotations`]: what the node that sent this message on one hop told
    /// the next (the mesh's routing of a forwarded message).
    pub fn find_delivery_annotations<const N: usize>(
        &self,
        keys: [&str; N],
    ) -> Result<[Option<Value>; N], DecodeError> {
        self.find_in(self.sections.delivery_annotations, keys)
    }

    /// The message as the next hop is sent it, in two pieces: everything before and
    /// everything after its delivery annotations — where a node puts its own for the
    /// next hop, if it has any. Delivery annotations are meant for one hop (part 3
    /// §3.2.2), so a node passes on none it received. Without any, the split is where
    /// they would go: after the header.
    pub fn hop_parts(&self) -> [&[u8]; 2] {
        let (start, end) = match (self.sections.delivery_annotations, self.sections.header) {
            (Some((start, end)), _) => (start as usize, end as usize),
            (None, Some((_, h))) => (h as usize, h as usize),
            (None, None) => (0, 0),
        };
        [&self.bytes[..start], &self.bytes[end..]]
    }

    fn find_in<const N: usize>(
        &self,
        section: Option<(u32, u32)>,
        keys: [&str; N],
    ) -> Result<[Option<Value>; N], DecodeError> {
        let mut out = [const { None }; N];
        let Some(r) = section else {
            return Ok(out);
        };
        let mut d = Decoder::window(&self.bytes, range(r));
        d.read_descriptor(code_by_name)?;
        if d.take_null()? {
            return Ok(out);
        }
        let (count, end) = d.read_map_header()?;
        for _ in 0..count / 2 {
            match d.read_key_among(&keys)? {
                Some(i) => out[i] = Some(d.read_value()?),
                None => d.skip_value()?,
            }
        }
        d.skip_to(end)?;
        Ok(out)
    }

    /// The application properties, with string keys.
    pub fn application_properties(&self) -> Result<Option<Vec<(String, Value)>>, DecodeError> {
        self.decode_section(self.sections.application_properties, |d| {
            match d.read_value()? {
                Value::Map(entries) => entries
                    .into_iter()
                    .map(|(k, v)| match k {
                        Value::String(s) => Ok((s, v)),
                        _ => Err(DecodeError::Invalid(
                            "application-properties key is not a string",
                        )),
                    })
                    .collect(),
                Value::Null => Ok(Vec::new()),
                _ => Err(DecodeError::Invalid("application-properties is not a map")),
            }
        })
    }

    /// The properties' absolute-expiry-time (ms since the epoch), read without decoding
    /// the other properties (queues check it for every message).
    pub fn absolute_expiry_time(&self) -> Result<Option<i64>, DecodeError> {
        let Some(r) = self.sections.properties else {
            return Ok(None);
        };
        let mut d = Decoder::window(&self.bytes, range(r));
        d.read_descriptor(code_by_name)?;
        let (count, _) = d.read_list_header()?;
        if count < 9 {
            return Ok(None);
        }
        for _ in 0..8 {
            d.skip_value()?;
        }
        d.read_timestamp_opt()
    }

    /// The properties a protocol bridge or a reply reads from every message — reply-to,
    /// correlation-id, content-type — without decoding the others (no `to`, `subject`
    /// or message-id is allocated on the way).
    pub fn reply_properties(&self) -> Result<ReplyProperties, DecodeError> {
        let mut out = ReplyProperties::default();
        let Some(r) = self.sections.properties else {
            return Ok(out);
        };
        let mut d = Decoder::window(&self.bytes, range(r));
        d.read_descriptor(code_by_name)?;
        let (count, _) = d.read_list_header()?;
        for i in 0..count.min(7) {
            match i {
                4 => out.reply_to = Field::decode_field(&mut d, "reply_to")?,
                5 => out.correlation_id = Field::decode_field(&mut d, "correlation_id")?,
                6 => out.content_type = Field::decode_field(&mut d, "content_type")?,
                _ => d.skip_value()?,
            }
        }
        Ok(out)
    }

    /// The `to` address from the properties, used to route anonymous-relay sends.
    pub fn to(&self) -> Result<Option<String>, DecodeError> {
        Ok(self.properties()?.and_then(|p| p.to))
    }

    /// The encoded body sections as received (for bridges that pass a body they cannot
    /// map on as its AMQP encoding).
    pub fn body_bytes(&self) -> Bytes {
        self.bytes.slice(self.body_range())
    }

    /// Where the body sections lie: after the properties and application properties, up
    /// to the footer.
    fn body_range(&self) -> Range<usize> {
        let start = self
            .sections
            .application_properties
            .or(self.sections.properties)
            .map_or(self.sections.bare_start, |r| r.1);
        start as usize..(self.sections.bare_end as usize).max(start as usize)
    }

    /// The body sections: `data` sections concatenated, or the `amqp-value` / sequence.
    pub fn body(&self) -> Result<Body, DecodeError> {
        let mut d = Decoder::window(&self.bytes, self.body_range());
        // one data section (the common case) is returned as a slice, without a list
        let mut first: Option<Bytes> = None;
        let mut more: Vec<Bytes> = Vec::new();
        let mut seq = Vec::new();
        let mut value = None;
        while d.remaining() > 0 {
            let code = d.read_descriptor(code_by_name)?;
            match code {
                section::DATA => {
                    let part = d.read_binary_opt()?.unwrap_or_default();
                    match first {
                        None => first = Some(part),
                        Some(_) => more.push(part),
                    }
                }
                section::AMQP_SEQUENCE => seq.push(d.read_value()?),
                section::AMQP_VALUE => value = Some(d.read_value()?),
                _ => d.skip_value()?,
            }
        }
        Ok(if let Some(v) = value {
            Body::Value(v)
        } else if !seq.is_empty() {
            Body::Sequence(seq)
        } else {
            match first {
                None => Body::Empty,
                Some(only) if more.is_empty() => Body::Data(only),
                Some(first) => {
                    let mut all = BytesMut::with_capacity(
                        first.len() + more.iter().map(Bytes::len).sum::<usize>(),
                    );
                    all.extend_from_slice(&first);
                    for part in more {
                        all.extend_from_slice(&part);
                    }
                    Body::Data(all.freeze())
                }
            }
        })
    }

    /// The message with `header` in place of its header section, for the next hop:
    /// returns the new header's encoding and the original bytes that follow the old
    /// header and the delivery annotations (which were for this hop only, see
    /// [`Message::hop_parts`]), to be sent in sequence.
    pub fn with_header(&self, header: &Header) -> (BytesMut, Bytes) {
        let mut h = BytesMut::with_capacity(24);
        header.encode(&mut h);
        let rest_start = self
            .sections
            .delivery_annotations
            .or(self.sections.header)
            .map(|r| r.1 as usize)
            .unwrap_or(0);
        (h, self.bytes.slice(rest_start..))
    }

    /// The message with `extra` merged into its message annotations, as a `modified`
    /// outcome asks for its next delivery (part 3 §3.4.5): an annotation of a key the
    /// message has replaces its value, the others are added after the existing ones. Only
    /// the message-annotations section is encoded anew; the header, delivery annotations,
    /// bare message and footer are the original bytes, copied after it into one buffer
    /// (never decoded or re-encoded). Fails if the existing annotations do not decode as a
    /// symbol-keyed map.
    pub fn with_annotations(&self, extra: &Fields) -> Result<Message, DecodeError> {
        let mut merged = self.message_annotations()?.unwrap_or_default();
        for (key, value) in extra {
            match merged.iter_mut().find(|(k, _)| k == key) {
                Some(slot) => slot.1 = value.clone(),
                None => merged.push((key.clone(), value.clone())),
            }
        }
        // where the section is, or where it goes: after header and delivery annotations
        let (start, end) = self.sections.message_annotations.unwrap_or_else(|| {
            let at = self
                .sections
                .delivery_annotations
                .or(self.sections.header)
                .map_or(0, |r| r.1);
            (at, at)
        });
        let (start, end) = (start as usize, end as usize);
        let mut out = BytesMut::with_capacity(self.bytes.len() - (end - start) + 64);
        out.extend_from_slice(&self.bytes[..start]);
        encode::descriptor(&mut out, section::MESSAGE_ANNOTATIONS);
        encode::fields(&mut out, &merged);
        out.extend_from_slice(&self.bytes[end..]);
        Message::parse(out.freeze())
    }

    /// Encoded size of the message-annotations section (0 without one).
    pub fn message_annotations_len(&self) -> usize {
        self.sections
            .message_annotations
            .map_or(0, |r| (r.1 - r.0) as usize)
    }
}

/// A decoded message body.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Empty,
    Data(Bytes),
    Value(Value),
    Sequence(Vec<Value>),
}

/// Builds a message's encoding section by section (clients, the benchmark, tests).
#[derive(Debug, Default, Clone)]
pub struct MessageBuilder {
    pub header: Option<Header>,
    pub message_annotations: Option<Fields>,
    pub properties: Option<Properties>,
    pub application_properties: Vec<(String, Value)>,
    pub body: Option<Body>,
}

impl MessageBuilder {
    /// A builder with no sections.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a `data` body.
    pub fn data(mut self, bytes: impl Into<Bytes>) -> Self {
        self.body = Some(Body::Data(bytes.into()));
        self
    }

    /// Sets an `amqp-value` body.
    pub fn value(mut self, v: Value) -> Self {
        self.body = Some(Body::Value(v));
        self
    }

    /// Sets the properties section.
    pub fn properties(mut self, p: Properties) -> Self {
        self.properties = Some(p);
        self
    }

    /// Sets the header section.
    pub fn header(mut self, h: Header) -> Self {
        self.header = Some(h);
        self
    }

    /// Adds an application property.
    pub fn app_property(mut self, k: impl Into<String>, v: Value) -> Self {
        self.application_properties.push((k.into(), v));
        self
    }

    /// Encodes the message.
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(64);
        self.encode_into(&mut buf);
        buf.freeze()
    }

    /// Encodes the message into `buf`.
    pub fn encode_into(&self, buf: &mut BytesMut) {
        if let Some(h) = &self.header {
            h.encode(buf);
        }
        if let Some(a) = &self.message_annotations {
            encode::descriptor(buf, section::MESSAGE_ANNOTATIONS);
            encode::fields(buf, a);
        }
        if let Some(p) = &self.properties {
            p.encode(buf);
        }
        if !self.application_properties.is_empty() {
            encode::descriptor(buf, section::APPLICATION_PROPERTIES);
            let map: Vec<(Value, Value)> = self
                .application_properties
                .iter()
                .map(|(k, v)| (Value::String(k.clone()), v.clone()))
                .collect();
            encode::value(buf, &Value::Map(map));
        }
        match &self.body {
            None | Some(Body::Empty) => {}
            Some(Body::Data(b)) => {
                encode::descriptor(buf, section::DATA);
                encode::binary(buf, b);
            }
            Some(Body::Value(v)) => {
                encode::descriptor(buf, section::AMQP_VALUE);
                encode::value(buf, v);
            }
            Some(Body::Sequence(items)) => {
                for item in items {
                    encode::descriptor(buf, section::AMQP_SEQUENCE);
                    encode::value(buf, item);
                }
            }
        }
    }
}
