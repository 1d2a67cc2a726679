//! Links between a client and the router core once attached (`super::attach` answers
//! the attach): producer credit, received messages handed to the core, deliveries sent
//! to consumers and their settlement, detach.

use super::connection::Conn;
use super::verdict::{self, handle, rejected};
use bytes::Bytes;
use std::sync::Arc;
use throng_amqp::definitions::{condition, DeliveryState};
use throng_amqp::engine::{IdMap, LinkId};
use throng_amqp::message::Message;
use throng_core::anycast::Anycast;
use throng_core::multicast::Multicast;
use throng_core::queue::Queue;
use throng_core::topic::Topic;
use throng_core::{
    AckTarget, Address, Command, ConsumerKey, HeldAck, Outcome, Producer, Published, Reply, Target,
};
use tracing::{debug, warn};

/// Credit a producer to a queue, topic or the anonymous relay is topped up to.
pub const PRODUCER_WINDOW: u32 = 1000;

/// What a consumer link reads from.
pub(super) enum ConsumerSource {
    Queue(Arc<Queue>),
    /// A durable subscription: outlives the link unless it detaches with `closed`.
    Durable {
        queue: Arc<Queue>,
        name: String,
    },
    /// A non-durable shared subscription: ends with its last consumer.
    Shared {
        topic: Arc<Topic>,
        queue: Arc<Queue>,
        name: String,
    },
    Subscription {
        topic: Arc<Topic>,
        queue: Arc<Queue>,
    },
    Anycast(Arc<Anycast>),
    Multicast(Arc<Multicast>),
}

impl ConsumerSource {
    /// The queue behind a store-and-forward source (queue or topic subscription).
    fn queue(&self) -> Option<&Arc<Queue>> {
        match self {
            ConsumerSource::Queue(q)
            | ConsumerSource::Durable { queue: q, .. }
            | ConsumerSource::Shared { queue: q, .. }
            | ConsumerSource::Subscription { queue: q, .. } => Some(q),
            ConsumerSource::Anycast(_) | ConsumerSource::Multicast(_) => None,
        }
    }
}

/// A link on which we send to a client.
pub(super) struct ConsumerLink {
    source: ConsumerSource,
    key: ConsumerKey,
    address: String,
    dynamic: bool,
    /// Deliveries taken from the core for this link, sent or returned: the count the
    /// core's credit limit is kept in (not the link's delivery-count, which a drain
    /// advances without a delivery).
    taken: u32,
    /// Engine delivery id → core token, for unsettled deliveries.
    inflight: IdMap<u32, u64>,
}

impl ConsumerLink {
    /// A consumer link just attached to `address` (a `dynamic` one is removed with it).
    pub(super) fn new(
        source: ConsumerSource,
        key: ConsumerKey,
        address: String,
        dynamic: bool,
    ) -> Self {
        ConsumerLink {
            source,
            key,
            address,
            dynamic,
            taken: 0,
            inflight: IdMap::default(),
        }
    }
}

/// Where a producer link's messages go.
pub(super) enum ProducerTarget {
    Address(Address),
    /// The anonymous relay: each message names its address in `to`.
    Anonymous,
    /// The transaction coordinator: declare and discharge.
    Coordinator,
    /// `$lwt`: each message registers the connection's will (published to its `to`
    /// address if the connection ends without a clean close).
    Will,
}

/// The target address on which an AMQP client registers its will.
pub(super) const WILL_ADDRESS: &str = "$lwt";

/// A link on which a client sends to us.
pub(super) struct ProducerLink {
    pub(super) target: ProducerTarget,
    /// Credit the client holds, as we granted it.
    pub credit: u32,
    /// Waiting for a full queue to drain.
    pub blocked: bool,
    /// The queues this link was registered with to hear of room (the anonymous relay
    /// and transactions may meet several): told when the link goes first, so that no
    /// queue keeps waiting for it.
    pub waits_in: Vec<Arc<Queue>>,
}

impl ProducerLink {
    /// A producer link just attached, with no credit granted yet.
    pub(super) fn new(target: ProducerTarget) -> Self {
        ProducerLink {
            target,
            credit: 0,
            blocked: false,
            waits_in: Vec::new(),
        }
    }
}

impl Conn {
    /// Grants a queue/topic/anonymous producer a fresh window when it runs low.
    pub(super) fn top_up(&mut self, link: LinkId) {
        let Some(p) = self.producers.get_mut(&link) else {
            return;
        };
        if p.blocked
            || matches!(
                p.target,
                ProducerTarget::Address(Address::Anycast(_) | Address::Multicast(_))
            )
        {
            return;
        }
        if p.credit <= PRODUCER_WINDOW / 2 {
            p.credit = PRODUCER_WINDOW;
            let _ = self.engine.flow(link, PRODUCER_WINDOW, false);
        }
    }

    pub(super) fn on_flow(&mut self, link: LinkId, credit: u32, drain: bool) {
        if let Some(c) = self.consumers.get(&link) {
            // in the core's count: deliveries taken so far plus the credit now (a drain
            // used credit up without deliveries; the core gave it up when the drain
            // completed)
            let limit = c.taken.wrapping_add(credit);
            match &c.source {
                ConsumerSource::Anycast(a) => a.flow(c.key, limit, drain),
                ConsumerSource::Multicast(m) => m.flow(c.key, limit, drain),
                queued => {
                    if let Some(q) = queued.queue() {
                        q.flow(c.key, limit, drain)
                    }
                }
            }
        } else if let Some(p) = self.producers.get_mut(&link) {
            // a producer's flow (e.g. after it drained) tells us the credit it has left
            p.credit = credit;
            self.top_up(link);
        }
    }

    /// Sends a delivery the core dispatched to one of our consumer links.
    pub(super) fn deliver(
        &mut self,
        link: LinkId,
        msg: Message,
        token: u64,
        settled: bool,
        delivery_count: u32,
    ) {
        let Some(c) = self.consumers.get_mut(&link) else {
            return;
        };
        // counted whether or not it goes out: the core counted it as dispatched
        c.taken = c.taken.wrapping_add(1);
        let tag = token.to_be_bytes();
        let result = if delivery_count > 0 {
            match msg.header() {
                Ok(mut h) => {
                    h.delivery_count = Some(delivery_count);
                    h.first_acquirer = Some(false);
                    let (head, rest) = msg.with_header(&h);
                    self.engine.send(link, &tag, &[&head, &rest], settled)
                }
                Err(_) => self.engine.send(link, &tag, &msg.hop_parts(), settled),
            }
        } else {
            self.engine.send(link, &tag, &msg.hop_parts(), settled)
        };
        match result {
            Ok(id) => {
                if !settled {
                    c.inflight.insert(id, token);
                }
            }
            Err(e) => {
                debug!(
                    conn = self.id,
                    "delivery not sent ({e}); returned to its address"
                );
                match &c.source {
                    ConsumerSource::Anycast(a) => a.settle(c.key, token, Outcome::Released),
                    ConsumerSource::Multicast(_) => {}
                    queued => {
                        if let Some(q) = queued.queue() {
                            q.undeliverable(c.key, token)
                        }
                    }
                }
            }
        }
    }

    pub(super) fn on_disposition(
        &mut self,
        link: LinkId,
        delivery_id: u32,
        state: Option<DeliveryState>,
        settled: bool,
    ) {
        let Some(c) = self.consumers.get_mut(&link) else {
            return;
        };
        // a settlement without an outcome counts as accepted: the client chose to forget it
        let state = match state {
            Some(s) if s.is_outcome() => s,
            Some(_) if !settled => return,
            _ if settled => DeliveryState::Accepted,
            _ => return,
        };
        let Some(token) = c.inflight.remove(&delivery_id) else {
            return;
        };
        // a transactional outcome waits for its transaction's commit
        if let Some((txn, inner)) = super::transactions::transactional(Some(&state)) {
            let inner = inner.unwrap_or(DeliveryState::Accepted);
            let Some(outcome) = verdict::outcome(&inner) else {
                return;
            };
            match self.held_ack(link, token, outcome.clone()) {
                Some(ack) if self.txns.holds(&txn) => self.txns.hold_ack(&txn, ack),
                _ => self.settle_token(link, token, outcome),
            }
            return;
        }
        if let Some(outcome) = verdict::outcome(&state) {
            self.settle_token(link, token, outcome);
        }
    }

    /// What applies `outcome` to delivery `token` of consumer `link` later (at commit);
    /// `None` where nothing needs applying (multicast, a link gone).
    fn held_ack(&self, link: LinkId, token: u64, outcome: Outcome) -> Option<HeldAck> {
        let c = self.consumers.get(&link)?;
        let target = match &c.source {
            ConsumerSource::Anycast(a) => AckTarget::Anycast(a.clone()),
            ConsumerSource::Multicast(_) => return None,
            queued => AckTarget::Queue(queued.queue()?.clone()),
        };
        Some(HeldAck {
            target,
            key: c.key,
            token,
            outcome,
        })
    }

    /// Settles `token` with the consumer link's address.
    pub(super) fn settle_token(&mut self, link: LinkId, token: u64, outcome: Outcome) {
        let Some(c) = self.consumers.get(&link) else {
            return;
        };
        match &c.source {
            ConsumerSource::Anycast(a) => a.settle(c.key, token, outcome),
            ConsumerSource::Multicast(_) => {}
            queued => {
                if let Some(q) = queued.queue() {
                    q.settle(c.key, token, outcome)
                }
            }
        }
    }

    pub(super) fn on_delivery(
        &mut self,
        link: LinkId,
        delivery_id: u32,
        payload: Bytes,
        settled: bool,
        state: Option<DeliveryState>,
    ) {
        let Some(p) = self.producers.get_mut(&link) else {
            return;
        };
        p.credit = p.credit.saturating_sub(1);
        let coordinator = super::transactions::is_coordinator(&p.target);
        let outcome = match Message::parse(payload) {
            Err(e) => {
                warn!(conn = self.id, peer = %self.peer, "message rejected: {e}");
                Some(rejected(condition::DECODE_ERROR, e.to_string()))
            }
            Ok(msg) if coordinator => {
                self.on_coordinator_message(link, delivery_id, msg);
                None
            }
            Ok(msg) => self.on_message(link, delivery_id, settled, state.as_ref(), msg),
        };
        if !settled {
            if let Some(state) = outcome {
                self.engine
                    .disposition(link, delivery_id, Some(state), true);
            }
        }
        self.top_up(link);
    }

    /// Registers `msg` (its `to` already resolved and allowed) as the connection's will,
    /// replacing any earlier one. It is accepted once the metadata store has it, so a
    /// will the client was told is registered is published even if the node crashes.
    fn register_will(
        &mut self,
        link: LinkId,
        delivery_id: u32,
        settled: bool,
        msg: Message,
    ) -> Option<DeliveryState> {
        let (Some(p), Ok(Some(to))) = (&self.principal, msg.to()) else {
            return Some(rejected(condition::INVALID_FIELD, "a will needs `to`"));
        };
        let will = crate::wills::Will {
            key: crate::wills::Will::key(self.id),
            address: to,
            mqtt: false,
            retain: false,
            delay: 0,
            client_id: self.container_id.clone(),
            message: msg,
        };
        debug!(conn = self.id, address = %will.address, "will registered");
        let outbox = self.outbox.clone();
        let done: throng_store::Committed = Box::new(move |r| {
            if settled {
                return;
            }
            let verdict = match r {
                Ok(()) => throng_core::Verdict::Accepted,
                Err(_) => throng_core::Verdict::Refused(throng_core::Refusal::StoreFailed),
            };
            outbox.push(Command::Verdict {
                link: handle(link),
                delivery: delivery_id,
                verdict,
            });
        });
        will.remember(&p.tenant, Some(done));
        self.will = Some(will);
        None
    }

    /// A message on a producer link: registered as the will (`$lwt`), held in its
    /// transaction, or published; the core's answer translated. Returns the state to
    /// settle the delivery with now (`None`: later, or never for a settled one).
    fn on_message(
        &mut self,
        link: LinkId,
        delivery_id: u32,
        settled: bool,
        state: Option<&DeliveryState>,
        msg: Message,
    ) -> Option<DeliveryState> {
        let (Some(p), Some(principal)) = (self.producers.get(&link), &self.principal) else {
            return None;
        };
        let user = principal.user.as_ref();
        let to = match &p.target {
            ProducerTarget::Address(a) => Target::Address(a),
            ProducerTarget::Will => {
                return match principal.tenant.target_of(&msg, Target::To, user) {
                    Ok(_) => self.register_will(link, delivery_id, settled, msg),
                    Err(r) => Some(verdict::delivery_state(throng_core::Verdict::Refused(r))),
                };
            }
            ProducerTarget::Anonymous | ProducerTarget::Coordinator => Target::To,
        };
        let from = Some(Producer {
            outbox: &self.outbox,
            link: handle(link),
        });
        let (published, txn) = match super::transactions::transactional(state) {
            Some((id, _)) => match self.txns.get_mut(&id) {
                Some(txn) => (principal.tenant.hold(txn, msg, to, from, user), Some(id)),
                None => return Some(super::transactions::unknown(&id)),
            },
            None => {
                let reply = if settled {
                    Reply::None
                } else {
                    Reply::Delivery(delivery_id)
                };
                (principal.tenant.publish(msg, to, from, reply, user), None)
            }
        };
        let Published { verdict: v, wait } = published;
        if let Some(q) = wait {
            self.block(link, q);
        }
        let v = v?;
        Some(match txn {
            // held in the transaction (or released: a direct address without consumer)
            Some(id)
                if matches!(
                    v,
                    throng_core::Verdict::Accepted | throng_core::Verdict::Released
                ) =>
            {
                super::transactions::txn_state(&id, v)
            }
            _ => verdict::delivery_state(v),
        })
    }

    /// The address the producer sends to is full: take the producer's remaining credit
    /// away (messages already in flight are still taken) until the core says it has room
    /// ([`Command::Unblocked`]; it was asked for).
    fn block(&mut self, link: LinkId, full: Arc<Queue>) {
        if let Some(p) = self.producers.get_mut(&link) {
            if !p.waits_in.iter().any(|q| Arc::ptr_eq(q, &full)) {
                p.waits_in.push(full);
            }
            if !p.blocked {
                p.blocked = true;
                p.credit = 0;
                let _ = self.engine.flow(link, 0, false);
            }
        }
    }

    /// Unregisters a link from the core: a consumer's unsettled messages go back.
    pub(super) fn release_link(&mut self, link: LinkId, closed: bool) {
        if let Some(c) = self.consumers.remove(&link) {
            match &c.source {
                ConsumerSource::Queue(q) => q.remove_consumer(c.key),
                ConsumerSource::Shared { topic, queue, name } => {
                    queue.remove_consumer(c.key);
                    topic.leave_shared(name);
                }
                ConsumerSource::Durable { queue, name } => {
                    queue.remove_consumer(c.key);
                    if closed {
                        if let Some(p) = &self.principal {
                            p.tenant.close_subscription(name);
                        }
                    }
                }
                ConsumerSource::Subscription { topic, queue } => {
                    queue.remove_consumer(c.key);
                    topic.unsubscribe(queue);
                }
                ConsumerSource::Anycast(a) => a.remove_consumer(c.key),
                ConsumerSource::Multicast(m) => m.remove_consumer(c.key),
            }
            if c.dynamic {
                if let Some(p) = &self.principal {
                    p.tenant.remove(&c.address);
                }
            }
        }
        if let Some(p) = self.producers.remove(&link) {
            for q in &p.waits_in {
                q.remove_producer(&self.outbox, handle(link));
            }
            match p.target {
                // detaching the will link with closed=true withdraws the will
                ProducerTarget::Will if closed => {
                    if let (Some(w), Some(p)) = (self.will.take(), &self.principal) {
                        w.forget(&p.tenant);
                    }
                }
                ProducerTarget::Address(a) => a.detach_producer(Producer {
                    outbox: &self.outbox,
                    link: handle(link),
                }),
                _ => {}
            }
        }
    }

    /// Unregisters every link (the connection is gone).
    pub(super) fn release_all_links(&mut self) {
        let mut links: Vec<LinkId> = self
            .consumers
            .keys()
            .chain(self.producers.keys())
            .copied()
            .collect();
        links.sort_unstable();
        for l in links {
            self.release_link(l, false);
        }
    }
}
