//! The messages of a queue that wait for a consumer: one FIFO lane per priority (0–9),
//! served highest first, in sequence order within a lane (JMS priority semantics).

use super::Entry;
use std::collections::VecDeque;

/// Number of priority levels (AMQP header priority 0–9; higher values count as 9).
pub(crate) const LEVELS: usize = 10;

/// Ready messages by priority.
#[derive(Default)]
pub(crate) struct ReadyList {
    lanes: [VecDeque<Entry>; LEVELS],
    len: usize,
}

impl ReadyList {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends a new message (its sequence number is the highest yet).
    pub(crate) fn push(&mut self, e: Entry) {
        self.len += 1;
        self.lanes[e.priority as usize].push_back(e);
    }

    /// Puts a returned message back at its place in sequence order within its lane.
    pub(crate) fn requeue(&mut self, e: Entry) {
        let lane = &mut self.lanes[e.priority as usize];
        let pos = lane.partition_point(|x| x.seq < e.seq);
        lane.insert(pos, e);
        self.len += 1;
    }

    /// Takes the next message: the oldest of the highest priority.
    pub(crate) fn pop_first(&mut self) -> Option<Entry> {
        let e = self.lanes.iter_mut().rev().find_map(|l| l.pop_front())?;
        self.len -= 1;
        Some(e)
    }

    /// Positions (lane, index) in delivery order: highest priority first.
    pub(crate) fn lane_len(&self, lane: usize) -> usize {
        self.lanes[lane].len()
    }

    /// The entry at a position.
    pub(crate) fn get(&self, lane: usize, index: usize) -> Option<&Entry> {
        self.lanes[lane].get(index)
    }

    /// Removes the entry at a position.
    pub(crate) fn remove(&mut self, lane: usize, index: usize) -> Option<Entry> {
        let e = self.lanes[lane].remove(index)?;
        self.len -= 1;
        Some(e)
    }

    /// The position of the oldest entry whose sequence number is at least `from` (for
    /// browsers, which see messages in arrival order whatever their priority).
    pub(crate) fn first_from(&self, from: u64) -> Option<(usize, usize)> {
        let mut best: Option<(usize, usize, u64)> = None;
        for (lane, entries) in self.lanes.iter().enumerate() {
            let i = entries.partition_point(|x| x.seq < from);
            if let Some(e) = entries.get(i) {
                if best.is_none_or(|(_, _, s)| e.seq < s) {
                    best = Some((lane, i, e.seq));
                }
            }
        }
        best.map(|(l, i, _)| (l, i))
    }
}
