//! The routing protocol's timers, with defaults chosen for the mesh's promise: a silent
//! neighbour is declared dead within one second.

use std::time::Duration;

/// Timers of one node's routing protocol. Every node of a mesh should use the same
/// values (a node whose `dead_after` is shorter than its neighbour's `hello_interval`
/// sees that neighbour flap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// How often a hello goes out on every link (default 250 ms).
    pub hello_interval: Duration,
    /// A neighbour not heard from for this long is dead (default 750 ms: three hellos).
    /// A closed connection is noticed at once; this bounds a hung process or a stalled
    /// network.
    pub dead_after: Duration,
    /// At most one database summary to a neighbour per this interval (default 500 ms):
    /// the repair of records lost or missed, sent when a neighbour's hellos keep
    /// showing a database digest other than ours.
    pub resync_interval: Duration,
    /// Changes to this node's own addresses are gathered for this long and sent as one
    /// update (default 5 ms), so a burst of consumers attaching is one message.
    pub address_batch: Duration,
    /// Routes are recomputed this long after the first change that needs it (default
    /// 5 ms), so the burst of records a link-up or a partition's healing brings costs one
    /// computation, not one per record. Floods are not delayed.
    pub spf_delay: Duration,
    /// The records of a node that stayed unreachable this long are dropped (default
    /// 60 s); until then they are kept, so a partition that heals costs little.
    pub forget_after: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            hello_interval: Duration::from_millis(250),
            dead_after: Duration::from_millis(750),
            resync_interval: Duration::from_millis(500),
            address_batch: Duration::from_millis(5),
            spf_delay: Duration::from_millis(5),
            forget_after: Duration::from_secs(60),
        }
    }
}
