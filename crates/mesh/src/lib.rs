//! `throng-mesh`: the routing protocol of a mesh of Throng nodes, as a sans-IO state
//! machine ([`Router`]) in the quinn-proto / rustls style. It takes links coming and
//! going, messages from neighbours and the time; it gives back messages to send, events,
//! the next hop to every node, the nodes with consumers for every address, and the
//! links a multicast message takes. No sockets, clocks or threads: the server carries
//! the messages over inter-router AMQP links, and the tests run whole meshes of routers
//! in memory under a seeded scheduler (`tests/simulation.rs`).
//!
//! A link-state protocol: hellos discover neighbours and notice silent ones; each node's
//! neighbours and its addresses are versioned records, flooded; every node computes
//! shortest paths by cost over the same records. See [`router`] for the protocol and
//! [`wire`] for its messages.

pub mod config;
pub mod event;
pub mod id;
pub mod router;
mod spf;
pub mod wire;

pub use config::Config;
pub use event::{Destination, DownReason, Event, Route};
pub use id::{AddressKey, InvalidName, LinkId, NodeId};
pub use router::Router;
pub use wire::{DecodeError, Message};
