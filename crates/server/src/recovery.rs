//! Puts the durable messages the journal recovered back into their queues at start-up.

use throng_amqp::message::Message;
use throng_core::topic::SUBSCRIPTION_INFIX;
use throng_core::{Address, AddressKind, Node};
use throng_store::RecoveryReader;
use tracing::{info, warn};

/// Restores every recovered queue: the tenant must exist; the queue is created (an
/// auto-created queue lives on through its messages; so does a durable subscription whose
/// record the metadata store lost) unless the name now belongs to an address of another
/// type, which is reported and skipped. Messages are read from the journal one at a
/// time and a queue past its memory limit pages them straight back out, so recovery
/// needs memory for the journal's index, not for its messages.
pub fn restore(node: &Node, mut reader: RecoveryReader) -> Result<(), String> {
    let started = std::time::Instant::now();
    let stats = reader.stats();
    let mut messages = 0usize;
    let recovered = reader.take_queues();
    let queues = recovered.len();
    for (key, msgs) in recovered {
        let Some((tenant_name, address)) = key.split_once('/') else {
            warn!(key = %key, "journal names a queue without a tenant; skipped");
            continue;
        };
        let Some(tenant) = node.tenant(tenant_name) else {
            warn!(tenant = %tenant_name, address = %address, messages = msgs.len(), "journal holds messages of a tenant no longer configured; left in the journal");
            continue;
        };
        let queue = if let Some((topic, name)) = address.split_once(SUBSCRIPTION_INFIX) {
            // a durable subscription, recreated from the metadata store before this runs;
            // one the store does not know (its record was lost: a metadata write failed)
            // is recreated here, topic included, so its messages are not lost with it
            match tenant
                .lookup(topic)
                .unwrap_or_else(|| tenant.create(topic, AddressKind::Topic))
            {
                Address::Topic(t) => match t.durable_subscription(name) {
                    Some(q) => q,
                    None if is_mqtt_session_state(name) => {
                        // an MQTT session's: it ended with its session, messages and all
                        warn!(tenant = %tenant_name, topic = %topic, subscription = %name, messages = msgs.len(), "journal holds messages of an MQTT subscription whose session is gone; skipped");
                        continue;
                    }
                    None => {
                        warn!(tenant = %tenant_name, topic = %topic, subscription = %name, messages = msgs.len(), "journal holds messages of a durable subscription the metadata store does not know; recreated");
                        tenant.open_subscription(&t, name)
                    }
                },
                _ => {
                    warn!(tenant = %tenant_name, topic = %topic, "journal holds subscription messages for an address that is not a topic; skipped");
                    continue;
                }
            }
        } else {
            match tenant
                .lookup(address)
                .unwrap_or_else(|| tenant.create(address, AddressKind::Queue))
            {
                Address::Queue(q) => q,
                other => {
                    warn!(tenant = %tenant_name, address = %address, kind = other.kind().as_str(), "journal holds queue messages for an address that is no longer a queue; skipped");
                    continue;
                }
            }
        };
        for m in msgs {
            let bytes = reader
                .read(&m)
                .map_err(|e| format!("reading recovered messages of {key}: {e}"))?;
            match Message::parse(bytes) {
                Ok(msg) => {
                    queue.restore(m.seq, msg, m.delivery_count);
                    messages += 1;
                }
                Err(e) => {
                    warn!(tenant = %tenant_name, address = %address, seq = m.seq, "unparseable message in the journal skipped: {e}")
                }
            }
        }
    }
    info!(
        queues,
        messages,
        records = stats.records,
        replay_ms = stats.elapsed.as_millis() as u64,
        restore_ms = started.elapsed().as_millis() as u64,
        elapsed_ms = (stats.elapsed + started.elapsed()).as_millis() as u64,
        "journal recovered"
    );
    Ok(())
}

/// Whether durable subscription `name` belongs to MQTT sessions (a persistent session's,
/// or a shared subscription's), whose lifetime the sessions decide.
fn is_mqtt_session_state(name: &str) -> bool {
    name.starts_with(crate::mqtt::SESSION_TOPIC_PREFIX)
        || name.starts_with(crate::mqtt::SESSION_PREFIX)
        || name.starts_with(crate::mqtt::SHARED_PREFIX)
}
