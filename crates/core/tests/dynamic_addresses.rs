//! Dynamic reply addresses (issue 11): a name is never given twice, also not by the next
//! start of the node, and a dynamic name whose address is gone is never created on first
//! use.

use throng_core::tenant::DYNAMIC_PREFIX;
use throng_core::{AddressKind, Node, Tenant};

fn node() -> Node {
    Node::new(vec![Tenant::new("default", true, Vec::new())])
}

#[test]
fn dynamic_names_do_not_repeat_after_a_restart() {
    // two starts of the node: connection and address counters both start at 1 again
    let first = node();
    let second = node();
    let (a, _) = first
        .tenant("default")
        .unwrap()
        .create_dynamic(first.next_connection_id());
    let (b, _) = second
        .tenant("default")
        .unwrap()
        .create_dynamic(second.next_connection_id());
    assert!(a.starts_with(DYNAMIC_PREFIX) && b.starts_with(DYNAMIC_PREFIX));
    assert_ne!(a, b, "the second start reused a dynamic name");
}

#[test]
fn dynamic_names_do_not_repeat_within_a_start() {
    let node = node();
    let t = node.tenant("default").unwrap();
    let (a, _) = t.create_dynamic(1);
    let (b, _) = t.create_dynamic(1);
    let (c, _) = t.create_dynamic(2);
    assert!(a != b && b != c && a != c);
}

#[test]
fn a_gone_dynamic_address_is_not_created_on_first_use() {
    let node = node();
    let t = node.tenant("default").unwrap();
    let (name, _) = t.create_dynamic(1);
    assert!(
        t.resolve(&name, AddressKind::Queue).is_some(),
        "live: found"
    );
    t.remove(&name); // its link detached
    for kind in [AddressKind::Queue, AddressKind::Topic] {
        assert!(
            t.resolve(&name, kind).is_none(),
            "a gone dynamic address was auto-created as {kind:?}"
        );
    }
    assert!(t.lookup(&name).is_none());
    // a name of that form that was never given is not created either
    assert!(t.resolve("$dynamic/0/1/1", AddressKind::Queue).is_none());
    // other names still are
    assert!(t.resolve("orders", AddressKind::Queue).is_some());
}

#[test]
fn dynamic_addresses_in_the_metadata_store_are_not_restored() {
    let t = Tenant::new("default", true, Vec::new());
    t.restore_addresses(&[
        ("default".into(), "$dynamic/1/1".into(), "queue".into()),
        ("default".into(), "kept".into(), "queue".into()),
    ]);
    assert!(t.lookup("$dynamic/1/1").is_none());
    assert!(t.lookup("kept").is_some());
}
