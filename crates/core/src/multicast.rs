//! Direct multicast: each message goes, presettled, to every consumer attached now. A
//! consumer without credit misses the message (counted), so a slow consumer never holds
//! up the others; producers get credit while at least one consumer is attached.
//!
//! Another node with consumers takes part as one *remote* consumer (registered by the
//! mesh, see [`crate::remote`]): it gets one presettled copy, which its connection
//! forwards to that node for its own consumers; what this node's consumers are is
//! advertised to the mesh.

use crate::link::{ConsumerKey, CreditWindow, Handle};
use crate::outbox::{Command, Outbox};
use crate::remote::{Advertised, AdvertiserSlot, Reach};
use std::sync::{Arc, Mutex, MutexGuard};
use throng_amqp::message::Message;

/// Credit a producer is topped up to.
pub const PRODUCER_WINDOW: u32 = 500;

struct Consumer {
    key: ConsumerKey,
    outbox: Arc<Outbox>,
    link: Handle,
    credit: CreditWindow,
    /// Another node's consumers: a copy each time, its connection's window bounds it.
    remote: bool,
}

impl Consumer {
    fn reaches(&self, reach: Reach) -> bool {
        reach.allows(self.key, self.remote)
    }

    fn can_take(&self) -> bool {
        self.remote || self.credit.available() > 0
    }
}

#[derive(Default)]
struct State {
    consumers: Vec<Consumer>,
    producers: Vec<(Arc<Outbox>, Handle, u32)>,
    dropped: u64,
    next_token: u64,
    /// What the mesh was told of this node's consumers (none outside a mesh).
    advertised: Option<Advertised>,
}

/// A multicast address.
pub struct Multicast {
    name: String,
    state: Mutex<State>,
}

impl Multicast {
    /// A multicast address with no links.
    pub fn new(name: impl Into<String>) -> Self {
        Multicast {
            name: name.into(),
            state: Mutex::new(State::default()),
        }
    }

    /// A multicast address of `tenant` whose consumers are advertised to the mesh once
    /// the node joins one (`slot`).
    pub fn advertised(name: impl Into<String>, tenant: &str, slot: AdvertiserSlot) -> Self {
        let m = Self::new(name);
        m.lock().advertised = Some(Advertised::new(slot, tenant, &m.name));
        m
    }

    /// Tells the advertiser what this node's consumers are now (it was set after the
    /// address was created).
    pub(crate) fn readvertise(&self) {
        Self::advertise(&mut self.lock());
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
        self.lock().consumers.iter().filter(|c| !c.remote).count()
    }

    /// Copies dropped because a consumer had no credit.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// Registers a producer; its credit arrives as [`Command::SetCredit`].
    pub fn add_producer(&self, outbox: Arc<Outbox>, link: Handle) {
        let mut st = self.lock();
        st.producers.push((outbox, link, 0));
        Self::rebalance(&mut st);
    }

    /// Forgets a producer.
    pub fn remove_producer(&self, outbox: &Arc<Outbox>, link: Handle) {
        self.lock()
            .producers
            .retain(|(o, l, _)| !(Arc::ptr_eq(o, outbox) && *l == link));
    }

    /// Registers a consumer.
    pub fn add_consumer(&self, outbox: Arc<Outbox>, link: Handle) -> ConsumerKey {
        self.push_consumer(outbox, link, false)
    }

    /// Registers the consumers of another node, reached through `outbox` (an
    /// inter-router connection's) under `link`.
    pub fn add_remote(&self, outbox: Arc<Outbox>, link: Handle) -> ConsumerKey {
        self.push_consumer(outbox, link, true)
    }

    fn push_consumer(&self, outbox: Arc<Outbox>, link: Handle, remote: bool) -> ConsumerKey {
        let key = ConsumerKey::fresh();
        let mut st = self.lock();
        st.consumers.push(Consumer {
            key,
            outbox,
            link,
            credit: CreditWindow::new(),
            remote,
        });
        Self::rebalance(&mut st);
        key
    }

    /// Removes a consumer.
    pub fn remove_consumer(&self, key: ConsumerKey) {
        let mut st = self.lock();
        st.consumers.retain(|c| c.key != key);
        Self::rebalance(&mut st);
    }

    /// Updates a consumer's credit; a drain completes at once (nothing is buffered).
    pub fn flow(&self, key: ConsumerKey, limit: u32, drain: bool) {
        let mut st = self.lock();
        if let Some(c) = st.consumers.iter_mut().find(|c| c.key == key) {
            c.credit.limit = limit;
            if drain && c.credit.available() > 0 {
                c.credit.complete_drain();
                c.outbox.push(Command::Drained { link: c.link });
            }
        }
        Self::advertise(&mut st);
    }

    /// Sends a copy to every consumer `reach` allows that has credit; returns how many
    /// got one (0 means no consumer was attached or none could take it). `from` is the
    /// producer (its outbox and link, for its credit; none for a will).
    pub(crate) fn publish(
        &self,
        from: Option<(&Arc<Outbox>, Handle)>,
        msg: Message,
        reach: Reach,
    ) -> usize {
        let mut st = self.lock();
        let mut sent = 0;
        let mut dropped = 0;
        let token = st.next_token;
        st.next_token += 1;
        for c in st.consumers.iter_mut().filter(|c| c.reaches(reach)) {
            if c.can_take() {
                c.credit.dispatched = c.credit.dispatched.wrapping_add(1);
                c.outbox.push(Command::Deliver {
                    link: c.link,
                    msg: msg.clone(),
                    token,
                    settled: true,
                    delivery_count: 0,
                    expires_at: None,
                });
                sent += 1;
            } else {
                dropped += 1;
            }
        }
        st.dropped += dropped;
        if let Some((outbox, link)) = from {
            if let Some(p) = st
                .producers
                .iter_mut()
                .find(|(o, l, _)| *l == link && Arc::ptr_eq(o, outbox))
            {
                p.2 = p.2.saturating_sub(1);
            }
        }
        Self::rebalance(&mut st);
        sent
    }

    /// Tells the mesh what this node's own consumers can take, when that moved enough.
    fn advertise(st: &mut State) {
        if let Some(adv) = st.advertised.as_mut() {
            let local = st.consumers.iter().filter(|c| !c.remote);
            adv.update(local.map(|c| c.credit.available()), 0);
        }
    }

    fn rebalance(st: &mut State) {
        Self::advertise(st);
        let open = !st.consumers.is_empty();
        for (outbox, link, granted) in st.producers.iter_mut() {
            if !open && *granted > 0 {
                *granted = 0;
                outbox.push(Command::SetCredit {
                    link: *link,
                    credit: 0,
                });
            } else if open && *granted <= PRODUCER_WINDOW / 2 {
                *granted = PRODUCER_WINDOW;
                outbox.push(Command::SetCredit {
                    link: *link,
                    credit: PRODUCER_WINDOW,
                });
            }
        }
    }
}
