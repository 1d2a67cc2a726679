//! What the router tells its caller besides messages to send: neighbours coming and
//! going, routes changing, addresses whose consumers elsewhere changed. The server logs
//! the first two (one line each) and re-evaluates producers' credit on the third.

use crate::id::{AddressKey, LinkId, NodeId};

/// How this node reaches another one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The neighbour the path starts with.
    pub next_hop: NodeId,
    /// The link to that neighbour (its cheapest two-way link).
    pub link: LinkId,
    /// The path's total cost.
    pub cost: u64,
}

/// Why a neighbour is no longer one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DownReason {
    /// The caller closed the link (the connection dropped): noticed at once.
    Closed,
    /// No hello heard within `dead_after`: a hung process or a stalled network.
    Silent,
    /// Its hellos stopped listing this node: it no longer hears us.
    OneWay,
    /// A different node (or a restarted run of it) speaks on the link now.
    Replaced,
}

/// A change the caller should know of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A link became two-way.
    NeighbourUp {
        /// The neighbour.
        node: NodeId,
        /// The link.
        link: LinkId,
        /// The link's configured cost.
        cost: u32,
    },
    /// A link stopped being two-way.
    NeighbourDown {
        /// The neighbour.
        node: NodeId,
        /// The link.
        link: LinkId,
        /// Why.
        reason: DownReason,
    },
    /// The way to a node changed; `None`: it is unreachable now.
    RouteChanged {
        /// The destination.
        dest: NodeId,
        /// The new route.
        route: Option<Route>,
    },
    /// The set of other nodes with consumers for this address, or their credit, changed.
    AddressChanged(AddressKey),
    /// A neighbour uses this node's own id: a configuration error, reported once per link.
    DuplicateId {
        /// The link the hello came on.
        link: LinkId,
    },
}

/// Another node with consumers for an address, as seen from here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    /// The node with the consumers.
    pub node: NodeId,
    /// Their credit, aggregated, as that node last advertised it.
    pub credit: u32,
    /// The cost of the path there.
    pub cost: u64,
    /// The link the path starts with.
    pub link: LinkId,
}
