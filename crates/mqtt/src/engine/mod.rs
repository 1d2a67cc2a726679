//! The sans-IO MQTT connection engine, for both ends of a connection.
//!
//! A [`Connection`] is fed received bytes ([`Connection::handle_input`]) and the passing
//! of time ([`Connection::handle_timeout`]); it produces bytes to write
//! ([`Connection::output`] / [`Connection::poll_transmit`]) and [`Event`]s, which the
//! application answers with calls such as [`Connection::accept`],
//! [`Connection::ack_publish`], [`Connection::publish`] and [`Connection::suback`]. It owns
//! protocol state only — packet ids, QoS 1/2 handshakes, receive maximum, topic aliases,
//! keep-alive — and no sockets, clocks or threads: the server's device connections, the
//! benchmark client and the in-memory engine-pair tests all run it.

mod connection;
mod session;
mod types;

pub use connection::Connection;
pub use session::{OutboundMessage, OutboundState, SessionState};
pub use types::{Closed, Config, EngineError, Event, Initiator, Role};
