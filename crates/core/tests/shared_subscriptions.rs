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

#[test]
fn subscriptions_opened_together_are_all_remembered_once() {
    let dir = std::env::temp_dir().join(format!("throng-core-subs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Arc::new(throng_store::MetadataStore::open(&dir.join("m.redb")).unwrap());
    let tenant = Tenant::new("t", true, vec![]).with_metadata(Some(store.clone()));
    let topics: Vec<_> = (0..3)
        .map(|i| topic(&tenant, &format!("dev/{i}")))
        .collect();
    let before = tenant.open_subscription(&topics[0], "s0");
    let subs: Vec<_> = topics
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), format!("s{i}")))
        .collect();
    let queues = tenant.open_subscriptions(&subs, false);
    assert!(
        Arc::ptr_eq(&queues[0], &before),
        "an existing one is reused"
    );
    for (i, t) in topics.iter().enumerate() {
        assert_eq!(t.subscriber_count(), 1, "dev/{i} has its one subscription");
    }
    // on disk when the call returns
    let mut stored: Vec<(String, String)> = store
        .subscriptions()
        .unwrap()
        .into_iter()
        .map(|r| (r.name, r.topic))
        .collect();
    stored.sort();
    let expected: Vec<(String, String)> = (0..3)
        .map(|i| (format!("s{i}"), format!("dev/{i}")))
        .collect();
    assert_eq!(stored, expected);
    // shared: every name gets a member, and the last one out deletes it
    let shared = tenant.open_subscriptions(&[(topics[1].clone(), "g|dev/1".into())], true);
    assert_eq!(topics[1].subscriber_count(), 2);
    assert_eq!(shared.len(), 1);
    tenant.leave_shared_subscription("g|dev/1");
    assert_eq!(topics[1].subscriber_count(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}
