//! The REST API over HTTP: listing addresses with their depth, and purging a queue —
//! paged messages included — with Basic authentication and per-address permissions.

mod common;

use common::{http, Node, TempDir};
use throng_amqp::definitions::Header;
use throng_amqp::engine::SaslClient;
use throng_amqp::message::MessageBuilder;
use throng_client::{ConnectOptions, Connection, ReceiverOptions, SenderOptions};

const CONFIG: &str = r#"
[[tenant]]
name = "default"
[[tenant.address]]
name = "orders"
type = "queue"
memory_limit = 65536
[[tenant.address]]
name = "events"
type = "anycast"
[[tenant.user]]
name = "admin"
password = "pw"
permissions = [{ pattern = "orders*", ops = ["send", "recv", "view", "manage"] }]
[[tenant.user]]
name = "reader"
password = "pw"
permissions = [{ pattern = "orders*", ops = ["recv", "view"] }]

[[tenant]]
name = "other"
[[tenant.user]]
name = "admin"
password = "pw2"
permissions = [{ pattern = "*", ops = ["view", "manage"] }]
"#;

fn admin() -> ConnectOptions {
    ConnectOptions {
        sasl: SaslClient::Plain {
            username: "admin@default".into(),
            password: "pw".into(),
        },
        ..ConnectOptions::default()
    }
}

#[tokio::test]
async fn purge_removes_waiting_messages_in_memory_and_on_disk() {
    let node = Node::start_in_with(CONFIG, TempDir::create(), &["--http", "127.0.0.1:0"]);
    let web = node.listeners["http"].clone();

    // 300 messages of 1 KiB into a queue that keeps 64 KiB in memory: most are paged
    let c = Connection::connect(&node.addr, admin())
        .await
        .expect("connect");
    let s = c
        .open_sender(Some("orders"), SenderOptions::default())
        .await
        .expect("sender");
    for i in 0..300u32 {
        let m = MessageBuilder::new()
            .header(Header {
                durable: Some(i.is_multiple_of(2)),
                ..Header::default()
            })
            .data(vec![b'x'; 1024])
            .encode();
        s.send(m).await.expect("send");
    }
    // one message out on loan to a consumer stays its own (credit by hand: a window
    // would top it up on receipt and a second loan would race the depth read below)
    let mut r = c
        .open_receiver(
            "orders",
            ReceiverOptions {
                window: 0,
                ..Default::default()
            },
        )
        .await
        .expect("receiver");
    r.add_credit(1);
    let loaned = r
        .recv_timeout(std::time::Duration::from_secs(5))
        .await
        .expect("a delivery");

    let admin = Some(("admin", "pw"));
    let (status, body) = http(
        &web,
        "GET",
        "/api/v1/tenants/default/addresses/orders",
        admin,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["type"], "queue");
    let depth = v["depth"].as_u64().expect("depth");
    let unacked = v["unacked"].as_u64().expect("unacked");
    // the client keeps a window of 1 credit open: one or two are out on loan
    assert!((1..=2).contains(&unacked), "{body}");
    assert_eq!(depth + unacked, 300, "{body}");
    assert!(v["paged"].as_u64().expect("paged") > 200, "{body}");

    // who may purge
    let path = "/api/v1/tenants/default/addresses/orders/messages";
    assert_eq!(http(&web, "DELETE", path, None).await.0, 401, "anonymous");
    assert_eq!(
        http(&web, "DELETE", path, Some(("admin", "bad"))).await.0,
        401
    );
    assert_eq!(
        http(&web, "DELETE", path, Some(("reader", "pw"))).await.0,
        403,
        "view is not manage"
    );
    assert_eq!(
        http(&web, "DELETE", path, Some(("admin@other", "pw2")))
            .await
            .0,
        403,
        "another tenant's user"
    );
    assert_eq!(
        http(
            &web,
            "DELETE",
            "/api/v1/tenants/default/addresses/nope/messages",
            Some(("admin", "pw"))
        )
        .await
        .0,
        403,
        "no permission outside orders*"
    );
    assert_eq!(
        http(
            &web,
            "DELETE",
            "/api/v1/tenants/nope/addresses/orders/messages",
            admin
        )
        .await
        .0,
        404
    );

    let (status, body) = http(&web, "DELETE", path, admin).await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["purged"].as_u64(), Some(depth));
    let (_, body) = http(
        &web,
        "GET",
        "/api/v1/tenants/default/addresses/orders",
        admin,
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        (v["depth"].as_u64(), v["paged"].as_u64()),
        (Some(0), Some(0))
    );

    // the loaned messages settle as usual; nothing else arrives
    r.accept(&loaned);
    r.add_credit(10);
    let mut later = 1;
    while let Ok(d) = r.recv_timeout(std::time::Duration::from_millis(300)).await {
        r.accept(&d);
        later += 1;
    }
    assert_eq!(
        later, unacked,
        "only the loaned messages reach the consumer"
    );

    // the listing shows only what the user may view
    let (status, body) = http(
        &web,
        "GET",
        "/api/v1/tenants/default/addresses",
        Some(("reader", "pw")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let names: Vec<&str> = v
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(names, vec!["orders"]);
    c.close().await.expect("close");
}

#[tokio::test]
async fn purged_durable_messages_stay_gone_after_a_restart() {
    let config = "[[tenant]]\nname = \"default\"\nauto_create = true\n";
    let node = Node::start_in_with(config, TempDir::create(), &["--http", "127.0.0.1:0"]);
    let c = Connection::connect(&node.addr, ConnectOptions::default())
        .await
        .expect("connect");
    let s = c
        .open_sender(Some("jobs"), SenderOptions::default())
        .await
        .expect("sender");
    for _ in 0..50 {
        s.send(common::durable_message(&b"job"[..]))
            .await
            .expect("send");
    }
    let web = node.listeners["http"].clone();
    let (status, body) = http(
        &web,
        "DELETE",
        "/api/v1/tenants/default/addresses/jobs/messages",
        None,
    )
    .await;
    assert_eq!((status, body.as_str()), (200, r#"{"purged":50}"#));
    c.close().await.expect("close");
    let dir = node.crash();
    let node = Node::start_in_with(config, dir, &["--http", "127.0.0.1:0"]);
    let web = node.listeners["http"].clone();
    let (status, body) = http(&web, "GET", "/api/v1/tenants/default/addresses/jobs", None).await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["depth"], 0, "purge was journaled");
}
