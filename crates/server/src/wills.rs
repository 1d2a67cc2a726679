//! Wills that survive a crash. A connection's will (MQTT CONNECT will, AMQP `$lwt`) is
//! written to the metadata store when it is registered and removed when the connection
//! ends cleanly or the will is published. A will still stored at start-up belongs to a
//! connection the node lost without a clean end, so it is published then — or, for an
//! MQTT will with a delay whose persistent session came back, after the delay unless
//! the client resumes the session first.
//!
//! Stored form (the value of the `wills` table, key `tenant \0 connection key`):
//!
//! ```text
//! u8 version = 1 | u8 flags (1 retain, 2 mqtt) | u32 delay seconds (BE)
//! | u16 length | address (UTF-8) | u16 length | MQTT client id (UTF-8, empty for AMQP)
//! | the will's AMQP message, as received or as bridged from MQTT
//! ```

use std::sync::Arc;
use throng_amqp::message::Message;
use throng_core::{AddressKind, Tenant};
use throng_store::{BlobTable, BlobWrite, Committed};
use tracing::{info, warn};

const VERSION: u8 = 1;
const RETAIN: u8 = 1;
const MQTT: u8 = 2;

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
    #[error("stored will is truncated")]
    Truncated,
    #[error("stored will has version {0}, this node reads version 1")]
    Version(u8),
    #[error("stored will has a name that is not UTF-8")]
    Utf8,
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
    pub fn encode(&self) -> Vec<u8> {
        let body = self.message.bytes();
        let mut out =
            Vec::with_capacity(10 + self.address.len() + self.client_id.len() + body.len());
        out.push(VERSION);
        let mut flags = 0;
        if self.retain {
            flags |= RETAIN;
        }
        if self.mqtt {
            flags |= MQTT;
        }
        out.push(flags);
        out.extend_from_slice(&self.delay.to_be_bytes());
        for s in [&self.address, &self.client_id] {
            // names longer than 65,535 bytes do not occur (MQTT topics and client ids
            // are bounded by it, AMQP addresses by the node's limits); cut, never wrap
            let b = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
            out.extend_from_slice(&(b.len() as u16).to_be_bytes());
            out.extend_from_slice(b);
        }
        out.extend_from_slice(body);
        out
    }

    /// Reads the stored form of the will under `key`.
    pub fn decode(key: &str, bytes: &[u8]) -> Result<Will, WillError> {
        let mut r = Reader(bytes);
        let version = r.u8()?;
        if version != VERSION {
            return Err(WillError::Version(version));
        }
        let flags = r.u8()?;
        let delay = u32::from_be_bytes(r.take(4)?.try_into().map_err(|_| WillError::Truncated)?);
        let address = r.string()?;
        let client_id = r.string()?;
        let message = Message::parse(bytes::Bytes::copy_from_slice(r.0))
            .map_err(|e| WillError::Message(e.to_string()))?;
        Ok(Will {
            key: key.to_string(),
            address,
            mqtt: flags & MQTT != 0,
            retain: flags & RETAIN != 0,
            delay,
            client_id,
            message,
        })
    }

    /// Writes the will to the tenant's metadata store; `done` runs once it is on disk
    /// (at once when the tenant keeps no metadata).
    pub fn remember(&self, tenant: &Tenant, done: Option<Committed>) {
        write(tenant, &self.key, Some(self.encode()), done);
    }

    /// Removes the will from the metadata store (it was withdrawn or published).
    pub fn forget(&self, tenant: &Tenant) {
        write(tenant, &self.key, None, None);
    }

    /// Publishes the will in `tenant` (and keeps it as the topic's retained message when
    /// asked), then forgets it once the published copies are on disk: a crash in between
    /// publishes it again after the restart, never not at all. An address that no
    /// longer exists is logged.
    pub fn publish(&self, tenant: &Arc<Tenant>) {
        let kind = if self.mqtt {
            AddressKind::Topic
        } else {
            AddressKind::Queue
        };
        let Some(address) = tenant.resolve(&self.address, kind) else {
            warn!(tenant = tenant.name(), address = %self.address, "will not published: unknown address");
            self.forget(tenant);
            return;
        };
        info!(tenant = tenant.name(), address = %self.address, client = %self.client_id, "publishing will");
        if self.retain {
            tenant.set_retained(&self.address, Some(self.message.clone()), None);
        }
        let (t, key) = (tenant.clone(), self.key.clone());
        let forget = Box::new(move || write(&t, &key, None, None));
        address.publish_unattended(self.message.clone(), Some(forget));
    }
}

fn write(tenant: &Tenant, key: &str, value: Option<Vec<u8>>, done: Option<Committed>) {
    match tenant.metadata() {
        Some(m) => m.submit(
            BlobWrite {
                table: BlobTable::Wills,
                tenant: tenant.name().to_string(),
                name: key.to_string(),
                value,
            },
            done,
        ),
        None => {
            if let Some(done) = done {
                done(Ok(()));
            }
        }
    }
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

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WillError> {
        if self.0.len() < n {
            return Err(WillError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, WillError> {
        Ok(self.take(1)?[0])
    }

    fn string(&mut self) -> Result<String, WillError> {
        let len = self.take(2)?;
        let len = u16::from_be_bytes([len[0], len[1]]) as usize;
        let b = self.take(len)?;
        std::str::from_utf8(b)
            .map(str::to_string)
            .map_err(|_| WillError::Utf8)
    }
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
    fn stored_form_round_trips() {
        let will = Will {
            key: Will::key(7),
            address: "status/dev-1".into(),
            mqtt: true,
            retain: true,
            delay: 30,
            client_id: "dev-1".into(),
            message: message(),
        };
        let back = Will::decode(&will.key, &will.encode()).unwrap();
        assert_eq!(back.key, will.key);
        assert_eq!(back.address, "status/dev-1");
        assert!(back.mqtt && back.retain);
        assert_eq!(back.delay, 30);
        assert_eq!(back.client_id, "dev-1");
        assert_eq!(back.message.bytes(), will.message.bytes());
        let amqp = Will {
            mqtt: false,
            retain: false,
            client_id: String::new(),
            ..will
        };
        let back = Will::decode("k", &amqp.encode()).unwrap();
        assert!(!back.mqtt && !back.retain && back.client_id.is_empty());
    }

    #[test]
    fn damaged_stored_forms_are_errors_not_panics() {
        let will = Will {
            key: "k".into(),
            address: "a".into(),
            mqtt: true,
            retain: false,
            delay: 0,
            client_id: "c".into(),
            message: message(),
        };
        let bytes = will.encode();
        let header = bytes.len() - will.message.len();
        for cut in 0..header {
            // every cut before the message's first section is refused
            assert!(
                Will::decode("k", &bytes[..cut]).is_err(),
                "prefix of {cut} bytes"
            );
        }
        let mut v2 = bytes.clone();
        v2[0] = 2;
        assert!(matches!(Will::decode("k", &v2), Err(WillError::Version(2))));
        let mut bad = bytes.clone();
        bad[8] = 0xff; // the address byte
        assert!(matches!(Will::decode("k", &bad), Err(WillError::Utf8)));
    }
}
