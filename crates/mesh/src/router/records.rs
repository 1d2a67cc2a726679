//! What a node holds about each node of the mesh (itself included).

use std::collections::BTreeMap;
use std::time::Instant;

use crate::id::{AddressKey, NodeId};
use crate::wire::Version;

/// One node's link-state record and address set, each with its version, and since when
/// the node has been unreachable from here.
#[derive(Debug, Default)]
pub(super) struct Record {
    pub link_state: Option<(Version, Vec<(NodeId, u32)>)>,
    pub addresses: Option<(Version, BTreeMap<AddressKey, u32>)>,
    pub unreachable_since: Option<Instant>,
}

impl Record {
    pub fn ls_version(&self) -> Option<Version> {
        self.link_state.as_ref().map(|(v, _)| *v)
    }

    pub fn addr_version(&self) -> Option<Version> {
        self.addresses.as_ref().map(|(v, _)| *v)
    }
}

/// One origin's share of the database digest. Fixed (FNV-1a, then a 64-bit finaliser),
/// not the standard library's hasher: nodes built by different compilers must agree.
pub(super) fn entry_hash(origin: &NodeId, ls: Option<Version>, addr: Option<Version>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(origin.as_str().as_bytes());
    for v in [ls, addr] {
        match v {
            Some(v) => {
                eat(&[1]);
                eat(&v.instance.to_le_bytes());
                eat(&v.seq.to_le_bytes());
            }
            None => eat(&[0]),
        }
    }
    let mut z = h;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
