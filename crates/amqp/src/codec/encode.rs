//! Encoding of AMQP values into a growing buffer, always in the smallest encoding.

use super::format::*;
use super::value::{Array, Symbol, Value};
use bytes::{BufMut, BytesMut};

/// Writes a null.
pub fn null(buf: &mut BytesMut) {
    buf.put_u8(NULL);
}

/// Writes a boolean.
pub fn boolean(buf: &mut BytesMut, v: bool) {
    buf.put_u8(if v { TRUE } else { FALSE });
}

/// Writes an unsigned byte.
pub fn ubyte(buf: &mut BytesMut, v: u8) {
    buf.put_u8(UBYTE);
    buf.put_u8(v);
}

/// Writes an unsigned short.
pub fn ushort(buf: &mut BytesMut, v: u16) {
    buf.put_u8(USHORT);
    buf.put_u16(v);
}

/// Writes an unsigned int in its smallest encoding.
pub fn uint(buf: &mut BytesMut, v: u32) {
    if v == 0 {
        buf.put_u8(UINT0);
    } else if v < 256 {
        buf.put_u8(SMALLUINT);
        buf.put_u8(v as u8);
    } else {
        buf.put_u8(UINT);
        buf.put_u32(v);
    }
}

/// Writes an unsigned long in its smallest encoding.
pub fn ulong(buf: &mut BytesMut, v: u64) {
    if v == 0 {
        buf.put_u8(ULONG0);
    } else if v < 256 {
        buf.put_u8(SMALLULONG);
        buf.put_u8(v as u8);
    } else {
        buf.put_u8(ULONG);
        buf.put_u64(v);
    }
}

/// Writes a timestamp (milliseconds since the Unix epoch).
pub fn timestamp(buf: &mut BytesMut, v: i64) {
    buf.put_u8(TIMESTAMP);
    buf.put_i64(v);
}

fn variable(buf: &mut BytesMut, code8: u8, code32: u8, bytes: &[u8]) {
    if bytes.len() < 256 {
        buf.put_u8(code8);
        buf.put_u8(bytes.len() as u8);
    } else {
        buf.put_u8(code32);
        buf.put_u32(bytes.len() as u32);
    }
    buf.put_slice(bytes);
}

/// Writes a binary.
pub fn binary(buf: &mut BytesMut, v: &[u8]) {
    variable(buf, VBIN8, VBIN32, v);
}

/// Writes a UTF-8 string.
pub fn string(buf: &mut BytesMut, v: &str) {
    variable(buf, STR8, STR32, v.as_bytes());
}

/// Writes a symbol.
pub fn symbol(buf: &mut BytesMut, v: &str) {
    variable(buf, SYM8, SYM32, v.as_bytes());
}

/// Writes a `multiple` symbol field: one symbol alone, several as an array.
pub fn symbols(buf: &mut BytesMut, v: &[Symbol]) {
    if v.len() == 1 {
        symbol(buf, v[0].as_str());
    } else {
        let items: Vec<Value> = v.iter().cloned().map(Value::Symbol).collect();
        array(
            buf,
            &Array {
                element_code: SYM8,
                descriptor: None,
                items,
            },
        );
    }
}

/// Starts a described value with a numeric descriptor; the value must follow.
pub fn descriptor(buf: &mut BytesMut, code: u64) {
    buf.put_u8(DESCRIBED);
    ulong(buf, code);
}

/// Writes a symbol-keyed map.
pub fn fields(buf: &mut BytesMut, v: &[(Symbol, Value)]) {
    let start = begin_compound(buf, MAP32);
    for (k, val) in v {
        symbol(buf, k.as_str());
        value(buf, val);
    }
    end_compound(buf, start, v.len() * 2, MAP8);
}

/// Reserves a compound header; [`end_compound`] fills it in. The 8-bit form is reserved,
/// as nearly every compound fits it: only a larger one is moved to make room for the 32-bit
/// header. Returns the header's offset.
pub fn begin_compound(buf: &mut BytesMut, code32: u8) -> usize {
    let start = buf.len();
    buf.put_u8(code32);
    buf.put_u16(0);
    start
}

/// Completes a compound started by [`begin_compound`] holding `count` elements.
pub fn end_compound(buf: &mut BytesMut, start: usize, count: usize, code8: u8) {
    let body_len = buf.len() - start - 3;
    if body_len + 1 < 256 && count < 256 {
        buf[start] = code8;
        buf[start + 1] = (body_len + 1) as u8;
        buf[start + 2] = count as u8;
    } else {
        // make room for the 32-bit size and count: 6 more header bytes
        buf.put_bytes(0, 6);
        buf.copy_within(start + 3..start + 3 + body_len, start + 9);
        buf[start + 1..start + 5].copy_from_slice(&((body_len + 4) as u32).to_be_bytes());
        buf[start + 5..start + 9].copy_from_slice(&(count as u32).to_be_bytes());
    }
}

/// Writes any value.
pub fn value(buf: &mut BytesMut, v: &Value) {
    match v {
        Value::Null => null(buf),
        Value::Bool(b) => boolean(buf, *b),
        Value::Ubyte(x) => ubyte(buf, *x),
        Value::Ushort(x) => ushort(buf, *x),
        Value::Uint(x) => uint(buf, *x),
        Value::Ulong(x) => ulong(buf, *x),
        Value::Byte(x) => {
            buf.put_u8(BYTE);
            buf.put_i8(*x);
        }
        Value::Short(x) => {
            buf.put_u8(SHORT);
            buf.put_i16(*x);
        }
        Value::Int(x) => {
            if (-128..=127).contains(x) {
                buf.put_u8(SMALLINT);
                buf.put_i8(*x as i8);
            } else {
                buf.put_u8(INT);
                buf.put_i32(*x);
            }
        }
        Value::Long(x) => {
            if (-128..=127).contains(x) {
                buf.put_u8(SMALLLONG);
                buf.put_i8(*x as i8);
            } else {
                buf.put_u8(LONG);
                buf.put_i64(*x);
            }
        }
        Value::Float(x) => {
            buf.put_u8(FLOAT);
            buf.put_u32(x.to_bits());
        }
        Value::Double(x) => {
            buf.put_u8(DOUBLE);
            buf.put_u64(x.to_bits());
        }
        Value::Decimal32(b) => {
            buf.put_u8(DECIMAL32);
            buf.put_slice(b);
        }
        Value::Decimal64(b) => {
            buf.put_u8(DECIMAL64);
            buf.put_slice(b);
        }
        Value::Decimal128(b) => {
            buf.put_u8(DECIMAL128);
            buf.put_slice(b);
        }
        Value::Char(c) => {
            buf.put_u8(CHAR);
            buf.put_u32(*c as u32);
        }
        Value::Timestamp(t) => timestamp(buf, *t),
        Value::Uuid(u) => {
            buf.put_u8(UUID);
            buf.put_slice(u);
        }
        Value::Binary(b) => binary(buf, b),
        Value::String(s) => string(buf, s),
        Value::Symbol(s) => symbol(buf, s.as_str()),
        Value::List(items) => {
            if items.is_empty() {
                buf.put_u8(LIST0);
            } else {
                let start = begin_compound(buf, LIST32);
                for item in items {
                    value(buf, item);
                }
                end_compound(buf, start, items.len(), LIST8);
            }
        }
        Value::Map(entries) => {
            let start = begin_compound(buf, MAP32);
            for (k, val) in entries {
                value(buf, k);
                value(buf, val);
            }
            end_compound(buf, start, entries.len() * 2, MAP8);
        }
        Value::Array(a) => array(buf, a),
        Value::Described(d, val) => {
            buf.put_u8(DESCRIBED);
            value(buf, d);
            value(buf, val);
        }
    }
}

/// Writes an array: one constructor, then each element's bare encoding.
pub fn array(buf: &mut BytesMut, a: &Array) {
    let start = begin_compound(buf, ARRAY32);
    if let Some(d) = &a.descriptor {
        buf.put_u8(DESCRIBED);
        value(buf, d);
    }
    let code = element_constructor(a);
    buf.put_u8(code);
    for item in &a.items {
        element(buf, code, item);
    }
    end_compound(buf, start, a.items.len(), ARRAY8);
}

/// Picks the constructor shared by every element: the widest form of the family, except
/// that variable-width types use the 8-bit size when every element fits.
fn element_constructor(a: &Array) -> u8 {
    let family = match a.items.first() {
        Some(first) if a.descriptor.is_some() => first.family_code(),
        Some(first) => first.family_code(),
        None if a.element_code == DESCRIBED => NULL,
        None => a.element_code,
    };
    let small = |len: &dyn Fn(&Value) -> usize| a.items.iter().all(|v| len(v) < 256);
    match family {
        VBIN8 => {
            if small(&|v| if let Value::Binary(b) = v { b.len() } else { 0 }) {
                VBIN8
            } else {
                VBIN32
            }
        }
        STR8 => {
            if small(&|v| if let Value::String(s) = v { s.len() } else { 0 }) {
                STR8
            } else {
                STR32
            }
        }
        SYM8 => {
            if small(&|v| {
                if let Value::Symbol(s) = v {
                    s.0.len()
                } else {
                    0
                }
            }) {
                SYM8
            } else {
                SYM32
            }
        }
        other => other,
    }
}

/// Writes one array element without its constructor.
fn element(buf: &mut BytesMut, code: u8, v: &Value) {
    let mut tmp = BytesMut::new();
    match (code, v) {
        (BOOLEAN, Value::Bool(b)) => buf.put_u8(*b as u8),
        (UINT, Value::Uint(x)) => buf.put_u32(*x),
        (ULONG, Value::Ulong(x)) => buf.put_u64(*x),
        (INT, Value::Int(x)) => buf.put_i32(*x),
        (LONG, Value::Long(x)) => buf.put_i64(*x),
        (VBIN8, Value::Binary(b)) => {
            buf.put_u8(b.len() as u8);
            buf.put_slice(b);
        }
        (STR8, Value::String(s)) => {
            buf.put_u8(s.len() as u8);
            buf.put_slice(s.as_bytes());
        }
        (SYM8, Value::Symbol(s)) => {
            buf.put_u8(s.0.len() as u8);
            buf.put_slice(s.0.as_bytes());
        }
        (LIST32, Value::List(items)) => {
            buf.put_u32(0);
            let start = buf.len();
            buf.put_u32(items.len() as u32);
            for i in items {
                value(buf, i);
            }
            let size = (buf.len() - start) as u32;
            buf[start - 4..start].copy_from_slice(&size.to_be_bytes());
        }
        (MAP32, Value::Map(entries)) => {
            buf.put_u32(0);
            let start = buf.len();
            buf.put_u32((entries.len() * 2) as u32);
            for (k, val) in entries {
                value(buf, k);
                value(buf, val);
            }
            let size = (buf.len() - start) as u32;
            buf[start - 4..start].copy_from_slice(&size.to_be_bytes());
        }
        (ARRAY32, Value::Array(inner)) => {
            // the nested array's own encoding, minus the constructor byte, in 32-bit form
            let mut nested = BytesMut::new();
            array(&mut nested, inner);
            if nested[0] == ARRAY8 {
                let size = nested[1] as u32 + 3;
                let count = nested[2] as u32;
                buf.put_u32(size);
                buf.put_u32(count);
                buf.put_slice(&nested[3..]);
            } else {
                buf.put_slice(&nested[1..]);
            }
        }
        _ => {
            // fixed-width families and the 32-bit variable forms: the value's own
            // encoding minus its constructor byte is exactly the element encoding
            value(&mut tmp, v);
            widen_into(buf, code, &tmp);
        }
    }
}

/// Copies a standalone encoding into an array element of constructor `code`.
fn widen_into(buf: &mut BytesMut, code: u8, enc: &[u8]) {
    match code {
        VBIN32 | STR32 | SYM32 => {
            // `enc` may be in the 8-bit form; re-emit with a 32-bit length
            let (len, body) = if matches!(enc[0], VBIN8 | STR8 | SYM8) {
                (enc[1] as u32, &enc[2..])
            } else {
                (
                    u32::from_be_bytes([enc[1], enc[2], enc[3], enc[4]]),
                    &enc[5..],
                )
            };
            buf.put_u32(len);
            buf.put_slice(body);
        }
        _ => buf.put_slice(&enc[1..]),
    }
}
