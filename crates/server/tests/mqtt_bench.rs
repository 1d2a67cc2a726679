//! `throng bench --protocol mqtt` against a spawned node: short runs of every QoS and
//! both protocol versions, with fan-out, must deliver every message to every consumer.

mod common;

use clap::Parser;
use common::{Node, TempDir};
use throng_bench::mqtt::MqttReport;
use throng_bench::BenchArgs;

/// The `throng bench` command line, parsed as the binary parses it.
#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    bench: BenchArgs,
}

const CONFIG: &str = r#"
[[tenant]]
name = "default"
auto_create = true
"#;

fn start() -> Node {
    Node::start_in_with(CONFIG, TempDir::create(), &["--mqtt", "127.0.0.1:0"])
}

async fn bench(node: &Node, flags: &[&str]) -> MqttReport {
    let url = node.listeners.get("mqtt").expect("mqtt listener").clone();
    let pid = node.pid().to_string();
    let mut argv = vec![
        "bench",
        "--protocol",
        "mqtt",
        "--url",
        &url,
        "--server-pid",
        &pid,
        "--timeout",
        "30",
    ];
    argv.extend_from_slice(flags);
    let args = Cli::parse_from(argv).bench;
    throng_bench::mqtt::bench(&args).await.expect("bench runs")
}

fn assert_complete(r: &MqttReport, sent: u64, consumers: u64) {
    assert!(r.complete(), "incomplete run:\n{r}");
    assert_eq!(r.sent, sent, "{r}");
    assert_eq!(r.received, sent * consumers, "{r}");
    assert_eq!(r.expected, sent * consumers, "{r}");
    if r.qos > 0 {
        assert_eq!(r.acked, sent, "{r}");
    }
    assert!(r.latency_us.max > 0 || r.received == 0, "{r}");
    assert!(r.server_cpu.is_some(), "server CPU read from /proc: {r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_reaches_every_consumer_at_every_qos() {
    let node = start();
    for (version, qos) in [("5", "0"), ("5", "1"), ("5", "2"), ("3", "1"), ("3", "2")] {
        let topic = format!("bench/v{version}/q{qos}");
        let r = bench(
            &node,
            &[
                "--mqtt-version",
                version,
                "--qos",
                qos,
                "--address",
                &topic,
                "--count",
                "3000",
                "--consumers",
                "2",
            ],
        )
        .await;
        assert_complete(&r, 3000, 2);
        assert_eq!(
            (r.version.to_string(), r.qos.to_string()),
            (version.to_string(), qos.to_string())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_and_several_producers_count_deliveries() {
    let node = start();
    // 2 producers × 500 messages, 20 subscribers: 20,000 deliveries
    let r = bench(
        &node,
        &[
            "--qos",
            "1",
            "--count",
            "1000",
            "--producers",
            "2",
            "--consumers",
            "20",
            "--window",
            "16",
        ],
    )
    .await;
    assert_complete(&r, 1000, 20);
    let text = r.to_string();
    assert!(text.contains("msgs/s received (deliveries;"), "{text}");
    assert!(text.ends_with("complete yes"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_run_takes_its_time() {
    let node = start();
    let r = bench(&node, &["--qos", "1", "--count", "200", "--rate", "1000"]).await;
    assert_complete(&r, 200, 1);
    assert!(r.seconds >= 0.18, "200 messages at 1000/s: {r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_go_in_the_connect() {
    let node = Node::start_in_with(
        r#"
[[tenant]]
name = "default"
auto_create = true
[[tenant.user]]
name = "alice"
password = "secret"
permissions = [{ pattern = "bench*", ops = ["send", "recv"] }]
"#,
        TempDir::create(),
        &["--mqtt", "127.0.0.1:0"],
    );
    let r = bench(
        &node,
        &[
            "--qos",
            "1",
            "--count",
            "500",
            "--user",
            "alice",
            "--password",
            "secret",
        ],
    )
    .await;
    assert_complete(&r, 500, 1);
    // anonymous access to a tenant with users, and a wrong password, are refused at CONNACK
    for flags in [
        &["--count", "10"][..],
        &["--count", "10", "--user", "alice", "--password", "nope"],
    ] {
        let url = node.listeners.get("mqtt").expect("mqtt listener").clone();
        let mut argv = vec![
            "bench",
            "--protocol",
            "mqtt",
            "--url",
            &url,
            "--timeout",
            "10",
        ];
        argv.extend_from_slice(flags);
        let err = throng_bench::mqtt::bench(&Cli::parse_from(argv).bench)
            .await
            .expect_err("refused");
        assert!(err.contains("refused the connection"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_mqtt_connections_are_held_and_cheap() {
    let node = start();
    let url = node.listeners.get("mqtt").expect("mqtt listener").clone();
    let pid = node.pid().to_string();
    let args = Cli::parse_from([
        "bench",
        "--protocol",
        "mqtt",
        "--url",
        &url,
        "--server-pid",
        &pid,
        "--idle-connections",
        "1000",
    ])
    .bench;
    let r = throng_bench::idle::idle_mqtt(&args)
        .await
        .expect("every connection answered with CONNACK 0");
    assert_eq!(r.connections, 1000);
    let per = r.per_connection_kib().expect("server RSS read");
    // measured at 6.2 KiB with 19,000; a small run is noisier: a generous bound that
    // still catches a per-connection buffer of tens of KiB
    assert!(per < 16.0, "{per:.2} KiB per idle connection");
}
