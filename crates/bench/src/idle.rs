//! The idle-connection measurement: what an open but quiet AMQP or MQTT connection costs
//! the server, read as the growth of its resident set (VmRSS) per connection.

use crate::{connect_options, BenchArgs};

use std::time::{Duration, Instant};
use throng_client::Connection;

/// Resident memory of process `pid` in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Opens `args.idle_connections` connections, holds them, reports memory per connection.
pub async fn run(args: &BenchArgs) -> Result<(), String> {
    let n = args.idle_connections;
    let before = args.server_pid.and_then(rss_kib);
    let start = Instant::now();
    let mut conns = Vec::with_capacity(n);
    let mut pending = Vec::new();
    for i in 0..n {
        let url = args.url().to_string();
        let opts = connect_options(args, "idle", i);
        pending.push(tokio::spawn(async move {
            Connection::connect(&url, opts).await
        }));
        if pending.len() == 200 || i + 1 == n {
            if std::env::var_os("THRONG_BENCH_TRACE").is_some() {
                eprintln!(
                    "{} connections after {:.3} s",
                    i + 1 - pending.len(),
                    start.elapsed().as_secs_f64()
                );
            }
            collect(&mut pending, &mut conns).await?;
        }
    }
    let connect_secs = start.elapsed().as_secs_f64();
    // let the server settle (allocator, lazily grown buffers) before reading its memory
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = args.server_pid.and_then(rss_kib);
    println!(
        "idle_connections {n} opened in {connect_secs:.2} s ({:.0} connections/s)",
        n as f64 / connect_secs
    );
    match (before, after) {
        (Some(b), Some(a)) => println!(
            "server_rss_kib before {b} after {a} per_connection_kib {:.2}",
            a.saturating_sub(b) as f64 / n as f64
        ),
        _ => println!("server_rss n/a (no --server-pid)"),
    }
    for c in &conns {
        let _ = tokio::time::timeout(Duration::from_millis(100), c.close()).await;
    }
    Ok(())
}

/// Waits for a batch of connection attempts and keeps the connections; the first failure
/// ends the measurement.
async fn collect<C, E: std::fmt::Display>(
    pending: &mut Vec<tokio::task::JoinHandle<Result<C, E>>>,
    conns: &mut Vec<C>,
) -> Result<(), String> {
    for p in pending.drain(..) {
        let c = p
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("connection {}: {e}", conns.len()))?;
        conns.push(c);
    }
    Ok(())
}

/// Connections per source address. One address has about 28,000 ephemeral ports, but the
/// kernel's search for a free one slows down as they fill: 19,000 connections from one
/// address opened at 3,700/s, from four at 42,000/s.
const PER_SOURCE: usize = 5_000;

/// What holding idle MQTT connections cost the server.
#[derive(Debug, Clone)]
pub struct IdleReport {
    /// Connections opened (each answered with a CONNACK) and held.
    pub connections: usize,
    /// Time to open them all.
    pub connect_secs: f64,
    /// Server RSS before and after, KiB (with `--server-pid`).
    pub rss_kib: Option<(u64, u64)>,
}

impl IdleReport {
    /// Server memory per connection, KiB.
    pub fn per_connection_kib(&self) -> Option<f64> {
        self.rss_kib
            .map(|(b, a)| a.saturating_sub(b) as f64 / self.connections.max(1) as f64)
    }
}

/// Opens `args.idle_connections` MQTT 3.1.1 connections and reports them (see
/// [`idle_mqtt`]).
pub async fn run_mqtt(args: &BenchArgs) -> Result<(), String> {
    let r = idle_mqtt(args).await?;
    println!(
        "idle_connections {} (mqtt, from {} source addresses) opened in {:.2} s ({:.0} connections/s)",
        r.connections,
        r.connections.div_ceil(PER_SOURCE),
        r.connect_secs,
        r.connections as f64 / r.connect_secs
    );
    match (r.rss_kib, r.per_connection_kib()) {
        (Some((b, a)), Some(per)) => {
            println!("server_rss_kib before {b} after {a} per_connection_kib {per:.2}")
        }
        _ => println!("server_rss n/a (no --server-pid)"),
    }
    Ok(())
}

/// The MQTT 3.1.1 CONNECT of idle connection `i`: clean session, keep-alive 0, client id
/// `idle-I`; with `will`, a QoS 1 will on `idle/I` (the server stores it before the
/// CONNACK).
fn connect_packet(i: usize, will: bool) -> Vec<u8> {
    let id = format!("idle-{i}");
    let topic = format!("idle/{i}");
    let mut body = b"\x00\x04MQTT\x04".to_vec();
    body.push(if will { 0x02 | 0x04 | 0x08 } else { 0x02 });
    body.extend_from_slice(&[0, 0]);
    let mut strings = vec![id.as_bytes()];
    if will {
        strings.extend([topic.as_bytes(), b"gone".as_slice()]);
    }
    for s in strings {
        body.extend_from_slice(&(s.len() as u16).to_be_bytes());
        body.extend_from_slice(s);
    }
    let mut packet = vec![0x10];
    let mut len = body.len();
    loop {
        let byte = (len % 128) as u8;
        len /= 128;
        packet.push(if len > 0 { byte | 0x80 } else { byte });
        if len == 0 {
            break;
        }
    }
    packet.extend_from_slice(&body);
    packet
}

/// Opens `args.idle_connections` MQTT 3.1.1 connections from 127.X.0.2, 127.X.0.3, …
/// — X from the bench's process id, so a run right after another does not find its
/// source ports still in TIME_WAIT — each a CONNECT with clean session and keep-alive 0
/// (and a will with `--wills`) that waits for its CONNACK; holds them two seconds (the
/// server settles), measures, and closes them with a DISCONNECT.
pub async fn idle_mqtt(args: &BenchArgs) -> Result<IdleReport, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let n = args.idle_connections;
    let server: std::net::SocketAddr = args
        .url()
        .parse()
        .map_err(|e| format!("--url {}: {e} (an IP:PORT is needed)", args.url()))?;
    let before = args.server_pid.and_then(rss_kib);
    let start = Instant::now();
    let mut conns = Vec::with_capacity(n);
    let mut pending = Vec::new();
    let wills = args.wills;
    let run = 1 + (std::process::id() % 250) as u8;
    for i in 0..n {
        let source = std::net::Ipv4Addr::new(127, run, 0, 2 + (i / PER_SOURCE) as u8);
        pending.push(tokio::spawn(async move {
            let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
            socket
                .bind((source, 0).into())
                .map_err(|e| format!("bind {source}: {e}"))?;
            let mut stream = socket
                .connect(server)
                .await
                .map_err(|e| format!("connect from {source}: {e}"))?;
            stream
                .write_all(&connect_packet(i, wills))
                .await
                .map_err(|e| e.to_string())?;
            let mut connack = [0u8; 4];
            stream
                .read_exact(&mut connack)
                .await
                .map_err(|e| format!("no CONNACK: {e}"))?;
            if connack[0] != 0x20 || connack[3] != 0 {
                return Err(format!("connection refused: CONNACK {connack:02x?}"));
            }
            Ok::<_, String>(stream)
        }));
        if pending.len() == 500 || i + 1 == n {
            collect(&mut pending, &mut conns).await?;
        }
    }
    let connect_secs = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = args.server_pid.and_then(rss_kib);
    let connections = conns.len();
    // a clean DISCONNECT each: wills are withdrawn, not published
    for mut c in conns {
        let _ = c.write_all(&[0xE0, 0x00]).await;
    }
    Ok(IdleReport {
        connections,
        connect_secs,
        rss_kib: before.zip(after),
    })
}

#[cfg(test)]
mod tests {
    use super::connect_packet;
    use throng_mqtt::codec::{Decoder, Packet};

    fn decode(bytes: &[u8]) -> Packet {
        let mut buf = bytes::BytesMut::from(bytes);
        let packet = Decoder::new(throng_mqtt::Version::V311, 1 << 20)
            .decode(&mut buf)
            .unwrap()
            .unwrap();
        assert!(buf.is_empty(), "one whole packet");
        packet
    }

    #[test]
    fn idle_connects_decode_with_and_without_a_will() {
        let Packet::Connect(c) = decode(&connect_packet(7, false)) else {
            panic!("not a CONNECT");
        };
        assert_eq!(c.client_id.as_str(), "idle-7");
        assert!(c.clean_start && c.will.is_none() && c.keep_alive == 0);
        let Packet::Connect(c) = decode(&connect_packet(123_456_789, true)) else {
            panic!("not a CONNECT");
        };
        let w = c.will.expect("a will");
        assert_eq!(w.topic.as_str(), "idle/123456789");
        assert_eq!(&w.payload[..], b"gone");
        assert_eq!(w.qos as u8, 1);
    }
}
