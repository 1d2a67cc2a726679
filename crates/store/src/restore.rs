//! Reading recovered messages back without holding the whole journal in memory.
//!
//! Replay only indexes: for each live message it keeps where its record is. The node
//! then restores queue by queue, message by message in sequence order, through a
//! [`RecoveryReader`]; a queue past its memory limit pages the messages straight back
//! out, so a journal much larger than memory recovers in bounded memory. Reads go
//! through a read-ahead window (one `pread` of a few MiB serves the many records that
//! follow), and the message bytes are copied out of it, so the window is reused.
//!
//! While a reader exists the writer does not reclaim space (locations must stay valid);
//! dropping it lets reclaim run.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::index::Loc;
use crate::record::RecordRef;
use crate::segment::{read_at, segment_file_name, Scan};
use crate::writer::Shared;
use crate::StoreError;

/// Bytes read ahead per window.
const WINDOW: u64 = 4 * 1024 * 1024;

/// A live message found by replay: where it is, not its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveredRef {
    /// Its sequence number in the queue.
    pub seq: u64,
    /// Its latest delivery count.
    pub delivery_count: u32,
    pub(crate) loc: Loc,
}

/// What replay did, for the start-up log line.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplayStats {
    /// Well-formed records replayed.
    pub records: u64,
    /// Time taken to replay.
    pub elapsed: Duration,
    /// Segment files replayed.
    pub segments: usize,
    /// Bytes cut off the newest segment as a torn tail.
    pub truncated_bytes: u64,
    /// Damaged regions skipped because of `skip_corrupt`.
    pub skipped_regions: u64,
}

/// The recovered messages, queue by queue, read on demand (see the module docs).
pub struct RecoveryReader {
    dir: PathBuf,
    queues: BTreeMap<String, Vec<RecoveredRef>>,
    stats: ReplayStats,
    files: HashMap<u64, File>,
    /// (segment, offset of `window[0]`), and the bytes read ahead.
    window_at: Option<(u64, u64)>,
    window: Vec<u8>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RecoveryReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecoveryReader")
            .field("dir", &self.dir)
            .field("queues", &self.queues.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl RecoveryReader {
    pub(crate) fn new(
        dir: PathBuf,
        queues: BTreeMap<String, Vec<RecoveredRef>>,
        stats: ReplayStats,
        shared: Arc<Shared>,
    ) -> Self {
        shared.hold_reclaim(true);
        RecoveryReader {
            dir,
            queues,
            stats,
            files: HashMap::new(),
            window_at: None,
            window: Vec::new(),
            shared,
        }
    }

    /// What replay did.
    pub fn stats(&self) -> ReplayStats {
        self.stats
    }

    /// Live messages in total.
    pub fn messages(&self) -> usize {
        self.queues.values().map(Vec::len).sum()
    }

    /// Hands over every queue with live messages (journal key → its messages in
    /// sequence order); read each with [`RecoveryReader::read`].
    pub fn take_queues(&mut self) -> BTreeMap<String, Vec<RecoveredRef>> {
        std::mem::take(&mut self.queues)
    }

    /// The bytes of a recovered message, exactly as they were received.
    pub fn read(&mut self, r: &RecoveredRef) -> Result<Bytes, StoreError> {
        let loc = r.loc;
        let in_window = self.window_at.is_some_and(|(seg, start)| {
            seg == loc.segment
                && loc.offset >= start
                && loc.offset + loc.len <= start + self.window.len() as u64
        });
        if !in_window {
            self.fill_window(loc)?;
        }
        let start = self.window_at.map_or(0, |(_, s)| s);
        let off = (loc.offset - start) as usize;
        let corrupt = || StoreError::Corrupt {
            segment: self.dir.join(segment_file_name(loc.segment)),
            offset: loc.offset,
        };
        match read_at(&self.window, off) {
            Scan::Record(RecordRef::Enqueue { message, .. }, next)
                if next - off == loc.len as usize =>
            {
                Ok(Bytes::copy_from_slice(message))
            }
            // replay read this record a moment ago: the file changed under us
            _ => Err(corrupt()),
        }
    }

    /// Reads ahead from the record at `loc`: at least the whole record, up to
    /// [`WINDOW`] bytes.
    fn fill_window(&mut self, loc: Loc) -> Result<(), StoreError> {
        let file = match self.files.get(&loc.segment) {
            Some(f) => f,
            None => {
                let f = File::open(self.dir.join(segment_file_name(loc.segment)))?;
                self.files.entry(loc.segment).or_insert(f)
            }
        };
        let size = file.metadata()?.len();
        let want = loc.len.max(WINDOW).min(size.saturating_sub(loc.offset));
        if want < loc.len {
            return Err(StoreError::Corrupt {
                segment: self.dir.join(segment_file_name(loc.segment)),
                offset: loc.offset,
            });
        }
        self.window.resize(want as usize, 0);
        file.read_exact_at(&mut self.window, loc.offset)?;
        self.window_at = Some((loc.segment, loc.offset));
        Ok(())
    }
}

impl Drop for RecoveryReader {
    fn drop(&mut self) {
        self.shared.hold_reclaim(false);
    }
}
