//! The mailbox through which the core hands work to a connection task, and [`Later`]:
//! where the verdict of a message goes when it is known only after `publish` returned.
//!
//! An address pushes commands while holding its own lock; the connection task swaps the
//! whole batch out and applies it to its protocol engine. Memory is bounded by flow
//! control: deliveries are only pushed against credit the consumer granted.

use crate::link::{Handle, Refusal, Verdict};
use std::sync::{Arc, Mutex};
use throng_amqp::message::Message;
use throng_store::{OnWritten, Written};
use tokio::sync::Notify;

/// What a producer is told once its message's journal write is done.
pub fn written_verdict(w: Written) -> Verdict {
    match w {
        Written::Durable => Verdict::Accepted,
        Written::Failed => Verdict::Refused(Refusal::StoreFailed),
    }
}

/// Work for a connection task.
#[derive(Debug)]
pub enum Command {
    /// Send `msg` on consumer link `link`; `token` identifies it when it is settled.
    Deliver {
        link: Handle,
        msg: Message,
        token: u64,
        settled: bool,
        delivery_count: u32,
        /// When the message expires (ms since the Unix epoch), for protocols that tell
        /// the receiver the time left (MQTT 5 message expiry interval).
        expires_at: Option<u64>,
    },
    /// Tell the producer of delivery `delivery` on `link` what became of it.
    Verdict {
        link: Handle,
        delivery: u32,
        verdict: Verdict,
    },
    /// Set a producer link's credit to exactly `credit`.
    SetCredit { link: Handle, credit: u32 },
    /// An address that was full has room again: the producer may send again.
    Unblocked { link: Handle },
    /// A consumer's drain is complete: everything available was delivered.
    Drained { link: Handle },
}

/// A connection's command queue and its wake-up signal.
#[derive(Debug, Default)]
pub struct Outbox {
    cmds: Mutex<Vec<Command>>,
    notify: Notify,
}

impl Outbox {
    /// A new, empty outbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues a command, waking the connection task when the queue was empty.
    pub fn push(&self, cmd: Command) {
        let was_empty = {
            let mut q = crate::sync::lock(&self.cmds);
            let was_empty = q.is_empty();
            q.push(cmd);
            was_empty
        };
        if was_empty {
            self.notify.notify_one();
        }
    }

    /// Moves every queued command into `into` (which should be empty).
    pub fn drain_into(&self, into: &mut Vec<Command>) {
        let mut q = crate::sync::lock(&self.cmds);
        std::mem::swap(&mut *q, into);
    }

    /// Whether commands are waiting.
    pub fn is_empty(&self) -> bool {
        crate::sync::lock(&self.cmds).is_empty()
    }

    /// Resolves when a command was pushed since the last drain.
    pub async fn notified(&self) {
        self.notify.notified().await
    }
}

/// Where the verdict of one message goes when it is known only later (its copy reaches
/// the disk, an anycast consumer settles it, a transaction's writes are done): exactly
/// one verdict is told to it.
pub enum Later {
    /// Pushed to the producer's connection as [`Command::Verdict`].
    Outbox {
        outbox: Arc<Outbox>,
        link: Handle,
        delivery: u32,
    },
    /// Called: a will (its stored copy is forgotten once the message is safe), a
    /// transaction's commit.
    Call(Box<dyn FnOnce(Verdict) + Send>),
}

impl std::fmt::Debug for Later {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Later::Outbox { link, delivery, .. } => f
                .debug_struct("Later::Outbox")
                .field("link", link)
                .field("delivery", delivery)
                .finish(),
            Later::Call(_) => f.write_str("Later::Call"),
        }
    }
}

impl Later {
    /// Tells the verdict.
    pub fn tell(self, verdict: Verdict) {
        match self {
            Later::Outbox {
                outbox,
                link,
                delivery,
            } => outbox.push(Command::Verdict {
                link,
                delivery,
                verdict,
            }),
            Later::Call(f) => f(verdict),
        }
    }

    /// The journal callback that tells the verdict once the message is on disk (or the
    /// journal failed first: the store failed, so the producer hears instead of waiting).
    pub fn when_written(self) -> OnWritten {
        Box::new(move |w| self.tell(written_verdict(w)))
    }
}
