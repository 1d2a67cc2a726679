//! The idle-connection measurement: what an open but quiet AMQP connection costs the
//! server, read as the growth of its resident set (VmRSS) per connection.

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
            for p in pending.drain(..) {
                conns.push(
                    p.await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| format!("connection {}: {e}", conns.len()))?,
                );
            }
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
