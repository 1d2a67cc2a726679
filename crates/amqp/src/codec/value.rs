//! The dynamically typed AMQP value, used where the specification allows "any" type:
//! maps of properties and annotations, filters, error info, message ids.

use bytes::Bytes;
use std::fmt;

/// An AMQP symbol: an ASCII name used for conditions, capabilities and map keys.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Symbol(pub String);

impl Symbol {
    /// Wraps a string as a symbol.
    pub fn new(s: impl Into<String>) -> Self {
        Symbol(s.into())
    }
    /// The symbol's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, ":{}", self.0)
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Symbol {
    fn from(s: &str) -> Self {
        Symbol(s.to_string())
    }
}

/// A symbol-keyed map (the spec's `fields` type): properties, annotations, error info.
pub type Fields = Vec<(Symbol, Value)>;

/// An AMQP array: every element has the same type, encoded with one shared constructor.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// The element type, as the widest format code of its family (e.g. `UINT` for any
    /// unsigned int, `SYM8` for symbols); `DESCRIBED` for described elements.
    pub element_code: u8,
    /// For arrays of described values, the shared descriptor.
    pub descriptor: Option<Box<Value>>,
    /// The elements; for described arrays, the values without their descriptor.
    pub items: Vec<Value>,
}

/// Any AMQP 1.0 value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Ubyte(u8),
    Ushort(u16),
    Uint(u32),
    Ulong(u64),
    Byte(i8),
    Short(i16),
    Int(i32),
    Long(i64),
    Float(f32),
    Double(f64),
    Decimal32([u8; 4]),
    Decimal64([u8; 8]),
    Decimal128([u8; 16]),
    Char(char),
    /// Milliseconds since the Unix epoch.
    Timestamp(i64),
    Uuid([u8; 16]),
    Binary(Bytes),
    String(String),
    Symbol(Symbol),
    List(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Array(Array),
    Described(Box<Value>, Box<Value>),
}

impl Value {
    /// The value as a string slice when it is a string or symbol.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            Value::Symbol(s) => Some(s.as_str()),
            _ => None,
        }
    }

    /// The value as an unsigned integer when it is any unsigned integer type.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::Ubyte(v) => Some(v as u64),
            Value::Ushort(v) => Some(v as u64),
            Value::Uint(v) => Some(v as u64),
            Value::Ulong(v) => Some(v),
            _ => None,
        }
    }

    /// The value as a signed integer when it is any integer type that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Byte(v) => Some(v as i64),
            Value::Short(v) => Some(v as i64),
            Value::Int(v) => Some(v as i64),
            Value::Long(v) => Some(v),
            Value::Ubyte(v) => Some(v as i64),
            Value::Ushort(v) => Some(v as i64),
            Value::Uint(v) => Some(v as i64),
            Value::Ulong(v) => i64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The format-code family of this value, as used for array element types.
    pub fn family_code(&self) -> u8 {
        use super::format::*;
        match self {
            Value::Null => NULL,
            Value::Bool(_) => BOOLEAN,
            Value::Ubyte(_) => UBYTE,
            Value::Ushort(_) => USHORT,
            Value::Uint(_) => UINT,
            Value::Ulong(_) => ULONG,
            Value::Byte(_) => BYTE,
            Value::Short(_) => SHORT,
            Value::Int(_) => INT,
            Value::Long(_) => LONG,
            Value::Float(_) => FLOAT,
            Value::Double(_) => DOUBLE,
            Value::Decimal32(_) => DECIMAL32,
            Value::Decimal64(_) => DECIMAL64,
            Value::Decimal128(_) => DECIMAL128,
            Value::Char(_) => CHAR,
            Value::Timestamp(_) => TIMESTAMP,
            Value::Uuid(_) => UUID,
            Value::Binary(_) => VBIN8,
            Value::String(_) => STR8,
            Value::Symbol(_) => SYM8,
            Value::List(_) => LIST32,
            Value::Map(_) => MAP32,
            Value::Array(_) => ARRAY32,
            Value::Described(..) => DESCRIBED,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_string())
    }
}
