//! A producer: publishes its share of the messages on one connection, as fast as the
//! socket (QoS 0) or its window of unacknowledged publishes (QoS 1/2) allows, or paced.

use super::client::{Client, Stop, Wake};
use bytes::BytesMut;
use std::time::{Duration, Instant};
use throng_mqtt::engine::Event;
use throng_mqtt::{ByteStr, Publish, QoS};

/// Output gathered before it is written: one `write` carries this much at most.
const BATCH_BYTES: usize = 64 * 1024;
/// Payloads are cut from shared chunks of this size (one allocation per chunk, not per
/// message).
const ARENA_BYTES: usize = 64 * 1024;

/// What one producer is asked to do.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Messages to publish.
    pub count: u64,
    /// QoS of every publish.
    pub qos: QoS,
    /// The topics, used in turn (one unless `--topics`).
    pub topics: Vec<ByteStr>,
    /// Payload size (at least 8: the send timestamp).
    pub size: usize,
    /// Time between two publishes when paced (`--rate`).
    pub period: Option<Duration>,
    /// QoS 1/2 publishes unacknowledged at most.
    pub window: usize,
    /// Publish with the retain flag (each publish replaces the topic's retained message).
    pub retain: bool,
    /// Time zero of the run: payloads carry nanoseconds since then.
    pub origin: Instant,
}

/// What one producer did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Messages handed to the socket.
    pub sent: u64,
    /// QoS 1/2 messages the server acknowledged with success (PUBACK, PUBCOMP).
    pub acked: u64,
    /// QoS 1/2 messages acknowledged with an error reason, or dropped.
    pub failed: u64,
    /// When the last message was written (QoS 0) or acknowledged (QoS 1/2).
    pub done: Option<Instant>,
    /// Why the producer gave up, if it did.
    pub error: Option<String>,
}

/// Publishes `plan.count` messages and waits for their acknowledgements; hands the
/// connection back for a clean DISCONNECT.
pub async fn run(mut client: Client, plan: Plan, stop: &Stop) -> (Client, Outcome) {
    let mut outcome = Outcome::default();
    if let Err(e) = publish_all(&mut client, &plan, stop, &mut outcome).await {
        outcome.error = Some(e);
    }
    (client, outcome)
}

async fn publish_all(
    client: &mut Client,
    plan: &Plan,
    stop: &Stop,
    o: &mut Outcome,
) -> Result<(), String> {
    let mut payloads = Payloads::new(plan.size);
    let t0 = Instant::now();
    loop {
        take_acks(client, o)?;
        let wake_at = fill(client, plan, &mut payloads, t0, o)?;
        let unacked = plan.qos != QoS::AtMostOnce && client.engine.inflight_len() > 0;
        if o.sent == plan.count && !unacked && !client.has_output() {
            o.done = Some(Instant::now());
            return Ok(());
        }
        if client.step(wake_at, stop).await? == Wake::Stopped {
            return Err(format!(
                "stopped with {} of {} sent, {} acknowledged",
                o.sent, plan.count, o.acked
            ));
        }
    }
}

/// Counts the acknowledgements among the engine's events.
fn take_acks(client: &mut Client, o: &mut Outcome) -> Result<(), String> {
    while let Some(e) = client.engine.poll_event() {
        match e {
            Event::Acked { reason, .. } if reason.is_error() => o.failed += 1,
            Event::Acked { .. } => o.acked += 1,
            Event::Dropped { .. } => o.failed += 1,
            Event::Closed(c) => {
                return Err(format!(
                    "producer connection closed: {:?} ({})",
                    c.reason, c.detail
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Publishes while the batch has room, the window allows and (paced) the next message is
/// due; returns when the next one is due if that is what stopped it.
fn fill(
    client: &mut Client,
    plan: &Plan,
    payloads: &mut Payloads,
    t0: Instant,
    o: &mut Outcome,
) -> Result<Option<Instant>, String> {
    let acked = plan.qos != QoS::AtMostOnce;
    while o.sent < plan.count && client.pending_output() < BATCH_BYTES {
        if acked && client.engine.inflight_len() >= plan.window {
            return Ok(None);
        }
        if let Some(p) = plan.period {
            let due = t0 + Duration::from_nanos((p.as_nanos() as u64).saturating_mul(o.sent));
            if due > Instant::now() {
                return Ok(Some(due));
            }
        }
        let topic = &plan.topics[(o.sent % plan.topics.len() as u64) as usize];
        let mut publish = Publish::new(topic.clone(), payloads.next(plan.origin));
        publish.qos = plan.qos;
        publish.retain = plan.retain;
        client
            .engine
            .publish(publish)
            .map_err(|e| format!("publish: {e}"))?;
        o.sent += 1;
    }
    Ok(None)
}

/// Payloads with the send time in their first 8 bytes (big-endian nanoseconds since the
/// run's origin), cut from shared chunks: a chunk is reused once the engine let go of
/// every payload in it.
struct Payloads {
    template: Vec<u8>,
    arena: BytesMut,
}

impl Payloads {
    fn new(size: usize) -> Self {
        Payloads {
            template: vec![b'x'; size.max(8)],
            arena: BytesMut::new(),
        }
    }

    fn next(&mut self, origin: Instant) -> bytes::Bytes {
        let n = self.template.len();
        if self.arena.capacity() < n {
            self.arena.reserve(ARENA_BYTES.max(n));
        }
        self.arena.extend_from_slice(&self.template);
        let ts = origin.elapsed().as_nanos() as u64;
        self.arena[..8].copy_from_slice(&ts.to_be_bytes());
        self.arena.split().freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_carry_the_send_time_and_share_a_chunk() {
        let origin = Instant::now();
        let mut p = Payloads::new(100);
        let a = p.next(origin);
        let b = p.next(origin);
        assert_eq!((a.len(), b.len()), (100, 100));
        let t = |x: &[u8]| u64::from_be_bytes(x[..8].try_into().expect("8 bytes"));
        assert!(t(&b) >= t(&a));
        assert!(a[8..].iter().all(|&c| c == b'x'));
        // the second payload follows the first in the same allocation
        assert_eq!(a.as_ptr() as usize + 100, b.as_ptr() as usize);
    }

    #[test]
    fn short_payloads_still_hold_the_timestamp() {
        let mut p = Payloads::new(3);
        assert_eq!(p.next(Instant::now()).len(), 8);
    }
}
