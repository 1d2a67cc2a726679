//! The live index: where every live (enqueued, not acked, not dropped) message sits,
//! and how much of each segment is still live.
//!
//! Replay builds it (carrying the message bytes); the writer thread keeps it current
//! (without them) and uses it to decide which segments can be deleted and which
//! messages to copy forward out of a segment that pins the journal.

use crate::record::RECORD_HEADER_LEN;
use crate::seq_map::SeqMap;
use std::collections::{BTreeMap, HashMap};

/// Where a record sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loc {
    pub segment: u64,
    pub offset: u64,
    /// Framed length, header included.
    pub len: u64,
}

/// A live message.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub loc: Loc,
    pub delivery_count: u32,
}

/// Live messages per queue, in sequence order.
pub(crate) type LiveMessages = BTreeMap<String, Vec<(u64, Entry)>>;

/// An [`Entry`] as the index keeps it: 24 bytes rather than 32, since there is one per
/// message the journal holds (the record's body length fits a `u32`, [`MAX_BODY_LEN`]).
///
/// [`MAX_BODY_LEN`]: crate::record::MAX_BODY_LEN
#[derive(Debug, Clone, Copy)]
struct Slot {
    segment: u64,
    offset: u64,
    body_len: u32,
    delivery_count: u32,
}

impl Slot {
    fn new(loc: Loc, delivery_count: u32) -> Self {
        let body = loc.len.saturating_sub(RECORD_HEADER_LEN as u64);
        Slot {
            segment: loc.segment,
            offset: loc.offset,
            body_len: u32::try_from(body).unwrap_or(u32::MAX),
            delivery_count,
        }
    }

    fn loc(&self) -> Loc {
        Loc {
            segment: self.segment,
            offset: self.offset,
            len: u64::from(self.body_len) + RECORD_HEADER_LEN as u64,
        }
    }

    fn entry(&self) -> Entry {
        Entry {
            loc: self.loc(),
            delivery_count: self.delivery_count,
        }
    }
}

/// Per-segment accounting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SegmentUsage {
    /// Bytes in the file, header included.
    pub size: u64,
    /// Live enqueue records in the segment.
    pub live: u64,
    /// Their framed bytes.
    pub live_bytes: u64,
}

/// Live messages by queue and sequence number, plus every segment's usage. Replay
/// builds it; the writer keeps it current.
#[derive(Debug, Default)]
pub(crate) struct LiveIndex {
    queues: HashMap<String, SeqMap<Slot>>,
    segments: BTreeMap<u64, SegmentUsage>,
}

impl LiveIndex {
    /// Registers a segment holding `size` bytes.
    pub fn add_segment(&mut self, id: u64, size: u64) {
        self.segments.entry(id).or_default().size = size;
    }

    /// Records that `bytes` were appended to segment `id`.
    pub fn grow_segment(&mut self, id: u64, bytes: u64) {
        self.segments.entry(id).or_default().size += bytes;
    }

    /// Forgets a deleted segment. Its live count must be zero.
    pub fn remove_segment(&mut self, id: u64) {
        debug_assert_eq!(self.segments.get(&id).map_or(0, |u| u.live), 0);
        self.segments.remove(&id);
    }

    pub fn segments(&self) -> &BTreeMap<u64, SegmentUsage> {
        &self.segments
    }

    fn release(&mut self, loc: Loc) {
        if let Some(u) = self.segments.get_mut(&loc.segment) {
            u.live = u.live.saturating_sub(1);
            u.live_bytes = u.live_bytes.saturating_sub(loc.len);
        }
    }

    fn hold(&mut self, loc: Loc) {
        let u = self.segments.entry(loc.segment).or_default();
        u.live += 1;
        u.live_bytes += loc.len;
    }

    /// An enqueue at `loc`. An enqueue of a (queue, seq) that is already live is a
    /// duplicate and changes nothing: the first is kept. (Replay sees duplicates after a
    /// crash interrupted copy-forward; keeping the older location keeps every record
    /// about the message — its delivery counts included — in segments that cannot be
    /// deleted before it.) Returns whether it was a duplicate.
    pub fn enqueue<Q>(&mut self, queue: Q, seq: u64, loc: Loc) -> bool
    where
        Q: AsRef<str> + Into<String>,
    {
        let slot = Slot::new(loc, 0);
        let added = match self.queues.get_mut(queue.as_ref()) {
            Some(msgs) => msgs.insert_new(seq, slot),
            None => self
                .queues
                .entry(queue.into())
                .or_default()
                .insert_new(seq, slot),
        };
        if added {
            self.hold(loc);
        }
        !added
    }

    /// Copy-forward wrote the live message again at `loc` (with its delivery count):
    /// the entry moves there, releasing the older segment. Returns whether it was live.
    pub fn relocate(&mut self, queue: &str, seq: u64, loc: Loc) -> bool {
        let Some(e) = self.queues.get_mut(queue).and_then(|m| m.get_mut(seq)) else {
            return false;
        };
        let old = e.loc();
        *e = Slot::new(loc, e.delivery_count);
        self.release(old);
        self.hold(loc);
        true
    }

    /// The message is settled. Returns whether it was live.
    pub fn ack(&mut self, queue: &str, seq: u64) -> bool {
        let Some(msgs) = self.queues.get_mut(queue) else {
            return false;
        };
        let Some(e) = msgs.remove(seq) else {
            return false;
        };
        if msgs.is_empty() {
            self.queues.remove(queue);
        }
        self.release(e.loc());
        true
    }

    /// The message's delivery count is now `count`. Returns whether it was live.
    pub fn set_delivery_count(&mut self, queue: &str, seq: u64, count: u32) -> bool {
        match self.queues.get_mut(queue).and_then(|m| m.get_mut(seq)) {
            Some(e) => {
                e.delivery_count = count;
                true
            }
            None => false,
        }
    }

    /// Forgets every message of the queue. Returns how many there were.
    pub fn drop_queue(&mut self, queue: &str) -> usize {
        let Some(msgs) = self.queues.remove(queue) else {
            return 0;
        };
        for e in msgs.values() {
            self.release(e.loc());
        }
        msgs.len()
    }

    /// The live messages stored in `segment`, in file order: what copy-forward must move.
    pub fn entries_in(&self, segment: u64) -> Vec<(String, u64, Loc, u32)> {
        let mut out: Vec<_> = self
            .queues
            .iter()
            .flat_map(|(q, msgs)| {
                msgs.iter()
                    .filter(|(_, e)| e.segment == segment)
                    .map(move |(seq, e)| (q.clone(), seq, e.loc(), e.delivery_count))
            })
            .collect();
        out.sort_unstable_by_key(|(_, _, loc, _)| loc.offset);
        out
    }

    /// Bytes allocated for live messages' entries across queues (for tests of memory).
    #[cfg(test)]
    pub fn entry_bytes(&self) -> usize {
        self.queues.values().map(SeqMap::value_bytes).sum()
    }

    /// Live messages in total.
    #[cfg(test)]
    pub fn live(&self) -> usize {
        self.queues.values().map(SeqMap::len).sum()
    }

    /// Splits into the live messages, per queue in sequence order (for recovery), and
    /// the index itself (for the writer).
    pub fn into_parts(self) -> (LiveMessages, LiveIndex) {
        let mut out = BTreeMap::new();
        for (queue, msgs) in &self.queues {
            let list: Vec<(u64, Entry)> = msgs.iter().map(|(s, e)| (s, e.entry())).collect();
            out.insert(queue.clone(), list);
        }
        (out, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drained_queue_gives_its_slots_back() {
        let mut ix = LiveIndex::default();
        ix.add_segment(1, 24);
        for seq in 0..100_000u64 {
            ix.enqueue("q", seq, loc(1, 24 + seq * 100));
        }
        let full = ix.entry_bytes();
        assert!(
            full <= 100_000 * 24,
            "24 bytes an entry when full: {full} for 100,000"
        );
        for seq in 0..99_990u64 {
            assert!(ix.ack("q", seq));
        }
        assert_eq!(ix.live(), 10);
        assert!(
            ix.entry_bytes() <= 64 * 24,
            "{} bytes left of {full}",
            ix.entry_bytes()
        );
    }

    fn loc(segment: u64, offset: u64) -> Loc {
        Loc {
            segment,
            offset,
            len: 100,
        }
    }

    #[test]
    fn accounting() {
        let mut ix = LiveIndex::default();
        ix.add_segment(1, 24);
        ix.add_segment(2, 24);
        assert!(!ix.enqueue("q", 1, loc(1, 24)));
        assert!(!ix.enqueue("q", 2, loc(1, 124)));
        assert!(!ix.enqueue("r", 1, loc(2, 24)));
        assert_eq!(ix.segments()[&1].live, 2);
        assert_eq!(ix.segments()[&1].live_bytes, 200);
        assert!(ix.set_delivery_count("q", 2, 4));
        assert!(!ix.set_delivery_count("q", 9, 4));
        assert!(ix.ack("q", 1));
        assert!(!ix.ack("q", 1));
        assert_eq!(ix.segments()[&1].live, 1);
        // A duplicate enqueue changes nothing.
        assert!(ix.enqueue("q".to_string(), 2, loc(2, 124)));
        assert_eq!(ix.segments()[&1].live, 1);
        assert_eq!(ix.segments()[&2].live, 1);
        // A copy moves the entry, keeping its count.
        assert!(ix.relocate("q", 2, loc(2, 124)));
        assert!(!ix.relocate("q", 99, loc(2, 124)));
        assert_eq!(ix.segments()[&1].live, 0);
        assert_eq!(ix.segments()[&2].live, 2);
        assert_eq!(
            ix.entries_in(2),
            vec![
                ("r".into(), 1, loc(2, 24), 0),
                ("q".into(), 2, loc(2, 124), 4)
            ]
        );
        assert_eq!(ix.drop_queue("q"), 1);
        assert_eq!(ix.drop_queue("q"), 0);
        assert_eq!(ix.segments()[&2].live, 1);
        assert_eq!(ix.live(), 1);
        let (msgs, stripped) = ix.into_parts();
        assert_eq!(msgs.len(), 1);
        assert_eq!(stripped.segments()[&2].live, 1);
    }
}
