//! An address: a name in a tenant bound to one of the four address types.

use crate::anycast::Anycast;
use crate::multicast::Multicast;
use crate::queue::Queue;
use crate::topic::Topic;
use std::sync::Arc;

/// The four address types (docs/ARCHITECTURE.md, "Address types").
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
    /// The address's identity (two handles of one address are equal): for bookkeeping
    /// keyed by address, such as the bytes a transaction holds for each.
    pub fn identity(&self) -> usize {
        match self {
            Address::Queue(q) => Arc::as_ptr(q) as *const () as usize,
            Address::Topic(t) => Arc::as_ptr(t) as *const () as usize,
            Address::Anycast(a) => Arc::as_ptr(a) as *const () as usize,
            Address::Multicast(m) => Arc::as_ptr(m) as *const () as usize,
        }
    }

    /// How many consumers a direct address has attached; `None` for the types that store
    /// (a transaction checks its direct addresses before it commits).
    pub fn consumer_count(&self) -> Option<usize> {
        match self {
            Address::Anycast(a) => Some(a.consumer_count()),
            Address::Multicast(m) => Some(m.consumer_count()),
            Address::Queue(_) | Address::Topic(_) => None,
        }
    }
}
