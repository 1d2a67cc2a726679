//! Wills that survive a crash. A connection's will (MQTT CONNECT will, AMQP `$lwt`) is
//! written to the metadata store when it is registered and removed when the connection
//! ends cleanly or the will is published. A will still stored at start-up belongs to a
//! connection the node lost without a clean end, so it is published then — or, for an
//! MQTT will with a delay whose persistent session came back, after the delay unless
//! the client resumes the session first.
//!
//! The stored form is `throng_store::WillRecord` (the will's message in AMQP form).

use std::sync::Arc;
use throng_amqp::message::Message;
use throng_core::{AddressKind, Refusal, Reply, Target, Tenant, Verdict};
use throng_store::{BlobTable, Committed, WillRecord, WillRecordError};
use tracing::{info, warn};

/// A will: the message to publish to `address` when its connection is lost.
#[derive(Debug, Clone)]
pub struct Will {
    /// Its row in the metadata store: unique per connection and node start, so a late
    /// removal never touches another connection's will.
    pub key: String,
    /// The topic (MQTT) or address (AMQP `to`) it is published to.
    pub address: String,
    /// An MQTT will (the address is a topic; may be retained, delayed, cancelled by the
    /// session's return) rather than an AMQP one.
    pub mqtt: bool,
    /// Also stored as the topic's retained message.
    pub retain: bool,
    /// MQTT 5 will delay, seconds.
    pub delay: u32,
    /// The MQTT client whose session's return cancels a delayed will (empty for AMQP).
    pub client_id: String,
    /// The message, in AMQP form.
    pub message: Message,
}

/// Why stored will bytes could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WillError {
    #[error(transparent)]
    Record(#[from] WillRecordError),
    #[error("stored will's message: {0}")]
    Message(String),
}

impl Will {
    /// The metadata store's key for the will of connection `conn`: the node's start time
    /// keeps it apart from the keys of wills restored from earlier runs.
    pub fn key(conn: u64) -> String {
        static BOOT: std::sync::OnceLock<u128> = std::sync::OnceLock::new();
        let boot = BOOT.get_or_init(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        });
        format!("{boot:x}/{conn}")
    }

    /// The stored form.
    pub fn encode(&self) -> Result<Vec<u8>, WillRecordError> {
        WillRecord {
            address: &self.address,
            mqtt: self.mqtt,
            retain: self.retain,
            delay: self.delay,
            client_id: &self.client_id,
            message: self.message.bytes(),
        }
        .encode()
    }

    /// Reads the stored form of the will under `key`.
    pub fn decode(key: &str, bytes: &[u8]) -> Result<Will, WillError> {
        let r = WillRecord::decode(bytes)?;
        let message = Message::parse(bytes::Bytes::copy_from_slice(r.message))
            .map_err(|e| WillError::Message(e.to_string()))?;
        Ok(Will {
            key: key.to_string(),
            address: r.address.to_string(),
            mqtt: r.mqtt,
            retain: r.retain,
            delay: r.delay,
            client_id: r.client_id.to_string(),
            message,
        })
    }

    /// Writes the will to the tenant's metadata store; `done` runs once it is on disk
    /// (at once when the tenant keeps no metadata).
    pub fn remember(&self, tenant: &Tenant, done: Option<Committed>) {
        match self.encode() {
            Ok(bytes) => write(tenant, &self.key, Some(bytes), done),
            Err(e) => {
                // kept in memory only: it is still published if the connection is lost
                warn!(tenant = tenant.name(), address = %self.address, "will not stored: {e}");
                if let Some(done) = done {
                    done(Ok(()));
                }
            }
        }
    }

    /// Removes the will from the metadata store (it was withdrawn or published).
    pub fn forget(&self, tenant: &Tenant) {
        write(tenant, &self.key, None, None);
    }

    /// Publishes the will in `tenant` through the core's one entry point (a retained MQTT
    /// will also becomes its topic's retained message there), then forgets it once the
    /// message is safe: a crash in between publishes it again after the restart, never not
    /// at all. If the store failed, it stays stored and the next start publishes it again;
    /// any other refusal (an address that no longer exists, a full queue that rejects, a
    /// direct address nobody listens to) is logged once and the will forgotten.
    pub fn publish(&self, tenant: &Arc<Tenant>) {
        let kind = if self.mqtt {
            AddressKind::Topic
        } else {
            AddressKind::Queue
        };
        info!(tenant = tenant.name(), address = %self.address, client = %self.client_id, "publishing will");
        let (t, key, address) = (tenant.clone(), self.key.clone(), self.address.clone());
        let later = Box::new(move |v: Verdict| settled(&t, &key, &address, v));
        let published = tenant.publish(
            self.message.clone(),
            Target::Named(&self.address, kind),
            None,
            Reply::Call(later),
            None,
        );
        if let Some(v) = published.verdict {
            settled(tenant, &self.key, &self.address, v);
        }
    }
}

/// A published will's verdict is known: forget the stored will, unless the store failed
/// (then the next start publishes it again).
fn settled(tenant: &Arc<Tenant>, key: &str, address: &str, v: Verdict) {
    match v {
        Verdict::Accepted => write(tenant, key, None, None),
        Verdict::Refused(Refusal::StoreFailed) => {
            warn!(tenant = tenant.name(), address = %address, "will not published: the message store failed; kept for the next start")
        }
        other => {
            warn!(tenant = tenant.name(), address = %address, "will not published: {}", describe(&other));
            write(tenant, key, None, None)
        }
    }
}

/// Why a will's publication was refused, for the log.
fn describe(v: &Verdict) -> &'static str {
    match v {
        Verdict::Refused(r) => r.describe(),
        Verdict::Released => "no consumer could take it",
        _ => "a consumer did not accept it",
    }
}

fn write(tenant: &Tenant, key: &str, value: Option<Vec<u8>>, done: Option<Committed>) {
    tenant.store_row(BlobTable::Wills, key, value, done);
}

/// Reads the wills stored before a restart, with their tenants; unreadable ones and
/// those of unknown tenants are logged and dropped.
pub fn read_stored(
    node: &throng_core::Node,
    records: &[(String, String, Vec<u8>)],
) -> Vec<(Arc<Tenant>, Will)> {
    let mut out = Vec::new();
    for (tenant_name, key, bytes) in records {
        let Some(tenant) = node.tenant(tenant_name) else {
            warn!(tenant = %tenant_name, key = %key, "will of an unknown tenant skipped");
            continue;
        };
        match Will::decode(key, bytes) {
            Ok(will) => out.push((tenant.clone(), will)),
            Err(e) => {
                warn!(tenant = %tenant_name, key = %key, "unreadable will dropped: {e}");
                write(&tenant, key, None, None);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Message {
        let bytes = throng_amqp::message::MessageBuilder::new()
            .data(&b"offline"[..])
            .encode();
        Message::parse(bytes).unwrap()
    }

    #[test]
    fn stored_form_round_trips_with_its_message() {
        let will = Will {
            key: Will::key(7),
            address: "status/dev-1".into(),
            mqtt: true,
            retain: true,
            delay: 30,
            client_id: "dev-1".into(),
            message: message(),
        };
        let back = Will::decode(&will.key, &will.encode().unwrap()).unwrap();
        assert_eq!(back.key, will.key);
        assert_eq!(back.address, "status/dev-1");
        assert!(back.mqtt && back.retain);
        assert_eq!(back.delay, 30);
        assert_eq!(back.client_id, "dev-1");
        assert_eq!(back.message.bytes(), will.message.bytes());
    }

    #[test]
    fn a_stored_will_whose_message_does_not_parse_is_an_error() {
        let bytes = WillRecord {
            address: "a",
            mqtt: false,
            retain: false,
            delay: 0,
            client_id: "",
            message: b"\x00\x53", // a section cut short
        }
        .encode()
        .unwrap();
        assert!(matches!(
            Will::decode("k", &bytes),
            Err(WillError::Message(_))
        ));
        assert!(matches!(
            Will::decode("k", &bytes[..3]),
            Err(WillError::Record(_))
        ));
    }
}
