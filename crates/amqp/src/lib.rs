//! Throng's AMQP 1.0 implementation: a codec for every AMQP type, the performatives and
//! message sections, a lazy zero-copy message view, and a sans-IO connection engine.
//!
//! Nothing here does I/O or depends on a runtime: the engine consumes bytes and produces
//! bytes and events, so the same code serves the server, the client, the benchmark and
//! in-memory engine-pair tests (the quinn-proto / rustls pattern).

pub mod codec;
pub mod definitions;
pub mod engine;
pub mod frame;
pub mod message;

pub use codec::{DecodeError, Decoder, Symbol, Value};
