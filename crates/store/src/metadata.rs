//! Metadata that must outlive a restart but is not a message queue: durable
//! subscriptions, auto-created addresses, retained messages, persistent MQTT sessions and
//! wills, in an embedded transactional store.
//!
//! Rows that connections change often (sessions, wills) can go through
//! [`MetadataStore::submit`]: a writer thread commits everything submitted since its last
//! commit in one transaction (one fsync for many connections) and then tells each
//! submitter, so no connection blocks its thread on the disk.

use crate::metadata_writer::{self, Backlog, Job, Writer};
use redb::{Database, ReadableTable, TableDefinition};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

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
/// Wills of live connections (MQTT and AMQP `$lwt`), so that a connection lost to a
/// crash still gets its will published: key `tenant \0 connection key`, value the will
/// as the server encodes it (opaque here).
const WILLS: TableDefinition<&str, &[u8]> = TableDefinition::new("wills");

/// The tables of opaque bytes per tenant and name that [`MetadataStore::submit`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobTable {
    /// Retained messages, by topic.
    Retained,
    /// Persistent MQTT sessions, by client id.
    MqttSessions,
    /// Wills of live connections, by connection key.
    Wills,
}

impl BlobTable {
    pub(crate) fn definition(self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        match self {
            BlobTable::Retained => RETAINED,
            BlobTable::MqttSessions => MQTT_SESSIONS,
            BlobTable::Wills => WILLS,
        }
    }
}

/// One row to store (replacing) or, with `value: None`, remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobWrite {
    /// Which table.
    pub table: BlobTable,
    /// The tenant the row belongs to.
    pub tenant: String,
    /// The row's name within the tenant.
    pub name: String,
    /// The new bytes; `None` removes the row.
    pub value: Option<Vec<u8>>,
}

/// One row change as the writer applies it.
pub(crate) enum Row {
    /// A row of a tenant-keyed bytes table.
    Blob(BlobWrite),
    /// A row of a text table (durable subscriptions, addresses): key `tenant \0 name`.
    Text {
        table: TableDefinition<'static, &'static str, &'static str>,
        key: String,
        value: Option<String>,
    },
}

/// Called once a submitted write's transaction is committed (`Ok`) or failed (the
/// failure is logged once per transaction by the writer).
pub type Committed = Box<dyn FnOnce(Result<(), MetadataError>) + Send>;

/// Why metadata could not be read or written.
#[derive(Debug, Clone, thiserror::Error)]
#[error("metadata store: {0}")]
pub struct MetadataError(String);

pub(crate) fn err(e: impl std::fmt::Display) -> MetadataError {
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
    db: Arc<Database>,
    /// The group-commit writer, started by the first [`MetadataStore::submit`].
    writer: Mutex<Option<Writer>>,
    /// Threads blocked in a write that returns once committed.
    waiting: AtomicUsize,
    /// Bytes of writes nobody waits for, submitted and not yet committed.
    backlog: Arc<Backlog>,
}

/// Bytes of submitted, uncommitted writes above which [`MetadataStore::submit`] waits
/// for the writer: the memory a burst of QoS 0 retained publishes may hold.
pub const DEFAULT_BACKLOG_LIMIT: usize = 64 << 20;

impl Drop for MetadataStore {
    /// Commits what was submitted and stops the writer, so the file is closed when the
    /// store is gone (a reopen in the same process finds it free).
    fn drop(&mut self) {
        self.flush();
    }
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
        tx.open_table(WILLS).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(MetadataStore {
            db: Arc::new(db),
            writer: Mutex::new(None),
            waiting: AtomicUsize::new(0),
            backlog: Arc::new(Backlog::new(DEFAULT_BACKLOG_LIMIT)),
        })
    }

    /// The same store with another backlog limit (bytes; tests use small ones).
    pub fn with_backlog_limit(mut self, limit: usize) -> Self {
        self.backlog = Arc::new(Backlog::new(limit));
        self
    }

    /// Bytes of submitted writes not committed yet.
    pub fn backlog_bytes(&self) -> usize {
        self.backlog.bytes()
    }

    /// Whether a [`MetadataStore::submit`] now would wait for room: a caller on an async
    /// runtime hands its worker over first, so that other connections keep running.
    pub fn backlog_full(&self) -> bool {
        self.backlog.full()
    }

    /// Queues `write` for the writer thread's next transaction and returns — at once,
    /// unless more than the backlog limit is waiting to be committed, then once there is
    /// room; `done` runs on the writer thread after the commit. Writes are applied in the
    /// order they were submitted, so a row's last submitted value is the one stored.
    pub fn submit(&self, write: BlobWrite, done: Option<Committed>) {
        let cost = 64 + write.name.len() + write.value.as_ref().map_or(0, Vec::len);
        self.backlog.add(cost);
        self.enqueue_costing(Row::Blob(write), done, cost);
    }

    fn enqueue(&self, row: Row, done: Option<Committed>) {
        self.enqueue_costing(row, done, 0);
    }

    fn enqueue_costing(&self, row: Row, done: Option<Committed>, cost: usize) {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if writer.is_none() {
            match metadata_writer::start(self.db.clone(), self.backlog.clone()) {
                Ok(w) => *writer = Some(w),
                Err(e) => tracing::error!("no metadata writer thread ({e}): writing inline"),
            }
        }
        let mut job = Job { row, done, cost };
        if let Some(w) = writer.as_ref() {
            match w.send(job) {
                Ok(()) => return,
                Err(back) => job = back,
            }
        }
        // the thread is gone (it panicked) or never started: write here, not lose it
        self.commit_inline(job);
    }

    fn commit_inline(&self, job: Job) {
        let r = metadata_writer::commit(&self.db, std::slice::from_ref(&job));
        self.backlog.remove(job.cost);
        if let Err(e) = &r {
            tracing::error!("metadata write lost: {e}");
        }
        if let Some(done) = job.done {
            done(r);
        }
    }

    /// Waits until everything submitted so far is committed (a node stopping: writes
    /// nobody waited for, such as a session written when its connection ended, are not
    /// left behind). A later submit starts a new writer.
    pub fn flush(&self) {
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(w) = writer {
            w.stop();
        }
    }

    /// Every stored will: (tenant, connection key, will).
    pub fn wills(&self) -> Result<Vec<(String, String, Vec<u8>)>, MetadataError> {
        self.blobs(WILLS)
    }

    /// Remembers a durable subscription (durably, before returning). The write joins the
    /// writer's next group commit, so callers on many threads share one fsync.
    pub fn put_subscription(&self, s: &SubscriptionRecord) -> Result<(), MetadataError> {
        self.put_subscriptions(std::slice::from_ref(s))
    }

    /// Remembers several durable subscriptions at once (durably, before returning): one
    /// wait, and as few commits as the writer needs for them (a wildcard subscription
    /// over thousands of topics).
    pub fn put_subscriptions(&self, subs: &[SubscriptionRecord]) -> Result<(), MetadataError> {
        let row = |s: &SubscriptionRecord| Row::Text {
            table: SUBSCRIPTIONS,
            key: format!("{}\0{}", s.tenant, s.name),
            value: Some(s.topic.clone()),
        };
        let Some((last, rest)) = subs.split_last() else {
            return Ok(());
        };
        for s in rest {
            // committed no later than the last, which is waited for
            self.enqueue(row(s), None);
        }
        self.write_waiting(row(last))
    }

    /// Forgets a durable subscription (durably, before returning).
    pub fn remove_subscription(&self, tenant: &str, name: &str) -> Result<(), MetadataError> {
        self.write_waiting(Row::Text {
            table: SUBSCRIPTIONS,
            key: format!("{tenant}\0{name}"),
            value: None,
        })
    }

    /// Remembers an address created on first use, so it exists after a restart (durably,
    /// before returning).
    pub fn put_address(&self, tenant: &str, name: &str, kind: &str) -> Result<(), MetadataError> {
        self.write_waiting(Row::Text {
            table: ADDRESSES,
            key: format!("{tenant}\0{name}"),
            value: Some(kind.to_string()),
        })
    }

    /// How many threads are blocked right now in a write that returns once committed
    /// ([`MetadataStore::put_address`] and the subscription writes): a caller that finds
    /// others waiting can expect its write to share their commit, and may hand its
    /// runtime thread's other work to another thread for the wait.
    pub fn writes_waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Queues `row` for the writer and blocks the calling thread until its commit.
    fn write_waiting(&self, row: Row) -> Result<(), MetadataError> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let r = self.write_and_wait(row);
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        r
    }

    fn write_and_wait(&self, row: Row) -> Result<(), MetadataError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.enqueue(
            row,
            Some(Box::new(move |r| {
                let _ = tx.send(r);
            })),
        );
        rx.recv()
            .unwrap_or_else(|_| Err(MetadataError("the metadata writer stopped".into())))
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

    /// Every retained message: (tenant, topic, message bytes).
    pub fn retained(&self) -> Result<Vec<(String, String, Vec<u8>)>, MetadataError> {
        self.blobs(RETAINED)
    }

    /// Every persistent MQTT session: (tenant, client id, state).
    pub fn mqtt_sessions(&self) -> Result<Vec<(String, String, Vec<u8>)>, MetadataError> {
        self.blobs(MQTT_SESSIONS)
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
        for (topic, value) in [
            ("a/b", Some("one")),
            ("a/b", Some("two")),
            ("a/c", Some("gone")),
            ("a/c", None),
        ] {
            m.submit(write(BlobTable::Retained, topic, value), None);
        }
        drop(m);
        let m = MetadataStore::open(&path).unwrap();
        assert_eq!(
            m.retained().unwrap(),
            vec![("t".into(), "a/b".into(), b"two".to_vec())]
        );
        for (name, value) in [
            ("dev-1", Some("{}")),
            ("dev-2", Some("{}")),
            ("dev-2", None),
        ] {
            m.submit(write(BlobTable::MqttSessions, name, value), None);
        }
        m.flush(); // commits what was submitted
        assert_eq!(m.mqtt_sessions().unwrap().len(), 1);
        drop(m);
        let m = MetadataStore::open(&path).unwrap();
        assert_eq!(
            m.mqtt_sessions().unwrap(),
            vec![("t".into(), "dev-1".into(), b"{}".to_vec())]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn write(table: BlobTable, name: &str, value: Option<&str>) -> BlobWrite {
        BlobWrite {
            table,
            tenant: "t".into(),
            name: name.into(),
            value: value.map(|v| v.as_bytes().to_vec()),
        }
    }

    #[test]
    fn submitters_wait_for_room_when_the_backlog_is_over_its_limit() {
        let dir = std::env::temp_dir().join(format!("throng-meta-bl-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let limit = 2_000;
        let m = Arc::new(
            MetadataStore::open(&dir.join("meta.redb"))
                .unwrap()
                .with_backlog_limit(limit),
        );
        let value = "v".repeat(500);
        let cost = 64 + "row-0-00".len() + value.len(); // the longest name
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (m, value) = (m.clone(), value.clone());
                std::thread::spawn(move || {
                    let mut peak = 0;
                    for i in 0..100 {
                        let name = format!("row-{t}-{i}");
                        m.submit(write(BlobTable::Retained, &name, Some(&value)), None);
                        peak = peak.max(m.backlog_bytes());
                    }
                    peak
                })
            })
            .collect();
        let peak = threads.into_iter().map(|t| t.join().unwrap()).max();
        // a submit goes in only while the backlog is at most the limit
        assert!(peak.unwrap() <= limit + cost, "peak backlog {peak:?}");
        m.flush();
        assert_eq!(m.backlog_bytes(), 0);
        assert_eq!(m.retained().unwrap().len(), 400, "every write committed");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn submitted_writes_are_committed_in_order_and_each_submitter_told() {
        let dir = std::env::temp_dir().join(format!("throng-meta-gc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("meta.redb");
        let m = Arc::new(MetadataStore::open(&path).unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (m, tx) = (m.clone(), tx.clone());
                std::thread::spawn(move || {
                    for i in 0..50 {
                        // each thread rewrites its own row: the last value must win
                        let value = format!("{t}-{i}");
                        let name = format!("conn-{t}");
                        let tx = tx.clone();
                        m.submit(
                            write(BlobTable::Wills, &name, Some(&value)),
                            Some(Box::new(move |r| tx.send(r.is_ok()).unwrap())),
                        );
                    }
                    m.submit(
                        write(BlobTable::Wills, &format!("gone-{t}"), Some("x")),
                        None,
                    );
                    m.submit(write(BlobTable::Wills, &format!("gone-{t}"), None), None);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(tx);
        let told: Vec<bool> = rx.iter().collect();
        assert_eq!(told.len(), 200, "every submitter is told once");
        assert!(told.iter().all(|ok| *ok));
        drop(Arc::into_inner(m).unwrap());
        let m = MetadataStore::open(&path).unwrap();
        let mut wills = m.wills().unwrap();
        wills.sort();
        let expected: Vec<_> = (0..4)
            .map(|t| {
                (
                    "t".to_string(),
                    format!("conn-{t}"),
                    format!("{t}-49").into_bytes(),
                )
            })
            .collect();
        assert_eq!(wills, expected);
        assert!(m.mqtt_sessions().unwrap().is_empty(), "tables stay apart");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
