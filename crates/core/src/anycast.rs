//! Direct anycast: each message goes to exactly one consumer, chosen among those with
//! credit by fewest unsettled deliveries; nothing is stored. Producers get credit only
//! while consumers can take messages, and an unsettled send is settled with the
//! consumer's own outcome.
//!
//! Consumers on other nodes take part as *remote* consumers (one per node, registered by
//! the mesh, see [`crate::remote`]): they are chosen like local ones, by credit and fewest
//! unsettled, and their outcome comes back the same way. What this node's own consumers
//! can take is advertised to the mesh through the tenant's [`crate::remote::Advertiser`].

use crate::link::{ConsumerKey, CreditWindow, Handle, Outcome, Verdict};
use crate::outbox::{Command, Later, Outbox};
use crate::remote::{Advertised, AdvertiserSlot, Reach};
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
    /// For a remote consumer: the level its node advertised. Such a consumer is sent at
    /// most that many unsettled deliveries, always unsettled (its node's disposition
    /// frees the room), and its credit is no part of what this node advertises.
    remote: Option<u32>,
}

impl Consumer {
    fn available(&self) -> u32 {
        match self.remote {
            None => self.credit.available(),
            Some(level) => level.saturating_sub(self.unsettled),
        }
    }

    fn reaches(&self, reach: Reach) -> bool {
        reach.allows(self.key, self.remote.is_some())
    }
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
    /// Messages waiting for a consumer with credit, in order, each with the consumers it
    /// may go to.
    held: VecDeque<(Message, Option<Later>, Reach)>,
    inflight: HashMap<u64, (ConsumerKey, Option<Later>)>,
    next_token: u64,
    /// Where the search for a consumer starts, so ties rotate.
    next_consumer: usize,
    /// What the mesh was told of this node's consumers (none outside a mesh).
    advertised: Option<Advertised>,
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

    /// An anycast address of `tenant` whose consumers are advertised to the mesh once the
    /// node joins one (`slot`).
    pub fn advertised(name: impl Into<String>, tenant: &str, slot: AdvertiserSlot) -> Self {
        let a = Self::new(name);
        a.lock().advertised = Some(Advertised::new(slot, tenant, &a.name));
        a
    }

    /// The address name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        crate::sync::lock(&self.state)
    }

    /// Number of attached consumers of this node (remote ones not counted).
    pub fn consumer_count(&self) -> usize {
        self.lock()
            .consumers
            .iter()
            .filter(|c| c.remote.is_none())
            .count()
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
        self.push_consumer(outbox, link, presettled, None)
    }

    /// Registers the consumers of another node, reached through `outbox` (an
    /// inter-router connection's) under `link`; their level is 0 until
    /// [`Anycast::set_level`].
    pub fn add_remote(&self, outbox: Arc<Outbox>, link: Handle) -> ConsumerKey {
        self.push_consumer(outbox, link, false, Some(0))
    }

    fn push_consumer(
        &self,
        outbox: Arc<Outbox>,
        link: Handle,
        presettled: bool,
        remote: Option<u32>,
    ) -> ConsumerKey {
        let key = ConsumerKey::fresh();
        let mut st = self.lock();
        st.consumers.push(Consumer {
            key,
            outbox,
            link,
            presettled,
            credit: CreditWindow::new(),
            unsettled: 0,
            remote,
        });
        Self::rebalance(&mut st);
        key
    }

    /// Tells the advertiser what this node's consumers can take now (it was set after the
    /// address was created).
    pub(crate) fn readvertise(&self) {
        Self::advertise(&mut self.lock());
    }

    /// What a remote consumer's node can take now, as it advertised.
    pub fn set_level(&self, key: ConsumerKey, level: u32) {
        let mut st = self.lock();
        if let Some(c) = st.consumers.iter_mut().find(|c| c.key == key) {
            c.remote = Some(level);
        }
        Self::release_held(&mut st);
        Self::rebalance(&mut st);
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
        // held messages nobody left may take go back to their producers
        let held = std::mem::take(&mut st.held);
        for (msg, reply, reach) in held {
            if st.consumers.iter().any(|c| c.reaches(reach)) {
                st.held.push_back((msg, reply, reach));
            } else if let Some(reply) = reply {
                reply.tell(Verdict::Released);
            }
        }
        Self::release_held(&mut st);
        Self::rebalance(&mut st);
    }

    /// Forwards a message from producer `from` (its outbox and link, for its credit; none
    /// for a will) to one of the consumers `reach` allows; `reply` is set when the
    /// producer wants the consumer's outcome. A message that finds no consumer with
    /// credit waits (held) for one; one in transit (`Reach::Via`) goes on at once, its
    /// credit having been counted by the node it came from.
    pub(crate) fn publish(
        &self,
        from: Option<(&Arc<Outbox>, Handle)>,
        msg: Message,
        reply: Option<Later>,
        reach: Reach,
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
        let result = if let Reach::Via(key) = reach {
            match st.consumers.iter().position(|c| c.key == key) {
                Some(idx) => Self::deliver(&mut st, idx, msg, reply, false),
                None => Forwarded::NoConsumer,
            }
        } else if !st.consumers.iter().any(|c| c.reaches(reach)) {
            Forwarded::NoConsumer
        } else if !st.held.is_empty() {
            st.held.push_back((msg, reply, reach));
            Forwarded::Pending
        } else {
            match Self::pick(&mut st, reach) {
                Some(idx) => Self::deliver(&mut st, idx, msg, reply, false),
                None => {
                    st.held.push_back((msg, reply, reach));
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
        let mut remote = false;
        if let Some(c) = st.consumers.iter_mut().find(|c| c.key == key) {
            c.unsettled = c.unsettled.saturating_sub(1);
            remote = c.remote.is_some();
        }
        if let Some(reply) = reply {
            reply.tell(Verdict::of_outcome(outcome));
        }
        if remote {
            // a remote consumer's room is its level less what is unsettled
            Self::release_held(&mut st);
            Self::rebalance(&mut st);
        }
    }

    /// The consumer `reach` allows with credit and the fewest unsettled deliveries; among
    /// equals, the next in rotation (presettled traffic has no unsettled count to go by).
    fn pick(st: &mut State, reach: Reach) -> Option<usize> {
        let n = st.consumers.len();
        let mut best: Option<(usize, u32)> = None;
        for i in 0..n {
            let idx = (st.next_consumer + i) % n;
            let c = &st.consumers[idx];
            if c.reaches(reach) && c.available() > 0 && best.is_none_or(|(_, u)| c.unsettled < u) {
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
        // a remote consumer's node always settles: that is what frees its room
        let settled = c.remote.is_none() && (c.presettled || reply.is_none());
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
        let nobody_waits = reply.is_none();
        st.inflight.insert(token, (key, reply));
        if nobody_waits {
            return Forwarded::Accepted;
        }
        Forwarded::Pending
    }

    fn release_held(st: &mut State) {
        while let Some(&(_, _, reach)) = st.held.front() {
            let Some(idx) = Self::pick(st, reach) else {
                break;
            };
            let Some((msg, reply, _)) = st.held.pop_front() else {
                break;
            };
            Self::deliver(st, idx, msg, reply, true);
        }
    }

    /// Tells the mesh what this node's own consumers can take, when that moved enough.
    fn advertise(st: &mut State) {
        if let Some(adv) = st.advertised.as_mut() {
            let local = st.consumers.iter().filter(|c| c.remote.is_none());
            adv.update(local.map(|c| c.credit.available()), st.held.len());
        }
    }

    /// Shares the consumers' unused credit among the producers, and tells the mesh.
    fn rebalance(st: &mut State) {
        Self::advertise(st);
        if st.producers.is_empty() {
            return;
        }
        let available: u64 = st.consumers.iter().map(|c| c.available() as u64).sum();
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
