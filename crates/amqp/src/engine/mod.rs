//! The sans-IO AMQP 1.0 connection engine, symmetric for clients and servers.
//!
//! A [`Connection`] is fed received bytes ([`Connection::handle_input`]) and the passing of
//! time ([`Connection::handle_timeout`]); it produces bytes to write
//! ([`Connection::output`]) and [`Event`]s for the application, which answers with calls
//! such as [`Connection::accept_link`], [`Connection::send`], [`Connection::flow`] and
//! [`Connection::disposition`]. It owns protocol state only: no sockets, no clocks, no
//! threads, so it runs in tokio adapters and in in-memory engine-pair tests alike.

mod connection;
pub use throng_idmap::IdMap;
mod types;

pub use connection::Connection;
pub use types::{
    ConnectionConfig, EngineError, Event, LinkId, LinkSpec, SaslClient, SaslServer, SessionId, Side,
};
