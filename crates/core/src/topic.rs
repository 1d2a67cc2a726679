//! A store-and-forward topic: every subscription is a queue of its own that receives a
//! copy (a reference to the same bytes) of each message published after it was created.

use crate::queue::Queue;
use std::sync::{Arc, Mutex};
use throng_amqp::message::Message;

/// A topic and its live (non-durable) subscriptions.
pub struct Topic {
    name: String,
    max_bytes: usize,
    subscriptions: Mutex<Vec<Arc<Queue>>>,
}

impl Topic {
    /// A topic with no subscribers.
    pub fn new(name: impl Into<String>) -> Self {
        Topic {
            name: name.into(),
            max_bytes: crate::queue::DEFAULT_MAX_BYTES,
            subscriptions: Mutex::new(Vec::new()),
        }
    }

    /// Sets the byte bound of each subscription.
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Creates a subscription; the caller attaches its consumer to the returned queue and
    /// calls [`Topic::unsubscribe`] when the subscriber goes.
    pub fn subscribe(&self) -> Arc<Queue> {
        let q = Arc::new(
            Queue::new(format!("{}::sub", self.name), None).with_max_bytes(self.max_bytes),
        );
        crate::sync::lock(&self.subscriptions).push(q.clone());
        q
    }

    /// Drops a subscription and whatever it still held.
    pub fn unsubscribe(&self, sub: &Arc<Queue>) {
        crate::sync::lock(&self.subscriptions).retain(|q| !Arc::ptr_eq(q, sub));
    }

    /// Number of live subscriptions.
    pub fn subscriber_count(&self) -> usize {
        crate::sync::lock(&self.subscriptions).len()
    }

    /// Copies the message to every subscription. Returns the subscription that is full,
    /// if any, so the producer can wait for it.
    pub fn publish(&self, msg: Message) -> Option<Arc<Queue>> {
        // lock order: topic, then subscription queue (a queue never locks its topic)
        let subs = crate::sync::lock(&self.subscriptions);
        let mut full = None;
        for q in subs.iter() {
            if !q.publish(msg.clone()) {
                full = Some(q.clone());
            }
        }
        full
    }
}
