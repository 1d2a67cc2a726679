//! Shared durable subscriptions (MQTT `$share/GROUP/FILTER`): members join and leave,
//! the last one out deletes the subscription, and after a restart those nobody rejoined
//! are deleted.

use std::sync::Arc;
use throng_core::{Address, AddressKind, Tenant};

fn topic(tenant: &Tenant, name: &str) -> Arc<throng_core::topic::Topic> {
    match tenant.create(name, AddressKind::Topic) {
        Address::Topic(t) => t,
        _ => panic!("not a topic"),
    }
}

#[test]
fn the_last_member_out_deletes_a_shared_subscription() {
    let tenant = Tenant::new("t", true, vec![]);
    let jobs = topic(&tenant, "jobs");
    let a = tenant.join_shared_subscription(&jobs, "group-a");
    let b = tenant.join_shared_subscription(&jobs, "group-a");
    assert!(Arc::ptr_eq(&a, &b), "members share one queue");
    assert_eq!(jobs.subscriber_count(), 1);
    tenant.leave_shared_subscription("group-a");
    assert_eq!(
        tenant.subscription_topic("group-a").as_deref(),
        Some("jobs")
    );
    assert_eq!(jobs.subscriber_count(), 1, "one member left: it stays");
    tenant.leave_shared_subscription("group-a");
    assert_eq!(tenant.subscription_topic("group-a"), None);
    assert_eq!(jobs.subscriber_count(), 0);
    // a later member starts a new one
    tenant.join_shared_subscription(&jobs, "group-a");
    assert_eq!(jobs.subscriber_count(), 1);
}

#[test]
fn shared_subscriptions_nobody_rejoined_are_deleted() {
    let tenant = Tenant::new("t", true, vec![]);
    let jobs = topic(&tenant, "jobs");
    // as restored from the metadata store after a restart: no members yet
    tenant.open_subscription(&jobs, "shared|rejoined");
    tenant.open_subscription(&jobs, "shared|orphan");
    tenant.open_subscription(&jobs, "durable-of-a-session");
    tenant.join_shared_subscription(&jobs, "shared|rejoined");
    tenant.close_unjoined_shared_subscriptions(|n| n.starts_with("shared|"));
    assert!(tenant.subscription_topic("shared|rejoined").is_some());
    assert!(tenant.subscription_topic("shared|orphan").is_none());
    assert!(
        tenant.subscription_topic("durable-of-a-session").is_some(),
        "only shared ones are judged by their members"
    );
    assert_eq!(jobs.subscriber_count(), 2);
}
