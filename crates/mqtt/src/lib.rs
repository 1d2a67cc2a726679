//! Throng's MQTT implementation: a zero-copy codec for every MQTT 3.1.1 and 5.0 packet,
//! topic name/filter validation and matching, and a sans-IO connection engine.
//!
//! Nothing here does I/O or depends on a runtime: the engine consumes bytes and produces
//! bytes and events, so the same code serves the server's device connections, the
//! benchmark client and in-memory engine-pair tests (the quinn-proto / rustls pattern).

pub mod codec;
pub mod engine;
pub mod topic;

pub use codec::{
    ByteStr, DecodeError, Decoder, Packet, Properties, PropertySet, Publish, QoS, ReasonCode,
    Version,
};
