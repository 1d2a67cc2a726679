//! The metadata store's group-commit writer: one thread that takes every write submitted
//! since its last commit, applies them in one redb transaction (one fsync), and then
//! runs their callbacks. Many connections writing their sessions or wills at once share
//! one commit instead of each holding a runtime thread through its own.

use crate::metadata::{err, Committed, MetadataError, Row};
use redb::{Database, TableHandle};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// Most writes one transaction takes, so a flood of submissions still commits (and
/// answers its first submitters) regularly.
const MAX_BATCH: usize = 4096;

/// The writer thread's name (a submitter on it must never wait for the writer).
const THREAD_NAME: &str = "throng-metadata";

/// A submitted write and who to tell when it is on disk.
pub(crate) struct Job {
    pub row: Row,
    pub done: Option<Committed>,
    /// What it counts against the backlog (bytes).
    pub cost: usize,
}

/// Bytes submitted and not yet committed. Writes nobody waits for (a QoS 0 retained
/// publish) could otherwise pile up in memory faster than the disk takes them: above
/// the limit, submitters wait for room.
pub(crate) struct Backlog {
    bytes: Mutex<usize>,
    room: Condvar,
    limit: usize,
}

impl Backlog {
    pub fn new(limit: usize) -> Self {
        Backlog {
            bytes: Mutex::new(0),
            room: Condvar::new(),
            limit,
        }
    }

    /// Counts `n` more bytes, first waiting while the backlog is over its limit (never
    /// on the writer thread, which is what makes room).
    pub fn add(&self, n: usize) {
        let mut b = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        if std::thread::current().name() != Some(THREAD_NAME) {
            while *b > self.limit {
                b = self.room.wait(b).unwrap_or_else(|e| e.into_inner());
            }
        }
        *b += n;
    }

    /// `n` bytes were committed.
    pub fn remove(&self, n: usize) {
        let mut b = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        *b = b.saturating_sub(n);
        self.room.notify_all();
    }

    /// Whether a submitter would wait now.
    pub fn full(&self) -> bool {
        self.bytes() > self.limit
    }

    /// Bytes submitted and not yet committed.
    pub fn bytes(&self) -> usize {
        *self.bytes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The running writer thread and its queue.
pub(crate) struct Writer {
    jobs: Sender<Job>,
    thread: JoinHandle<()>,
}

impl Writer {
    /// Queues a job; gives it back if the thread is gone.
    pub fn send(&self, job: Job) -> Result<(), Job> {
        self.jobs.send(job).map_err(|e| e.0)
    }

    /// Lets the thread commit what is queued, and waits for it to end.
    pub fn stop(self) {
        drop(self.jobs);
        if self.thread.join().is_err() {
            tracing::error!("the metadata writer thread panicked");
        }
    }
}

/// Starts the writer thread on `db`.
pub(crate) fn start(db: Arc<Database>, backlog: Arc<Backlog>) -> std::io::Result<Writer> {
    let (jobs, rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(THREAD_NAME.into())
        .spawn(move || run(&db, rx, &backlog))?;
    Ok(Writer { jobs, thread })
}

/// Logs lost writes at most every 10 s (a full disk fails every commit): the first at
/// once, then how many were lost in between.
#[derive(Default)]
struct LossLog {
    last: Option<std::time::Instant>,
    unlogged: usize,
}

impl LossLog {
    fn lost(&mut self, writes: usize, e: &MetadataError) {
        self.unlogged += writes;
        if self
            .last
            .is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(10))
        {
            tracing::error!(writes = self.unlogged, "metadata writes lost: {e}");
            self.last = Some(std::time::Instant::now());
            self.unlogged = 0;
        }
    }
}

fn run(db: &Database, rx: Receiver<Job>, backlog: &Backlog) {
    let mut losses = LossLog::default();
    let mut batch = Vec::new();
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let result = commit(db, &batch);
        tracing::debug!(
            writes = batch.len(),
            micros = started.elapsed().as_micros() as u64,
            "metadata commit"
        );
        if let Err(e) = &result {
            losses.lost(batch.len(), e);
        }
        let mut committed = 0;
        for job in batch.drain(..) {
            committed += job.cost;
            if let Some(done) = job.done {
                done(result.clone());
            }
        }
        backlog.remove(committed);
    }
}

/// Applies `jobs` in order in one transaction and commits it (durably). A table stays
/// open while consecutive jobs write to it (a burst of retained messages opens it once).
pub(crate) fn commit(db: &Database, jobs: &[Job]) -> Result<(), MetadataError> {
    let tx = db.begin_write().map_err(err)?;
    {
        let mut blobs = None;
        let mut texts = None;
        for job in jobs {
            match &job.row {
                Row::Blob(w) => {
                    let t = match &mut blobs {
                        Some((table, t)) if *table == w.table => t,
                        slot => {
                            *slot = None; // one handle per table at a time
                            let t = tx.open_table(w.table.definition()).map_err(err)?;
                            &mut slot.insert((w.table, t)).1
                        }
                    };
                    let key = format!("{}\0{}", w.tenant, w.name);
                    match &w.value {
                        Some(v) => t.insert(key.as_str(), v.as_slice()).map(drop),
                        None => t.remove(key.as_str()).map(drop),
                    }
                    .map_err(err)?;
                }
                Row::Text { table, key, value } => {
                    let t = match &mut texts {
                        Some((name, t)) if *name == table.name() => t,
                        slot => {
                            *slot = None;
                            let t = tx.open_table(*table).map_err(err)?;
                            &mut slot.insert((table.name(), t)).1
                        }
                    };
                    match value {
                        Some(v) => t.insert(key.as_str(), v.as_str()).map(drop),
                        None => t.remove(key.as_str()).map(drop),
                    }
                    .map_err(err)?;
                }
            }
        }
    }
    tx.commit().map_err(err)
}
