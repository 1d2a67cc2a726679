//! `throng bench --protocol mqtt`: the MQTT 3.1.1/5.0 load generator, on Throng's own
//! sans-IO client engine (`throng-mqtt`) and tokio, so it measures any MQTT broker the
//! same way.
//!
//! Every producer and consumer is its own connection (clean session, keep-alive off).
//! Consumers subscribe to the topic at `--qos` before any producer starts; each receives
//! every message (fan-out), so throughput counts *deliveries received*, and server CPU is
//! divided by deliveries (and, separately, by messages sent). Producers publish at `--qos`
//! with at most a window of QoS 1/2 publishes unacknowledged: the server's receive
//! maximum from CONNACK (MQTT 5), capped by `--window` (the only bound in 3.1.1).
//! Payloads carry the send time in their first 8 bytes for end-to-end latency.

mod client;
mod consumer;
mod producer;
mod report;

pub use client::{Client, Stop, Wake};
pub use report::MqttReport;

use crate::{cpu, stats, BenchArgs};
use clap::ValueEnum;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use throng_mqtt::{ByteStr, QoS, Version};
use tokio::task::JoinHandle;

/// Time allowed for each connection's CONNECT/CONNACK and SUBSCRIBE/SUBACK.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Once the producers are done, consumers that received nothing for this long are
/// stopped (messages were lost) instead of waiting for `--timeout`.
const STALL: Duration = Duration::from_secs(2);

/// `--qos`: the quality of service of publishes and subscriptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QosArg {
    /// At most once.
    #[value(name = "0")]
    Q0,
    /// At least once (PUBACK).
    #[value(name = "1")]
    Q1,
    /// Exactly once (PUBREC, PUBREL, PUBCOMP).
    #[value(name = "2")]
    Q2,
}

impl QosArg {
    /// The protocol's QoS.
    pub fn qos(self) -> QoS {
        match self {
            QosArg::Q0 => QoS::AtMostOnce,
            QosArg::Q1 => QoS::AtLeastOnce,
            QosArg::Q2 => QoS::ExactlyOnce,
        }
    }
}

/// `--mqtt-version`: the protocol version of every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VersionArg {
    /// MQTT 3.1.1.
    #[value(name = "3")]
    V3,
    /// MQTT 5.0.
    #[value(name = "5")]
    V5,
}

impl VersionArg {
    /// The protocol's version.
    pub fn version(self) -> Version {
        match self {
            VersionArg::V3 => Version::V311,
            VersionArg::V5 => Version::V5,
        }
    }
}

/// Runs an MQTT benchmark and prints its report.
pub async fn run(args: &BenchArgs) -> Result<(), String> {
    if args.idle_connections > 0 {
        return Err("--idle-connections is not available with --protocol mqtt".into());
    }
    let report = bench(args).await?;
    println!("{report}");
    Ok(())
}

/// Connections and tasks of a run in progress.
struct Run {
    shared: Arc<consumer::Shared>,
    consumers: Vec<JoinHandle<(Client, consumer::Tally)>>,
    producers: Vec<Client>,
}

/// Runs one MQTT benchmark: connects and subscribes the consumers, connects the
/// producers, then measures from the first publish to the last delivery.
pub async fn bench(args: &BenchArgs) -> Result<MqttReport, String> {
    let origin = Instant::now();
    let per_producer = args.count / args.producers.max(1) as u64;
    let sent_total = per_producer * args.producers as u64;
    // without producers, consumers take messages published by someone else
    let expected_each = if args.producers > 0 {
        sent_total
    } else {
        args.count
    };
    let mut run = setup(args, origin, expected_each).await?;
    let watchdog = spawn_watchdog(run.shared.stop.clone(), args.timeout);
    let cpu_before = args.server_pid.and_then(cpu::process_cpu);
    let self_before = cpu::process_cpu(std::process::id());
    let start = Instant::now();
    let outcomes = run_producers(args, &mut run, per_producer, origin).await;
    let expected = expected_each * args.consumers as u64;
    wait_for_deliveries(&run.shared, expected, args.producers > 0).await;
    let mut tallies = Vec::new();
    let mut clients = std::mem::take(&mut run.producers);
    for mut t in run.consumers.drain(..) {
        // a consumer still finishing QoS 2 handshakes gets a grace period
        let joined = match tokio::time::timeout(STALL, &mut t).await {
            Ok(joined) => joined,
            Err(_) => {
                run.shared.stop.stop();
                t.await
            }
        };
        let (c, tally) = joined.map_err(|e| e.to_string())?;
        clients.push(c);
        tallies.push(tally);
    }
    let cpu_after = args.server_pid.and_then(cpu::process_cpu);
    let self_after = cpu::process_cpu(std::process::id());
    watchdog.abort();
    for c in clients {
        c.disconnect(Duration::from_secs(2)).await;
    }
    let ends = outcomes.iter().filter_map(|o| o.done);
    let end = tallies.iter().filter_map(|t| t.last).chain(ends).max();
    let mut report = MqttReport::new(args, &outcomes, &tallies, expected);
    report.seconds = end.map_or(0.0, |e| e.saturating_duration_since(start).as_secs_f64());
    let mut latencies: Vec<u32> = Vec::new();
    for t in &mut tallies {
        latencies.append(&mut t.latencies_us);
    }
    if args.producers > 0 {
        report.latency_us = stats::percentiles(&mut latencies);
    }
    report.server_cpu = delta(cpu_before, cpu_after);
    report.client_cpu = delta(self_before, self_after);
    Ok(report)
}

/// Connects and subscribes every consumer (each then waits for deliveries in its own
/// task), then connects every producer.
async fn setup(args: &BenchArgs, origin: Instant, expected_each: u64) -> Result<Run, String> {
    let version = args.mqtt_version.version();
    let creds = args.user.as_deref().map(|u| (u, args.password.as_str()));
    let shared = Arc::new(consumer::Shared {
        origin,
        progress: Arc::new(AtomicU64::new(0)),
        stop: Arc::new(Stop::default()),
    });
    let mut consumers = Vec::with_capacity(args.consumers);
    for i in 0..args.consumers {
        let mut c = Client::connect(
            args.url(),
            version,
            &client_id("sub", i),
            creds,
            args.persistent_sessions,
            SETUP_TIMEOUT,
        )
        .await
        .map_err(|e| format!("consumer {i}: {e}"))?;
        c.subscribe(&subscription(args), args.qos.qos(), SETUP_TIMEOUT)
            .await
            .map_err(|e| format!("consumer {i}: {e}"))?;
        consumers.push(tokio::spawn(consumer::run(
            c,
            expected_each,
            shared.clone(),
        )));
    }
    let mut producers = Vec::with_capacity(args.producers);
    for i in 0..args.producers {
        let c = Client::connect(
            args.url(),
            version,
            &client_id("pub", i),
            creds,
            args.persistent_sessions,
            SETUP_TIMEOUT,
        )
        .await
        .map_err(|e| format!("producer {i}: {e}"))?;
        producers.push(c);
    }
    Ok(Run {
        shared,
        consumers,
        producers,
    })
}

/// What consumers subscribe to: the topic, or with `--topics` every topic under it.
fn subscription(args: &BenchArgs) -> String {
    match args.topics {
        0 => args.address.clone(),
        _ => format!("{}/#", args.address),
    }
}

/// The topics producer `p` publishes on in turn: the topic, or with `--topics N` its own
/// N topics `ADDRESS/p/0` … `ADDRESS/p/N-1` (each created by its first publish).
fn topics(args: &BenchArgs, p: usize) -> Vec<ByteStr> {
    match args.topics {
        0 => vec![ByteStr::from(args.address.as_str())],
        n => (0..n)
            .map(|i| ByteStr::from(format!("{}/{p}/{i}", args.address).as_str()))
            .collect(),
    }
}

/// Starts every producer at once and waits for all of them.
async fn run_producers(
    args: &BenchArgs,
    run: &mut Run,
    per_producer: u64,
    origin: Instant,
) -> Vec<producer::Outcome> {
    let period =
        (args.rate > 0).then(|| Duration::from_secs_f64(args.producers as f64 / args.rate as f64));
    let mut tasks = Vec::with_capacity(run.producers.len());
    for (p, c) in run.producers.drain(..).enumerate() {
        let plan = producer::Plan {
            count: per_producer,
            qos: args.qos.qos(),
            topics: topics(args, p),
            size: args.size,
            period,
            window: (c.engine.peer_receive_maximum() as usize)
                .min(args.window as usize)
                .max(1),
            retain: args.retain,
            origin,
        };
        let stop = run.shared.stop.clone();
        tasks.push(tokio::spawn(
            async move { producer::run(c, plan, &stop).await },
        ));
    }
    let mut outcomes = Vec::with_capacity(tasks.len());
    for t in tasks {
        match t.await {
            Ok((c, o)) => {
                run.producers.push(c);
                outcomes.push(o);
            }
            Err(e) => outcomes.push(producer::Outcome {
                error: Some(e.to_string()),
                ..producer::Outcome::default()
            }),
        }
    }
    outcomes
}

/// Waits until the consumers received `expected` deliveries, stopping them when
/// deliveries stall (lost messages; only when `stall` — our producers are done) or the
/// run is stopped.
async fn wait_for_deliveries(shared: &consumer::Shared, expected: u64, stall: bool) {
    let mut seen = (shared.progress.load(Ordering::Relaxed), Instant::now());
    while !shared.stop.is_stopped() {
        let now = shared.progress.load(Ordering::Relaxed);
        if now >= expected {
            return;
        }
        if now != seen.0 {
            seen = (now, Instant::now());
        } else if stall && seen.1.elapsed() >= STALL {
            shared.stop.stop();
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Stops the run after `--timeout` seconds.
fn spawn_watchdog(stop: Arc<Stop>, secs: u64) -> JoinHandle<()> {
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(secs)).await;
        stop.stop();
    })
}

fn client_id(role: &str, i: usize) -> String {
    format!("throng-bench-{role}-{i}-{}", std::process::id())
}

fn delta(before: Option<Duration>, after: Option<Duration>) -> Option<Duration> {
    Some(after?.saturating_sub(before?))
}

#[cfg(test)]
mod tests {
    use super::{subscription, topics};
    use crate::BenchArgs;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    fn args(extra: &[&str]) -> BenchArgs {
        let argv = ["bench", "--protocol", "mqtt", "--address", "fleet"];
        Cli::parse_from(argv.iter().chain(extra)).args
    }

    #[test]
    fn topics_spread_each_producer_over_its_own_new_topics() {
        let one = args(&[]);
        assert_eq!(subscription(&one), "fleet");
        assert_eq!(topics(&one, 3).len(), 1);
        let many = args(&["--topics", "3"]);
        assert_eq!(subscription(&many), "fleet/#");
        let names: Vec<String> = topics(&many, 2).iter().map(|t| t.to_string()).collect();
        assert_eq!(names, ["fleet/2/0", "fleet/2/1", "fleet/2/2"]);
    }
}
