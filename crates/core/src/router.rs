//! The one way a message enters a tenant: [`Tenant::publish`]. Every protocol adapter
//! (an AMQP link, an MQTT PUBLISH, a will, a committed transaction) hands its message
//! here and gets one [`Published`] back, which says what the producer is told; the
//! adapters only translate that into their protocol's words. Where a message goes, when
//! its producer hears, and when the producer must wait are decided here and nowhere
//! else (the transaction's variant, [`crate::txn`], shares the same resolution and
//! checks).

use crate::address::{Address, AddressKind};
use crate::anycast::Forwarded;
use crate::link::{Handle, Refusal, Verdict};
use crate::outbox::{Later, Outbox};
use crate::queue::{MakeOnDurable, OnDurable, Prepared, Queue, Stored, Written};
use crate::remote::Reach;
use crate::tenant::{Op, Tenant, User};
use crate::topic::{Countdown, Topic};
use std::cell::Cell;
use std::sync::Arc;
use throng_amqp::message::{Body, Message};

/// Where a message is going.
#[derive(Clone, Copy)]
pub enum Target<'a> {
    /// An address the producer's link resolved when it attached (and was permitted then).
    Address(&'a Address),
    /// An address by name (an MQTT topic, a will's address), created as the given type
    /// when the tenant creates addresses on first use.
    Named(&'a str, AddressKind),
    /// The anonymous relay: the message's own `to`, created as a queue on first use.
    To,
    /// A message another node forwarded through the mesh, for an address this node has
    /// (never created, never checked against a user: the node it entered at did that),
    /// to the consumers `Reach` allows.
    Mesh(&'a str, Reach),
}

/// The link a message arrived on: its credit is accounted, it is told to wait when the
/// address is full, and later verdicts are pushed to its outbox.
#[derive(Debug, Clone, Copy)]
pub struct Producer<'a> {
    pub outbox: &'a Arc<Outbox>,
    pub link: Handle,
}

/// Who hears the verdict if it is not known at once.
pub enum Reply {
    /// Nobody waits (AMQP presettled, MQTT QoS 0).
    None,
    /// The producer waits for the verdict of its delivery number `n` (AMQP delivery id,
    /// MQTT packet id), pushed to its outbox as [`crate::Command::Verdict`].
    Delivery(u32),
    /// A callback hears it (a will; it runs on whichever thread decides).
    Call(Box<dyn FnOnce(Verdict) + Send>),
}

/// What became of a published message.
#[derive(Clone)]
#[must_use]
pub struct Published {
    /// The verdict when it is known now. `None`: it goes to the [`Reply`] later (a
    /// durable copy on its way to disk, an anycast consumer deciding); the reply is used
    /// exactly when this is `None`.
    pub verdict: Option<Verdict>,
    /// Back-pressure: the queue (or topic subscription) that is full. The producer should
    /// send no more until a [`crate::Command::Unblocked`] arrives for its link (already
    /// asked for); a producer that goes before then tells the queue
    /// ([`Queue::remove_producer`]), so that nothing waits there for a link that is gone.
    pub wait: Option<Arc<Queue>>,
}

impl std::fmt::Debug for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Published")
            .field("verdict", &self.verdict)
            .field("wait", &self.wait.as_ref().map(|q| q.name().to_string()))
            .finish()
    }
}

impl Published {
    pub(crate) fn now(verdict: Verdict) -> Self {
        Published {
            verdict: Some(verdict),
            wait: None,
        }
    }

    pub(crate) fn refused(r: Refusal) -> Self {
        Self::now(Verdict::Refused(r))
    }
}

/// The reply, turned into its owned form only when a verdict must wait (so a message
/// answered at once costs no allocation or reference count).
struct Pending<'a> {
    from: Option<Producer<'a>>,
    /// Whether anybody waits for a verdict that comes later.
    wants: bool,
    reply: Cell<Option<Reply>>,
}

impl Pending<'_> {
    /// The owned reply (taken once).
    fn later(&self) -> Option<Later> {
        match self.reply.take()? {
            Reply::None => None,
            Reply::Delivery(delivery) => self.from.map(|p| Later::Outbox {
                outbox: p.outbox.clone(),
                link: p.link,
                delivery,
            }),
            Reply::Call(f) => Some(Later::Call(f)),
        }
    }

    /// The journal callback of a copy that settles the producer.
    fn on_durable(&self) -> OnDurable {
        match self.later() {
            Some(l) => l.when_written(),
            None => Box::new(|_| {}),
        }
    }
}

/// Whether the message asks to become its topic's retained message
/// (`x-opt-retain-message = true`, as the MQTT bridge writes a retained publish), and if so
/// the message to retain (`None`: an empty body clears it). `prep` has read the
/// annotation already, in the same pass as the scheduling ones.
pub(crate) fn retain_asked(msg: &Message, prep: &Prepared) -> Option<Option<Message>> {
    if !prep.retain() {
        return None;
    }
    let empty = match msg.body() {
        Ok(Body::Data(b)) => b.is_empty(),
        Ok(Body::Empty) => true,
        _ => false,
    };
    Some((!empty).then(|| msg.clone()))
}

impl Tenant {
    /// Whether `user` (none: anonymous) may do `op` on `address`: the one permission
    /// check every protocol's attach, subscribe and publish calls.
    pub fn permits(user: Option<&User>, op: Op, address: &str) -> bool {
        user.is_none_or(|u| u.may(op, address))
    }

    /// Resolves where a message is going (also to check a target without sending, as a
    /// will is registered): the address of the link, or a name (checked
    /// against `user`'s permissions; created on first use when the tenant does).
    pub fn target_of(
        &self,
        msg: &Message,
        to: Target<'_>,
        user: Option<&User>,
    ) -> Result<Address, Refusal> {
        let (name, kind) = match to {
            Target::Address(a) => return Ok(a.clone()),
            Target::Named(name, kind) => (std::borrow::Cow::Borrowed(name), kind),
            Target::To => match msg.to() {
                Ok(Some(to)) if !to.is_empty() => (std::borrow::Cow::Owned(to), AddressKind::Queue),
                _ => return Err(Refusal::NoAddress),
            },
            // direct addresses only, until brokers sit behind the mesh
            Target::Mesh(name, _) => {
                return match self.lookup(name) {
                    Some(a @ (Address::Anycast(_) | Address::Multicast(_))) => Ok(a),
                    _ => Err(Refusal::NotFound),
                }
            }
        };
        if !Self::permits(user, Op::Send, &name) {
            return Err(Refusal::NotPermitted);
        }
        self.resolve(&name, kind).ok_or(Refusal::NotFound)
    }

    /// Hands a message to the tenant: the one entry point of every protocol.
    ///
    /// - `to`: the link's address, a name, or the message's own `to` (anonymous relay).
    /// - `from`: the producer's link (none for a will).
    /// - `reply`: who hears the verdict when it is not known at once.
    /// - `user`: whose permissions a named target is checked against.
    ///
    /// Queues and topics store the message: accepted at once, or once on disk when it is
    /// durable and journaled (and, for a retained message, once the retained copy is
    /// stored too). Anycast forwards it to one consumer and passes that consumer's outcome
    /// back; multicast copies it to every consumer with credit (accepted if any got one).
    /// A direct address without a consumer that can take it releases it. A full queue
    /// rejects (`full_policy = "reject"`) or takes it and asks the producer to wait.
    pub fn publish(
        &self,
        msg: Message,
        to: Target<'_>,
        from: Option<Producer<'_>>,
        reply: Reply,
        user: Option<&User>,
    ) -> Published {
        let address = match self.target_of(&msg, to, user) {
            Ok(a) => a,
            Err(r) => return Published::refused(r),
        };
        let reach = match to {
            Target::Mesh(_, reach) => reach,
            _ => Reach::Any,
        };
        let pending = Pending {
            from,
            wants: !matches!(reply, Reply::None),
            reply: Cell::new(Some(reply)),
        };
        match &address {
            Address::Queue(q) => Self::to_queue(q, msg, &pending),
            Address::Topic(t) => self.to_topic(t, msg, &pending),
            Address::Anycast(a) => {
                let from = pending.from.map(|p| (p.outbox, p.link));
                let wants = pending.wants;
                match a.publish(from, msg, pending.later(), reach) {
                    Forwarded::Accepted => Published::now(Verdict::Accepted),
                    Forwarded::Pending if wants => Published {
                        verdict: None,
                        wait: None,
                    },
                    // held for a consumer, and nobody waits to hear
                    Forwarded::Pending => Published::now(Verdict::Accepted),
                    Forwarded::NoConsumer => Published::now(Verdict::Released),
                }
            }
            Address::Multicast(m) => {
                let from = pending.from.map(|p| (p.outbox, p.link));
                match m.publish(from, msg, reach) {
                    0 => Published::now(Verdict::Released),
                    _ => Published::now(Verdict::Accepted),
                }
            }
        }
    }

    fn to_queue(q: &Arc<Queue>, msg: Message, pending: &Pending<'_>) -> Published {
        if msg.len() > q.max_bytes() {
            return Published::refused(Refusal::TooLarge);
        }
        let make = || pending.on_durable();
        let on_durable = pending.wants.then_some(&make as MakeOnDurable<'_>);
        let (stored, room) = q.publish_durably(msg, on_durable);
        let verdict = match stored {
            Stored::Full => return Published::refused(Refusal::Full),
            Stored::Failed => return Published::refused(Refusal::StoreFailed),
            // the journal's callback tells the producer
            Stored::WhenDurable if on_durable.is_some() => None,
            Stored::Now | Stored::WhenDurable => Some(Verdict::Accepted),
        };
        Self::ask_to_wait(q, room, pending, verdict)
    }

    /// The answer for a message a queue took: the producer is asked to wait when the
    /// queue had no room left and blocks rather than rejects.
    fn ask_to_wait(
        q: &Arc<Queue>,
        room: bool,
        pending: &Pending<'_>,
        verdict: Option<Verdict>,
    ) -> Published {
        let mut wait = None;
        if let (false, false, Some(p)) = (room, q.rejects_when_full(), pending.from) {
            q.notify_when_room(p.outbox.clone(), p.link, 1);
            wait = Some(q.clone());
        }
        Published { verdict, wait }
    }

    fn to_topic(&self, t: &Arc<Topic>, msg: Message, pending: &Pending<'_>) -> Published {
        // read once: for the retained message here, for every subscription in the topic
        let prep = Prepared::of(&msg, &**self.clock());
        let retain = retain_asked(&msg, &prep);
        let wants = pending.wants;
        // a retained message is answered once its retained copy is stored as well
        let both = match (&retain, wants) {
            (Some(_), true) => Some(Arc::new(Countdown::new(2, pending.on_durable()))),
            _ => None,
        };
        if let Some(value) = retain {
            self.set_retained(t.name(), value, both.as_ref().map(|b| b.one_row()));
        }
        let (stored, full) = match &both {
            Some(b) => {
                let make = || b.one_write();
                t.publish_durably(msg, &prep, Some(&make as MakeOnDurable<'_>))
            }
            None => {
                let make = || pending.on_durable();
                t.publish_durably(msg, &prep, wants.then_some(&make as MakeOnDurable<'_>))
            }
        };
        let verdict = match (stored, both) {
            (Stored::Failed, _) => Some(Verdict::Refused(Refusal::StoreFailed)),
            (Stored::Full, _) => Some(Verdict::Refused(Refusal::Full)),
            (Stored::Now, Some(b)) => {
                b.one_done(Written::Durable);
                None
            }
            (Stored::WhenDurable, _) if wants => None,
            (Stored::Now | Stored::WhenDurable, _) => Some(Verdict::Accepted),
        };
        let mut wait = None;
        if let (Some(full), Some(p)) = (full, pending.from) {
            full.notify_when_room(p.outbox.clone(), p.link, 1);
            wait = Some(full);
        }
        Published { verdict, wait }
    }
}

/// How a producer link that just attached gets its credit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProducerCredit {
    /// The adapter grants its own window (queues and topics with room).
    Window,
    /// None until a [`crate::Command::Unblocked`] arrives: the queue is full and blocks.
    Wait,
    /// Exactly what [`crate::Command::SetCredit`] says: direct addresses give producers
    /// credit only while consumers can take messages.
    FromConsumers,
}

impl Address {
    /// Registers a producer link attaching to this address and says how it gets credit.
    pub fn attach_producer(&self, p: Producer<'_>) -> ProducerCredit {
        match self {
            Address::Anycast(a) => {
                a.add_producer(p.outbox.clone(), p.link);
                ProducerCredit::FromConsumers
            }
            Address::Multicast(m) => {
                m.add_producer(p.outbox.clone(), p.link);
                ProducerCredit::FromConsumers
            }
            Address::Queue(q) if !q.has_space() && !q.rejects_when_full() => {
                q.notify_when_room(p.outbox.clone(), p.link, 1);
                ProducerCredit::Wait
            }
            // a topic waits for its full subscription, as a publish to it would
            Address::Topic(t) => match t.full_subscription() {
                Some(q) => {
                    q.notify_when_room(p.outbox.clone(), p.link, 1);
                    ProducerCredit::Wait
                }
                None => ProducerCredit::Window,
            },
            Address::Queue(_) => ProducerCredit::Window,
        }
    }

    /// Forgets a producer link (detached): its credit share, its wait for room.
    pub fn detach_producer(&self, p: Producer<'_>) {
        match self {
            Address::Anycast(a) => a.remove_producer(p.outbox, p.link),
            Address::Multicast(m) => m.remove_producer(p.outbox, p.link),
            Address::Queue(q) => q.remove_producer(p.outbox, p.link),
            Address::Topic(t) => {
                for q in t.subscription_queues() {
                    q.remove_producer(p.outbox, p.link);
                }
            }
        }
    }
}
