//! AMQP 1.0 conformance over TCP (issue 11): credit after a drain, dynamic reply
//! addresses that end with their link, and the `modified` outcome's `undeliverable-here`
//! and `message-annotations`.

mod common;

use bytes::Bytes;
use common::{body, connect, Node, TempDir, ADDRESSES};
use std::time::Duration;
use throng_amqp::definitions::{condition, DeliveryState, Properties};
use throng_amqp::message::MessageBuilder;
use throng_client::{ClientError, ReceiverOptions, SenderOptions};

const T: Duration = Duration::from_secs(5);

fn msg(body: &str) -> Bytes {
    MessageBuilder::new()
        .data(Bytes::from(body.to_string()))
        .encode()
}

/// Credit 5 and drain on an empty address, then credit 1 (the flow a JMS
/// `receive(timeout)` with prefetch 0 sends): the message sent next is delivered.
async fn credit_after_drain_is_used(address: &str) {
    let node = Node::start(ADDRESSES);
    let c = connect(&node).await;
    let mut r = c
        .open_receiver(
            address,
            ReceiverOptions {
                window: 0,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    for round in 0..3 {
        r.add_credit(5);
        tokio::time::timeout(T, r.drain())
            .await
            .expect("drain completes")
            .unwrap();
        r.add_credit(1);
        let s = c
            .open_sender(Some(address), SenderOptions::default())
            .await
            .unwrap();
        let text = format!("after drain {round}");
        let payload = msg(&text);
        // an anycast send is settled only once the consumer settles: send aside
        let send = tokio::spawn(async move {
            let out = s.send(payload).await;
            (s, out)
        });
        let d = r.recv_timeout(T).await.unwrap_or_else(|e| {
            panic!("{address}: round {round}: no delivery after the drain: {e}")
        });
        assert_eq!(body(&d), text);
        r.accept(&d);
        let (s, out) = tokio::time::timeout(T, send).await.unwrap().unwrap();
        assert_eq!(out.unwrap(), DeliveryState::Accepted);
        s.close().await.unwrap();
    }
    c.close().await.unwrap();
    assert_eq!(node.stop(), Some(0));
}

#[tokio::test]
async fn queue_credit_after_drain_is_used() {
    credit_after_drain_is_used("q1").await;
}

#[tokio::test]
async fn topic_credit_after_drain_is_used() {
    credit_after_drain_is_used("t1").await;
}

#[tokio::test]
async fn anycast_credit_after_drain_is_used() {
    credit_after_drain_is_used("any1").await;
}

#[tokio::test]
async fn multicast_credit_after_drain_is_used() {
    credit_after_drain_is_used("multi1").await;
}

fn to(address: &str, text: &str) -> Bytes {
    MessageBuilder::new()
        .properties(Properties {
            to: Some(address.into()),
            ..Default::default()
        })
        .data(Bytes::from(text.to_string()))
        .encode()
}

fn rejected_not_found(state: DeliveryState) {
    match state {
        DeliveryState::Rejected(r) => assert_eq!(
            r.error.expect("an error").condition.as_str(),
            condition::NOT_FOUND
        ),
        other => panic!("expected rejected(not-found), got {other:?}"),
    }
}

#[tokio::test]
async fn a_dynamic_address_ends_with_its_link() {
    let node = Node::start(ADDRESSES);
    let c = connect(&node).await;
    let r = dynamic_receiver(&c).await;
    let name = r.address().expect("a dynamic address").to_string();
    let relay = c.open_sender(None, SenderOptions::default()).await.unwrap();
    r.close().await.unwrap();
    // a reply to the gone receiver: refused, not collected in a queue of that name
    rejected_not_found(relay.send(to(&name, "late reply")).await.unwrap());
    refused_with_not_found(c.open_sender(Some(&name), SenderOptions::default()).await);
    refused_with_not_found(c.open_receiver(&name, ReceiverOptions::default()).await);
    // a name of that form that was never given is not created either
    rejected_not_found(relay.send(to("$dynamic/x/1/1", "x")).await.unwrap());
    c.close().await.unwrap();
    assert_eq!(node.stop(), Some(0));
}

/// A receiver with a dynamic address (as a requester opens for its replies).
async fn dynamic_receiver(c: &throng_client::Connection) -> throng_client::Receiver {
    c.open_receiver(
        "",
        ReceiverOptions {
            dynamic: true,
            ..Default::default()
        },
    )
    .await
    .expect("a dynamic receiver")
}

fn refused_with_not_found<T>(r: Result<T, ClientError>) {
    match r {
        Err(ClientError::Refused(e)) => assert_eq!(e.condition.as_str(), condition::NOT_FOUND),
        Err(e) => panic!("expected not-found, got {e}"),
        Ok(_) => panic!("attached to a gone dynamic address"),
    }
}

#[tokio::test]
async fn dynamic_names_are_not_given_again_after_a_restart() {
    let config = "[[tenant]]\nname = \"default\"\nauto_create = true\n";
    let node = Node::start_in(config, TempDir::create());
    let c = connect(&node).await;
    let r = dynamic_receiver(&c).await;
    let old = r.address().unwrap().to_string();
    r.close().await.unwrap();
    // the reply to the old receiver, durable: it must not wait on disk for a namesake
    let relay = c.open_sender(None, SenderOptions::default()).await.unwrap();
    let reply = MessageBuilder::new()
        .header(throng_amqp::definitions::Header {
            durable: Some(true),
            ..Default::default()
        })
        .properties(Properties {
            to: Some(old.clone()),
            ..Default::default()
        })
        .data(Bytes::from_static(b"for the old receiver"))
        .encode();
    rejected_not_found(relay.send(reply).await.unwrap());
    drop(c);
    let node = Node::start_in(config, node.crash());
    let c = connect(&node).await;
    let mut r = dynamic_receiver(&c).await;
    let new = r.address().unwrap().to_string();
    assert_ne!(
        new, old,
        "the first dynamic name after a restart repeats one"
    );
    assert!(
        r.recv_timeout(Duration::from_millis(300)).await.is_err(),
        "the new receiver got a message meant for the old one"
    );
    c.close().await.unwrap();
    assert_eq!(node.stop(), Some(0));
}
