//! What the links of every address type share, in words that belong to no protocol: the
//! handles adapters name their links by, consumer keys and credit windows, what a consumer
//! did with a delivery ([`Outcome`]) and what a producer is told about a message
//! ([`Verdict`]). A leaf module: it imports nothing else of the core.
//!
//! The AMQP adapter translates [`Verdict`] into delivery states and error conditions, the
//! MQTT adapter into reason codes; the core never sees either.

use std::sync::atomic::{AtomicU64, Ordering};

/// A connection's own number for one of its links: an AMQP link handle, one of an MQTT
/// connection's subscription consumers or its stream of inbound publishes. The core hands
/// it back in the [`crate::Command`]s it pushes to that connection's outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Handle(pub u32);

/// Identifies one consumer registration across the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConsumerKey(pub u64);

static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

impl ConsumerKey {
    /// A fresh, never reused key.
    pub fn fresh() -> Self {
        ConsumerKey(NEXT_KEY.fetch_add(1, Ordering::Relaxed))
    }
}

/// An error a consumer attached to its outcome, passed back to the producer of an anycast
/// message as it was given (AMQP: condition and description).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerError {
    pub condition: String,
    pub description: Option<String>,
}

/// Message annotations a consumer's `modified` outcome asks to be merged into the
/// message for its next delivery. In the form the core stores messages in (AMQP
/// message-annotations); an MQTT consumer never sends any.
pub type Annotations = throng_amqp::codec::Fields;

/// What a consumer did with a delivery, reduced to what the node acts on.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Accepted,
    /// Back to the queue, delivery count unchanged.
    Released,
    /// Back to the queue; `failed` adds one to the delivery count, `undeliverable_here`
    /// keeps it from this consumer, `annotations` are merged into the message's own.
    Modified {
        failed: bool,
        undeliverable_here: bool,
        annotations: Option<Annotations>,
    },
    /// To the dead-letter address.
    Rejected(Option<ConsumerError>),
}

/// Why the node refused a message. Every protocol has a word for each (AMQP error
/// conditions, MQTT reason codes); the adapters hold those tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The address is full and its policy is to reject (`full_policy = "reject"`).
    Full,
    /// The message is larger than the address can ever hold (`max_bytes`).
    TooLarge,
    /// The sender may not send to this address.
    NotPermitted,
    /// No such address, and the tenant does not create it (or it may not be created: a
    /// dynamic address whose link is gone).
    NotFound,
    /// An anonymous-relay message without a `to` address, or one that cannot be read.
    NoAddress,
    /// The message store failed (a full disk): the message is not safe.
    StoreFailed,
    /// A transaction could not deliver to a direct address: no consumer is attached.
    NoConsumer,
}

impl Refusal {
    /// A short text for the producer and the log; says what, never which internal part.
    pub fn describe(&self) -> &'static str {
        match self {
            Refusal::Full => "the address is full",
            Refusal::TooLarge => "the message is larger than the address can hold",
            Refusal::NotPermitted => "no permission to send to the address",
            Refusal::NotFound => "no such address",
            Refusal::NoAddress => "an anonymous-relay message needs a readable `to` address",
            Refusal::StoreFailed => "the message store failed",
            Refusal::NoConsumer => "no consumer is attached to the direct address",
        }
    }
}

/// What the producer of a message is told: returned by [`crate::Tenant::publish`] when
/// known at once, otherwise pushed later as [`crate::Command::Verdict`].
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The node has it: stored (on disk when durable), forwarded to every multicast
    /// consumer that could take it, or accepted by the anycast consumer.
    Accepted,
    /// Nobody could take it now (a direct address without a consumer, or an anycast
    /// consumer released it): the producer may send it again.
    Released,
    /// An anycast consumer's `modified` outcome, passed back as it was given.
    Modified {
        failed: bool,
        undeliverable_here: bool,
        annotations: Option<Annotations>,
    },
    /// An anycast consumer rejected it.
    RejectedByConsumer(Option<ConsumerError>),
    /// The node refused it.
    Refused(Refusal),
}

impl Verdict {
    /// What a consumer's outcome tells the producer of a message forwarded to it.
    pub fn of_outcome(outcome: Outcome) -> Verdict {
        match outcome {
            Outcome::Accepted => Verdict::Accepted,
            Outcome::Released => Verdict::Released,
            Outcome::Modified {
                failed,
                undeliverable_here,
                annotations,
            } => Verdict::Modified {
                failed,
                undeliverable_here,
                annotations,
            },
            Outcome::Rejected(e) => Verdict::RejectedByConsumer(e),
        }
    }
}

/// Credit bookkeeping in the count of deliveries handed to the consumer's connection, so
/// credit granted by the peer and deliveries still in the connection's outbox are never
/// confused. The adapter gives the limit as the deliveries it has taken from the outbox
/// so far plus the link's credit now. A completed drain lowers the limit to what was
/// dispatched rather than counting the credit given up as deliveries: the adapter's
/// count does not move with a drain, so the two stay equal however many drains a link
/// sees (AMQP part 2 §2.6.7; counting it spent left a deficit of every drain's size).
#[derive(Debug)]
pub(crate) struct CreditWindow {
    /// Deliveries the connection took so far plus the credit the peer granted.
    pub limit: u32,
    /// Deliveries handed to the connection so far.
    pub dispatched: u32,
    pub drain: bool,
}

impl CreditWindow {
    pub(crate) fn new() -> Self {
        CreditWindow {
            limit: 0,
            dispatched: 0,
            drain: false,
        }
    }

    /// Completes a drain: the credit left is given up (the caller tells the peer with
    /// [`crate::Command::Drained`]). The one place a drain changes the window.
    pub(crate) fn complete_drain(&mut self) {
        self.limit = self.dispatched;
        self.drain = false;
    }

    /// Credit not yet used by a dispatch.
    pub(crate) fn available(&self) -> u32 {
        let c = self.limit.wrapping_sub(self.dispatched);
        if c > i32::MAX as u32 {
            0
        } else {
            c
        }
    }
}
