//! The result of an MQTT run and its printed form: the same lines as the AMQP report
//! (`throughput`, `latency_us`, `server_cpu_us_per_msg`, `client_cpu_us_per_msg`), with
//! deliveries received told apart from messages sent.

use super::{consumer, producer};
use crate::{stats, BenchArgs};
use std::fmt;
use std::time::Duration;

/// Result of one MQTT run.
#[derive(Debug, Clone, Default)]
pub struct MqttReport {
    /// Protocol version (3 or 5).
    pub version: u8,
    /// QoS of publishes and subscriptions.
    pub qos: u8,
    /// Producer connections.
    pub producers: usize,
    /// Consumer connections (each receives every message).
    pub consumers: usize,
    /// Payload size in bytes.
    pub size: usize,
    /// Messages published.
    pub sent: u64,
    /// QoS 1/2 publishes acknowledged with success.
    pub acked: u64,
    /// QoS 1/2 publishes acknowledged with an error, or dropped.
    pub failed: u64,
    /// Deliveries received, all consumers together.
    pub received: u64,
    /// Deliveries expected: messages sent × consumers.
    pub expected: u64,
    /// From the first publish to the last delivery (or last acknowledgement).
    pub seconds: f64,
    /// End-to-end latency of the deliveries.
    pub latency_us: stats::Percentiles,
    /// Server CPU time over the run (`--server-pid`).
    pub server_cpu: Option<Duration>,
    /// This process's CPU time over the run.
    pub client_cpu: Option<Duration>,
    /// Why producers or consumers gave up.
    pub errors: Vec<String>,
}

impl MqttReport {
    /// A report of the counts; timing, latency and CPU are filled in by the caller.
    pub(super) fn new(
        args: &BenchArgs,
        outcomes: &[producer::Outcome],
        tallies: &[consumer::Tally],
        expected: u64,
    ) -> Self {
        let errors = outcomes
            .iter()
            .filter_map(|o| o.error.clone())
            .chain(tallies.iter().filter_map(|t| t.error.clone()))
            .collect();
        MqttReport {
            version: match args.mqtt_version {
                super::VersionArg::V3 => 3,
                super::VersionArg::V5 => 5,
            },
            qos: args.qos.qos() as u8,
            producers: args.producers,
            consumers: args.consumers,
            size: args.size.max(8),
            sent: outcomes.iter().map(|o| o.sent).sum(),
            acked: outcomes.iter().map(|o| o.acked).sum(),
            failed: outcomes.iter().map(|o| o.failed).sum(),
            received: tallies.iter().map(|t| t.received).sum(),
            expected,
            errors,
            ..MqttReport::default()
        }
    }

    /// Whether every message was sent, acknowledged (QoS 1/2) and received by every
    /// consumer.
    pub fn complete(&self) -> bool {
        let acked = self.qos == 0 || (self.acked == self.sent && self.failed == 0);
        self.errors.is_empty() && self.received == self.expected && acked
    }

    /// What throughput counts: deliveries received, or messages sent without consumers.
    pub fn moved(&self) -> u64 {
        if self.consumers > 0 {
            self.received
        } else {
            self.sent
        }
    }

    /// Messages moved per second.
    pub fn throughput(&self) -> f64 {
        rate(self.moved(), self.seconds)
    }

    /// Server CPU microseconds per message moved (per delivery with consumers).
    pub fn server_cpu_us_per_msg(&self) -> Option<f64> {
        per(self.server_cpu, self.moved())
    }

    fn write_counts(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "mqtt {} qos {}: {} producer(s) -> {} consumer(s), {}-byte payloads; every consumer receives every message",
            self.version, self.qos, self.producers, self.consumers, self.size
        )?;
        write!(f, "sent {} ", self.sent)?;
        if self.qos == 0 {
            write!(f, "acked n/a (QoS 0) ")?;
        } else {
            write!(f, "acked {} failed {} ", self.acked, self.failed)?;
        }
        writeln!(
            f,
            "received {} expected {} in {:.3} s",
            self.received, self.expected, self.seconds
        )
    }

    fn write_rates(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.consumers > 0 {
            writeln!(
                f,
                "throughput {:.0} msgs/s received (deliveries; {:.0} msgs/s sent)",
                self.throughput(),
                rate(self.sent, self.seconds)
            )?;
        } else {
            writeln!(f, "throughput {:.0} msgs/s sent", self.throughput())?;
        }
        if self.received == 0 || self.sent == 0 {
            writeln!(
                f,
                "latency_us n/a (nothing both sent and received in this run)"
            )
        } else {
            let l = &self.latency_us;
            writeln!(
                f,
                "latency_us p50 {} p90 {} p99 {} max {}",
                l.p50, l.p90, l.p99, l.max
            )
        }
    }

    fn write_cpu(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = if self.consumers > 0 {
            "per delivery received"
        } else {
            "per message sent"
        };
        match self.server_cpu_us_per_msg() {
            Some(c) if self.consumers > 0 => writeln!(
                f,
                "server_cpu_us_per_msg {c:.2} ({unit}; {:.2} per message sent)",
                per(self.server_cpu, self.sent).unwrap_or(0.0)
            )?,
            Some(c) => writeln!(f, "server_cpu_us_per_msg {c:.2} ({unit})")?,
            None => writeln!(f, "server_cpu_us_per_msg n/a (no --server-pid)")?,
        }
        if let Some(c) = per(self.client_cpu, self.moved()) {
            writeln!(f, "client_cpu_us_per_msg {c:.2} ({unit})")?;
        }
        Ok(())
    }
}

impl fmt::Display for MqttReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_counts(f)?;
        self.write_rates(f)?;
        self.write_cpu(f)?;
        for e in &self.errors {
            writeln!(f, "error: {e}")?;
        }
        write!(f, "complete {}", if self.complete() { "yes" } else { "no" })
    }
}

fn rate(n: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        n as f64 / seconds
    } else {
        0.0
    }
}

fn per(cpu: Option<Duration>, n: u64) -> Option<f64> {
    cpu.filter(|_| n > 0)
        .map(|c| c.as_secs_f64() * 1e6 / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> MqttReport {
        MqttReport {
            version: 5,
            qos: 1,
            producers: 1,
            consumers: 2,
            size: 100,
            sent: 1000,
            acked: 1000,
            received: 2000,
            expected: 2000,
            seconds: 0.5,
            server_cpu: Some(Duration::from_millis(10)),
            ..MqttReport::default()
        }
    }

    #[test]
    fn deliveries_are_counted_apart_from_messages_sent() {
        let r = report();
        assert!(r.complete());
        assert_eq!(r.throughput(), 4000.0);
        assert_eq!(r.server_cpu_us_per_msg(), Some(5.0));
        let text = r.to_string();
        assert!(text.contains("throughput 4000 msgs/s received (deliveries; 2000 msgs/s sent)"));
        assert!(text.contains(
            "server_cpu_us_per_msg 5.00 (per delivery received; 10.00 per message sent)"
        ));
        assert!(text.ends_with("complete yes"), "{text}");
    }

    #[test]
    fn a_missing_delivery_or_ack_makes_the_run_incomplete() {
        let mut r = report();
        r.received -= 1;
        assert!(!r.complete());
        let mut r = report();
        r.acked -= 1;
        assert!(!r.complete());
        let mut r = report();
        r.qos = 0;
        r.acked = 0;
        assert!(r.complete(), "QoS 0 has no acknowledgements");
    }
}
