//! Which consumer gets which message: the head of the queue to the next consumer with
//! credit, or by selector, and copies to browsers; drains completing.
use super::*;
/// Messages a dispatch with selectors looks at, at most, before it yields (bounds the
/// time a queue lock is held when consumers' selectors match little).
const SELECTOR_SCAN_LIMIT: usize = 10_000;

impl Queue {
    pub(super) fn dispatch(&self, st: &mut State) {
        if !st.scheduled.is_empty() {
            Self::release_due(st, self.clock.now_ms());
        }
        if st.pages.is_some() {
            self.page_in(st, false);
        }
        if st.consumers.iter().any(|c| c.browse_from.is_some()) {
            self.dispatch_browsers(st);
        }
        if st
            .consumers
            .iter()
            .any(|c| c.selector.is_some() && c.browse_from.is_none())
        {
            self.dispatch_selecting(st);
        } else {
            self.dispatch_in_order(st);
        }
        // presettled dispatch may have freed room
        self.unblock_if_room(st);
    }

    /// No selectors: the head of the queue goes to the next consumer with credit.
    pub(super) fn dispatch_in_order(&self, st: &mut State) {
        let n = st.consumers.len();
        let mut now = Now::lazy(&*self.clock);
        // messages that every consumer with credit refused (undeliverable-here): they keep
        // their place, the ones behind them go on
        let mut aside: Vec<Entry> = Vec::new();
        loop {
            if n == 0 {
                break;
            }
            if st.ready.is_empty() {
                if st.mem_bytes >= self.memory_limit || !st.consumers.iter().any(|c| c.can_take()) {
                    break;
                }
                // a consumer waits and nothing else is ready: read the next batch back
                self.page_in(st, true);
                if st.ready.is_empty() {
                    break;
                }
            }
            let Some(idx) = (0..n)
                .map(|i| (st.next_consumer + i) % n)
                .find(|&idx| st.consumers[idx].can_take())
            else {
                break;
            };
            let Some(entry) = st.ready.pop_first() else {
                break;
            };
            if entry.expired(&mut now) {
                self.expire(st, entry);
                continue;
            }
            let idx = match entry.not_to {
                None => idx,
                Some(_) => match (0..n).map(|i| (st.next_consumer + i) % n).find(|&i| {
                    st.consumers[i].can_take() && entry.deliverable_to(st.consumers[i].key)
                }) {
                    Some(i) => i,
                    None => {
                        aside.push(entry);
                        if aside.len() >= SELECTOR_SCAN_LIMIT {
                            break;
                        }
                        continue;
                    }
                },
            };
            st.next_consumer = (idx + 1) % n;
            self.hand_over(st, idx, entry);
        }
        let nothing_left = st.ready.is_empty();
        for entry in aside {
            st.ready.requeue(entry);
        }
        // a drain completes when nothing more can be had now: paged messages that memory
        // has no room for (consumers hold it all unsettled) count as not available, and so
        // do messages the draining consumer refused
        if nothing_left
            && (st.pages.as_ref().is_none_or(|p| p.is_empty()) || st.mem_bytes >= self.memory_limit)
        {
            Self::complete_drains(st, false);
        }
    }

    /// Some consumers select: each message, in delivery order, goes to the next consumer
    /// (round robin) with credit whose selector it matches; unmatched messages wait.
    pub(super) fn dispatch_selecting(&self, st: &mut State) {
        let n = st.consumers.len();
        let mut now = Now::lazy(&*self.clock);
        let mut scanned = 0;
        let mut complete = true;
        'lanes: for lane in (0..LEVELS).rev() {
            let mut index = 0;
            while index < st.ready.lane_len(lane) {
                if scanned >= SELECTOR_SCAN_LIMIT || !st.consumers.iter().any(|c| c.can_take()) {
                    complete = false;
                    break 'lanes;
                }
                scanned += 1;
                let Some(entry) = st.ready.get(lane, index) else {
                    break;
                };
                if entry.expired(&mut now) {
                    if let Some(e) = st.ready.remove(lane, index) {
                        self.expire(st, e);
                    }
                    continue;
                }
                let msg = &entry.msg;
                let chosen = (0..n).map(|i| (st.next_consumer + i) % n).find(|&idx| {
                    let c = &st.consumers[idx];
                    c.can_take()
                        && entry.deliverable_to(c.key)
                        && c.selector.as_ref().is_none_or(|s| s.matches(msg))
                });
                match chosen {
                    Some(idx) => {
                        st.next_consumer = (idx + 1) % n;
                        if let Some(e) = st.ready.remove(lane, index) {
                            self.hand_over(st, idx, e);
                        }
                    }
                    None => index += 1,
                }
            }
        }
        // every remaining message was looked at: a draining consumer matched none
        if complete {
            Self::complete_drains(st, false);
        }
    }

    /// Browsers get presettled copies of what they have not seen, in arrival order.
    pub(super) fn dispatch_browsers(&self, st: &mut State) {
        let mut now = Now::lazy(&*self.clock);
        for idx in 0..st.consumers.len() {
            loop {
                let c = &st.consumers[idx];
                let Some(from) = c.browse_from else { break };
                if c.credit.available() == 0 {
                    break;
                }
                let Some((lane, index)) = st.ready.first_from(from) else {
                    break;
                };
                let Some(entry) = st.ready.get(lane, index) else {
                    break;
                };
                let (seq, msg, count, expires_at) = (
                    entry.seq,
                    entry.msg.clone(),
                    entry.delivery_count,
                    entry.expires_at,
                );
                let expired = entry.expired(&mut now);
                let c = &mut st.consumers[idx];
                c.browse_from = Some(seq + 1);
                if expired || c.selector.as_ref().is_some_and(|s| !s.matches(&msg)) {
                    continue;
                }
                c.credit.dispatched = c.credit.dispatched.wrapping_add(1);
                c.outbox.push(Command::Deliver {
                    link: c.link,
                    msg,
                    token: seq,
                    settled: true,
                    delivery_count: count,
                    expires_at,
                });
            }
        }
        Self::complete_drains(st, true);
    }

    /// Completes the drain of every draining consumer (or browser) that still has credit.
    pub(super) fn complete_drains(st: &mut State, browsers: bool) {
        for c in st.consumers.iter_mut() {
            if c.browse_from.is_some() == browsers && c.credit.drain && c.credit.available() > 0 {
                c.credit.complete_drain();
                c.outbox.push(Command::Drained { link: c.link });
            }
        }
    }

    /// Hands an entry taken from the ready list to consumer `idx`.
    pub(super) fn hand_over(&self, st: &mut State, idx: usize, entry: Entry) {
        let c = &mut st.consumers[idx];
        c.credit.dispatched = c.credit.dispatched.wrapping_add(1);
        let (link, settled, key) = (c.link, c.presettled, c.key);
        let deliver = |msg| Command::Deliver {
            link,
            msg,
            token: entry.seq,
            settled,
            delivery_count: entry.delivery_count,
            expires_at: entry.expires_at,
        };
        if settled {
            // the queue is done with it: the message moves to the outbox
            st.bytes = st.bytes.saturating_sub(entry.msg.len());
            st.mem_bytes = st.mem_bytes.saturating_sub(entry.msg.len());
            self.journal_ack(&entry);
            let command = deliver(entry.msg);
            st.consumers[idx].outbox.push(command);
        } else {
            c.outbox.push(deliver(entry.msg.clone()));
            st.unacked.insert(entry.seq, (key, entry));
        }
    }
}
