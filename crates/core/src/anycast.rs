//! Direct anycast: each message goes to exactly one consumer, chosen among those with
//! credit by fewest unsettled deliveries; nothing is stored. Producers get credit only
//! while consumers can take messages, and an unsettled send is settled with the
//! consumer's own outcome.

use crate::link::{ConsumerKey, CreditWindow, Handle, Outcome, Verdict};
use crate::outbox::{Command, Later, Outbox};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use throng_amqp::message::Message;

/// Most credit a single producer holds at once.
pub const PRODUCER_WINDOW: u32 = 250;

/// What became of a published message right away.
#[derive(Debug, PartialEq, Eq)]
pub enum Forwarded {
    /// Delivered presettled (or sent presettled): settle the producer `accepted` now.
    Accepted,
    /// On its way or held; the verdict goes to the message's [`Later`] when the
    /// consumer decides.
    Pending,
    /// No consumer is attached: release it back to the producer.
    NoConsumer,
}

struct Consumer {
    key: ConsumerKey,
    outbox: Arc<Outbox>,
    link: Handle,
    presettled: bool,
    credit: CreditWindow,
    unsettled: u32,
}

struct Producer {
    outbox: Arc<Outbox>,
    link: Handle,
    granted: u32,
}

#[derive(Default)]
struct State {
    consumers: Vec<Consumer>,
    producers: Vec<Producer>,
    held: VecDeque<(Message, Option<Later>)>,
    inflight: HashMap<u64, (ConsumerKey, Option<Later>)>,
    next_token: u64,
    /// Where the search for a consumer starts, so ties rotate.
    next_consumer: usize,
}

/// An anycast address.
pub struct Anycast {
    name: String,
    state: Mutex<State>,
}

impl Anycast {
    /// An anycast address with no links.
    pub fn new(name: impl Into<String>) -> Self {
        Anycast {
            name: name.into(),
            state: Mutex::new(State::default()),
        }
    }

    /// The address name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        crate::sync::lock(&self.state)
    }

    /// Number of attached consumers.
    pub fn consumer_count(&self) -> usize {
        self.lock().consumers.len()
    }

    /// Registers a producer; its credit arrives as [`Command::SetCredit`].
    pub fn add_producer(&self, outbox: Arc<Outbox>, link: Handle) {
        let mut st = self.lock();
        st.producers.push(Producer {
            outbox,
            link,
            granted: 0,
        });
        Self::rebalance(&mut st);
    }

    /// Forgets a producer.
    pub fn remove_producer(&self, outbox: &Arc<Outbox>, link: Handle) {
        let mut st = self.lock();
        st.producers
            .retain(|p| !(Arc::ptr_eq(&p.outbox, outbox) && p.link == link));
        Self::rebalance(&mut st);
    }

    /// Registers a consumer.
    pub fn add_consumer(&self, outbox: Arc<Outbox>, link: Handle, presettled: bool) -> ConsumerKey {
        let key = ConsumerKey::fresh();
        self.lock().consumers.push(Consumer {
            key,
            outbox,
            link,
            presettled,
            credit: CreditWindow::new(),
            unsettled: 0,
        });
        key
    }

    /// Updates a consumer's credit (see [`crate::queue::Queue::flow`]).
    pub fn flow(&self, key: ConsumerKey, limit: u32, drain: bool) {
        let mut st = self.lock();
        if let Some(c) = st.consumers.iter_mut().find(|c| c.key == key) {
            c.credit.limit = limit;
            c.credit.drain = drain;
        }
        Self::release_held(&mut st);
        if st.held.is_empty() {
            for c in st.consumers.iter_mut() {
                if c.credit.drain && c.credit.available() > 0 {
                    c.credit.complete_drain();
                    c.outbox.push(Command::Drained { link: c.link });
                }
            }
        }
        Self::rebalance(&mut st);
    }

    /// Removes a consumer: its unsettled deliveries are settled back to their producers as
    /// `modified(delivery-failed)`; with no consumer left, held messages are released.
    pub fn remove_consumer(&self, key: ConsumerKey) {
        let mut st = self.lock();
        st.consumers.retain(|c| c.key != key);
        let lost: Vec<u64> = st
            .inflight
            .iter()
            .filter(|(_, (k, _))| *k == key)
            .map(|(t, _)| *t)
            .collect();
        for t in lost {
            if let Some((_, Some(reply))) = st.inflight.remove(&t) {
                reply.tell(Verdict::Modified {
                    failed: true,
                    undeliverable_here: false,
                    annotations: None,
                });
            }
        }
        if st.consumers.is_empty() {
            for (_, reply) in st.held.drain(..) {
                if let Some(reply) = reply {
                    reply.tell(Verdict::Released);
                }
            }
        } else {
            Self::release_held(&mut st);
        }
        Self::rebalance(&mut st);
    }

    /// Forwards a message from producer `from` (its outbox and link, for its credit; none
    /// for a will); `reply` is set when the producer wants the consumer's outcome. A
    /// message that finds no consumer with credit waits (held) for one.
    pub(crate) fn publish(
        &self,
        from: Option<(&Arc<Outbox>, Handle)>,
        msg: Message,
        reply: Option<Later>,
    ) -> Forwarded {
        let mut st = self.lock();
        if let Some((outbox, link)) = from {
            if let Some(p) = st
                .producers
                .iter_mut()
                .find(|p| p.link == link && Arc::ptr_eq(&p.outbox, outbox))
            {
                p.granted = p.granted.saturating_sub(1);
            }
        }
        if st.consumers.is_empty() {
            Self::rebalance(&mut st);
            return Forwarded::NoConsumer;
        }
        let result = if !st.held.is_empty() {
            st.held.push_back((msg, reply));
            Forwarded::Pending
        } else {
            match Self::pick(&mut st) {
                Some(idx) => Self::deliver(&mut st, idx, msg, reply, false),
                None => {
                    st.held.push_back((msg, reply));
                    Forwarded::Pending
                }
            }
        };
        Self::rebalance(&mut st);
        result
    }

    /// Passes a consumer's outcome back to the producer.
    pub fn settle(&self, key: ConsumerKey, token: u64, outcome: Outcome) {
        let mut st = self.lock();
        let Some((owner, reply)) = st.inflight.remove(&token) else {
            return;
        };
        if owner != key {
            st.inflight.insert(token, (owner, reply));
            return;
        }
        if let Some(c) = st.consumers.iter_mut().find(|c| c.key == key) {
            c.unsettled = c.unsettled.saturating_sub(1);
        }
        if let Some(reply) = reply {
            reply.tell(Verdict::of_outcome(outcome));
        }
    }

    /// The consumer with credit and the fewest unsettled deliveries; among equals, the
    /// next in rotation (presettled traffic has no unsettled count to go by).
    fn pick(st: &mut State) -> Option<usize> {
        let n = st.consumers.len();
        let mut best: Option<(usize, u32)> = None;
        for i in 0..n {
            let idx = (st.next_consumer + i) % n;
            let c = &st.consumers[idx];
            if c.credit.available() > 0 && best.is_none_or(|(_, u)| c.unsettled < u) {
                best = Some((idx, c.unsettled));
            }
        }
        let (idx, _) = best?;
        st.next_consumer = (idx + 1) % n;
        Some(idx)
    }

    fn deliver(
        st: &mut State,
        idx: usize,
        msg: Message,
        reply: Option<Later>,
        was_held: bool,
    ) -> Forwarded {
        let token = st.next_token;
        st.next_token += 1;
        let c = &mut st.consumers[idx];
        c.credit.dispatched = c.credit.dispatched.wrapping_add(1);
        let settled = c.presettled || reply.is_none();
        c.outbox.push(Command::Deliver {
            link: c.link,
            msg,
            token,
            settled,
            delivery_count: 0,
            expires_at: None,
        });
        if settled {
            if let (true, Some(reply)) = (was_held, reply) {
                reply.tell(Verdict::Accepted);
            }
            return Forwarded::Accepted;
        }
        c.unsettled += 1;
        let key = c.key;
        st.inflight.insert(token, (key, reply));
        Forwarded::Pending
    }

    fn release_held(st: &mut State) {
        while !st.held.is_empty() {
            let Some(idx) = Self::pick(st) else { break };
            let Some((msg, reply)) = st.held.pop_front() else {
                break;
            };
            Self::deliver(st, idx, msg, reply, true);
        }
    }

    /// Shares the consumers' unused credit among the producers.
    fn rebalance(st: &mut State) {
        if st.producers.is_empty() {
            return;
        }
        let available: u64 = st
            .consumers
            .iter()
            .map(|c| c.credit.available() as u64)
            .sum();
        let available = available.saturating_sub(st.held.len() as u64);
        let n = st.producers.len() as u64;
        let share = if available == 0 {
            0
        } else {
            (available / n).clamp(1, PRODUCER_WINDOW as u64) as u32
        };
        for p in st.producers.iter_mut() {
            if share == 0 {
                if p.granted > 0 {
                    p.granted = 0;
                    p.outbox.push(Command::SetCredit {
                        link: p.link,
                        credit: 0,
                    });
                }
            } else if p.granted * 2 <= share && p.granted < share {
                p.granted = share;
                p.outbox.push(Command::SetCredit {
                    link: p.link,
                    credit: share,
                });
            }
        }
    }
}
