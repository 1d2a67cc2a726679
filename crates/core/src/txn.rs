//! Local transactions, in no protocol's words: a [`Transaction`] holds sends and
//! consumer outcomes until it is committed or rolled back.
//!
//! A transactional send is resolved and checked as a plain one ([`Tenant::hold`] shares
//! [`Tenant::publish`]'s resolution): a name the user may not send to, an unknown
//! address, a direct address without a consumer get the same answers. Its bytes count
//! against the address's bound while it is held: a send that can never fit dooms the
//! transaction, one that does not fit now makes the producer wait (`full_policy =
//! "block"`) or dooms it (`"reject"`).
//!
//! The commit is all-or-nothing ([`Tenant::commit`]): every stored copy is staged first —
//! counted against its queue's bound and journaled when durable, but not yet visible —
//! and only once every journal and retained-message write is on disk are the copies
//! shown to consumers, the direct messages forwarded and the held outcomes applied; then
//! the commit is answered. If anything cannot be stored (full, too large, the store
//! failed) nothing is delivered, the held outcomes are rolled back, and the commit is
//! answered with the refusal.

use crate::address::Address;
use crate::anycast::Anycast;
use crate::link::{ConsumerKey, Outcome, Refusal, Verdict};
use crate::outbox::Later;
use crate::queue::{Entry, MakeOnDurable, OnDurable, Prepared, Queue, Written};
use crate::router::{retain_asked, Producer, Published, Target};
use crate::tenant::{Tenant, User};
use crate::topic::Countdown;
use std::sync::{Arc, Mutex};
use throng_amqp::message::Message;

/// Where a consumer's held outcome is applied.
pub enum AckTarget {
    Queue(Arc<Queue>),
    Anycast(Arc<Anycast>),
}

/// A consumer's outcome held until commit.
pub struct HeldAck {
    pub target: AckTarget,
    pub key: ConsumerKey,
    pub token: u64,
    pub outcome: Outcome,
}

impl HeldAck {
    fn apply(self, outcome: Outcome) {
        match self.target {
            AckTarget::Queue(q) => q.settle(self.key, self.token, outcome),
            AckTarget::Anycast(a) => a.settle(self.key, self.token, outcome),
        }
    }

    /// Rolled back: the message comes back as a failed delivery (JMS: redelivered).
    fn roll_back(self) {
        self.apply(Outcome::Modified {
            failed: true,
            undeliverable_here: false,
            annotations: None,
        })
    }
}

/// One open transaction's held work.
#[derive(Default)]
pub struct Transaction {
    sends: Vec<(Address, Message)>,
    /// Bytes held per address (by identity), for the bound checks of later sends.
    held: Vec<(usize, usize)>,
    /// Why the transaction can no longer commit; its sends are dropped from then on.
    doomed: Option<Refusal>,
    acks: Vec<HeldAck>,
}

impl Transaction {
    /// An empty transaction.
    pub fn new() -> Self {
        Self::default()
    }

    /// Holds a consumer's outcome until commit.
    pub fn hold_ack(&mut self, ack: HeldAck) {
        self.acks.push(ack);
    }

    /// Discards the held sends and rolls the held outcomes back.
    pub fn roll_back(self) {
        for ack in self.acks {
            ack.roll_back();
        }
    }

    fn held_for(&self, id: usize) -> usize {
        self.held
            .iter()
            .find(|(i, _)| *i == id)
            .map_or(0, |(_, b)| *b)
    }

    fn doom(&mut self, why: Refusal) -> Published {
        self.sends = Vec::new();
        self.held = Vec::new();
        self.doomed = Some(why.clone());
        Published::refused(why)
    }
}

/// The staged part of a commit, finished once its writes are on disk.
struct Staged {
    tenant: Arc<Tenant>,
    queues: Vec<(Arc<Queue>, Vec<Entry>)>,
    direct: Vec<(Address, Message)>,
    retained: Vec<(String, Option<Message>)>,
    acks: Vec<HeldAck>,
    done: Later,
}

impl Staged {
    fn stage_in(&mut self, q: &Arc<Queue>, entry: Entry) {
        match self.queues.iter_mut().find(|(x, _)| Arc::ptr_eq(x, q)) {
            Some((_, entries)) => entries.push(entry),
            None => self.queues.push((q.clone(), vec![entry])),
        }
    }

    /// Everything is on disk: show it, forward, apply, answer.
    fn commit(self) {
        for (q, entries) in self.queues {
            q.admit_staged(entries);
        }
        for (address, msg) in self.direct {
            match address {
                Address::Anycast(a) => {
                    a.publish(None, msg, None, crate::remote::Reach::Any);
                }
                Address::Multicast(m) => {
                    m.publish(None, msg, crate::remote::Reach::Any);
                }
                Address::Queue(_) | Address::Topic(_) => {}
            }
        }
        for (topic, value) in self.retained {
            self.tenant.set_retained(&topic, value, None);
        }
        for ack in self.acks {
            let outcome = ack.outcome.clone();
            ack.apply(outcome);
        }
        self.done.tell(Verdict::Accepted);
    }

    /// Something could not be stored: take it all back and answer `why`.
    fn abandon(self, why: Refusal) {
        for (q, entries) in self.queues {
            q.abandon_staged(entries);
        }
        for (topic, _) in &self.retained {
            // the row may have been written: put back what the topic still retains
            let current = self.tenant.retained(topic);
            self.tenant.set_retained(topic, current, None);
        }
        for ack in self.acks {
            ack.roll_back();
        }
        self.done.tell(Verdict::Refused(why));
    }
}

impl Tenant {
    /// A transactional send: resolved and checked like [`Tenant::publish`], then held in
    /// `txn` until commit. Accepted means held; the producer may be asked to wait while
    /// the address has no room for what the transaction holds for it.
    pub fn hold(
        &self,
        txn: &mut Transaction,
        msg: Message,
        to: Target<'_>,
        from: Option<Producer<'_>>,
        user: Option<&User>,
    ) -> Published {
        let address = match self.target_of(&msg, to, user) {
            Ok(a) => a,
            Err(r) => return Published::refused(r),
        };
        if let Some(r) = &txn.doomed {
            return Published::refused(r.clone());
        }
        let len = msg.len();
        let id = address.identity();
        let need = txn.held_for(id) + len;
        let too_large = |max: usize| {
            if len > max {
                Refusal::TooLarge
            } else {
                Refusal::Full
            }
        };
        let wait_on = match &address {
            Address::Queue(q) => {
                if need > q.max_bytes() {
                    return txn.doom(too_large(q.max_bytes()));
                }
                let fits = q.bytes().saturating_add(need) <= q.max_bytes();
                if !fits && q.rejects_when_full() {
                    return txn.doom(Refusal::Full);
                }
                (!fits).then(|| q.clone())
            }
            Address::Topic(t) => {
                if need > t.max_bytes() {
                    return txn.doom(too_large(t.max_bytes()));
                }
                t.subscription_queues()
                    .into_iter()
                    .find(|q| q.bytes().saturating_add(need) > q.max_bytes())
            }
            Address::Anycast(_) | Address::Multicast(_) => {
                if address.consumer_count() == Some(0) {
                    return Published::now(Verdict::Released);
                }
                None
            }
        };
        match txn.held.iter_mut().find(|(i, _)| *i == id) {
            Some((_, b)) => *b = need,
            None => txn.held.push((id, need)),
        }
        txn.sends.push((address, msg));
        let mut wait = None;
        if let (Some(q), Some(p)) = (wait_on, from) {
            q.notify_when_room(p.outbox.clone(), p.link, need);
            wait = Some(q);
        }
        Published {
            verdict: Some(Verdict::Accepted),
            wait,
        }
    }

    /// Commits `txn`, all or nothing (see the module docs); `done` hears
    /// [`Verdict::Accepted`] once every durable message of it is on disk and its messages
    /// are delivered, or the refusal that rolled it back.
    pub fn commit(self: &Arc<Self>, txn: Transaction, done: Later) {
        let Transaction {
            sends,
            doomed,
            acks,
            ..
        } = txn;
        let mut staged = Staged {
            tenant: self.clone(),
            queues: Vec::new(),
            direct: Vec::new(),
            retained: Vec::new(),
            acks,
            done,
        };
        if let Some(why) = doomed {
            return staged.abandon(why);
        }
        if sends.iter().any(|(a, _)| a.consumer_count() == Some(0)) {
            return staged.abandon(Refusal::NoConsumer);
        }
        // the commit finishes when the last write is on disk; the staging itself holds one
        // count so that writes done before staging ends cannot finish it early
        let slot: Arc<Mutex<Option<Staged>>> = Arc::new(Mutex::new(None));
        let finish = {
            let slot = slot.clone();
            Box::new(move |w: Written| {
                let Some(staged) = crate::sync::lock(&slot).take() else {
                    return; // staging failed and answered already
                };
                match w {
                    Written::Durable => staged.commit(),
                    Written::Failed => staged.abandon(Refusal::StoreFailed),
                }
            }) as OnDurable
        };
        let gate = Arc::new(Countdown::new(1, finish));
        let one_write = || -> OnDurable {
            gate.add_one();
            gate.one_write()
        };
        for (address, msg) in sends {
            let result = match &address {
                Address::Queue(q) => {
                    let prep = Prepared::of(&msg, &**self.clock());
                    q.stage(msg, &prep, Some(&one_write as MakeOnDurable<'_>))
                        .map(|(entry, _)| staged.stage_in(q, entry))
                }
                Address::Topic(t) => {
                    let prep = Prepared::of(&msg, &**self.clock());
                    if let Some(value) = retain_asked(&msg, &prep) {
                        gate.add_one();
                        self.store_retained_row(t.name(), value.as_ref(), gate.one_row());
                        staged.retained.push((t.name().to_string(), value));
                    }
                    t.subscription_queues().iter().try_for_each(|q| {
                        q.stage(msg.clone(), &prep, Some(&one_write as MakeOnDurable<'_>))
                            .map(|(entry, _)| staged.stage_in(q, entry))
                    })
                }
                Address::Anycast(_) | Address::Multicast(_) => {
                    staged.direct.push((address.clone(), msg));
                    Ok(())
                }
            };
            if let Err(why) = result {
                return staged.abandon(why);
            }
        }
        *crate::sync::lock(&slot) = Some(staged);
        gate.one_done(Written::Durable);
    }
}
