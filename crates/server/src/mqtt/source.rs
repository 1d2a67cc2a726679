//! The sources MQTT subscriptions receive from, how their durable ones are named, and the
//! one rule for what a delivery from a source carries when several subscriptions of a
//! session share it.
//!
//! Within a session, every non-shared subscription whose filter matches a topic shares
//! one source on that topic, so overlapping filters (`a/#` and `a/x`) store and deliver
//! one copy. Shared subscriptions (`$share/...`) and queue addresses keep a source per
//! subscription.

use super::session::Subscription;
use std::sync::Arc;
use throng_core::queue::Queue;
use throng_core::topic::Topic;
use throng_core::Tenant;
use throng_mqtt::{ByteStr, QoS};

/// How the durable subscriptions behind MQTT shared subscriptions are named:
/// `$mqtt-share|GROUP|FILTER|TOPIC` (one per group, filter and matching topic).
pub const SHARED_PREFIX: &str = "$mqtt-share|";

/// How the durable subscriptions of persistent sessions were named before overlapping
/// subscriptions shared a source: `$mqtt|CLIENT|FILTER|TOPIC`, one per filter and topic.
/// The node no longer creates them; a restored session drains those an earlier version
/// left (see [`legacy_name`]).
pub const SESSION_PREFIX: &str = "$mqtt|";

/// How the durable subscriptions of persistent sessions are named:
/// `$mqtt-session|LEN|CLIENT|TOPIC`, one per client and topic whatever the filters that
/// match it, with LEN the client id's length in bytes (so that no client id or topic
/// holding `|` can make the names of two sessions equal). They live and die with their
/// session.
pub const SESSION_TOPIC_PREFIX: &str = "$mqtt-session|";

/// The durable subscription of persistent session `client` on `topic`.
pub fn durable_name(client: &str, topic: &str) -> String {
    format!("{SESSION_TOPIC_PREFIX}{}|{client}|{topic}", client.len())
}

/// The name an earlier version gave the durable subscription of session `client`'s
/// filter `filter` on `topic`: looked for when the session is restored.
pub fn legacy_name(client: &str, filter: &str, topic: &str) -> String {
    format!("{SESSION_PREFIX}{client}|{filter}|{topic}")
}

/// The durable subscription of share group `group`'s filter `filter` on `topic`.
pub fn shared_name(group: &str, filter: &str, topic: &str) -> String {
    format!("{SHARED_PREFIX}{group}|{filter}|{topic}")
}

/// Where a source's messages come from, and how to let go of it.
pub enum SourceKind {
    /// A subscription queue of the session's own on a topic.
    Topic(Arc<Topic>),
    /// A shared subscription on a topic: a durable subscription of the tenant its
    /// members compete for (its name).
    Shared(Arc<Tenant>, String),
    /// A durable subscription of a persistent session on a topic (its name).
    Durable(Arc<Tenant>, String),
    /// A durable subscription an earlier version made for one filter (its name): no
    /// longer fed by its topic, it is drained and then deleted.
    Legacy(Arc<Tenant>, String),
    /// An existing queue address, consumed directly.
    Queue,
}

/// One address a session receives from.
pub struct Source {
    /// Unique within the session.
    pub id: u64,
    /// The topic name deliveries are published on.
    pub topic: ByteStr,
    pub queue: Arc<Queue>,
    pub kind: SourceKind,
}

impl Source {
    /// Lets go of the source: a topic subscription or durable subscription is deleted
    /// with what it held; a shared one loses a member.
    pub fn release(&self) {
        match &self.kind {
            SourceKind::Topic(t) => t.unsubscribe(&self.queue),
            SourceKind::Shared(tenant, name) => tenant.leave_shared_subscription(name),
            SourceKind::Durable(tenant, name) | SourceKind::Legacy(tenant, name) => {
                tenant.close_subscription(name)
            }
            SourceKind::Queue => {}
        }
    }

    /// Whether the source is drained and then deleted (see [`SourceKind::Legacy`]).
    pub fn drains(&self) -> bool {
        matches!(self.kind, SourceKind::Legacy(..))
    }

    /// Whether nothing is left in the source: no message waiting, none unsettled.
    pub fn is_drained(&self) -> bool {
        self.queue.depth() == 0 && self.queue.unacked() == 0
    }
}

/// What the consumer on a source applies to each delivery: the options of the
/// subscriptions the source serves, merged by [`DeliveryOptions::merge`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryOptions {
    /// The most a delivery gets (the lower of this and the message's QoS is sent).
    pub qos: QoS,
    /// The client's own messages are not sent back.
    pub no_local: bool,
    /// Live messages keep the retain flag they were published with.
    pub retain_as_published: bool,
    /// v5 subscription identifiers sent with every message, ascending, without repeats.
    pub subscription_ids: Vec<u32>,
}

impl DeliveryOptions {
    /// The options of one source serving `subs` (at least one): one copy at the highest
    /// QoS among them, carrying each one's identifier; retain-as-published if any asked
    /// for it; no-local only if all did (a subscription without it wants the client's
    /// own messages).
    pub fn merge<'a>(subs: impl IntoIterator<Item = &'a Subscription>) -> DeliveryOptions {
        let mut merged = DeliveryOptions {
            qos: QoS::AtMostOnce,
            no_local: true,
            retain_as_published: false,
            subscription_ids: Vec::new(),
        };
        let mut any = false;
        for sub in subs {
            any = true;
            merged.qos = merged.qos.max(sub.options.qos);
            merged.no_local &= sub.options.no_local;
            merged.retain_as_published |= sub.options.retain_as_published;
            merged.subscription_ids.extend(sub.id);
        }
        merged.no_local &= any;
        merged.subscription_ids.sort_unstable();
        merged.subscription_ids.dedup();
        merged
    }

    /// Whether the source's consumer is presettled (QoS 0: nothing to acknowledge).
    pub fn presettled(&self) -> bool {
        self.qos == QoS::AtMostOnce
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use throng_mqtt::codec::SubscriptionOptions;

    fn sub(qos: QoS, no_local: bool, rap: bool, id: Option<u32>) -> Subscription {
        let mut options = SubscriptionOptions::qos(qos);
        options.no_local = no_local;
        options.retain_as_published = rap;
        Subscription {
            filter: "f".into(),
            share: None,
            options,
            id,
            sources: Vec::new(),
        }
    }

    #[test]
    fn overlapping_subscriptions_merge_into_one_delivery() {
        let a = sub(QoS::AtMostOnce, true, false, Some(2));
        let b = sub(QoS::AtLeastOnce, false, true, Some(1));
        let c = sub(QoS::AtMostOnce, true, false, None);
        let m = DeliveryOptions::merge([&a, &b, &c]);
        assert_eq!(m.qos, QoS::AtLeastOnce, "the highest QoS");
        assert!(
            !m.no_local,
            "one subscription wants the client's own messages"
        );
        assert!(m.retain_as_published, "one subscription asked for it");
        assert_eq!(
            m.subscription_ids,
            vec![1, 2],
            "every identifier, ascending"
        );
        assert!(!m.presettled());
    }

    #[test]
    fn no_local_holds_only_when_every_subscription_asked_for_it() {
        let a = sub(QoS::AtMostOnce, true, false, Some(3));
        let b = sub(QoS::AtMostOnce, true, false, Some(3));
        let m = DeliveryOptions::merge([&a, &b]);
        assert!(m.no_local && m.presettled());
        assert_eq!(m.subscription_ids, vec![3], "a repeated identifier once");
    }

    #[test]
    fn durable_names_of_two_sessions_never_collide() {
        // "a|b" on "t" and "a" on "b|t" would both be "a|b|t" without the length
        assert_ne!(durable_name("a|b", "t"), durable_name("a", "b|t"));
        assert!(!durable_name("c", "t").starts_with(SESSION_PREFIX));
        assert!(!durable_name("c", "t").starts_with(SHARED_PREFIX));
    }
}
