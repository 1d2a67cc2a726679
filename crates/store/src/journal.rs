//! [`Journal`]: the handle brokers append through.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Instant;

use crate::recovery;
use crate::restore::{RecoveredRef, RecoveryReader, ReplayStats};
use crate::writer::{Shared, Writer};
use crate::{
    JournalConfig, JournalStats, OnWritten, Record, Recovered, RecoveredMessage, StoreError,
};
use std::collections::BTreeMap;

/// Subdirectory of the journal directory holding queues' page files.
const PAGES_DIR: &str = "pages";

/// The message journal. Cheap to clone (an `Arc` inside) so every queue and connection
/// can hold one; the last handle dropped flushes everything appended and stops the
/// writer thread.
#[derive(Clone)]
pub struct Journal {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    dir: PathBuf,
    /// Holds the directory's exclusive lock for as long as the journal is open.
    _lock: fs::File,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.close();
        if let Some(handle) = self.thread.take() {
            // The last handle may be dropped by a callback on the writer thread itself;
            // it then stops on its own once the callbacks return.
            if handle.thread().id() != thread::current().id() && handle.join().is_err() {
                tracing::error!("journal writer thread panicked");
            }
        }
    }
}

impl fmt::Debug for Journal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.inner.dir)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Journal {
    /// Opens (creating the dir if needed) and replays: returns the LIVE state — for
    /// every queue, its messages not acked, in seq order, with their latest delivery
    /// count — plus stats. A torn or corrupt TAIL record (partial write at the end of
    /// the newest segment, detected by length/CRC) is truncated with one
    /// `tracing::warn!` line; corruption anywhere else returns
    /// `Err(StoreError::Corrupt{segment, offset})` unless `cfg.skip_corrupt`, in which
    /// case the bad record is skipped with a `warn!` line and replay continues at the
    /// next valid record if one can be found (or the rest of that segment is dropped,
    /// reported in [`Recovered::skipped_regions`]).
    ///
    /// Every live message is held in memory: for tools and tests. The node uses
    /// [`Journal::open_indexed`], which reads messages one at a time.
    ///
    /// Dead segments left from before (e.g. by a crash during reclaim) are deleted
    /// before this returns.
    pub fn open(cfg: JournalConfig) -> Result<(Journal, Recovered), StoreError> {
        let (journal, mut reader) = Self::open_indexed(cfg)?;
        let stats = reader.stats();
        let mut queues = BTreeMap::new();
        for (queue, refs) in reader.take_queues() {
            let mut msgs = Vec::with_capacity(refs.len());
            for r in &refs {
                msgs.push(RecoveredMessage {
                    seq: r.seq,
                    message: reader.read(r)?,
                    delivery_count: r.delivery_count,
                });
            }
            queues.insert(queue, msgs);
        }
        drop(reader);
        journal.sync()?;
        let recovered = Recovered {
            queues,
            records: stats.records,
            elapsed: stats.elapsed,
            segments: stats.segments,
            truncated_bytes: stats.truncated_bytes,
            skipped_regions: stats.skipped_regions,
        };
        Ok((journal, recovered))
    }

    /// Opens and replays like [`Journal::open`], but keeps only where each live message
    /// is: the [`RecoveryReader`] reads them back one at a time, so recovery needs
    /// memory for an index entry per message, not for the messages. Space is not
    /// reclaimed until the reader is dropped (then dead segments go at once).
    pub fn open_indexed(cfg: JournalConfig) -> Result<(Journal, RecoveryReader), StoreError> {
        let start = Instant::now();
        fs::create_dir_all(&cfg.dir)?;
        let lock = lock_dir(&cfg.dir)?;
        let pages = cfg.dir.join(PAGES_DIR);
        if pages.exists() {
            fs::remove_dir_all(&pages)?;
        }
        let replayed = recovery::replay(&cfg)?;
        let (live, index) = replayed.index.into_parts();
        let queues = live
            .into_iter()
            .map(|(queue, msgs)| {
                let refs = msgs
                    .into_iter()
                    .map(|(seq, e)| RecoveredRef {
                        seq,
                        delivery_count: e.delivery_count,
                        loc: e.loc,
                    })
                    .collect();
                (queue, refs)
            })
            .collect();
        let writer = Writer::new(&cfg, index, replayed.resume, replayed.next_id)?;
        let shared = Arc::clone(writer.shared());
        // held before the writer starts: replay's locations must stay valid
        shared.hold_reclaim(true);
        let thread = thread::Builder::new()
            .name("throng-journal".into())
            .spawn(move || writer.run())?;
        shared.set_writer_thread(thread.thread().id());
        let stats = ReplayStats {
            records: replayed.records,
            elapsed: start.elapsed(),
            segments: replayed.segments,
            truncated_bytes: replayed.truncated_bytes,
            skipped_regions: replayed.skipped_regions,
        };
        let reader = RecoveryReader::new(cfg.dir.clone(), queues, stats, Arc::clone(&shared));
        let journal = Journal {
            inner: Arc::new(Inner {
                shared,
                thread: Some(thread),
                dir: cfg.dir,
                _lock: lock,
            }),
        };
        Ok((journal, reader))
    }

    /// Appends a record; `on_durable` runs (on the journal's writer thread) with
    /// [`Written::Durable`](crate::Written::Durable) once the record is written and, if
    /// `cfg.fsync`, fsync'ed. Never blocks on I/O: records go to the writer thread,
    /// which group-commits — it takes everything queued, writes it with one write (or a
    /// few, at segment boundaries), one fdatasync for the whole batch, then runs all the
    /// batch's callbacks in append order.
    ///
    /// Callbacks should be quick (hand the news to another task): the next batch waits
    /// for them. A callback that panics is logged and the journal carries on. If the
    /// journal fails, callbacks of records not yet durable run with
    /// [`Written::Failed`](crate::Written::Failed) (the record may or may not be on disk;
    /// recovery decides). When `append` itself returns `Err`, `on_durable` is dropped
    /// without running: the caller knows.
    ///
    /// Returns `Err` only if the journal has failed or closed, or the record cannot be
    /// represented (a queue name over 65535 bytes: `Io` with `InvalidInput`).
    pub fn append(&self, record: Record, on_durable: Option<OnWritten>) -> Result<(), StoreError> {
        self.inner.shared.append(record, on_durable)
    }

    /// Flushes everything appended so far and waits for it to be durable — fdatasync'ed
    /// even when `cfg.fsync` is off — and for the reclaim that followed (used at
    /// shutdown). Must not be called from a durability callback (returns `Err`).
    pub fn sync(&self) -> Result<(), StoreError> {
        self.inner.shared.sync()
    }

    /// Counters: records, batches (fsyncs), bytes written, segments live, segments
    /// deleted, messages copied forward.
    pub fn stats(&self) -> JournalStats {
        self.inner.shared.stats()
    }

    /// The journal's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Where queues keep their page files ([`crate::PageStore`]): `pages/` inside the
    /// journal directory, one subdirectory per queue. Scratch: emptied by
    /// [`Journal::open`], since page files never outlive the process that wrote them.
    pub fn pages_dir(&self) -> PathBuf {
        self.inner.dir.join(PAGES_DIR)
    }
}

/// Name of the lock file in the journal directory.
const LOCK_FILE: &str = "LOCK";

/// Takes the journal directory's exclusive lock: a second process (or a second open in
/// this one) on the same directory would corrupt it, so it is refused with
/// [`std::io::ErrorKind::WouldBlock`].
fn lock_dir(dir: &Path) -> Result<fs::File, StoreError> {
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_FILE))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(StoreError::Io(std::io::Error::new(
            std::io::ErrorKind::WouldBlock,
            format!("journal {} is in use by another process", dir.display()),
        ))),
        Err(fs::TryLockError::Error(e)) => Err(StoreError::Io(e)),
    }
}
