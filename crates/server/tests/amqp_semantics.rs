//! Address semantics over TCP with the Rust client against the built binary.

mod common;

use bytes::Bytes;
use common::{body, connect, Node, ADDRESSES};
use std::time::Duration;
use throng_amqp::codec::{Symbol, Value};
use throng_amqp::definitions::{condition, DeliveryState, Modified, Properties, Rejected};
use throng_amqp::engine::SaslClient;
use throng_amqp::message::{Body, MessageBuilder};
use throng_client::{ClientError, ConnectOptions, Connection, ReceiverOptions, SenderOptions};

const T: Duration = Duration::from_secs(5);

fn msg(body: &str) -> Bytes {
    MessageBuilder::new()
        .data(Bytes::from(body.to_string()))
        .encode()
}

/// Polls the sender's credit for up to a second until `done` holds; returns the last value.
async fn wait_for_credit(s: &throng_client::Sender, done: impl Fn(u32) -> bool) -> u32 {
    let mut credit = s.credit().await;
    for _ in 0..50 {
        if done(credit) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        credit = s.credit().await;
    }
    credit
}

fn refused_with(r: Result<impl Sized, ClientError>, cond: &str) {
    match r {
        Err(ClientError::Refused(e)) => assert_eq!(e.condition.as_str(), cond),
        Err(other) => panic!("expected refusal with {cond}, got {other}"),
        Ok(_) => panic!("expected refusal with {cond}, got success"),
    }
}

#[tokio::test]
async fn queue_keeps_order_and_settles_accepted() {
    let node = Node::start(ADDRESSES);
    let c = connect(&node).await;
    let s = c
        .open_sender(Some("q1"), SenderOptions::default())
        .await
        .unwrap();
    for i in 0..50 {
        assert_eq!(
            s.send(msg(&format!("m{i}"))).await.unwrap(),
            DeliveryState::Accepted
        );
    }
    let mut r = c
        .open_receiver("q1", ReceiverOptions::default())
        .await
        .unwrap();
    for i in 0..50 {
        let d = r.recv_timeout(T).await.unwrap();
        assert_eq!(body(&d), format!("m{i}"));
        r.accept(&d);
    }
    assert!(
        r.recv_timeout(Duration::from_millis(200)).await.is_err(),
        "queue should be empty"
    );
    c.close().await.unwrap();
    assert_eq!(node.stop(), Some(0));
}

#[tokio::test]
async fn competing_consumers_share_without_duplicates() {
    let node = Node::start(ADDRESSES);
    let c = connect(&node).await;
    let mut r1 = c
        .open_receiver(
            "q1",
            ReceiverOptions {
                window: 4,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut r2 = c
        .open_receiver(
            "q1",
            ReceiverOptions {
                window: 4,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let s = c
        .open_sender(Some("q1"), SenderOptions::default())
        .await
        .unwrap();
    for i in 0..40 {
        s.send(msg(&format!("{i}"))).await.unwrap();
    }
    let mut got = Vec::new();
    let (mut n1, mut n2) = (0, 0);
    while got.len() < 40 {
        tokio::select! {
            d = r1.recv_timeout(T) => { let d = d.unwrap(); got.push(body(&d)); r1.accept(&d); n1 += 1; }
            d = r2.recv_timeout(T) => { let d = d.unwrap(); got.push(body(&d)); r2.accept(&d); n2 += 1; }
        }
    }
    assert!(
        n1 > 0 && n2 > 0,
        "both consumers must get messages ({n1}, {n2})"
    );
    got.sort_by_key(|s| s.parse::<u32>().unwrap());
    assert_eq!(got, (0..40).map(|i| i.to_string()).collect::<Vec<_>>());
}

#[tokio::test]
async fn released_and_modified_are_redelivered_rejected_goes_to_dlq() {
    let node = Node::start(ADDRESSES);
    let c = connect(&node).await;
    let s = c
        .open_sender(Some("q1"), SenderOptions::default())
        .await
        .unwrap();
    s.send(msg("a")).await.unwrap();
    let mut r = c
        .open_receiver(
            "q1",
            ReceiverOptions {
                window: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();

    let d = r.recv_timeout(T).await.unwrap();
    assert_eq!(d.message.header().unwrap().delivery_count.unwrap_or(0), 0);
    r.settle(&d, DeliveryState::Released);
    let d = r.recv_timeout(T).await.unwrap();
    assert_eq!(body(&d), "a");
    assert_eq!(
        d.message.header().unwrap().delivery_count.unwrap_or(0),
        0,
        "released keeps the count"
    );

    r.settle(
        &d,
        DeliveryState::Modified(Modified {
            delivery_failed: Some(true),
            ..Default::default()
        }),
    );
    let d = r.recv_timeout(T).await.unwrap();
    assert_eq!(body(&d), "a");
    assert_eq!(
        d.message.header().unwrap().delivery_count,
        Some(1),
        "delivery-failed adds one"
    );

    r.settle(&d, DeliveryState::Rejected(Rejected { error: None }));
    assert!(
        r.recv_timeout(Duration::from_millis(300)).await.is_err(),
        "rejected must not come back"
    );
    let mut dlq = c
        .open_receiver("DLQ", ReceiverOptions::default())
        .await
        .unwrap();
    let d = dlq.recv_timeout(T).await.unwrap();
    assert_eq!(body(&d), "a");
}

#[tokio::test]
async fn unsettled_messages_of_a_lost_consumer_return_in_order() {
    let node = Node::start(ADDRESSES);
    let c = connect(&node).await;
    let s = c
        .open_sender(Some("q1"), SenderOptions::default())
        .await
        .unwrap();
    for i in 0..10 {
        s.send(msg(&format!("m{i}"))).await.unwrap();
    }
    {
        let c2 = connect(&node).await;
        let mut r = c2
            .open_receiver(
                "q1",
                ReceiverOptions {
                    window: 5,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        for i in 0..5 {
            let d = r.recv_timeout(T).await.unwrap();
            assert_eq!(body(&d), format!("m{i}"));
            if i == 2 {
                r.accept(&d);
            }
        }
        c2.close().await.unwrap();
    }
    let mut r = c
        .open_receiver("q1", ReceiverOptions::default())
        .await
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..9 {
        let d = r.recv_timeout(T).await.unwrap();
        got.push(body(&d));
        r.accept(&d);
    }
    assert_eq!(
        got,
        vec!["m0", "m1", "m3", "m4", "m5", "m6", "m7", "m8", "m9"]
    );
}

/// Two receivers on `address` each get all of 10 messages, in order; `presettled` says
/// whether deliveries must arrive settled (multicast) or be accepted (topic).
async fn assert_fan_out(address: &str, presettled: bool) {
    let node = Node::start(ADDRESSES);
    let c = connect(&node).await;
    let mut a = c
        .open_receiver(address, ReceiverOptions::default())
        .await
        .unwrap();
    let mut b = c
        .open_receiver(address, ReceiverOptions::default())
        .await
        .unwrap();
    let s = c
        .open_sender(Some(address), SenderOptions::default())
        .await
        .unwrap();
    for i in 0..10 {
        assert_eq!(
            s.send(msg(&format!("{i}"))).await.unwrap(),
            DeliveryState::Accepted
        );
    }
    for r in [&mut a, &mut b] {
        for i in 0..10 {
            let d = r.recv_timeout(T).await.unwrap();
            assert_eq!(d.settled, presettled);
            assert_eq!(body(&d), format!("{i}"));
            if !d.settled {
                r.accept(&d);
            }
        }
    }
}

#[tokio::test]
async fn topic_gives_every_subscriber_a_copy() {
    assert_fan_out("t1", false).await;
}

#[tokio::test]
async fn anycast_credit_follows_consumers_and_outcomes_flow_back() {
    let node = Node::start(ADDRESSES);
    let c = connect(&node).await;
    let s = c
        .open_sender(Some("any1"), SenderOptions::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(s.credit().await, 0, "no consumer: no credit");

    let c2 = connect(&node).await;
    let mut r = c2
        .open_receiver(
            "any1",
            ReceiverOptions {
                window: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let credit = wait_for_credit(&s, |c| c > 0).await;
    assert!(
        credit > 0 && credit <= 10,
        "producer credit follows the consumer's 10, got {credit}"
    );

    let send = tokio::spawn(async move {
        let a = s.send(msg("x")).await.unwrap();
        let b = s.send(msg("y")).await.unwrap();
        let c = s.send(msg("z")).await.unwrap();
        (a, b, c, s)
    });
    let d = r.recv_timeout(T).await.unwrap();
    r.settle(&d, DeliveryState::Rejected(Rejected { error: None }));
    let d = r.recv_timeout(T).await.unwrap();
    r.settle(&d, DeliveryState::Released);
    let d = r.recv_timeout(T).await.unwrap();
    r.accept(&d);
    let (a, b, cc, s) = send.await.unwrap();
    assert!(matches!(a, DeliveryState::Rejected(_)), "{a:?}");
    assert_eq!(b, DeliveryState::Released);
    assert_eq!(cc, DeliveryState::Accepted);

    // the consumer leaves: credit goes back to zero
    r.close().await.unwrap();
    assert_eq!(wait_for_credit(&s, |c| c == 0).await, 0);
}

#[tokio::test]
async fn anycast_balances_by_fewest_unsettled() {
    let node = Node::start(ADDRESSES);
    let c = connect(&node).await;
    let mut r1 = c
        .open_receiver(
            "any1",
            ReceiverOptions {
                window: 20,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut r2 = c
        .open_receiver(
            "any1",
            ReceiverOptions {
                window: 20,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let s = c
        .open_sender(
            Some("any1"),
            SenderOptions {
                presettled: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    for i in 0..10 {
        s.send(msg(&format!("{i}"))).await.unwrap();
    }
    // nobody settles: with fewest-unsettled balancing each gets half
    let mut n1 = 0;
    while r1.recv_timeout(Duration::from_millis(300)).await.is_ok() {
        n1 += 1;
    }
    let mut n2 = 0;
    while r2.recv_timeout(Duration::from_millis(300)).await.is_ok() {
        n2 += 1;
    }
    assert_eq!((n1, n2), (5, 5));
}

#[tokio::test]
async fn multicast_fans_out_presettled() {
    assert_fan_out("multi1", true).await;
}

#[tokio::test]
async fn request_reply_through_a_dynamic_address() {
    let node = Node::start(ADDRESSES);
    let client = connect(&node).await;
    let server = connect(&node).await;
    let mut replies = client
        .open_receiver(
            "",
            ReceiverOptions {
                dynamic: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let reply_to = replies.address().expect("dynamic address").to_string();
    let other = client
        .open_receiver(
            "",
            ReceiverOptions {
                dynamic: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_ne!(other.address(), Some(reply_to.as_str()));

    let mut requests = server
        .open_receiver("requests", ReceiverOptions::default())
        .await
        .unwrap();
    let responder = server
        .open_sender(None, SenderOptions::default())
        .await
        .unwrap();
    let req = client
        .open_sender(Some("requests"), SenderOptions::default())
        .await
        .unwrap();
    let request = MessageBuilder::new()
        .properties(Properties {
            reply_to: Some(reply_to.clone()),
            correlation_id: Some(Value::String("c-42".into())),
            ..Default::default()
        })
        .data(Bytes::from_static(b"ping"))
        .encode();
    req.send(request).await.unwrap();

    let d = requests.recv_timeout(T).await.unwrap();
    let props = d.message.properties().unwrap().unwrap();
    let reply = MessageBuilder::new()
        .properties(Properties {
            to: props.reply_to.clone(),
            correlation_id: props.correlation_id.clone(),
            ..Default::default()
        })
        .data(Bytes::from_static(b"pong"))
        .encode();
    // the reply address is anycast: the responder's send settles with the requester's outcome
    let outcome = tokio::spawn(async move { responder.send(reply).await });
    requests.accept(&d);

    let r = replies.recv_timeout(T).await.unwrap();
    assert_eq!(body(&r), "pong");
    assert_eq!(
        r.message.properties().unwrap().unwrap().correlation_id,
        Some(Value::String("c-42".into()))
    );
    replies.accept(&r);
    assert_eq!(outcome.await.unwrap().unwrap(), DeliveryState::Accepted);
}

#[tokio::test]
async fn unknown_address_is_not_found_without_auto_create() {
    let node = Node::start("[[tenant]]\nname = \"default\"\nauto_create = false\n[[tenant.address]]\nname = \"known\"\ntype = \"queue\"\n");
    let c = connect(&node).await;
    refused_with(
        c.open_sender(Some("nope"), SenderOptions::default()).await,
        condition::NOT_FOUND,
    );
    refused_with(
        c.open_receiver("nope", ReceiverOptions::default()).await,
        condition::NOT_FOUND,
    );
    // the connection stays usable
    let s = c
        .open_sender(Some("known"), SenderOptions::default())
        .await
        .unwrap();
    assert_eq!(s.send(msg("ok")).await.unwrap(), DeliveryState::Accepted);
    // anonymous relay to an unknown address is rejected with not-found
    let anon = c.open_sender(None, SenderOptions::default()).await.unwrap();
    let m = MessageBuilder::new()
        .properties(Properties {
            to: Some("nope".into()),
            ..Default::default()
        })
        .data(Bytes::from_static(b"x"))
        .encode();
    match anon.send(m).await.unwrap() {
        DeliveryState::Rejected(r) => assert_eq!(
            r.error.unwrap().condition,
            Symbol::new(condition::NOT_FOUND)
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn auto_create_makes_a_queue_or_a_topic() {
    let node = Node::start(ADDRESSES);
    let c = connect(&node).await;
    let s = c
        .open_sender(Some("fresh"), SenderOptions::default())
        .await
        .unwrap();
    s.send(msg("kept")).await.unwrap();
    let mut r = c
        .open_receiver("fresh", ReceiverOptions::default())
        .await
        .unwrap();
    assert_eq!(
        body(&r.recv_timeout(T).await.unwrap()),
        "kept",
        "auto-created address is a queue"
    );

    let topic = vec![Symbol::new("topic")];
    let mut sub1 = c
        .open_receiver(
            "news",
            ReceiverOptions {
                capabilities: topic.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut sub2 = c
        .open_receiver(
            "news",
            ReceiverOptions {
                capabilities: topic.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let s = c
        .open_sender(
            Some("news"),
            SenderOptions {
                capabilities: topic,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    s.send(msg("hello")).await.unwrap();
    assert_eq!(body(&sub1.recv_timeout(T).await.unwrap()), "hello");
    assert_eq!(body(&sub2.recv_timeout(T).await.unwrap()), "hello");
}

#[tokio::test]
async fn sasl_plain_users_and_permissions() {
    let node = Node::start(
        r#"
[[tenant]]
name = "default"
[[tenant.user]]
name = "alice"
password = "secret"
permissions = [{ pattern = "orders*", ops = ["send", "recv"] }]
"#,
    );
    let plain = |u: &str, p: &str| ConnectOptions {
        sasl: SaslClient::Plain {
            username: u.into(),
            password: p.into(),
        },
        ..ConnectOptions::default()
    };
    assert!(
        Connection::connect(&node.addr, ConnectOptions::default())
            .await
            .is_err(),
        "anonymous refused when users exist"
    );
    assert!(
        Connection::connect(&node.addr, plain("alice", "wrong"))
            .await
            .is_err(),
        "wrong password refused"
    );
    let c = Connection::connect(&node.addr, plain("alice", "secret"))
        .await
        .unwrap();
    let s = c
        .open_sender(Some("orders.eu"), SenderOptions::default())
        .await
        .unwrap();
    assert_eq!(s.send(msg("o")).await.unwrap(), DeliveryState::Accepted);
    refused_with(
        c.open_sender(Some("billing"), SenderOptions::default())
            .await,
        condition::UNAUTHORIZED_ACCESS,
    );
}

#[tokio::test]
async fn drain_on_an_empty_queue_completes() {
    let node = Node::start(ADDRESSES);
    let c = connect(&node).await;
    let s = c
        .open_sender(Some("q1"), SenderOptions::default())
        .await
        .unwrap();
    s.send(msg("only")).await.unwrap();
    let mut r = c
        .open_receiver(
            "q1",
            ReceiverOptions {
                window: 0,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    r.add_credit(5);
    let d = r.recv_timeout(T).await.unwrap();
    assert_eq!(body(&d), "only");
    tokio::time::timeout(T, r.drain())
        .await
        .expect("drain completes")
        .unwrap();
}

#[tokio::test]
async fn large_messages_cross_many_frames() {
    let node = Node::start(ADDRESSES);
    let c = Connection::connect(
        &node.addr,
        ConnectOptions {
            max_frame_size: 4096,
            ..ConnectOptions::default()
        },
    )
    .await
    .unwrap();
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let s = c
        .open_sender(Some("q1"), SenderOptions::default())
        .await
        .unwrap();
    s.send(
        MessageBuilder::new()
            .data(Bytes::from(big.clone()))
            .encode(),
    )
    .await
    .unwrap();
    let mut r = c
        .open_receiver("q1", ReceiverOptions::default())
        .await
        .unwrap();
    let d = r.recv_timeout(T).await.unwrap();
    assert_eq!(d.message.body().unwrap(), Body::Data(Bytes::from(big)));
}

#[tokio::test]
async fn malformed_frame_closes_with_decode_error() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let node = Node::start(ADDRESSES);
    let mut sock = tokio::net::TcpStream::connect(&node.addr).await.unwrap();
    sock.write_all(b"AMQP\x00\x01\x00\x00").await.unwrap();
    // a frame whose body is a described type with an invalid format code
    sock.write_all(&[0, 0, 0, 12, 2, 0, 0, 0, 0x00, 0x53, 0x10, 0xff])
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(T, sock.read_to_end(&mut buf))
        .await
        .expect("server closes the socket");
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.contains("amqp:decode-error"),
        "close should carry amqp:decode-error: {text:?}"
    );
    // the node is still serving others
    let c = connect(&node).await;
    c.open_sender(Some("q1"), SenderOptions::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn selectors_pick_messages_and_leave_the_rest_in_order() {
    let node = Node::start(ADDRESSES);
    let c = connect(&node).await;
    let s = c
        .open_sender(Some("q1"), SenderOptions::default())
        .await
        .unwrap();
    for (i, color) in ["red", "blue", "red", "green", "red", "blue"]
        .iter()
        .enumerate()
    {
        let m = MessageBuilder::new()
            .app_property("color", Value::String(color.to_string()))
            .app_property("n", Value::Long(i as i64))
            .data(Bytes::from(format!("{color}{i}")))
            .encode();
        s.send(m).await.unwrap();
    }
    let mut reds = c
        .open_receiver(
            "q1",
            ReceiverOptions {
                selector: Some("color = 'red' AND n > 0".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    for want in ["red2", "red4"] {
        let d = reds.recv_timeout(T).await.unwrap();
        assert_eq!(body(&d), want);
        reds.accept(&d);
    }
    assert!(
        reds.recv_timeout(Duration::from_millis(300)).await.is_err(),
        "only matching messages"
    );
    let mut rest = c
        .open_receiver("q1", ReceiverOptions::default())
        .await
        .unwrap();
    for want in ["red0", "blue1", "green3", "blue5"] {
        let d = rest.recv_timeout(T).await.unwrap();
        assert_eq!(body(&d), want, "skipped messages stay, in order");
        rest.accept(&d);
    }
    refused_with(
        c.open_receiver(
            "q1",
            ReceiverOptions {
                selector: Some("color = ".into()),
                ..Default::default()
            },
        )
        .await,
        condition::INVALID_FIELD,
    );
}

#[tokio::test]
async fn shared_subscriptions_compete_and_end_with_their_last_consumer() {
    let node = Node::start(ADDRESSES);
    let c = Connection::connect(
        &node.addr,
        ConnectOptions {
            container_id: "jms1".into(),
            ..ConnectOptions::default()
        },
    )
    .await
    .unwrap();
    let caps = vec![Symbol::new("topic"), Symbol::new("shared")];
    let shared = |name: &str| ReceiverOptions {
        capabilities: caps.clone(),
        link_name: Some(name.into()),
        window: 5,
        ..Default::default()
    };
    let mut a = c.open_receiver("t1", shared("s1")).await.unwrap();
    let mut b = c.open_receiver("t1", shared("s1|1")).await.unwrap();
    let mut plain = c
        .open_receiver("t1", ReceiverOptions::default())
        .await
        .unwrap();
    let s = c
        .open_sender(Some("t1"), SenderOptions::default())
        .await
        .unwrap();
    for i in 0..20 {
        s.send(msg(&format!("{i}"))).await.unwrap();
    }
    let mut got = Vec::new();
    let (mut na, mut nb) = (0, 0);
    while got.len() < 20 {
        tokio::select! {
            d = a.recv_timeout(T) => { let d = d.unwrap(); got.push(body(&d)); a.accept(&d); na += 1; }
            d = b.recv_timeout(T) => { let d = d.unwrap(); got.push(body(&d)); b.accept(&d); nb += 1; }
        }
    }
    assert!(
        na > 0 && nb > 0,
        "both shared consumers get messages ({na}, {nb})"
    );
    got.sort_by_key(|s| s.parse::<u32>().unwrap());
    assert_eq!(
        got,
        (0..20).map(|i| i.to_string()).collect::<Vec<_>>(),
        "each message once"
    );
    for i in 0..20 {
        let d = plain.recv_timeout(T).await.unwrap();
        assert_eq!(
            body(&d),
            i.to_string(),
            "a plain subscriber still gets every message"
        );
        plain.accept(&d);
    }
    a.close().await.unwrap();
    b.close().await.unwrap();
    s.send(msg("after")).await.unwrap();
    let mut again = c.open_receiver("t1", shared("s1")).await.unwrap();
    assert!(
        again
            .recv_timeout(Duration::from_millis(300))
            .await
            .is_err(),
        "the subscription ended with its consumers"
    );
}
