//! An address: a name in a tenant bound to one of the four address types.

use crate::anycast::Anycast;
use crate::multicast::Multicast;
use crate::queue::{OnDurable, Queue, Stored, Written};
use crate::topic::Topic;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use throng_amqp::definitions::DeliveryState;
use throng_amqp::message::Message;

/// The four address types of DESIGN.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddressKind {
    Queue,
    Topic,
    Anycast,
    Multicast,
}

impl AddressKind {
    /// Parses the config spelling (`queue`, `topic`, `anycast`, `multicast`).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queue" => AddressKind::Queue,
            "topic" => AddressKind::Topic,
            "anycast" => AddressKind::Anycast,
            "multicast" => AddressKind::Multicast,
            _ => return None,
        })
    }

    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AddressKind::Queue => "queue",
            AddressKind::Topic => "topic",
            AddressKind::Anycast => "anycast",
            AddressKind::Multicast => "multicast",
        }
    }
}

/// A resolved address, cheap to clone.
#[derive(Clone)]
pub enum Address {
    Queue(Arc<Queue>),
    Topic(Arc<Topic>),
    Anycast(Arc<Anycast>),
    Multicast(Arc<Multicast>),
}

impl Address {
    /// The address type.
    pub fn kind(&self) -> AddressKind {
        match self {
            Address::Queue(_) => AddressKind::Queue,
            Address::Topic(_) => AddressKind::Topic,
            Address::Anycast(_) => AddressKind::Anycast,
            Address::Multicast(_) => AddressKind::Multicast,
        }
    }
}

impl Address {
    /// Publishes a message no producer waits for (a will: its connection is gone).
    /// Queues and topics store it; anycast and multicast forward it to consumers that
    /// can take it now. `then` runs once the message is on disk where it is journaled
    /// (or the journal failed first: [`Written::Failed`]), or at once with
    /// [`Written::Durable`] when nothing journals it (not durable, no durable
    /// subscription, forwarded, refused); if the journal refuses the write it never runs.
    /// Returns whether anything took it.
    pub fn publish_unattended(&self, msg: Message, then: Option<OnDurable>) -> bool {
        let scratch = || std::sync::Arc::new(crate::outbox::Outbox::new());
        let then = std::sync::Mutex::new(then);
        let take = || crate::sync::lock(&then).take();
        let make = || -> OnDurable {
            let t = take();
            Box::new(move |w| {
                if let Some(t) = t {
                    t(w)
                }
            })
        };
        let (stored, taken) = match self {
            Address::Queue(q) => {
                let stored = q.publish_durably(msg, Some(&make)).0;
                (stored, stored != Stored::Failed && stored != Stored::Full)
            }
            Address::Topic(t) => {
                let stored = t.publish_durably(msg, Some(&make)).0;
                (stored, stored != Stored::Failed)
            }
            Address::Multicast(m) => {
                let n = m.publish((&scratch(), throng_amqp::engine::LinkId(u32::MAX)), msg);
                (Stored::Now, n > 0)
            }
            Address::Anycast(a) => {
                let forwarded = a.publish(
                    (&scratch(), throng_amqp::engine::LinkId(u32::MAX)),
                    msg,
                    None,
                );
                (
                    Stored::Now,
                    forwarded != crate::anycast::Forwarded::NoConsumer,
                )
            }
        };
        if stored != Stored::WhenDurable {
            // not journaled: nothing will call back (a failed write keeps `then` away)
            if let (Some(t), false) = (take(), stored == Stored::Failed) {
                t(Written::Durable);
            }
        }
        taken
    }
}

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

/// What a consumer did with a delivery, reduced to what the broker acts on.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Accepted,
    /// Back to the queue, delivery count unchanged.
    Released,
    /// Back to the queue; `failed` adds one to the delivery count.
    Modified {
        failed: bool,
        undeliverable_here: bool,
    },
    /// To the dead-letter address.
    Rejected,
}

impl Outcome {
    /// Maps an AMQP delivery state; `None` for non-terminal states.
    pub fn from_state(state: &DeliveryState) -> Option<Self> {
        Some(match state {
            DeliveryState::Accepted => Outcome::Accepted,
            DeliveryState::Released => Outcome::Released,
            DeliveryState::Rejected(_) => Outcome::Rejected,
            DeliveryState::Modified(m) => Outcome::Modified {
                failed: m.delivery_failed.unwrap_or(false),
                undeliverable_here: m.undeliverable_here.unwrap_or(false),
            },
            DeliveryState::Received(_) | DeliveryState::Other(..) => return None,
        })
    }
}
