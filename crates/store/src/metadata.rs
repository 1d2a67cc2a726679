//! Metadata that must outlive a restart but is not a message queue: durable
//! subscriptions, auto-created addresses and retained messages and persistent MQTT sessions,
//! in an embedded transactional store.

use redb::{Database, ReadableTable, TableDefinition};
use std::path::Path;

/// Durable subscriptions: key `tenant \0 name`, value `topic`.
const SUBSCRIPTIONS: TableDefinition<&str, &str> = TableDefinition::new("durable_subscriptions");
/// Auto-created addresses: key `tenant \0 name`, value the address type.
const ADDRESSES: TableDefinition<&str, &str> = TableDefinition::new("addresses");
/// Retained messages (MQTT retain, AMQP `x-opt-retain-message`): key `tenant \0 topic`,
/// value the message bytes as received.
const RETAINED: TableDefinition<&str, &[u8]> = TableDefinition::new("retained");
/// Persistent MQTT sessions: key `tenant \0 client id`, value the session's state as the
/// MQTT adapter encodes it (opaque here).
const MQTT_SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("mqtt_sessions");

/// Why metadata could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("metadata store: {0}")]
pub struct MetadataError(String);

fn err(e: impl std::fmt::Display) -> MetadataError {
    MetadataError(e.to_string())
}

/// A durable subscription as remembered across restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRecord {
    /// The tenant that owns it.
    pub tenant: String,
    /// Its name (container-id and link name, or the shared subscription's name).
    pub name: String,
    /// The topic it subscribes to.
    pub topic: String,
}

/// The node's metadata database (one redb file).
pub struct MetadataStore {
    db: Database,
}

impl MetadataStore {
    /// Opens (or creates) the database file.
    pub fn open(path: &Path) -> Result<MetadataStore, MetadataError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let db = Database::create(path).map_err(err)?;
        let tx = db.begin_write().map_err(err)?;
        tx.open_table(SUBSCRIPTIONS).map_err(err)?;
        tx.open_table(ADDRESSES).map_err(err)?;
        tx.open_table(RETAINED).map_err(err)?;
        tx.open_table(MQTT_SESSIONS).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(MetadataStore { db })
    }

    /// Remembers a durable subscription (durably, before returning).
    pub fn put_subscription(&self, s: &SubscriptionRecord) -> Result<(), MetadataError> {
        let key = format!("{}\0{}", s.tenant, s.name);
        let tx = self.db.begin_write().map_err(err)?;
        {
            let mut t = tx.open_table(SUBSCRIPTIONS).map_err(err)?;
            t.insert(key.as_str(), s.topic.as_str()).map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    /// Forgets a durable subscription.
    pub fn remove_subscription(&self, tenant: &str, name: &str) -> Result<(), MetadataError> {
        let key = format!("{tenant}\0{name}");
        let tx = self.db.begin_write().map_err(err)?;
        {
            let mut t = tx.open_table(SUBSCRIPTIONS).map_err(err)?;
            t.remove(key.as_str()).map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    /// Remembers an address created on first use, so it exists after a restart.
    pub fn put_address(&self, tenant: &str, name: &str, kind: &str) -> Result<(), MetadataError> {
        let key = format!("{tenant}\0{name}");
        let tx = self.db.begin_write().map_err(err)?;
        {
            let mut t = tx.open_table(ADDRESSES).map_err(err)?;
            t.insert(key.as_str(), kind).map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    /// Every remembered address: (tenant, name, type).
    pub fn addresses(&self) -> Result<Vec<(String, String, String)>, MetadataError> {
        let tx = self.db.begin_read().map_err(err)?;
        let t = tx.open_table(ADDRESSES).map_err(err)?;
        let mut out = Vec::new();
        for row in t.iter().map_err(err)? {
            let (k, v) = row.map_err(err)?;
            let Some((tenant, name)) = k.value().split_once('\0') else {
                continue;
            };
            out.push((tenant.to_string(), name.to_string(), v.value().to_string()));
        }
        Ok(out)
    }

    /// Stores the retained message of a topic (durably, before returning), replacing
    /// the previous one; `None` clears it.
    pub fn put_retained(
        &self,
        tenant: &str,
        topic: &str,
        message: Option<&[u8]>,
    ) -> Result<(), MetadataError> {
        self.put_blob(RETAINED, tenant, topic, message)
    }

    /// Every retained message: (tenant, topic, message bytes).
    pub fn retained(&self) -> Result<Vec<(String, String, Vec<u8>)>, MetadataError> {
        self.blobs(RETAINED)
    }

    /// Stores (replacing) or with `None` forgets a persistent MQTT session, durably.
    pub fn put_mqtt_session(
        &self,
        tenant: &str,
        client_id: &str,
        state: Option<&[u8]>,
    ) -> Result<(), MetadataError> {
        self.put_blob(MQTT_SESSIONS, tenant, client_id, state)
    }

    /// Every persistent MQTT session: (tenant, client id, state).
    pub fn mqtt_sessions(&self) -> Result<Vec<(String, String, Vec<u8>)>, MetadataError> {
        self.blobs(MQTT_SESSIONS)
    }

    /// Stores (replacing) or with `None` removes the bytes of `name` in `tenant`, durably
    /// (the commit returns once on disk).
    fn put_blob(
        &self,
        table: TableDefinition<&str, &[u8]>,
        tenant: &str,
        name: &str,
        value: Option<&[u8]>,
    ) -> Result<(), MetadataError> {
        let key = format!("{tenant}\0{name}");
        let tx = self.db.begin_write().map_err(err)?;
        {
            let mut t = tx.open_table(table).map_err(err)?;
            match value {
                Some(v) => {
                    t.insert(key.as_str(), v).map_err(err)?;
                }
                None => {
                    t.remove(key.as_str()).map_err(err)?;
                }
            }
        }
        tx.commit().map_err(err)
    }

    /// Every row of a tenant-keyed bytes table: (tenant, name, bytes).
    fn blobs(
        &self,
        table: TableDefinition<&str, &[u8]>,
    ) -> Result<Vec<(String, String, Vec<u8>)>, MetadataError> {
        let tx = self.db.begin_read().map_err(err)?;
        let t = tx.open_table(table).map_err(err)?;
        let mut out = Vec::new();
        for row in t.iter().map_err(err)? {
            let (k, v) = row.map_err(err)?;
            let Some((tenant, name)) = k.value().split_once('\0') else {
                continue;
            };
            out.push((tenant.to_string(), name.to_string(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Every durable subscription.
    pub fn subscriptions(&self) -> Result<Vec<SubscriptionRecord>, MetadataError> {
        let tx = self.db.begin_read().map_err(err)?;
        let t = tx.open_table(SUBSCRIPTIONS).map_err(err)?;
        let mut out = Vec::new();
        for row in t.iter().map_err(err)? {
            let (k, v) = row.map_err(err)?;
            let Some((tenant, name)) = k.value().split_once('\0') else {
                continue;
            };
            out.push(SubscriptionRecord {
                tenant: tenant.into(),
                name: name.into(),
                topic: v.value().into(),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_survive_reopen_and_removal() {
        let dir = std::env::temp_dir().join(format!("throng-meta-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("meta.redb");
        let rec = SubscriptionRecord {
            tenant: "t".into(),
            name: "c1|sub".into(),
            topic: "news".into(),
        };
        {
            let m = MetadataStore::open(&path).unwrap();
            m.put_subscription(&rec).unwrap();
            m.put_subscription(&SubscriptionRecord {
                name: "other".into(),
                ..rec.clone()
            })
            .unwrap();
            m.remove_subscription("t", "other").unwrap();
        }
        let m = MetadataStore::open(&path).unwrap();
        assert_eq!(m.subscriptions().unwrap(), vec![rec]);
        m.put_address("t", "orders", "queue").unwrap();
        drop(m);
        let m = MetadataStore::open(&path).unwrap();
        assert_eq!(
            m.addresses().unwrap(),
            vec![("t".into(), "orders".into(), "queue".into())]
        );
        m.put_retained("t", "a/b", Some(b"one")).unwrap();
        m.put_retained("t", "a/b", Some(b"two")).unwrap();
        m.put_retained("t", "a/c", Some(b"gone")).unwrap();
        m.put_retained("t", "a/c", None).unwrap();
        drop(m);
        let m = MetadataStore::open(&path).unwrap();
        assert_eq!(
            m.retained().unwrap(),
            vec![("t".into(), "a/b".into(), b"two".to_vec())]
        );
        m.put_mqtt_session("t", "dev-1", Some(b"{}")).unwrap();
        m.put_mqtt_session("t", "dev-2", Some(b"{}")).unwrap();
        m.put_mqtt_session("t", "dev-2", None).unwrap();
        drop(m);
        let m = MetadataStore::open(&path).unwrap();
        assert_eq!(
            m.mqtt_sessions().unwrap(),
            vec![("t".into(), "dev-1".into(), b"{}".to_vec())]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
