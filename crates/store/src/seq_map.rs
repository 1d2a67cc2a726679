//! A map from sequence numbers to small values, compact when the numbers are dense.
//!
//! The live index keeps one entry per message the journal holds, so its per-entry cost
//! bounds how deep a durable queue can get in a given amount of memory. A `HashMap<u64,
//! V>` pays the key, a control byte and up to half its slots empty (it doubles): 41 to 82
//! bytes for a 32-byte value. A queue's sequence numbers are handed out in order and are
//! mostly removed in order, so here keys are grouped in chunks of 64 consecutive numbers:
//! a chunk keeps a bit per number present and the values packed in key order, so a dense
//! run costs the value and about one byte.
//!
//! Removing a key only clears its bit (no values move); a chunk whose holes outnumber
//! its values is compacted, and an empty chunk is freed, so memory follows what is
//! present, not what once was.

use std::collections::BTreeMap;

/// Keys per chunk: one bit each in a `u64`.
const CHUNK_KEYS: u64 = 64;

/// Up to 64 consecutive keys.
#[derive(Debug, Clone)]
struct Chunk<V> {
    /// Keys that have a slot in `values` (present, or removed and not yet compacted).
    slots: u64,
    /// Keys present: a subset of `slots`.
    live: u64,
    /// One value per bit of `slots`, in key order.
    values: Vec<V>,
}

impl<V> Chunk<V> {
    /// Index in `values` of the slot of key bit `bit` (which must be in `slots`).
    fn index(&self, bit: u32) -> usize {
        (self.slots & low_bits(bit)).count_ones() as usize
    }

    /// Drops the slots of removed keys.
    fn compact(&mut self) {
        let (slots, live) = (self.slots, self.live);
        let mut bits = slots;
        let mut i = 0;
        self.values.retain(|_| {
            let bit = bits.trailing_zeros();
            bits &= bits - 1;
            i += 1;
            live & (1 << bit) != 0
        });
        debug_assert_eq!(i, slots.count_ones());
        self.slots = live;
        self.values.shrink_to(self.values.len().max(4));
    }
}

/// The bits below `bit`.
fn low_bits(bit: u32) -> u64 {
    (1u64 << bit) - 1
}

fn split(key: u64) -> (u64, u32) {
    (key / CHUNK_KEYS, (key % CHUNK_KEYS) as u32)
}

/// Sequence number → value, for keys that arrive and leave roughly in order.
#[derive(Debug, Clone)]
pub(crate) struct SeqMap<V> {
    chunks: BTreeMap<u64, Chunk<V>>,
    len: usize,
}

impl<V> Default for SeqMap<V> {
    fn default() -> Self {
        SeqMap {
            chunks: BTreeMap::new(),
            len: 0,
        }
    }
}

impl<V> SeqMap<V> {
    /// Keys present.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[cfg(test)]
    pub fn get(&self, key: u64) -> Option<&V> {
        let (chunk, bit) = split(key);
        let c = self.chunks.get(&chunk)?;
        (c.live & (1 << bit) != 0).then(|| &c.values[c.index(bit)])
    }

    pub fn get_mut(&mut self, key: u64) -> Option<&mut V> {
        let (chunk, bit) = split(key);
        let c = self.chunks.get_mut(&chunk)?;
        if c.live & (1 << bit) == 0 {
            return None;
        }
        let i = c.index(bit);
        Some(&mut c.values[i])
    }

    /// Adds `key` unless it is present; returns whether it was added.
    pub fn insert_new(&mut self, key: u64, value: V) -> bool {
        let (chunk, bit) = split(key);
        let c = self.chunks.entry(chunk).or_insert_with(|| Chunk {
            slots: 0,
            live: 0,
            values: Vec::new(),
        });
        let mask = 1 << bit;
        if c.live & mask != 0 {
            return false;
        }
        let i = c.index(bit);
        if c.slots & mask != 0 {
            // the slot of a removed key, not compacted yet
            c.values[i] = value;
        } else {
            // in order, the usual case, this is a push
            c.values.insert(i, value);
            c.slots |= mask;
        }
        c.live |= mask;
        self.len += 1;
        true
    }

    /// Removes `key`; returns its value.
    pub fn remove(&mut self, key: u64) -> Option<V>
    where
        V: Copy,
    {
        let (chunk, bit) = split(key);
        let c = self.chunks.get_mut(&chunk)?;
        let mask = 1 << bit;
        if c.live & mask == 0 {
            return None;
        }
        let value = c.values[c.index(bit)];
        c.live &= !mask;
        self.len -= 1;
        if c.live == 0 {
            self.chunks.remove(&chunk);
        } else if c.live.count_ones() * 2 <= c.slots.count_ones() {
            c.compact();
        }
        Some(value)
    }

    /// The entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &V)> {
        self.chunks.iter().flat_map(|(&chunk, c)| {
            let mut bits = c.slots;
            c.values.iter().filter_map(move |v| {
                let bit = bits.trailing_zeros();
                bits &= bits - 1;
                (c.live & (1 << bit) != 0).then_some((chunk * CHUNK_KEYS + u64::from(bit), v))
            })
        })
    }

    /// The values in key order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }

    /// Bytes allocated for values (what the memory bound is about).
    #[cfg(test)]
    pub fn value_bytes(&self) -> usize {
        self.chunks
            .values()
            .map(|c| c.values.capacity() * std::mem::size_of::<V>())
            .sum()
    }

    /// Chunks allocated.
    #[cfg(test)]
    pub fn chunks(&self) -> usize {
        self.chunks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap as Model;

    fn check(m: &SeqMap<u64>, model: &Model<u64, u64>) {
        assert_eq!(m.len(), model.len());
        let got: Vec<(u64, u64)> = m.iter().map(|(k, v)| (k, *v)).collect();
        let want: Vec<(u64, u64)> = model.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn behaves_like_an_ordered_map_under_random_operations() {
        let mut m = SeqMap::default();
        let mut model = Model::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for step in 0..200_000u64 {
            let r = next();
            // keys mostly near a moving front, some far away, some at chunk edges
            let key = match r % 8 {
                0 => next() % 100_000,
                1 => (step / 4) * 64 + 63,
                _ => step / 2 + next() % 300,
            };
            match (r >> 8) % 3 {
                0 | 1 => {
                    let added = m.insert_new(key, step);
                    assert_eq!(added, !model.contains_key(&key), "insert {key}");
                    model.entry(key).or_insert(step);
                }
                _ => assert_eq!(m.remove(key), model.remove(&key), "remove {key}"),
            }
            assert_eq!(m.get(key), model.get(&key));
            if step % 10_000 == 0 {
                check(&m, &model);
            }
        }
        check(&m, &model);
        let keys: Vec<u64> = model.keys().copied().collect();
        for k in keys {
            *m.get_mut(k).unwrap() += 1;
            assert_eq!(m.remove(k), model.remove(&k).map(|v| v + 1));
        }
        assert!(m.is_empty());
        assert_eq!(m.chunks(), 0, "nothing left allocated");
    }

    #[test]
    fn a_dense_run_costs_little_more_than_its_values() {
        let mut m = SeqMap::default();
        let n = 1_000_000u64;
        for k in 0..n {
            assert!(m.insert_new(k, [0u64; 3]));
        }
        assert_eq!(m.value_bytes(), n as usize * 24, "no slack in full chunks");
        // in-order removal frees as it goes; a stuck message keeps only its own chunk
        for k in 1..n {
            m.remove(k);
        }
        assert_eq!(m.len(), 1);
        assert_eq!(m.chunks(), 1);
        assert!(m.value_bytes() <= 4 * 24, "{} bytes left", m.value_bytes());
    }

    #[test]
    fn removed_keys_in_the_middle_are_given_back() {
        let mut m = SeqMap::default();
        for k in 0..64 * 1000 {
            m.insert_new(k, k);
        }
        // every other message settled (competing consumers), then most of the rest
        for k in (0..64 * 1000).step_by(2) {
            m.remove(k);
        }
        assert!(m.value_bytes() <= 64 * 1000 / 2 * 8 + 1000 * 8 * 4);
        for k in (1..64 * 1000).step_by(2).filter(|k| k % 64 != 1) {
            m.remove(k);
        }
        assert_eq!(m.len(), 1000);
        assert!(m.value_bytes() <= 1000 * 8 * 4, "{}", m.value_bytes());
        assert_eq!(m.get(65), Some(&65));
    }
}
