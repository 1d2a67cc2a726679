//! Helpers shared by the journal's integration tests: scratch directories, a model of
//! the live state, segment-file surgery, and a tracing subscriber that counts warnings.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use throng_store::{
    segment_file_name, Journal, JournalConfig, Record, Recovered, StoreError, SEGMENT_HEADER_LEN,
};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record as SpanRecord};
use tracing::{Event, Level, Metadata, Subscriber};

/// A directory under the target dir (a real disk, so fsync means something), removed
/// when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("throng-store-tests")
            .join(format!("{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A config for tests: small segments, fsync off unless a test needs it.
pub fn config(dir: &Path, segment_bytes: u64) -> JournalConfig {
    let mut cfg = JournalConfig::new(dir);
    cfg.segment_bytes = segment_bytes;
    cfg.fsync = false;
    // reclaim tests look at copy-forward itself, not at its patience
    cfg.copy_forward_after = std::time::Duration::ZERO;
    cfg
}

pub fn open(cfg: &JournalConfig) -> (Journal, Recovered) {
    Journal::open(cfg.clone()).expect("journal opens")
}

pub fn enqueue(queue: &str, seq: u64, len: usize) -> Record {
    let message: Vec<u8> = (0..len).map(|i| (seq as usize * 31 + i) as u8).collect();
    Record::Enqueue {
        queue: queue.into(),
        seq,
        message: Bytes::from(message),
    }
}

pub fn ack(queue: &str, seq: u64) -> Record {
    Record::Ack {
        queue: queue.into(),
        seq,
    }
}

pub fn count(queue: &str, seq: u64, count: u32) -> Record {
    Record::DeliveryCount {
        queue: queue.into(),
        seq,
        count,
    }
}

pub fn drop_queue(queue: &str) -> Record {
    Record::DropQueue {
        queue: queue.into(),
    }
}

/// The live state as tests compare it: queue -> [(seq, message, delivery count)].
pub type State = BTreeMap<String, Vec<(u64, Bytes, u32)>>;

/// What replaying `records` must give: the reference semantics, written as plainly as
/// possible.
pub fn model<'a>(records: impl IntoIterator<Item = &'a Record>) -> State {
    let mut live: BTreeMap<String, BTreeMap<u64, (Bytes, u32)>> = BTreeMap::new();
    for r in records {
        match r {
            Record::Enqueue {
                queue,
                seq,
                message,
            } => {
                // A duplicate of a live message is ignored: the first is kept.
                live.entry(queue.clone())
                    .or_default()
                    .entry(*seq)
                    .or_insert((message.clone(), 0));
            }
            Record::Ack { queue, seq } => {
                if let Some(q) = live.get_mut(queue) {
                    q.remove(seq);
                }
            }
            Record::DeliveryCount { queue, seq, count } => {
                if let Some(m) = live.get_mut(queue).and_then(|q| q.get_mut(seq)) {
                    m.1 = *count;
                }
            }
            Record::DropQueue { queue } => {
                live.remove(queue);
            }
        }
    }
    live.into_iter()
        .filter(|(_, q)| !q.is_empty())
        .map(|(name, q)| {
            let msgs = q.into_iter().map(|(seq, (m, c))| (seq, m, c)).collect();
            (name, msgs)
        })
        .collect()
}

pub fn state(r: &Recovered) -> State {
    r.queues
        .iter()
        .map(|(q, msgs)| {
            let msgs = msgs
                .iter()
                .map(|m| (m.seq, m.message.clone(), m.delivery_count))
                .collect();
            (q.clone(), msgs)
        })
        .collect()
}

/// Appends all records (no callbacks) and syncs.
pub fn append_all(j: &Journal, records: &[Record]) {
    for r in records {
        j.append(r.clone(), None).expect("append");
    }
    j.sync().expect("sync");
}

/// The segment files in `dir`, oldest first, as (id, path).
pub fn segments(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut out: Vec<(u64, PathBuf)> = fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| {
            let e = e.ok()?;
            let id = throng_store::parse_segment_file_name(e.file_name().to_str()?)?;
            Some((id, e.path()))
        })
        .collect();
    out.sort();
    out
}

/// Start offsets of the records in a segment file written by the journal, and the
/// file's length (the walk trusts the length fields: the file is known good).
pub fn record_offsets(path: &Path) -> (Vec<usize>, usize) {
    let data = fs::read(path).expect("read segment");
    let mut offs = Vec::new();
    let mut off = SEGMENT_HEADER_LEN;
    while off < data.len() {
        offs.push(off);
        let len = u32::from_le_bytes(data[off..off + 4].try_into().unwrap()) as usize;
        off += 8 + len;
    }
    assert_eq!(off, data.len(), "segment walk ends at the end of the file");
    (offs, data.len())
}

/// The documented segment header, built independently of the crate.
pub fn segment_header(id: u64) -> Vec<u8> {
    let mut h = b"THRNGJNL".to_vec();
    h.extend_from_slice(&1u32.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(&id.to_le_bytes());
    assert_eq!(h.len(), SEGMENT_HEADER_LEN);
    h
}

/// Writes a segment file by hand: header plus the records, encoded.
pub fn write_segment(dir: &Path, id: u64, records: &[Record]) -> PathBuf {
    let mut data = segment_header(id);
    for r in records {
        data.extend_from_slice(&r.encode());
    }
    let path = dir.join(segment_file_name(id));
    fs::write(&path, data).expect("write segment");
    path
}

/// Copies every file of `from` into a fresh directory.
pub fn copy_dir(from: &Path, name: &str) -> TempDir {
    let to = TempDir::new(name);
    for e in fs::read_dir(from).expect("read dir") {
        let e = e.expect("dir entry");
        fs::copy(e.path(), to.path().join(e.file_name())).expect("copy");
    }
    to
}

pub fn expect_corrupt(res: Result<(Journal, Recovered), StoreError>) -> (PathBuf, u64) {
    match res {
        Err(StoreError::Corrupt { segment, offset }) => (segment, offset),
        Err(e) => panic!("expected Corrupt, got {e}"),
        Ok(_) => panic!("expected Corrupt, journal opened"),
    }
}

/// A tracing subscriber that keeps the WARN and ERROR events it sees, for asserting
/// "exactly one warning".
#[derive(Clone, Default)]
pub struct Warnings(Arc<Mutex<Vec<String>>>);

impl Warnings {
    /// Runs `f` with this subscriber as the thread's default.
    pub fn capture<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
        let w = Warnings::default();
        let out = tracing::subscriber::with_default(w.clone(), f);
        let lines = w.0.lock().unwrap().clone();
        (out, lines)
    }
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        } else {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }
}

impl Subscriber for Warnings {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &SpanRecord<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        if *event.metadata().level() <= Level::WARN {
            let mut m = Message(String::new());
            event.record(&mut m);
            self.0.lock().unwrap().push(m.0);
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}
