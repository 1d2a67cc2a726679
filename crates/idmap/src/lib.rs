//! Hash maps keyed by small integers the node assigns itself — AMQP delivery ids and
//! handles, MQTT packet ids and topic aliases, queue sequence numbers — with a
//! multiplicative hasher. The standard SipHash is built to resist keys an attacker
//! chooses and costs several times more per lookup; none of these keys are chosen by a
//! peer in a way that could be aimed at a bucket (a peer's ids are at most its receive
//! window), so the cheap hash is safe here. Shared by the protocol engines and the core.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Multiplicative (Fibonacci) hashing of one integer; bytes, should anything hash them,
/// are folded in one at a time.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ *b as u64).wrapping_mul(GOLDEN);
        }
    }
    fn write_u16(&mut self, n: u16) {
        self.write_u64(n as u64);
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(n as u64);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(GOLDEN);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// A map keyed by small integers.
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_keys_spread_over_the_buckets() {
        // the low bits pick the bucket: consecutive ids must not pile up
        let mut seen = std::collections::HashSet::new();
        for n in 0u64..1024 {
            let mut h = IdHasher::default();
            h.write_u64(n);
            seen.insert(h.finish() & 1023);
        }
        assert_eq!(seen.len(), 1024);
    }

    #[test]
    fn maps_work_with_every_key_width() {
        let mut a: IdMap<u16, &str> = IdMap::default();
        let mut b: IdMap<u64, &str> = IdMap::default();
        for i in 0..1000u16 {
            a.insert(i, "x");
            b.insert(i as u64 * 7, "y");
        }
        assert_eq!(a.len(), 1000);
        assert_eq!(b.get(&(999 * 7)), Some(&"y"));
        assert!(a.remove(&500).is_some() && !a.contains_key(&500));
    }
}
