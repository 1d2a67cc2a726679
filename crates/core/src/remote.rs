//! What the core knows of other nodes: nothing but that a direct address may have
//! consumers elsewhere. The mesh (in the server) registers each other node that has
//! consumers for an anycast address as one more consumer of it — a *remote* consumer,
//! whose deliveries its connection forwards to that node — and hears from the core how
//! many consumers this node has, to advertise them ([`Advertiser`]).
//!
//! A remote consumer's credit is a *level*: about how much the node it stands for can
//! take now, as it last advertised; this node sends it at most that many unsettled
//! deliveries at once. Advertisements are coarse (see [`level_changed`]), so they cost the
//! mesh little while consumers' credit moves with every message.

use crate::link::ConsumerKey;
use std::sync::{Arc, OnceLock};

/// Which consumers of a direct address a message may go to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// Any: a message from a client of this node.
    Any,
    /// This node's own consumers only: the message came through the mesh to this node.
    Local,
    /// Exactly the remote consumer `key`: the message is in transit towards the node it
    /// stands for (the node it came from chose that node, so no hop chooses again and no
    /// path can loop).
    Via(ConsumerKey),
}

impl Reach {
    /// Whether a message of this reach may go to the consumer `key` (`remote`: another
    /// node's consumers).
    pub(crate) fn allows(self, key: ConsumerKey, remote: bool) -> bool {
        match self {
            Reach::Any => true,
            Reach::Local => !remote,
            Reach::Via(k) => k == key,
        }
    }
}

/// Hears how many consumers this node has for each direct address, for other nodes.
pub trait Advertiser: Send + Sync {
    /// `level`: `None` — no consumer here any more; `Some(c)` — consumers that can take
    /// about `c` messages now (0: attached, without credit). Called with the address's
    /// lock held: it must only queue the news.
    fn advertise(&self, tenant: &str, address: &str, level: Option<u32>);
}

/// Where a tenant's direct addresses find the advertiser: set once, when the node joins
/// a mesh (addresses created from the config before that see it too).
pub type AdvertiserSlot = Arc<OnceLock<Arc<dyn Advertiser>>>;

/// The most a level says: more credit than this changes nothing for a remote producer.
pub const MAX_LEVEL: u32 = 1024;

/// The level advertised for `available` credit: 0, or the power of two at or below it
/// (at most [`MAX_LEVEL`]).
pub fn level_of(available: u64) -> u32 {
    if available == 0 {
        0
    } else {
        let a = available.min(MAX_LEVEL as u64) as u32;
        1 << (31 - a.leading_zeros())
    }
}

/// Whether the level went from `old` to `new` by enough to tell the mesh: consumers came
/// or went, credit ran out or came back, or it moved by a factor of four or more.
pub fn level_changed(old: Option<u32>, new: Option<u32>) -> bool {
    match (old, new) {
        (None, None) => false,
        (Some(o), Some(n)) => {
            (o == 0) != (n == 0) || n >= o.saturating_mul(4) || o >= n.saturating_mul(4)
        }
        _ => true,
    }
}

/// A direct address's own record of what it told the advertiser.
pub(crate) struct Advertised {
    slot: AdvertiserSlot,
    tenant: Arc<str>,
    name: Arc<str>,
    told: Option<u32>,
}

impl Advertised {
    pub(crate) fn new(slot: AdvertiserSlot, tenant: &str, name: &str) -> Self {
        Advertised {
            slot,
            tenant: tenant.into(),
            name: name.into(),
            told: None,
        }
    }

    /// Tells the advertiser, when the node is in a mesh and the level moved enough, the
    /// level of this node's consumers: `local` is the credit each has (none: no consumer
    /// here), `held` what waits for them already.
    pub(crate) fn update(&mut self, local: impl Iterator<Item = u32>, held: usize) {
        let Some(a) = self.slot.get() else {
            return;
        };
        let mut sum = None;
        for credit in local {
            *sum.get_or_insert(0u64) += credit as u64;
        }
        let level = sum.map(|s| level_of(s.saturating_sub(held as u64)));
        if level_changed(self.told, level) {
            self.told = level;
            a.advertise(&self.tenant, &self.name, level);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_coarse_powers_of_two() {
        assert_eq!(level_of(0), 0);
        assert_eq!(level_of(1), 1);
        assert_eq!(level_of(3), 2);
        assert_eq!(level_of(1000), 512);
        assert_eq!(level_of(1 << 40), MAX_LEVEL);
    }

    #[test]
    fn only_big_moves_are_news() {
        assert!(level_changed(None, Some(0)), "a consumer came");
        assert!(level_changed(Some(8), None), "the last went");
        assert!(level_changed(Some(0), Some(1)), "credit came back");
        assert!(level_changed(Some(1), Some(0)), "credit ran out");
        assert!(!level_changed(Some(512), Some(256)));
        assert!(!level_changed(Some(256), Some(512)));
        assert!(level_changed(Some(512), Some(128)));
        assert!(level_changed(Some(2), Some(8)));
        assert!(!level_changed(None, None));
    }
}
