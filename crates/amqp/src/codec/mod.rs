//! The AMQP 1.0 type system (part 1 of the specification): values, their encodings, and
//! the composite-type machinery that the performatives are built on.

mod composite;
pub mod decode;
pub mod encode;
pub mod format;
mod value;

pub use composite::{Field, FieldValue, ListWriter, Timestamp};
pub use decode::{DecodeError, Decoder};
pub use value::{Array, Fields, Symbol, Value};
