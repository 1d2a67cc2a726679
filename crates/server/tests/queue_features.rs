//! Queue features over TCP: priority, expiry, browsing, dead-letter settings.

mod common;

use bytes::Bytes;
use common::{body, connect, Node};
use std::time::Duration;
use throng_amqp::definitions::{DeliveryState, Header, Modified};
use throng_amqp::message::MessageBuilder;
use throng_client::{ReceiverOptions, SenderOptions};

const T: Duration = Duration::from_secs(5);

fn msg(body: &str, header: Header) -> Bytes {
    MessageBuilder::new()
        .header(header)
        .data(Bytes::from(body.to_string()))
        .encode()
}

#[tokio::test]
async fn higher_priority_first_fifo_within_a_priority() {
    let node = Node::start("[[tenant]]\nname = \"default\"\n");
    let c = connect(&node).await;
    let s = c
        .open_sender(Some("prio"), SenderOptions::default())
        .await
        .unwrap();
    for (b, p) in [
        ("low-a", 1),
        ("high-a", 9),
        ("mid", 5),
        ("high-b", 9),
        ("low-b", 1),
        ("default", 4),
    ] {
        let h = Header {
            priority: if b == "default" { None } else { Some(p) },
            ..Header::default()
        };
        s.send(msg(b, h)).await.unwrap();
    }
    let mut r = c
        .open_receiver("prio", ReceiverOptions::default())
        .await
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..6 {
        let d = r.recv_timeout(T).await.unwrap();
        got.push(body(&d));
        r.accept(&d);
    }
    assert_eq!(
        got,
        ["high-a", "high-b", "mid", "default", "low-a", "low-b"]
    );
}

#[tokio::test]
async fn expired_messages_are_dropped_or_moved_to_the_expiry_address() {
    let node = Node::start(
        "[[tenant]]\nname = \"default\"\n[[tenant.address]]\nname = \"kept\"\ntype = \"queue\"\nexpiry_address = \"expired\"\n",
    );
    let c = connect(&node).await;
    for q in ["plain", "kept"] {
        let s = c
            .open_sender(Some(q), SenderOptions::default())
            .await
            .unwrap();
        s.send(msg(
            "short",
            Header {
                ttl: Some(100),
                ..Header::default()
            },
        ))
        .await
        .unwrap();
        s.send(msg(
            "long",
            Header {
                ttl: Some(60_000),
                ..Header::default()
            },
        ))
        .await
        .unwrap();
        s.send(msg("forever", Header::default())).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for q in ["plain", "kept"] {
        let mut r = c
            .open_receiver(q, ReceiverOptions::default())
            .await
            .unwrap();
        for want in ["long", "forever"] {
            let d = r.recv_timeout(T).await.unwrap();
            assert_eq!(body(&d), want, "queue {q}: the expired message is skipped");
            r.accept(&d);
        }
        assert!(r.recv_timeout(Duration::from_millis(200)).await.is_err());
    }
    let mut expired = c
        .open_receiver("expired", ReceiverOptions::default())
        .await
        .unwrap();
    assert_eq!(body(&expired.recv_timeout(T).await.unwrap()), "short");
    assert!(
        expired
            .recv_timeout(Duration::from_millis(200))
            .await
            .is_err(),
        "only `kept` moves expired messages"
    );
}

#[tokio::test]
async fn browsers_see_copies_and_take_nothing() {
    let node = Node::start("[[tenant]]\nname = \"default\"\n");
    let c = connect(&node).await;
    let s = c
        .open_sender(Some("shelf"), SenderOptions::default())
        .await
        .unwrap();
    for b in ["a", "b", "c"] {
        s.send(msg(b, Header::default())).await.unwrap();
    }
    let mut browser = c
        .open_receiver(
            "shelf",
            ReceiverOptions {
                browse: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    for want in ["a", "b", "c"] {
        let d = browser.recv_timeout(T).await.unwrap();
        assert!(d.settled, "browsed copies are presettled");
        assert_eq!(body(&d), want);
    }
    s.send(msg("d", Header::default())).await.unwrap();
    assert_eq!(
        body(&browser.recv_timeout(T).await.unwrap()),
        "d",
        "browsers see new messages too"
    );
    let mut r = c
        .open_receiver("shelf", ReceiverOptions::default())
        .await
        .unwrap();
    for want in ["a", "b", "c", "d"] {
        let d = r.recv_timeout(T).await.unwrap();
        assert_eq!(body(&d), want, "browsing took nothing");
        r.accept(&d);
    }
}

#[tokio::test]
async fn dead_letter_address_and_attempts_are_per_address() {
    let node = Node::start(
        "[[tenant]]\nname = \"default\"\n[[tenant.address]]\nname = \"work\"\ntype = \"queue\"\ndead_letter_address = \"work.dead\"\nmax_delivery_attempts = 2\n",
    );
    let c = connect(&node).await;
    let s = c
        .open_sender(Some("work"), SenderOptions::default())
        .await
        .unwrap();
    assert_eq!(
        s.send(msg("job", Header::default())).await.unwrap(),
        DeliveryState::Accepted
    );
    let mut r = c
        .open_receiver(
            "work",
            ReceiverOptions {
                window: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let failed = DeliveryState::Modified(Modified {
        delivery_failed: Some(true),
        ..Default::default()
    });
    let d = r.recv_timeout(T).await.unwrap();
    r.settle(&d, failed.clone());
    let d = r.recv_timeout(T).await.unwrap();
    assert_eq!(d.message.header().unwrap().delivery_count, Some(1));
    r.settle(&d, failed);
    assert!(
        r.recv_timeout(Duration::from_millis(300)).await.is_err(),
        "two failures: dead-lettered"
    );
    let mut dead = c
        .open_receiver("work.dead", ReceiverOptions::default())
        .await
        .unwrap();
    assert_eq!(body(&dead.recv_timeout(T).await.unwrap()), "job");
    let mut dlq = c
        .open_receiver("DLQ", ReceiverOptions::default())
        .await
        .unwrap();
    assert!(
        dlq.recv_timeout(Duration::from_millis(200)).await.is_err(),
        "not the tenant DLQ"
    );
}

#[tokio::test]
async fn scheduled_messages_wait_for_their_time() {
    use throng_amqp::codec::{Symbol, Value};
    let node = Node::start("[[tenant]]\nname = \"default\"\n");
    let c = connect(&node).await;
    let s = c
        .open_sender(Some("later"), SenderOptions::default())
        .await
        .unwrap();
    let mut scheduled = MessageBuilder::new().data(Bytes::from_static(b"scheduled"));
    scheduled.message_annotations = Some(vec![(
        Symbol::new("x-opt-delivery-delay"),
        Value::Long(1500),
    )]);
    s.send(scheduled.encode()).await.unwrap();
    s.send(msg("now", Header::default())).await.unwrap();
    let mut r = c
        .open_receiver("later", ReceiverOptions::default())
        .await
        .unwrap();
    let d = r.recv_timeout(T).await.unwrap();
    assert_eq!(body(&d), "now", "the scheduled message waits");
    r.accept(&d);
    assert!(
        r.recv_timeout(Duration::from_millis(300)).await.is_err(),
        "not before its time"
    );
    let d = r.recv_timeout(T).await.unwrap();
    assert_eq!(body(&d), "scheduled");
}

#[tokio::test]
async fn redelivery_delay_holds_released_messages_back() {
    let node = Node::start(
        "[[tenant]]\nname = \"default\"\n[[tenant.address]]\nname = \"slow\"\ntype = \"queue\"\nredelivery_delay_ms = 400\n",
    );
    let c = connect(&node).await;
    let s = c
        .open_sender(Some("slow"), SenderOptions::default())
        .await
        .unwrap();
    s.send(msg("retry-me", Header::default())).await.unwrap();
    let mut r = c
        .open_receiver("slow", ReceiverOptions::default())
        .await
        .unwrap();
    let d = r.recv_timeout(T).await.unwrap();
    let released_at = std::time::Instant::now();
    r.settle(&d, DeliveryState::Released);
    let d = r.recv_timeout(T).await.unwrap();
    assert_eq!(body(&d), "retry-me");
    assert!(
        released_at.elapsed() >= Duration::from_millis(350),
        "redelivered after {:?}",
        released_at.elapsed()
    );
}
