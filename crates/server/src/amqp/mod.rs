//! The AMQP protocol adapter: one task per client connection drives the sans-IO engine
//! over a socket and connects the client's links to the router core.

mod attach;
mod connection;
mod links;
mod transactions;
pub(crate) mod verdict;

pub use connection::{serve_connection, ConnectionLimits};
