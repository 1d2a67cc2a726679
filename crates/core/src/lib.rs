//! Throng's router core and in-memory broker: tenants, their addresses, and the four
//! address types of DESIGN.md (queue, topic, anycast, multicast).
//!
//! The core is protocol-neutral and runtime-light: protocol adapters (the AMQP connection
//! task today, MQTT later) register consumers and producers with an address and receive
//! work through their connection's [`Outbox`]. Messages travel as
//! [`throng_amqp::message::Message`] — the bytes they arrived as — and are never re-encoded.

pub mod address;
pub mod anycast;
pub mod multicast;
pub mod outbox;
pub mod queue;
mod ready;
mod sync;
pub mod tenant;
pub mod topic;

pub use address::{Address, AddressKind, ConsumerKey, Outcome};
pub use outbox::{Command, Outbox};
pub use tenant::{AddressOptions, Node, Op, Permission, Tenant, User};
