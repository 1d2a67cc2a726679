//! Composite types (described lists with positional fields): the traits that let the
//! `composite!` macro decode and encode every performative and definition field by field,
//! straight from and to the wire, without an intermediate [`Value`] tree.

use super::decode::{DecodeError, Decoder};
use super::encode;
use super::value::{Symbol, Value};
use bytes::{BufMut, Bytes, BytesMut};

/// A type that can appear as a field value (null is handled by [`Field`]).
pub trait FieldValue: Sized {
    /// Reads the value, or `None` for null.
    fn read_opt(d: &mut Decoder) -> Result<Option<Self>, DecodeError>;
    /// Writes the (non-null) value.
    fn write(&self, buf: &mut BytesMut);
}

/// A field of a composite: `Option<T>` for optional fields, `T` for mandatory ones.
pub trait Field: Sized {
    /// Reads the field at the cursor.
    fn decode_field(d: &mut Decoder, name: &'static str) -> Result<Self, DecodeError>;
    /// The field's value when the list ended before it.
    fn missing(name: &'static str) -> Result<Self, DecodeError>;
    /// Whether the field encodes as null (trailing nulls are omitted).
    fn is_null(&self) -> bool;
    /// Writes the field.
    fn encode_field(&self, buf: &mut BytesMut);
}

impl<T: FieldValue> Field for Option<T> {
    fn decode_field(d: &mut Decoder, _name: &'static str) -> Result<Self, DecodeError> {
        T::read_opt(d)
    }
    fn missing(_name: &'static str) -> Result<Self, DecodeError> {
        Ok(None)
    }
    fn is_null(&self) -> bool {
        self.is_none()
    }
    fn encode_field(&self, buf: &mut BytesMut) {
        match self {
            Some(v) => v.write(buf),
            None => encode::null(buf),
        }
    }
}

macro_rules! mandatory {
    ($($t:ty),*) => {$(
        impl Field for $t {
            fn decode_field(d: &mut Decoder, name: &'static str) -> Result<Self, DecodeError> {
                <$t as FieldValue>::read_opt(d)?.ok_or(DecodeError::MissingField(name))
            }
            fn missing(name: &'static str) -> Result<Self, DecodeError> {
                Err(DecodeError::MissingField(name))
            }
            fn is_null(&self) -> bool {
                false
            }
            fn encode_field(&self, buf: &mut BytesMut) {
                self.write(buf)
            }
        }
    )*};
}
mandatory!(bool, u8, u16, u32, u64, String, Symbol, Bytes, Vec<Symbol>);

/// Makes a [`FieldValue`] type usable as a mandatory composite field.
#[macro_export]
macro_rules! composite_mandatory {
    ($t:ty) => {
        impl $crate::codec::Field for $t {
            fn decode_field(
                d: &mut $crate::codec::Decoder,
                name: &'static str,
            ) -> Result<Self, $crate::codec::DecodeError> {
                <$t as $crate::codec::FieldValue>::read_opt(d)?
                    .ok_or($crate::codec::DecodeError::MissingField(name))
            }
            fn missing(name: &'static str) -> Result<Self, $crate::codec::DecodeError> {
                Err($crate::codec::DecodeError::MissingField(name))
            }
            fn is_null(&self) -> bool {
                false
            }
            fn encode_field(&self, buf: &mut bytes::BytesMut) {
                $crate::codec::FieldValue::write(self, buf)
            }
        }
    };
}

impl FieldValue for bool {
    fn read_opt(d: &mut Decoder) -> Result<Option<Self>, DecodeError> {
        d.read_bool_opt()
    }
    fn write(&self, buf: &mut BytesMut) {
        encode::boolean(buf, *self)
    }
}

impl FieldValue for u8 {
    fn read_opt(d: &mut Decoder) -> Result<Option<Self>, DecodeError> {
        match d.read_ulong_opt()? {
            None => Ok(None),
            Some(v) => u8::try_from(v)
                .map(Some)
                .map_err(|_| DecodeError::Invalid("ubyte out of range")),
        }
    }
    fn write(&self, buf: &mut BytesMut) {
        encode::ubyte(buf, *self)
    }
}

impl FieldValue for u16 {
    fn read_opt(d: &mut Decoder) -> Result<Option<Self>, DecodeError> {
        match d.read_ulong_opt()? {
            None => Ok(None),
            Some(v) => u16::try_from(v)
                .map(Some)
                .map_err(|_| DecodeError::Invalid("ushort out of range")),
        }
    }
    fn write(&self, buf: &mut BytesMut) {
        encode::ushort(buf, *self)
    }
}

impl FieldValue for u32 {
    fn read_opt(d: &mut Decoder) -> Result<Option<Self>, DecodeError> {
        d.read_uint_opt()
    }
    fn write(&self, buf: &mut BytesMut) {
        encode::uint(buf, *self)
    }
}

impl FieldValue for u64 {
    fn read_opt(d: &mut Decoder) -> Result<Option<Self>, DecodeError> {
        d.read_ulong_opt()
    }
    fn write(&self, buf: &mut BytesMut) {
        encode::ulong(buf, *self)
    }
}

impl FieldValue for String {
    fn read_opt(d: &mut Decoder) -> Result<Option<Self>, DecodeError> {
        d.read_string_opt()
    }
    fn write(&self, buf: &mut BytesMut) {
        encode::string(buf, self)
    }
}

impl FieldValue for Symbol {
    fn read_opt(d: &mut Decoder) -> Result<Option<Self>, DecodeError> {
        d.read_symbol_opt()
    }
    fn write(&self, buf: &mut BytesMut) {
        encode::symbol(buf, self.as_str())
    }
}

impl FieldValue for Bytes {
    fn read_opt(d: &mut Decoder) -> Result<Option<Self>, DecodeError> {
        d.read_binary_opt()
    }
    fn write(&self, buf: &mut BytesMut) {
        encode::binary(buf, self)
    }
}

impl FieldValue for Vec<Symbol> {
    fn read_opt(d: &mut Decoder) -> Result<Option<Self>, DecodeError> {
        d.read_symbols_opt()
    }
    fn write(&self, buf: &mut BytesMut) {
        encode::symbols(buf, self)
    }
}

/// Any value; a null decodes as `None`.
impl FieldValue for Value {
    fn read_opt(d: &mut Decoder) -> Result<Option<Self>, DecodeError> {
        match d.read_value()? {
            Value::Null => Ok(None),
            v => Ok(Some(v)),
        }
    }
    fn write(&self, buf: &mut BytesMut) {
        encode::value(buf, self)
    }
}

/// Symbol-keyed maps (`fields`, annotations, filter sets).
impl FieldValue for Vec<(Symbol, Value)> {
    fn read_opt(d: &mut Decoder) -> Result<Option<Self>, DecodeError> {
        match d.read_value()? {
            Value::Null => Ok(None),
            Value::Map(entries) => {
                let mut out = Vec::with_capacity(entries.len());
                for (k, v) in entries {
                    match k {
                        Value::Symbol(s) => out.push((s, v)),
                        // annotations allow ulong keys; keep them as their decimal text
                        Value::Ulong(n) => out.push((Symbol(n.to_string()), v)),
                        _ => return Err(DecodeError::Invalid("map key is not a symbol")),
                    }
                }
                Ok(Some(out))
            }
            _ => Err(DecodeError::Invalid("expected a map")),
        }
    }
    fn write(&self, buf: &mut BytesMut) {
        encode::fields(buf, self)
    }
}

/// Timestamp fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timestamp(pub i64);

impl FieldValue for Timestamp {
    fn read_opt(d: &mut Decoder) -> Result<Option<Self>, DecodeError> {
        Ok(d.read_timestamp_opt()?.map(Timestamp))
    }
    fn write(&self, buf: &mut BytesMut) {
        encode::timestamp(buf, self.0)
    }
}

/// Builds a described list field by field, leaving out trailing nulls.
pub struct ListWriter {
    start: usize,
    count: usize,
    pending_nulls: usize,
}

impl ListWriter {
    /// Writes the descriptor and reserves the list header.
    pub fn begin(buf: &mut BytesMut, code: u64) -> Self {
        encode::descriptor(buf, code);
        let start = encode::begin_compound(buf, super::format::LIST32);
        ListWriter {
            start,
            count: 0,
            pending_nulls: 0,
        }
    }

    /// Appends one field.
    pub fn field<F: Field>(&mut self, buf: &mut BytesMut, f: &F) {
        if f.is_null() {
            self.pending_nulls += 1;
            return;
        }
        for _ in 0..self.pending_nulls {
            buf.put_u8(super::format::NULL);
        }
        self.count += self.pending_nulls + 1;
        self.pending_nulls = 0;
        f.encode_field(buf);
    }

    /// Completes the list header (list0 when every field was null).
    pub fn finish(self, buf: &mut BytesMut) {
        if self.count == 0 {
            buf.truncate(self.start);
            buf.put_u8(super::format::LIST0);
        } else {
            encode::end_compound(buf, self.start, self.count, super::format::LIST8);
        }
    }
}

/// Declares a composite type (a described list) with its descriptor code and symbolic name,
/// generating the struct and its field-by-field `decode_body` / `encode`.
#[macro_export]
macro_rules! composite {
    ($(#[$meta:meta])* pub struct $name:ident ($code:expr, $sym:expr) {
        $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty ),* $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty ),*
        }

        impl $name {
            /// Numeric descriptor.
            pub const CODE: u64 = $code;
            /// Symbolic descriptor.
            pub const NAME: &'static str = $sym;

            /// Decodes the list that follows the descriptor.
            #[allow(unused_mut, unused_variables, unused_assignments)]
            pub fn decode_body(d: &mut $crate::codec::Decoder) -> Result<Self, $crate::codec::DecodeError> {
                let (count, end) = d.read_list_header()?;
                let mut idx = 0usize;
                $(
                    let $field = if idx < count {
                        idx += 1;
                        <$ty as $crate::codec::Field>::decode_field(d, stringify!($field))?
                    } else {
                        <$ty as $crate::codec::Field>::missing(stringify!($field))?
                    };
                )*
                // fields added by a later version of the spec are skipped
                while idx < count {
                    d.skip_value()?;
                    idx += 1;
                }
                d.skip_to(end)?;
                Ok(Self { $($field),* })
            }

            /// Encodes descriptor and list.
            pub fn encode(&self, buf: &mut bytes::BytesMut) {
                let mut w = $crate::codec::ListWriter::begin(buf, Self::CODE);
                $( w.field(buf, &self.$field); )*
                w.finish(buf);
            }
        }

        impl $crate::codec::FieldValue for $name {
            fn read_opt(d: &mut $crate::codec::Decoder) -> Result<Option<Self>, $crate::codec::DecodeError> {
                if d.take_null()? {
                    return Ok(None);
                }
                let code = d.read_descriptor($crate::definitions::code_by_name)?;
                if code != Self::CODE {
                    return Err($crate::codec::DecodeError::Invalid(concat!("expected ", $sym)));
                }
                Self::decode_body(d).map(Some)
            }
            fn write(&self, buf: &mut bytes::BytesMut) {
                self.encode(buf)
            }
        }
    };
}
