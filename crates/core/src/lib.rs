//! Throng's router core and in-memory broker: tenants, their addresses, and the four
//! address types (queue, topic, anycast, multicast).
//!
//! The core knows no protocol. A message enters a tenant through one function,
//! [`Tenant::publish`] (or, in a transaction, [`Tenant::hold`] and [`Tenant::commit`]),
//! which returns what its producer is told ([`Verdict`], in no protocol's words); protocol
//! adapters translate. Consumers and producers register with an address under a
//! [`Handle`] of their connection and receive work through that connection's [`Outbox`].
//! Messages travel as [`throng_amqp::message::Message`] — the bytes they arrived as — and
//! are never re-encoded.

pub mod address;
pub mod anycast;
pub mod clock;
pub mod link;
pub mod multicast;
pub mod outbox;
pub mod queue;
pub mod remote;
pub mod router;
mod sync;
pub mod tenant;
pub mod topic;
pub mod txn;

pub use address::{Address, AddressKind};
pub use link::{ConsumerError, ConsumerKey, Handle, Outcome, Refusal, Verdict};
pub use outbox::{Command, Later, Outbox};
pub use remote::{Advertiser, Reach};
pub use router::{Producer, ProducerCredit, Published, Reply, Target};
pub use tenant::{AddressOptions, Node, Op, Permission, Tenant, User};
pub use txn::{AckTarget, HeldAck, Transaction};
