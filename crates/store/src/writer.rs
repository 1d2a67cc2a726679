//! The group-commit writer: the state appenders share with the writer thread, and the
//! thread itself, which owns the segment files and the live index.
//!
//! Appenders encode and checksum their record on their own thread, then, under the
//! lock, copy it into the pending buffer and push its index operation and callback.
//! The writer swaps the whole pending batch out, writes it (splitting it at segment
//! boundaries), fdatasyncs once, runs the batch's callbacks, reclaims space, and only
//! then reports the batch durable to `sync()` waiters. While it writes, the next batch
//! accumulates: the more producers, the more records per fsync.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom, Write};
use std::mem;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::{self, ThreadId};

use bytes::Bytes;
use tracing::{debug, error};

use crate::index::{LiveIndex, Loc};
use crate::record::Record;
use crate::segment::{self, SEGMENT_HEADER_LEN};

use crate::{JournalConfig, JournalStats, StoreError, Written};

mod reclaim;

/// A durability callback.
pub(crate) type Callback = crate::OnWritten;

/// Past this, a batch buffer is freed after use instead of kept for the next batch,
/// so a burst does not pin memory.
const KEEP_BUFFER_BYTES: usize = 8 * 1024 * 1024;

/// What a record does to the live index, kept (without the message bytes) until the
/// writer knows where the record landed.
#[derive(Debug)]
pub(crate) enum Op {
    Enqueue {
        queue: String,
        seq: u64,
    },
    Ack {
        queue: String,
        seq: u64,
    },
    DeliveryCount {
        queue: String,
        seq: u64,
        count: u32,
    },
    DropQueue {
        queue: String,
    },
    /// A copy of a live enqueue written by copy-forward: moves the message's location.
    Copy {
        queue: String,
        seq: u64,
    },
}

impl Op {
    /// Splits a record into its index operation and its message bytes (if any).
    fn from_record(record: Record) -> (Op, Option<Bytes>) {
        match record {
            Record::Enqueue {
                queue,
                seq,
                message,
            } => (Op::Enqueue { queue, seq }, Some(message)),
            Record::Ack { queue, seq } => (Op::Ack { queue, seq }, None),
            Record::DeliveryCount { queue, seq, count } => {
                (Op::DeliveryCount { queue, seq, count }, None)
            }
            Record::DropQueue { queue } => (Op::DropQueue { queue }, None),
        }
    }
}

/// An encoded record in the pending buffer: its framed length and index operation.
#[derive(Debug)]
pub(crate) struct PendingOp {
    len: u64,
    op: Op,
}

/// Shared between appenders and the writer, behind [`Shared::state`].
#[derive(Default)]
pub(crate) struct State {
    /// Encoded records not yet taken by the writer.
    buf: Vec<u8>,
    ops: Vec<PendingOp>,
    callbacks: Vec<Callback>,
    /// Records appended since open (a ticket per record).
    appended: u64,
    /// Records durable (written, synced if configured, callbacks run).
    durable: u64,
    /// `sync()` rounds asked for and completed.
    sync_requested: u64,
    sync_completed: u64,
    sync_waiters: usize,
    /// The writer is waiting for work and must be notified.
    writer_idle: bool,
    /// The last handle is gone: drain and stop.
    closing: bool,
    /// The writer's fatal error; the journal refuses everything after it.
    failed: Option<(io::ErrorKind, String)>,
}

impl State {
    fn refusal(&self) -> Option<StoreError> {
        if let Some((kind, msg)) = &self.failed {
            Some(StoreError::Io(io::Error::new(
                *kind,
                format!("journal writer failed: {msg}"),
            )))
        } else if self.closing {
            Some(StoreError::Closed)
        } else {
            None
        }
    }
}

/// Statistics counters, updated by the writer and read by anyone.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    records: AtomicU64,
    batches: AtomicU64,
    fsyncs: AtomicU64,
    bytes_written: AtomicU64,
    segments_live: AtomicU64,
    segments_deleted: AtomicU64,
    copied_forward: AtomicU64,
}

/// The state behind every [`crate::Journal`] handle and the writer thread.
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Wakes the writer.
    work: Condvar,
    /// Wakes `sync()` waiters.
    done: Condvar,
    counters: Counters,
    fsync: bool,
    writer_thread: OnceLock<ThreadId>,
    /// Set while recovered messages are being read by location: reclaim waits.
    reclaim_held: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock (callbacks run outside it), but if
        // something did, the state is still consistent: keep going.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, cv: &Condvar, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        cv.wait(guard).unwrap_or_else(PoisonError::into_inner)
    }

    /// See [`crate::Journal::append`].
    pub fn append(&self, record: Record, on_durable: Option<Callback>) -> Result<(), StoreError> {
        let r = record.as_ref();
        r.validate()?;
        let crc = r.crc();
        let len = r.encoded_len() as u64;
        let message;
        let wake;
        {
            let mut st = self.lock();
            if let Some(e) = st.refusal() {
                return Err(e);
            }
            record.as_ref().write_to(crc, &mut st.buf);
            let (op, msg) = Op::from_record(record);
            message = msg;
            st.ops.push(PendingOp { len, op });
            if let Some(cb) = on_durable {
                st.callbacks.push(cb);
            }
            st.appended += 1;
            wake = mem::take(&mut st.writer_idle);
        }
        if wake {
            self.work.notify_one();
        }
        // The caller's message bytes are released outside the lock.
        drop(message);
        Ok(())
    }

    /// See [`crate::Journal::sync`].
    pub fn sync(&self) -> Result<(), StoreError> {
        if self.writer_thread.get() == Some(&thread::current().id()) {
            return Err(StoreError::Io(io::Error::other(
                "Journal::sync called from a durability callback would wait for itself",
            )));
        }
        let mut st = self.lock();
        if let Some(e) = st.refusal() {
            return Err(e);
        }
        if self.fsync {
            // Every batch is fsynced: wait for the records appended so far.
            let target = st.appended;
            st.sync_waiters += 1;
            while st.durable < target && st.failed.is_none() {
                st = self.wait(&self.done, st);
            }
        } else {
            // Ask for a batch (possibly empty) that ends with an fsync.
            st.sync_requested += 1;
            let round = st.sync_requested;
            if mem::take(&mut st.writer_idle) {
                self.work.notify_one();
            }
            st.sync_waiters += 1;
            while st.sync_completed < round && st.failed.is_none() {
                st = self.wait(&self.done, st);
            }
        }
        st.sync_waiters -= 1;
        match &st.failed {
            Some(_) => Err(st.refusal().unwrap_or(StoreError::Closed)),
            None => Ok(()),
        }
    }

    /// Asks the writer to drain and stop (the last handle is gone).
    pub fn close(&self) {
        self.lock().closing = true;
        self.work.notify_one();
    }

    pub fn stats(&self) -> JournalStats {
        let c = &self.counters;
        JournalStats {
            records: c.records.load(Relaxed),
            batches: c.batches.load(Relaxed),
            fsyncs: c.fsyncs.load(Relaxed),
            bytes_written: c.bytes_written.load(Relaxed),
            segments_live: c.segments_live.load(Relaxed),
            segments_deleted: c.segments_deleted.load(Relaxed),
            copied_forward: c.copied_forward.load(Relaxed),
        }
    }

    /// Holds reclaim (segments stay where replay found them) or lets it run again;
    /// releasing wakes the writer so that it reclaims what it can right away.
    pub fn hold_reclaim(&self, hold: bool) {
        self.reclaim_held.store(hold, Relaxed);
        if !hold {
            let mut st = self.lock();
            st.sync_requested += 1;
            if mem::take(&mut st.writer_idle) {
                drop(st);
                self.work.notify_one();
            }
        }
    }

    pub fn set_writer_thread(&self, id: ThreadId) {
        let _ = self.writer_thread.set(id);
    }
}

/// One batch taken from the pending state.
struct Batch {
    buf: Vec<u8>,
    ops: Vec<PendingOp>,
    callbacks: Vec<Callback>,
    /// Tickets up to this one are in the batch.
    upto: u64,
    /// `sync()` rounds up to this one are served by the batch.
    sync_round: u64,
}

/// The writer: owns the current segment file and the live index.
pub(crate) struct Writer {
    dir: PathBuf,
    segment_bytes: u64,
    fsync: bool,
    file: File,
    cur_id: u64,
    cur_size: u64,
    index: LiveIndex,
    shared: Arc<Shared>,
    /// Segments whose live records could not be read back; never copied forward.
    uncopyable: HashSet<u64>,
    /// Off after a deletion failed, until the next segment roll-over.
    reclaim_enabled: bool,
    /// See [`crate::JournalConfig::copy_forward_after`].
    copy_forward_after: std::time::Duration,
    /// Elapsed time, for the patience.
    ticks: crate::clock::Ticks,
    /// The oldest segment, its live count and since when that count has not dropped:
    /// copy-forward only moves messages that stay put (a stuck consumer), not ones an
    /// in-order drain is about to consume.
    oldest_watch: Option<(u64, u64, std::time::Duration)>,
    /// The last `sync()` round served.
    synced_round: u64,
    spare_buf: Vec<u8>,
    spare_ops: Vec<PendingOp>,
    spare_callbacks: Vec<Callback>,
}

impl Writer {
    /// Opens the segment to write to — `resume` (id, size) when the newest segment is
    /// intact, else a new segment `next_id` — and returns the writer and the state it
    /// shares with journal handles.
    pub fn new(
        cfg: &JournalConfig,
        mut index: LiveIndex,
        resume: Option<(u64, u64)>,
        next_id: u64,
    ) -> io::Result<Writer> {
        let (file, cur_id, cur_size) = match resume {
            Some((id, size)) => {
                let mut f = fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(cfg.dir.join(segment::segment_file_name(id)))?;
                f.seek(SeekFrom::Start(size))?;
                (f, id, size)
            }
            None => {
                let f = segment::create(&cfg.dir, next_id, cfg.fsync)?;
                index.add_segment(next_id, SEGMENT_HEADER_LEN as u64);
                (f, next_id, SEGMENT_HEADER_LEN as u64)
            }
        };
        let counters = Counters::default();
        counters
            .segments_live
            .store(index.segments().len() as u64, Relaxed);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            done: Condvar::new(),
            counters,
            fsync: cfg.fsync,
            writer_thread: OnceLock::new(),
            reclaim_held: std::sync::atomic::AtomicBool::new(false),
        });
        Ok(Writer {
            dir: cfg.dir.clone(),
            segment_bytes: cfg.segment_bytes,
            fsync: cfg.fsync,
            file,
            cur_id,
            cur_size,
            index,
            shared,
            uncopyable: HashSet::new(),
            reclaim_enabled: true,
            copy_forward_after: cfg.copy_forward_after,
            ticks: cfg.ticks.clone(),
            oldest_watch: None,
            synced_round: 0,
            spare_buf: Vec::new(),
            spare_ops: Vec::new(),
            spare_callbacks: Vec::new(),
        })
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The writer thread's body: batches until the last handle is gone.
    pub fn run(mut self) {
        while let Some(mut batch) = self.next_batch() {
            if let Err(e) = self.commit(&mut batch) {
                self.fail(e, batch.callbacks);
                return;
            }
            run_callbacks(batch.callbacks.drain(..), Written::Durable);
            if !self.shared.reclaim_held.load(Relaxed) {
                if let Err(e) = self.reclaim() {
                    self.fail(e, Vec::new());
                    return;
                }
            }
            self.publish(batch);
        }
        // Closing: everything appended has been written; make it durable.
        if !self.fsync {
            if let Err(e) = self.file.sync_data() {
                error!(error = %e, "journal: final sync at close failed");
            }
        }
        debug!("journal writer stopped");
    }

    /// Waits for work and takes it all; `None` when closing with nothing left.
    fn next_batch(&mut self) -> Option<Batch> {
        let shared = Arc::clone(&self.shared);
        let mut st = shared.lock();
        loop {
            if !st.ops.is_empty() || st.sync_requested > st.sync_completed {
                break;
            }
            if st.closing {
                return None;
            }
            st.writer_idle = true;
            st = shared.wait(&shared.work, st);
        }
        st.writer_idle = false;
        Some(Batch {
            buf: mem::replace(&mut st.buf, mem::take(&mut self.spare_buf)),
            ops: mem::replace(&mut st.ops, mem::take(&mut self.spare_ops)),
            callbacks: mem::replace(&mut st.callbacks, mem::take(&mut self.spare_callbacks)),
            upto: st.appended,
            sync_round: st.sync_requested,
        })
    }

    /// Writes a batch and makes it durable as configured (or as `sync()` asked).
    fn commit(&mut self, batch: &mut Batch) -> io::Result<()> {
        let records = batch.ops.len() as u64;
        self.write_records(&batch.buf, &mut batch.ops)?;
        if self.fsync || batch.sync_round > self.synced_round {
            self.file.sync_data()?;
            self.shared.counters.fsyncs.fetch_add(1, Relaxed);
        }
        if records > 0 {
            let c = &self.shared.counters;
            c.records.fetch_add(records, Relaxed);
            c.batches.fetch_add(1, Relaxed);
        }
        Ok(())
    }

    /// Tells `sync()` waiters the batch is durable and recycles its buffers.
    fn publish(&mut self, mut batch: Batch) {
        {
            let mut st = self.shared.lock();
            st.durable = batch.upto;
            st.sync_completed = batch.sync_round;
            if st.sync_waiters > 0 {
                self.shared.done.notify_all();
            }
        }
        self.synced_round = batch.sync_round;
        batch.buf.clear();
        if batch.buf.capacity() <= KEEP_BUFFER_BYTES {
            self.spare_buf = batch.buf;
        }
        self.spare_ops = batch.ops;
        self.spare_callbacks = batch.callbacks;
    }

    /// The writer cannot go on: refuse everything from now on, tell the callbacks of
    /// records that are not durable that they never will be, wake `sync()` waiters.
    fn fail(&mut self, e: io::Error, callbacks: Vec<Callback>) {
        error!(error = %e, dir = %self.dir.display(), "journal: write failed; the journal refuses further records");
        let pending = {
            let mut st = self.shared.lock();
            st.failed = Some((e.kind(), e.to_string()));
            st.buf = Vec::new();
            st.ops = Vec::new();
            self.shared.done.notify_all();
            mem::take(&mut st.callbacks)
        };
        // Run outside the lock: a callback may own the last journal handle.
        run_callbacks(callbacks.into_iter().chain(pending), Written::Failed);
    }

    /// Writes encoded records, starting new segments as needed, and applies their
    /// index operations at the locations they land. Drains `ops`.
    fn write_records(&mut self, buf: &[u8], ops: &mut Vec<PendingOp>) -> io::Result<()> {
        let header = SEGMENT_HEADER_LEN as u64;
        let mut run_start = 0usize;
        let mut run_len = 0u64;
        for p in ops.drain(..) {
            let end = self.cur_size + run_len;
            if end + p.len > self.segment_bytes && end > header {
                self.write_run(&buf[run_start..run_start + run_len as usize])?;
                run_start += run_len as usize;
                run_len = 0;
                self.roll()?;
            }
            let loc = Loc {
                segment: self.cur_id,
                offset: self.cur_size + run_len,
                len: p.len,
            };
            run_len += p.len;
            match p.op {
                Op::Enqueue { queue, seq } => {
                    self.index.enqueue(queue, seq, loc);
                }
                Op::Ack { queue, seq } => {
                    self.index.ack(&queue, seq);
                }
                Op::DeliveryCount { queue, seq, count } => {
                    self.index.set_delivery_count(&queue, seq, count);
                }
                Op::DropQueue { queue } => {
                    self.index.drop_queue(&queue);
                }
                Op::Copy { queue, seq } => {
                    self.index.relocate(&queue, seq, loc);
                }
            }
        }
        self.write_run(&buf[run_start..run_start + run_len as usize])
    }

    fn write_run(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.file.write_all(bytes)?;
        let n = bytes.len() as u64;
        self.cur_size += n;
        self.index.grow_segment(self.cur_id, n);
        self.shared.counters.bytes_written.fetch_add(n, Relaxed);
        Ok(())
    }

    /// Starts the next segment. The full one is synced first even without `fsync`, so
    /// only the newest segment can ever have a torn tail.
    fn roll(&mut self) -> io::Result<()> {
        self.file.sync_data()?;
        self.shared.counters.fsyncs.fetch_add(1, Relaxed);
        let id = self.cur_id + 1;
        self.file = segment::create(&self.dir, id, self.fsync)?;
        self.cur_id = id;
        self.cur_size = SEGMENT_HEADER_LEN as u64;
        self.index.add_segment(id, self.cur_size);
        let c = &self.shared.counters;
        c.segments_live.fetch_add(1, Relaxed);
        c.bytes_written.fetch_add(self.cur_size, Relaxed);
        self.reclaim_enabled = true;
        debug!(segment = id, "journal: new segment");
        Ok(())
    }
}

/// Runs durability callbacks in order; one that panics is logged and the rest still run.
fn run_callbacks(callbacks: impl Iterator<Item = Callback>, outcome: Written) {
    for cb in callbacks {
        if catch_unwind(AssertUnwindSafe(|| cb(outcome))).is_err() {
            error!("journal: a durability callback panicked; the journal carries on");
        }
    }
}
