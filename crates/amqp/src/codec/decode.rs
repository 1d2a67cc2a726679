//! Decoding of AMQP values from a byte buffer.
//!
//! The decoder works on a shared [`Bytes`] so binary values (delivery tags, payloads) are
//! slices of the frame they arrived in, never copies. Every length is checked against the
//! bytes actually present before anything is allocated, and nesting depth is bounded, so a
//! malformed or hostile frame costs at most the memory of the frame itself.

use super::format::*;
use super::value::{Array, Symbol, Value};
use bytes::Bytes;

/// Why bytes could not be decoded; always answered with `amqp:decode-error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated input: needed {needed} more bytes")]
    Truncated { needed: usize },
    #[error("invalid format code 0x{0:02x}")]
    InvalidCode(u8),
    #[error("expected {expected}, found format code 0x{found:02x}")]
    UnexpectedType { expected: &'static str, found: u8 },
    #[error("mandatory field `{0}` is missing")]
    MissingField(&'static str),
    #[error("invalid UTF-8 in string")]
    InvalidUtf8,
    #[error("invalid char code point {0:#x}")]
    InvalidChar(u32),
    #[error("nesting deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("{0}")]
    Invalid(&'static str),
}

/// Deepest nesting of compound values accepted (protects the stack).
pub const MAX_DEPTH: u32 = 48;

/// Array elements of zero width (null, true, uint0, list0 ...) a decoder accepts beyond
/// one per byte of its buffer: they cost no input bytes, so without a budget a few bytes
/// could claim millions of values.
const ZERO_WIDTH_SLACK: usize = 1024;

/// A cursor over an encoded buffer. It borrows the buffer, so a decoder over part of a
/// message costs no reference-count traffic; only values taken out as `Bytes` (binaries,
/// a transfer's payload) share the buffer.
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    /// The buffer values are sliced from.
    owner: &'a Bytes,
    /// The part of `owner` being decoded; positions are relative to it.
    buf: &'a [u8],
    pos: usize,
    depth: u32,
    /// Zero-width array elements still allowed (see [`ZERO_WIDTH_SLACK`]).
    zero_width_budget: usize,
}

type Result<T> = std::result::Result<T, DecodeError>;

impl<'a> Decoder<'a> {
    /// Starts decoding at the beginning of `buf`.
    pub fn new(buf: &'a Bytes) -> Self {
        Self::window(buf, 0..buf.len())
    }

    /// Decodes `range` of `buf` only (a message section, say); positions count from its
    /// start. An out-of-bounds range decodes as empty.
    pub fn window(buf: &'a Bytes, range: std::ops::Range<usize>) -> Self {
        let window = buf.get(range).unwrap_or_default();
        Decoder {
            owner: buf,
            buf: window,
            pos: 0,
            depth: 0,
            zero_width_budget: window.len().saturating_add(ZERO_WIDTH_SLACK),
        }
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Current offset from the start of the buffer.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The unconsumed rest of the buffer, consuming it.
    pub fn take_rest(&mut self) -> Bytes {
        let rest = self.owner.slice_ref(&self.buf[self.pos..]);
        self.pos = self.buf.len();
        rest
    }

    fn need(&self, n: usize) -> Result<()> {
        if self.remaining() < n {
            Err(DecodeError::Truncated {
                needed: n - self.remaining(),
            })
        } else {
            Ok(())
        }
    }

    /// Moves the cursor to `end`, which must lie within the buffer and not behind it.
    pub fn skip_to(&mut self, end: usize) -> Result<()> {
        if end < self.pos || end > self.buf.len() {
            return Err(DecodeError::Invalid(
                "compound size does not match its contents",
            ));
        }
        self.pos = end;
        Ok(())
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        self.need(1)?;
        let v = self.buf[self.pos];
        self.pos += 1;
        Ok(v)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        self.need(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&self.buf[self.pos..self.pos + N]);
        self.pos += N;
        Ok(out)
    }

    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn take(&mut self, n: usize) -> Result<Bytes> {
        self.need(n)?;
        let b = self.owner.slice_ref(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(b)
    }

    fn take_slice(&mut self, n: usize) -> Result<&'a [u8]> {
        self.need(n)?;
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// The next format code, without consuming it.
    pub fn peek_code(&self) -> Result<u8> {
        self.need(1)?;
        Ok(self.buf[self.pos])
    }

    /// Consumes a null if one is next; tells whether it did.
    pub fn take_null(&mut self) -> Result<bool> {
        if self.peek_code()? == NULL {
            self.pos += 1;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn var_len(&mut self, code: u8) -> Result<usize> {
        Ok(if code & 0xf0 == 0xa0 {
            self.u8()? as usize
        } else {
            self.u32()? as usize
        })
    }

    /// Decodes any value.
    pub fn read_value(&mut self) -> Result<Value> {
        let code = self.u8()?;
        self.read_value_of(code)
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        Ok(())
    }

    fn read_value_of(&mut self, code: u8) -> Result<Value> {
        Ok(match code {
            DESCRIBED => {
                self.enter()?;
                let d = self.read_value()?;
                let v = self.read_value()?;
                self.depth -= 1;
                Value::Described(Box::new(d), Box::new(v))
            }
            NULL => Value::Null,
            TRUE => Value::Bool(true),
            FALSE => Value::Bool(false),
            BOOLEAN => match self.u8()? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                _ => return Err(DecodeError::Invalid("boolean byte is neither 0 nor 1")),
            },
            UBYTE => Value::Ubyte(self.u8()?),
            USHORT => Value::Ushort(self.u16()?),
            UINT => Value::Uint(self.u32()?),
            SMALLUINT => Value::Uint(self.u8()? as u32),
            UINT0 => Value::Uint(0),
            ULONG => Value::Ulong(self.u64()?),
            SMALLULONG => Value::Ulong(self.u8()? as u64),
            ULONG0 => Value::Ulong(0),
            BYTE => Value::Byte(self.u8()? as i8),
            SHORT => Value::Short(self.u16()? as i16),
            INT => Value::Int(self.u32()? as i32),
            SMALLINT => Value::Int(self.u8()? as i8 as i32),
            LONG => Value::Long(self.u64()? as i64),
            SMALLLONG => Value::Long(self.u8()? as i8 as i64),
            FLOAT => Value::Float(f32::from_bits(self.u32()?)),
            DOUBLE => Value::Double(f64::from_bits(self.u64()?)),
            DECIMAL32 => Value::Decimal32(self.array()?),
            DECIMAL64 => Value::Decimal64(self.array()?),
            DECIMAL128 => Value::Decimal128(self.array()?),
            CHAR => {
                let c = self.u32()?;
                Value::Char(char::from_u32(c).ok_or(DecodeError::InvalidChar(c))?)
            }
            TIMESTAMP => Value::Timestamp(self.u64()? as i64),
            UUID => Value::Uuid(self.array()?),
            VBIN8 | VBIN32 => {
                let n = self.var_len(code)?;
                Value::Binary(self.take(n)?)
            }
            STR8 | STR32 => {
                let n = self.var_len(code)?;
                Value::String(self.utf8(n)?)
            }
            SYM8 | SYM32 => {
                let n = self.var_len(code)?;
                Value::Symbol(Symbol(self.utf8(n)?))
            }
            LIST0 => Value::List(Vec::new()),
            LIST8 | LIST32 => {
                let (count, end) = self.compound_header(code)?;
                let mut items = Vec::with_capacity(count.min(self.remaining()));
                if count > 0 {
                    // an empty list nests nothing: like list0 (which an empty list element
                    // of an array re-encodes from) it adds no depth
                    self.enter()?;
                    for _ in 0..count {
                        items.push(self.read_value()?);
                    }
                    self.depth -= 1;
                }
                self.skip_exact(end)?;
                Value::List(items)
            }
            MAP8 | MAP32 => {
                let (count, end) = self.compound_header(code)?;
                if count % 2 != 0 {
                    return Err(DecodeError::Invalid("map has an odd number of elements"));
                }
                self.enter()?;
                let mut items = Vec::with_capacity((count / 2).min(self.remaining()));
                for _ in 0..count / 2 {
                    let k = self.read_value()?;
                    let v = self.read_value()?;
                    items.push((k, v));
                }
                self.depth -= 1;
                self.skip_exact(end)?;
                Value::Map(items)
            }
            ARRAY8 | ARRAY32 => Value::Array(self.read_array_body(code)?),
            other => return Err(DecodeError::InvalidCode(other)),
        })
    }

    fn skip_exact(&mut self, end: usize) -> Result<()> {
        if self.pos != end {
            return Err(DecodeError::Invalid(
                "compound size does not match its contents",
            ));
        }
        Ok(())
    }

    fn utf8(&mut self, n: usize) -> Result<String> {
        let s = self.take_slice(n)?;
        std::str::from_utf8(s)
            .map(str::to_owned)
            .map_err(|_| DecodeError::InvalidUtf8)
    }

    /// Reads size and count of a list, map or array whose code was consumed; returns the
    /// element count and the end offset, checked against the buffer.
    fn compound_header(&mut self, code: u8) -> Result<(usize, usize)> {
        let (size, count) = if matches!(code, LIST8 | MAP8 | ARRAY8) {
            let size = self.u8()? as usize;
            if size < 1 {
                return Err(DecodeError::Invalid("compound size smaller than its count"));
            }
            self.need(size)?;
            (size - 1, self.u8()? as usize)
        } else {
            let size = self.u32()? as usize;
            if size < 4 {
                return Err(DecodeError::Invalid("compound size smaller than its count"));
            }
            self.need(size)?;
            (size - 4, self.u32()? as usize)
        };
        // Every element takes at least one byte (arrays of zero-width elements aside,
        // which read_array_body bounds with the decoder's zero-width budget).
        if count > size && !matches!(code, ARRAY8 | ARRAY32) {
            return Err(DecodeError::Invalid("element count exceeds compound size"));
        }
        Ok((count, self.pos + size))
    }

    fn read_array_body(&mut self, code: u8) -> Result<Array> {
        let (count, end) = self.compound_header(code)?;
        self.enter()?;
        let mut ctor = self.u8()?;
        let mut descriptor = None;
        if ctor == DESCRIBED {
            descriptor = Some(Box::new(self.read_value()?));
            ctor = self.u8()?;
        }
        // the descriptor and the constructor must lie within the array
        let room = end
            .checked_sub(self.pos)
            .ok_or(DecodeError::Invalid("array constructor overruns its size"))?;
        if matches!(ctor, NULL | TRUE | FALSE | UINT0 | ULONG0 | LIST0) {
            // zero-width elements cost no input: charge them to the decoder-wide budget
            self.zero_width_budget = self
                .zero_width_budget
                .checked_sub(count)
                .ok_or(DecodeError::Invalid("too many zero-width array elements"))?;
        } else if count > room {
            // every other element takes at least one byte
            return Err(DecodeError::Invalid("array element count exceeds its size"));
        }
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(self.read_value_of(ctor)?);
            if self.pos > end {
                return Err(DecodeError::Invalid("array elements overrun its size"));
            }
        }
        self.depth -= 1;
        self.skip_exact(end)?;
        let element_code = match &descriptor {
            Some(_) => DESCRIBED,
            None => family_of(ctor),
        };
        Ok(Array {
            element_code,
            descriptor,
            items,
        })
    }

    /// Skips one value without materialising it (used by the lazy message view).
    pub fn skip_value(&mut self) -> Result<()> {
        let code = self.u8()?;
        let n = match code {
            DESCRIBED => {
                self.enter()?;
                self.skip_value()?;
                self.skip_value()?;
                self.depth -= 1;
                return Ok(());
            }
            NULL | TRUE | FALSE | UINT0 | ULONG0 | LIST0 => 0,
            BOOLEAN | UBYTE | SMALLUINT | SMALLULONG | BYTE | SMALLINT | SMALLLONG => 1,
            USHORT | SHORT => 2,
            UINT | INT | FLOAT | DECIMAL32 | CHAR => 4,
            ULONG | LONG | DOUBLE | DECIMAL64 | TIMESTAMP => 8,
            DECIMAL128 | UUID => 16,
            VBIN8 | STR8 | SYM8 | LIST8 | MAP8 | ARRAY8 => self.u8()? as usize,
            VBIN32 | STR32 | SYM32 | LIST32 | MAP32 | ARRAY32 => self.u32()? as usize,
            other => return Err(DecodeError::InvalidCode(other)),
        };
        self.need(n)?;
        self.pos += n;
        Ok(())
    }

    // ---- typed readers used by composite fields -------------------------------------

    /// Reads a described type's descriptor (after the 0x00 constructor) as a numeric code;
    /// symbolic descriptors are mapped through `by_name`.
    pub fn read_descriptor(&mut self, by_name: fn(&str) -> Option<u64>) -> Result<u64> {
        let code = self.u8()?;
        if code != DESCRIBED {
            return Err(DecodeError::UnexpectedType {
                expected: "described type",
                found: code,
            });
        }
        match self.u8()? {
            ULONG => self.u64(),
            SMALLULONG => Ok(self.u8()? as u64),
            ULONG0 => Ok(0),
            c @ (SYM8 | SYM32) => {
                let n = self.var_len(c)?;
                let name = self.utf8(n)?;
                by_name(&name).ok_or(DecodeError::Invalid("unknown symbolic descriptor"))
            }
            other => Err(DecodeError::UnexpectedType {
                expected: "descriptor",
                found: other,
            }),
        }
    }

    /// Reads a list header (list0/list8/list32) and returns (count, end offset).
    pub fn read_list_header(&mut self) -> Result<(usize, usize)> {
        let code = self.u8()?;
        match code {
            LIST0 => Ok((0, self.pos)),
            LIST8 | LIST32 => self.compound_header(code),
            other => Err(DecodeError::UnexpectedType {
                expected: "list",
                found: other,
            }),
        }
    }

    /// Reads a map header (map8/map32) and returns (element count, end offset).
    pub fn read_map_header(&mut self) -> Result<(usize, usize)> {
        let code = self.u8()?;
        match code {
            MAP8 | MAP32 => self.compound_header(code),
            other => Err(DecodeError::UnexpectedType {
                expected: "map",
                found: other,
            }),
        }
    }

    /// Any unsigned integer encoding, or null.
    pub fn read_ulong_opt(&mut self) -> Result<Option<u64>> {
        let code = self.u8()?;
        Ok(Some(match code {
            NULL => return Ok(None),
            UINT0 | ULONG0 => 0,
            UBYTE | SMALLUINT | SMALLULONG => self.u8()? as u64,
            USHORT => self.u16()? as u64,
            UINT => self.u32()? as u64,
            ULONG => self.u64()?,
            other => {
                return Err(DecodeError::UnexpectedType {
                    expected: "unsigned integer",
                    found: other,
                })
            }
        }))
    }

    /// An unsigned integer that fits in `u32`, or null.
    pub fn read_uint_opt(&mut self) -> Result<Option<u32>> {
        match self.read_ulong_opt()? {
            None => Ok(None),
            Some(v) => u32::try_from(v)
                .map(Some)
                .map_err(|_| DecodeError::Invalid("uint out of range")),
        }
    }

    /// A boolean in any of its encodings, or null.
    pub fn read_bool_opt(&mut self) -> Result<Option<bool>> {
        match self.u8()? {
            NULL => Ok(None),
            TRUE => Ok(Some(true)),
            FALSE => Ok(Some(false)),
            BOOLEAN => match self.u8()? {
                0 => Ok(Some(false)),
                1 => Ok(Some(true)),
                _ => Err(DecodeError::Invalid("boolean byte is neither 0 nor 1")),
            },
            other => Err(DecodeError::UnexpectedType {
                expected: "boolean",
                found: other,
            }),
        }
    }

    /// A string, or null.
    pub fn read_string_opt(&mut self) -> Result<Option<String>> {
        match self.u8()? {
            NULL => Ok(None),
            c @ (STR8 | STR32) => {
                let n = self.var_len(c)?;
                Ok(Some(self.utf8(n)?))
            }
            other => Err(DecodeError::UnexpectedType {
                expected: "string",
                found: other,
            }),
        }
    }

    /// Reads a map key and tells which of `keys` (symbols) it is, without allocating (a
    /// key of another type is skipped and matches none).
    pub fn read_key_among(&mut self, keys: &[&str]) -> Result<Option<usize>> {
        match self.peek_code()? {
            SYM8 | SYM32 => {
                let c = self.u8()?;
                let n = self.var_len(c)?;
                let got = self.take_slice(n)?;
                Ok(keys.iter().position(|k| k.as_bytes() == got))
            }
            _ => {
                self.skip_value()?;
                Ok(None)
            }
        }
    }

    /// A symbol, or null.
    pub fn read_symbol_opt(&mut self) -> Result<Option<Symbol>> {
        match self.u8()? {
            NULL => Ok(None),
            c @ (SYM8 | SYM32) => {
                let n = self.var_len(c)?;
                Ok(Some(Symbol(self.utf8(n)?)))
            }
            other => Err(DecodeError::UnexpectedType {
                expected: "symbol",
                found: other,
            }),
        }
    }

    /// A binary, or null; the result shares the decoder's buffer.
    pub fn read_binary_opt(&mut self) -> Result<Option<Bytes>> {
        match self.u8()? {
            NULL => Ok(None),
            c @ (VBIN8 | VBIN32) => {
                let n = self.var_len(c)?;
                Ok(Some(self.take(n)?))
            }
            other => Err(DecodeError::UnexpectedType {
                expected: "binary",
                found: other,
            }),
        }
    }

    /// A timestamp, or null.
    pub fn read_timestamp_opt(&mut self) -> Result<Option<i64>> {
        match self.u8()? {
            NULL => Ok(None),
            TIMESTAMP => Ok(Some(self.u64()? as i64)),
            other => Err(DecodeError::UnexpectedType {
                expected: "timestamp",
                found: other,
            }),
        }
    }

    /// A `multiple` symbol field: a single symbol or an array of symbols, or null.
    pub fn read_symbols_opt(&mut self) -> Result<Option<Vec<Symbol>>> {
        match self.peek_code()? {
            NULL => {
                self.pos += 1;
                Ok(None)
            }
            SYM8 | SYM32 => Ok(self.read_symbol_opt()?.map(|s| vec![s])),
            ARRAY8 | ARRAY32 => {
                let code = self.u8()?;
                let arr = self.read_array_body(code)?;
                let mut out = Vec::with_capacity(arr.items.len());
                for item in arr.items {
                    match item {
                        Value::Symbol(s) => out.push(s),
                        _ => return Err(DecodeError::Invalid("expected an array of symbols")),
                    }
                }
                Ok(Some(out))
            }
            other => Err(DecodeError::UnexpectedType {
                expected: "symbol or symbol array",
                found: other,
            }),
        }
    }
}

/// Normalises a format code to its family's representative (see [`Array::element_code`]).
pub fn family_of(code: u8) -> u8 {
    match code {
        TRUE | FALSE | BOOLEAN => BOOLEAN,
        SMALLUINT | UINT0 | UINT => UINT,
        SMALLULONG | ULONG0 | ULONG => ULONG,
        SMALLINT | INT => INT,
        SMALLLONG | LONG => LONG,
        VBIN8 | VBIN32 => VBIN8,
        STR8 | STR32 => STR8,
        SYM8 | SYM32 => SYM8,
        LIST0 | LIST8 | LIST32 => LIST32,
        MAP8 | MAP32 => MAP32,
        ARRAY8 | ARRAY32 => ARRAY32,
        other => other,
    }
}
