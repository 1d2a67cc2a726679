//! The mailbox through which the core hands work to a connection task.
//!
//! An address pushes commands while holding its own lock; the connection task swaps the
//! whole batch out and applies it to its protocol engine. Memory is bounded by flow
//! control: deliveries are only pushed against credit the consumer granted.

use std::sync::Mutex;
use throng_amqp::definitions::{DeliveryState, Error};
use throng_amqp::engine::LinkId;
use throng_amqp::message::Message;
use throng_store::Written;
use tokio::sync::Notify;

/// How a producer's delivery is settled once its journal write is done.
pub fn written_outcome(w: Written) -> DeliveryState {
    match w {
        Written::Durable => DeliveryState::Accepted,
        Written::Failed => DeliveryState::Rejected(throng_amqp::definitions::Rejected {
            error: Some(Error::new(
                throng_amqp::definitions::condition::INTERNAL_ERROR,
                "the message store failed",
            )),
        }),
    }
}

/// Work for a connection task.
#[derive(Debug)]
pub enum Command {
    /// Send `msg` on consumer link `link`; `token` identifies it when it is settled.
    Deliver {
        link: LinkId,
        msg: Message,
        token: u64,
        settled: bool,
        delivery_count: u32,
        /// When the message expires (ms since the Unix epoch), for protocols that tell
        /// the receiver the time left (MQTT 5 message expiry interval).
        expires_at: Option<u64>,
    },
    /// Settle a producer's delivery with the outcome its message got downstream.
    Outcome {
        link: LinkId,
        delivery_id: u32,
        state: DeliveryState,
    },
    /// Set a producer link's credit to exactly `credit`.
    SetCredit { link: LinkId, credit: u32 },
    /// A queue or topic has room again: top the producer's credit up.
    Unblocked { link: LinkId },
    /// A consumer's drain is complete: everything available was delivered.
    Drained { link: LinkId },
    /// Detach a link because its address went away.
    Detach { link: LinkId, error: Error },
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

    /// The journal callback that settles delivery `delivery_id` of producer link `link`:
    /// `accepted` once the message is on disk; `rejected` with `amqp:internal-error` if
    /// the journal failed first (a full disk), so the producer hears instead of waiting.
    pub fn settle_when_written(
        self: &std::sync::Arc<Self>,
        link: LinkId,
        delivery_id: u32,
    ) -> crate::queue::OnDurable {
        let outbox = self.clone();
        Box::new(move |w| {
            outbox.push(Command::Outcome {
                link,
                delivery_id,
                state: written_outcome(w),
            })
        })
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
