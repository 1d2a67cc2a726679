//! `throng bench`: a load generator on Throng's own protocol engines that works against
//! any AMQP 1.0 server (the default) or any MQTT 3.1.1/5.0 broker (`--protocol mqtt`, see
//! [`mqtt`]), so Throng and its peers are measured by the same tool.
//!
//! Producers stamp each message with its send time; consumers compute end-to-end latency.
//! Throughput is messages received per second of the run; with `--server-pid`, the
//! server's CPU time (utime+stime from /proc) is divided by the messages moved.

mod cpu;
pub mod idle;
pub mod mqtt;
mod stats;

use bytes::{Bytes, BytesMut};
use clap::{Args, ValueEnum};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use throng_amqp::definitions::Header;
use throng_amqp::engine::SaslClient;
use throng_amqp::message::{Body, MessageBuilder};
use throng_client::{ConnectOptions, Connection, OutcomeCounter, ReceiverOptions, SenderOptions};

/// How producers settle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SettleMode {
    /// Each send waits (within the window) for the server's outcome.
    Unsettled,
    /// Sends are presettled (at-most-once).
    Presettled,
}

/// The protocol `throng bench` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    /// AMQP 1.0.
    Amqp,
    /// MQTT 3.1.1 or 5.0 (`--mqtt-version`).
    Mqtt,
}

/// `throng bench` options.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Protocol to speak.
    #[arg(long, value_enum, default_value = "amqp")]
    pub protocol: Protocol,
    /// Server address HOST:PORT [default: 127.0.0.1:5672 for AMQP, 127.0.0.1:1883 for
    /// MQTT].
    #[arg(long)]
    pub url: Option<String>,
    /// Address to send to and receive from (MQTT: the topic).
    #[arg(long, default_value = "bench")]
    pub address: String,
    /// Number of producer connections.
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Number of consumer connections (MQTT: each subscribes to the topic and receives
    /// every message).
    #[arg(long, default_value_t = 1)]
    pub consumers: usize,
    /// Message body size in bytes (at least 8: the send timestamp).
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Messages to send in total.
    #[arg(long, default_value_t = 100_000)]
    pub count: u64,
    /// Producer settlement.
    #[arg(long, value_enum, default_value = "unsettled")]
    pub settle: SettleMode,
    /// Total send rate in messages/s (0 = as fast as credit allows).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Unsettled sends in flight per producer (MQTT QoS 1/2: at most the server's receive
    /// maximum).
    #[arg(long, default_value_t = 1000)]
    pub window: u32,
    /// Consumer credit window.
    #[arg(long, default_value_t = 1000)]
    pub credit: u32,
    /// PID of the server, to report its CPU time per message.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// SASL PLAIN user (default: ANONYMOUS; MQTT: the CONNECT user name, default none).
    #[arg(long)]
    pub user: Option<String>,
    /// SASL PLAIN password (MQTT: the CONNECT password, with `--user`).
    #[arg(long, default_value = "")]
    pub password: String,
    /// Skip SASL entirely.
    #[arg(long)]
    pub no_sasl: bool,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// Ask for presettled deliveries on the consumer links.
    #[arg(long)]
    pub presettled_consumers: bool,
    /// Where the consumers connect (AMQP; default `--url`): another node of a mesh, to
    /// measure the path between two nodes.
    #[arg(long)]
    pub consumer_url: Option<String>,
    /// More server processes whose CPU counts with `--server-pid`'s (the other nodes of
    /// a mesh on the path; repeatable).
    #[arg(long)]
    pub also_pid: Vec<u32>,
    /// Instead of moving messages, open this many connections (AMQP: SASL, open, one
    /// session; MQTT: CONNECT, clean session, keep-alive off), hold them idle, and report
    /// the connect rate and the server's resident memory per connection. MQTT spreads
    /// them over source addresses 127.X.0.2, 127.X.0.3, … (5,000 each: the kernel's search
    /// for a free ephemeral port slows as an address's ports fill); raise the open-file
    /// limits of both processes for large counts (e.g. `prlimit --nofile=250000`).
    #[arg(long, default_value_t = 0)]
    pub idle_connections: usize,
    /// MQTT idle connections: each CONNECT carries a will (QoS 1, on `idle/N`), which
    /// the server must store before its CONNACK; connections end with a DISCONNECT.
    #[arg(long)]
    pub wills: bool,
    /// Send durable messages (header durable=true): a broker must have them on disk before
    /// it settles them.
    #[arg(long)]
    pub durable: bool,
    /// MQTT: quality of service of the publishes and of the subscriptions.
    #[arg(long, value_enum, default_value = "0")]
    pub qos: mqtt::QosArg,
    /// MQTT: protocol version.
    #[arg(long, value_enum, default_value = "5")]
    pub mqtt_version: mqtt::VersionArg,
    /// MQTT: every client asks for a persistent session (clean start off; v5: session
    /// expiry 300 s), as devices that must not miss messages do. The server then keeps
    /// subscriptions durably and QoS 2 state with the session. The sessions outlive the run.
    #[arg(long)]
    pub persistent_sessions: bool,
    /// MQTT: publish with the retain flag, as devices reporting their state do: every
    /// publish replaces the topic's retained message, which a broker that keeps them
    /// durably must write before it acknowledges (QoS 1/2).
    #[arg(long)]
    pub retain: bool,
    /// MQTT: each producer publishes on its own N topics in turn (`ADDRESS/P/0` …
    /// `ADDRESS/P/N-1`), and consumers subscribe to `ADDRESS/#`: with N at least the
    /// messages per producer, every publish goes to a topic that does not exist yet, as
    /// when a fleet of devices first reports (0: the one topic `ADDRESS`).
    #[arg(long, default_value_t = 0)]
    pub topics: usize,
}

impl BenchArgs {
    /// Where consumers connect: `--consumer-url`, else [`BenchArgs::url`].
    pub fn consumer_url(&self) -> &str {
        self.consumer_url.as_deref().unwrap_or_else(|| self.url())
    }

    /// The server address: `--url`, or the protocol's default port on 127.0.0.1.
    pub fn url(&self) -> &str {
        match (&self.url, self.protocol) {
            (Some(u), _) => u,
            (None, Protocol::Amqp) => "127.0.0.1:5672",
            (None, Protocol::Mqtt) => "127.0.0.1:1883",
        }
    }
}

/// The CPU time of `--server-pid` and every `--also-pid`, summed (`None` when any
/// cannot be read).
fn servers_cpu(args: &BenchArgs) -> Option<Duration> {
    let mut total = cpu::process_cpu(args.server_pid?)?;
    for pid in &args.also_pid {
        total += cpu::process_cpu(*pid)?;
    }
    Some(total)
}

/// Runs a benchmark and prints its report.
pub async fn run(args: BenchArgs) -> Result<(), String> {
    if args.idle_connections > 0 {
        return match args.protocol {
            Protocol::Amqp => idle::run(&args).await,
            Protocol::Mqtt => idle::run_mqtt(&args).await,
        };
    }
    if args.protocol == Protocol::Mqtt {
        return mqtt::run(&args).await;
    }
    let report = bench(&args).await?;
    println!("{report}");
    Ok(())
}

/// Result of one run.
#[derive(Debug, Clone)]
pub struct Report {
    pub sent: u64,
    pub received: u64,
    pub accepted: u64,
    pub not_accepted: u64,
    pub seconds: f64,
    pub latency_us: stats::Percentiles,
    pub server_cpu_us_per_msg: Option<f64>,
    pub client_cpu_us_per_msg: Option<f64>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rate = self
            .received
            .max(if self.received == 0 { self.sent } else { 0 }) as f64
            / self.seconds;
        writeln!(
            f,
            "sent {} received {} accepted {} not-accepted {} in {:.3} s",
            self.sent, self.received, self.accepted, self.not_accepted, self.seconds
        )?;
        writeln!(f, "throughput {:.0} msgs/s", rate)?;
        if self.received == 0 || self.sent == 0 {
            writeln!(
                f,
                "latency_us n/a (nothing both sent and received in this run)"
            )?;
        } else {
            writeln!(
                f,
                "latency_us p50 {} p90 {} p99 {} max {}",
                self.latency_us.p50, self.latency_us.p90, self.latency_us.p99, self.latency_us.max
            )?;
        }
        match self.server_cpu_us_per_msg {
            Some(c) => writeln!(f, "server_cpu_us_per_msg {c:.2}")?,
            None => writeln!(f, "server_cpu_us_per_msg n/a (no --server-pid)")?,
        }
        if let Some(c) = self.client_cpu_us_per_msg {
            write!(f, "client_cpu_us_per_msg {c:.2}")?;
        }
        Ok(())
    }
}

pub(crate) fn connect_options(args: &BenchArgs, role: &str, i: usize) -> ConnectOptions {
    ConnectOptions {
        container_id: format!("throng-bench-{role}-{i}-{}", std::process::id()),
        sasl: if args.no_sasl {
            SaslClient::None
        } else if let Some(u) = &args.user {
            SaslClient::Plain {
                username: u.clone(),
                password: args.password.clone(),
            }
        } else {
            SaslClient::Anonymous
        },
        ..ConnectOptions::default()
    }
}

/// Encodes the message template; the body's first 8 bytes are patched with the send time.
fn template(size: usize, durable: bool) -> (BytesMut, usize) {
    let body = vec![b'x'; size.max(8)];
    let mut builder = MessageBuilder::new().data(Bytes::from(body));
    if durable {
        builder = builder.header(Header {
            durable: Some(true),
            ..Header::default()
        });
    }
    let encoded = builder.encode();
    let offset = encoded.len() - size.max(8);
    (BytesMut::from(&encoded[..]), offset)
}

/// Runs one benchmark.
pub async fn bench(args: &BenchArgs) -> Result<Report, String> {
    let origin = Instant::now();
    let received = Arc::new(AtomicU64::new(0));
    let deadline = origin + Duration::from_secs(args.timeout);
    let mut consumer_tasks = Vec::new();
    let mut consumer_conns = Vec::new();
    let expected = if args.consumers > 0 { args.count } else { 0 };
    for i in 0..args.consumers {
        let conn = Connection::connect(args.consumer_url(), connect_options(args, "consumer", i))
            .await
            .map_err(|e| e.to_string())?;
        let mut rx = conn
            .open_receiver(
                &args.address,
                ReceiverOptions {
                    window: args.credit,
                    presettled: args.presettled_consumers,
                    ..ReceiverOptions::default()
                },
            )
            .await
            .map_err(|e| format!("consumer attach: {e}"))?;
        let received = received.clone();
        let presettled = args.presettled_consumers;
        consumer_tasks.push(tokio::spawn(async move {
            let mut lat: Vec<u32> = Vec::with_capacity(1 << 16);
            while received.load(Ordering::Relaxed) < expected {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                let d = match tokio::time::timeout(deadline - now, rx.recv()).await {
                    Ok(Some(Ok(d))) => d,
                    Ok(Some(Err(e))) => {
                        eprintln!("consumer: {e}");
                        break;
                    }
                    Ok(None) => {
                        eprintln!("consumer: link closed");
                        break;
                    }
                    Err(_) => break,
                };
                if let Ok(Body::Data(b)) = d.message.body() {
                    if b.len() >= 8 {
                        let sent_ns =
                            u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                        let now_ns = origin.elapsed().as_nanos() as u64;
                        lat.push(
                            (now_ns.saturating_sub(sent_ns) / 1000).min(u32::MAX as u64) as u32
                        );
                    }
                }
                if !presettled && !d.settled {
                    rx.accept(&d);
                }
                received.fetch_add(1, Ordering::Relaxed);
            }
            lat
        }));
        consumer_conns.push(conn);
    }
    let cpu_before = servers_cpu(args);
    let self_before = cpu::process_cpu(std::process::id());
    let start = Instant::now();
    let counter = Arc::new(OutcomeCounter::default());
    let mut producer_tasks = Vec::new();
    let mut producer_conns = Vec::new();
    let per = args.count / args.producers.max(1) as u64;
    let total_sent = per * args.producers.max(1) as u64;
    for i in 0..args.producers {
        let conn = Connection::connect(args.url(), connect_options(args, "producer", i))
            .await
            .map_err(|e| e.to_string())?;
        let sender = conn
            .open_sender(
                Some(&args.address),
                SenderOptions {
                    presettled: args.settle == SettleMode::Presettled,
                    ..SenderOptions::default()
                },
            )
            .await
            .map_err(|e| format!("producer attach: {e}"))?;
        let counter = counter.clone();
        let window = args.window as u64 * args.producers as u64;
        let (tmpl, offset) = template(args.size, args.durable);
        let period = if args.rate > 0 {
            Some(Duration::from_secs_f64(
                args.producers as f64 / args.rate as f64,
            ))
        } else {
            None
        };
        producer_tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            for n in 0..per {
                if let Some(p) = period {
                    let due = t0 + p * n as u32;
                    let now = Instant::now();
                    if due > now {
                        tokio::time::sleep(due - now).await;
                    }
                }
                // keep at most `window` unsettled sends in flight across producers
                loop {
                    let notified = counter.notify.notified();
                    if n + i as u64 * per < counter.settled() + window || Instant::now() >= deadline
                    {
                        break;
                    }
                    let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
                }
                let mut m = tmpl.clone();
                let ts = origin.elapsed().as_nanos() as u64;
                m[offset..offset + 8].copy_from_slice(&ts.to_be_bytes());
                sender.send_counted(m.freeze(), &counter);
            }
            sender
        }));
        producer_conns.push(conn);
    }
    let mut senders = Vec::new();
    for t in producer_tasks {
        senders.push(t.await.map_err(|e| e.to_string())?);
    }
    // wait for outcomes (none to wait for without producers)
    let total_sent = if args.producers == 0 { 0 } else { total_sent };
    while counter.settled() < total_sent && Instant::now() < deadline {
        let notified = counter.notify.notified();
        let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
    }
    let mut latencies = Vec::new();
    for t in consumer_tasks {
        latencies.extend(t.await.map_err(|e| e.to_string())?);
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu_after = servers_cpu(args);
    let self_after = cpu::process_cpu(std::process::id());
    let moved = received
        .load(Ordering::Relaxed)
        .max(if args.consumers == 0 { total_sent } else { 0 });
    let per_msg = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
        (Some(a), Some(b)) if moved > 0 => {
            Some((b.saturating_sub(a)).as_secs_f64() * 1e6 / moved as f64)
        }
        _ => None,
    };
    for c in producer_conns.iter().chain(consumer_conns.iter()) {
        let _ = tokio::time::timeout(Duration::from_secs(2), c.close()).await;
    }
    drop(senders);
    Ok(Report {
        sent: total_sent,
        received: received.load(Ordering::Relaxed),
        accepted: counter.accepted.load(Ordering::Relaxed),
        not_accepted: counter.other.load(Ordering::Relaxed),
        seconds,
        // send stamps of another process's run mean nothing here
        latency_us: if args.producers == 0 {
            stats::Percentiles::default()
        } else {
            stats::percentiles(&mut latencies)
        },
        server_cpu_us_per_msg: per_msg(cpu_before, cpu_after),
        client_cpu_us_per_msg: per_msg(self_before, self_after),
    })
}
