//! A consumer: one subscribed connection that receives every message published on the
//! topic, acknowledges QoS 1/2 deliveries at once and records end-to-end latency.

use super::client::{Client, Stop, Wake};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use throng_mqtt::engine::Event;
use throng_mqtt::{QoS, ReasonCode};

/// What one consumer received.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Deliveries received.
    pub received: u64,
    /// Latency of each delivery carrying a send time, in microseconds.
    pub latencies_us: Vec<u32>,
    /// When the last delivery arrived.
    pub last: Option<Instant>,
    /// Why the consumer gave up, if it did.
    pub error: Option<String>,
}

/// Where a consumer reports to.
pub struct Shared {
    /// Time zero of the run (payloads carry nanoseconds since then).
    pub origin: Instant,
    /// Deliveries received by all consumers, updated once per read.
    pub progress: Arc<AtomicU64>,
    /// Set when the run is over.
    pub stop: Arc<Stop>,
}

/// Receives until `expected` deliveries arrived (and every QoS 2 handshake completed) or
/// the run is stopped; hands the connection back for a clean DISCONNECT.
pub async fn run(mut client: Client, expected: u64, shared: Arc<Shared>) -> (Client, Tally) {
    let mut tally = Tally {
        latencies_us: Vec::with_capacity(expected.min(1 << 24) as usize),
        ..Tally::default()
    };
    if let Err(e) = receive_all(&mut client, expected, &shared, &mut tally).await {
        tally.error = Some(e);
    }
    (client, tally)
}

async fn receive_all(
    client: &mut Client,
    expected: u64,
    shared: &Shared,
    t: &mut Tally,
) -> Result<(), String> {
    loop {
        let now = Instant::now();
        let before = t.received;
        take_deliveries(client, shared.origin, now, t)?;
        if t.received > before {
            shared
                .progress
                .fetch_add(t.received - before, Ordering::Relaxed);
            t.last = Some(now);
        }
        let settled = client.engine.inbound_unacked() == 0 && !client.has_output();
        if t.received >= expected && settled {
            return Ok(());
        }
        if client.step(None, &shared.stop).await? == Wake::Stopped {
            return Ok(());
        }
    }
}

/// Records every delivery among the engine's events (all of one read share its arrival
/// time) and acknowledges QoS 1/2 ones.
fn take_deliveries(
    client: &mut Client,
    origin: Instant,
    now: Instant,
    t: &mut Tally,
) -> Result<(), String> {
    let now_ns = now.saturating_duration_since(origin).as_nanos() as u64;
    while let Some(e) = client.engine.poll_event() {
        match e {
            Event::Publish(p) => {
                if let Some(stamp) = p.payload.get(..8) {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(stamp);
                    let us = now_ns.saturating_sub(u64::from_be_bytes(b)) / 1000;
                    t.latencies_us.push(us.min(u32::MAX as u64) as u32);
                }
                if p.qos != QoS::AtMostOnce {
                    client
                        .engine
                        .ack_publish(p.packet_id, ReasonCode::Success)
                        .map_err(|e| format!("ack: {e}"))?;
                }
                t.received += 1;
            }
            Event::Closed(c) => {
                return Err(format!(
                    "consumer connection closed: {:?} ({})",
                    c.reason, c.detail
                ))
            }
            _ => {}
        }
    }
    Ok(())
}
