//! What selector identifiers mean for an AMQP message: the JMS header names
//! mapped the way the AMQP JMS mapping (and Qpid JMS, and ActiveMQ Artemis) map
//! them, and every other name looked up in the application-properties.
//!
//! Sections are decoded lazily, at most once per evaluation, and only if an
//! identifier needs them; a section that fails to decode is treated as absent.
//! The table of names is in the crate documentation.

use std::cell::OnceCell;

use throng_amqp::codec::{Fields, Value};
use throng_amqp::definitions::{Header, Properties};
use throng_amqp::message::Message;

use crate::SelValue;

/// The message annotation older JMS clients carry JMSType in.
const JMS_TYPE_ANNOTATION: &str = "x-opt-jms-type";
/// The JMS default priority, for messages without one.
const DEFAULT_PRIORITY: u8 = 4;
/// The highest JMS priority; AMQP priorities above it read as 9.
const MAX_PRIORITY: u8 = 9;

/// Identifier lookup over one message, decoding sections on first use.
pub(crate) struct MessageFields<'m> {
    msg: &'m Message,
    header: OnceCell<Header>,
    properties: OnceCell<Option<Properties>>,
    annotations: OnceCell<Option<Fields>>,
    application_properties: OnceCell<Option<Vec<(String, Value)>>>,
}

impl<'m> MessageFields<'m> {
    pub(crate) fn new(msg: &'m Message) -> Self {
        MessageFields {
            msg,
            header: OnceCell::new(),
            properties: OnceCell::new(),
            annotations: OnceCell::new(),
            application_properties: OnceCell::new(),
        }
    }

    fn header(&self) -> &Header {
        self.header
            .get_or_init(|| self.msg.header().unwrap_or_default())
    }

    fn properties(&self) -> Option<&Properties> {
        self.properties
            .get_or_init(|| self.msg.properties().ok().flatten())
            .as_ref()
    }

    fn annotation(&self, key: &str) -> Option<&Value> {
        self.annotations
            .get_or_init(|| self.msg.message_annotations().ok().flatten())
            .as_ref()?
            .iter()
            .find(|(k, _)| k.as_str() == key)
            .map(|(_, v)| v)
    }

    fn application_property(&self, name: &str) -> Option<&Value> {
        self.application_properties
            .get_or_init(|| self.msg.application_properties().ok().flatten())
            .as_ref()?
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// The value of identifier `name`, or `None` for NULL.
    pub(crate) fn lookup(&self, name: &str) -> Option<SelValue> {
        self.header_field(name)
            .or_else(|| self.application_property(name).and_then(property_value))
    }

    /// The JMS header fields and JMSX properties that come from the AMQP header and
    /// properties sections. `None` when `name` is not one, or the field is absent.
    fn header_field(&self, name: &str) -> Option<SelValue> {
        let props = || self.properties();
        match name {
            "JMSDeliveryMode" => {
                let durable = self.header().durable.unwrap_or(false);
                Some(SelValue::String(
                    if durable {
                        "PERSISTENT"
                    } else {
                        "NON_PERSISTENT"
                    }
                    .to_string(),
                ))
            }
            "JMSPriority" => {
                let priority = self.header().priority.unwrap_or(DEFAULT_PRIORITY);
                Some(SelValue::Long(priority.min(MAX_PRIORITY).into()))
            }
            "JMSRedelivered" => Some(SelValue::Bool(
                self.header().delivery_count.unwrap_or(0) > 0,
            )),
            "JMSXDeliveryCount" => Some(SelValue::Long(
                i64::from(self.header().delivery_count.unwrap_or(0)) + 1,
            )),
            "JMSMessageID" => props()?
                .message_id
                .as_ref()
                .and_then(message_id_string)
                .map(SelValue::String),
            "JMSCorrelationID" => props()?
                .correlation_id
                .as_ref()
                .and_then(correlation_id_string)
                .map(SelValue::String),
            "JMSTimestamp" => Some(SelValue::Long(
                props().and_then(|p| p.creation_time).map_or(0, |t| t.0),
            )),
            "JMSExpiration" => Some(SelValue::Long(
                props()
                    .and_then(|p| p.absolute_expiry_time)
                    .map_or(0, |t| t.0),
            )),
            "JMSType" => match self.annotation(JMS_TYPE_ANNOTATION).and_then(Value::as_str) {
                Some(t) => Some(SelValue::String(t.to_string())),
                None => props()?.subject.clone().map(SelValue::String),
            },
            "JMSXGroupID" => props()?.group_id.clone().map(SelValue::String),
            "JMSXGroupSeq" => props()?.group_sequence.map(|s| SelValue::Long(s.into())),
            "JMSXUserID" => props()?
                .user_id
                .as_ref()
                .and_then(|id| std::str::from_utf8(id).ok())
                .map(|id| SelValue::String(id.to_string())),
            _ => None,
        }
    }
}

/// An application-property value as a selector sees it: strings (and symbols),
/// booleans, integers of every width as long (an unsigned long above
/// `i64::MAX` as double), float and double as double; anything else is NULL.
fn property_value(value: &Value) -> Option<SelValue> {
    Some(match value {
        Value::String(s) => SelValue::String(s.clone()),
        Value::Symbol(s) => SelValue::String(s.as_str().to_string()),
        Value::Bool(b) => SelValue::Bool(*b),
        Value::Float(v) => SelValue::Double(f64::from(*v)),
        Value::Double(v) => SelValue::Double(*v),
        Value::Ulong(v) if *v > i64::MAX as u64 => SelValue::Double(*v as f64),
        v => SelValue::Long(v.as_i64()?),
    })
}

const ID_PREFIX: &str = "ID:";
const ENCODING_PREFIXES: [&str; 5] = [
    "AMQP_BINARY:",
    "AMQP_UUID:",
    "AMQP_ULONG:",
    "AMQP_STRING:",
    "AMQP_NO_PREFIX:",
];

/// Whether `id` (a string message-id or correlation-id) starts with `ID:`
/// followed by one of the type-encoding prefixes, so that it has to be escaped.
fn has_encoding_prefix(id: &str) -> bool {
    id.strip_prefix(ID_PREFIX)
        .is_some_and(|rest| ENCODING_PREFIXES.iter().any(|p| rest.starts_with(p)))
}

/// A non-string message-id or correlation-id in the `ID:AMQP_<TYPE>:<value>` form.
fn encoded_id(id: &Value) -> Option<String> {
    match id {
        Value::Uuid(b) => Some(format!("ID:AMQP_UUID:{}", uuid_string(b))),
        Value::Ulong(v) => Some(format!("ID:AMQP_ULONG:{v}")),
        Value::Binary(b) => {
            let mut s = String::with_capacity(15 + 2 * b.len());
            s.push_str("ID:AMQP_BINARY:");
            for byte in b.iter() {
                s.push_str(&format!("{byte:02X}"));
            }
            Some(s)
        }
        _ => None,
    }
}

/// JMSMessageID as Qpid JMS presents it (AmqpMessageIdHelper.toMessageIdString).
fn message_id_string(id: &Value) -> Option<String> {
    match id.as_str() {
        Some(s) if !s.starts_with(ID_PREFIX) => Some(format!("ID:AMQP_NO_PREFIX:{s}")),
        Some(s) if has_encoding_prefix(s) => Some(format!("ID:AMQP_STRING:{s}")),
        Some(s) => Some(s.to_string()),
        None => encoded_id(id),
    }
}

/// JMSCorrelationID as Qpid JMS presents it (toCorrelationIdString): like
/// JMSMessageID, except that a string without "ID:" is an application-specific
/// correlation-id and passes through unchanged.
fn correlation_id_string(id: &Value) -> Option<String> {
    match id.as_str() {
        Some(s) if has_encoding_prefix(s) => Some(format!("ID:AMQP_STRING:{s}")),
        Some(s) => Some(s.to_string()),
        None => encoded_id(id),
    }
}

/// A UUID in its canonical lowercase 8-4-4-4-12 form, as `java.util.UUID` prints it.
fn uuid_string(b: &[u8; 16]) -> String {
    let hex: String = b.iter().map(|byte| format!("{byte:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use throng_amqp::codec::Symbol;

    #[test]
    fn message_ids() {
        let s = |v: &str| Value::String(v.to_string());
        let cases = [
            (s("ID:abc-1"), "ID:abc-1"),
            (s("abc"), "ID:AMQP_NO_PREFIX:abc"),
            (s(""), "ID:AMQP_NO_PREFIX:"),
            (s("ID:AMQP_ULONG:5"), "ID:AMQP_STRING:ID:AMQP_ULONG:5"),
            (
                s("ID:AMQP_NO_PREFIX:x"),
                "ID:AMQP_STRING:ID:AMQP_NO_PREFIX:x",
            ),
            (s("ID:AMQP_OTHER:x"), "ID:AMQP_OTHER:x"),
            (Value::Ulong(123), "ID:AMQP_ULONG:123"),
            (Value::Ulong(u64::MAX), "ID:AMQP_ULONG:18446744073709551615"),
            (
                Value::Uuid([
                    0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x12, 0xd3, 0xa4, 0x56, 0x42, 0x66, 0x14,
                    0x17, 0x40, 0x00,
                ]),
                "ID:AMQP_UUID:123e4567-e89b-12d3-a456-426614174000",
            ),
            (
                Value::Binary(vec![0x00, 0xab, 0x10, 0xff].into()),
                "ID:AMQP_BINARY:00AB10FF",
            ),
            (Value::Binary(Vec::new().into()), "ID:AMQP_BINARY:"),
        ];
        for (id, expected) in cases {
            assert_eq!(message_id_string(&id).as_deref(), Some(expected), "{id:?}");
        }
        assert_eq!(message_id_string(&Value::Int(5)), None);
    }

    #[test]
    fn correlation_ids() {
        let s = |v: &str| Value::String(v.to_string());
        let cases = [
            (s("abc"), "abc"),
            (s("ID:abc"), "ID:abc"),
            (s("ID:AMQP_UUID:x"), "ID:AMQP_STRING:ID:AMQP_UUID:x"),
            (Value::Ulong(7), "ID:AMQP_ULONG:7"),
            (Value::Binary(vec![1, 2].into()), "ID:AMQP_BINARY:0102"),
        ];
        for (id, expected) in cases {
            assert_eq!(
                correlation_id_string(&id).as_deref(),
                Some(expected),
                "{id:?}"
            );
        }
    }

    #[test]
    fn property_values() {
        let cases = [
            (
                Value::String("x".into()),
                Some(SelValue::String("x".into())),
            ),
            (
                Value::Symbol(Symbol::new("sym")),
                Some(SelValue::String("sym".into())),
            ),
            (Value::Bool(true), Some(SelValue::Bool(true))),
            (Value::Byte(-1), Some(SelValue::Long(-1))),
            (Value::Short(-300), Some(SelValue::Long(-300))),
            (Value::Int(70_000), Some(SelValue::Long(70_000))),
            (Value::Long(i64::MIN), Some(SelValue::Long(i64::MIN))),
            (Value::Ubyte(255), Some(SelValue::Long(255))),
            (Value::Ushort(65_535), Some(SelValue::Long(65_535))),
            (Value::Uint(u32::MAX), Some(SelValue::Long(u32::MAX.into()))),
            (Value::Ulong(5), Some(SelValue::Long(5))),
            (
                Value::Ulong(u64::MAX),
                Some(SelValue::Double(u64::MAX as f64)),
            ),
            (Value::Float(1.5), Some(SelValue::Double(1.5))),
            (Value::Double(-2.25), Some(SelValue::Double(-2.25))),
            (Value::Null, None),
            (Value::Char('x'), None),
            (Value::Timestamp(1000), None),
            (Value::Uuid([0; 16]), None),
            (Value::Binary(vec![1].into()), None),
            (Value::Decimal64([0; 8]), None),
            (Value::List(vec![Value::Int(1)]), None),
            (Value::Map(vec![]), None),
        ];
        for (value, expected) in cases {
            assert_eq!(property_value(&value), expected, "{value:?}");
        }
    }
}
