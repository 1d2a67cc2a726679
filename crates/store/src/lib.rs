//! Throng's message journal: a segmented append-only log that makes queued messages
//! durable, replays them at start-up and frees disk as they are settled.
//!
//! Brokers append [`Record`]s — a message enqueued, acked, redelivered, a queue dropped
//! — through a cheap, cloneable [`Journal`] handle. A single writer thread
//! *group-commits*: it takes everything queued since its last write, writes it with one
//! `write`, makes it durable with one `fdatasync`, then runs the callbacks that settle
//! the producers' deliveries. One fsync thus settles many producers, and `append` never
//! blocks on I/O. [`Journal::open`] replays the log into the live state
//! ([`Recovered`]): every queue's unacked messages, in sequence order, with their
//! delivery counts.
//!
//! # On disk
//!
//! The journal owns a directory of segment files `NNNNNNNNNNNNNNNNNNNN.log` (the
//! segment id, zero-padded to 20 digits). All integers are little-endian.
//!
//! ```text
//! segment = header record*
//! header  = "THRNGJNL" (8 bytes) | u32 version = 1 | u32 flags = 0 | u64 segment id
//! record  = u32 body length | u32 crc32c(body) | body
//! body    = u8 type | u16 queue length | queue (UTF-8) | fields
//!   type 1 Enqueue        fields = u64 seq | u32 message length | message
//!   type 2 Ack            fields = u64 seq
//!   type 3 DeliveryCount  fields = u64 seq | u32 count
//!   type 4 DropQueue      fields = (none)
//! ```
//!
//! The body's length is implied by its own fields and must match the frame's; the
//! header's id must match the file name. A new segment starts when a record would take
//! the current one past [`JournalConfig::segment_bytes`] (a record larger than that gets
//! a segment of its own).
//!
//! # Recovery
//!
//! Replay reads segments oldest first, one whole segment in memory at a time (lengths
//! from disk are only compared against the bytes present, never used to allocate), and
//! copies live messages out so the segment buffer is freed. A record that is short,
//! fails its CRC or is malformed is *torn* if it is in the newest segment and no valid
//! record follows it: a crash interrupted the last write, so the segment is truncated
//! there with one `warn!`. Damage anywhere else is [`StoreError::Corrupt`], unless
//! [`JournalConfig::skip_corrupt`] is set: then replay warns, resumes at the next valid
//! record or drops the rest of that segment, and counts it in
//! [`Recovered::skipped_regions`]. The next valid record is searched for after the
//! damaged record's extent when its header is self-consistent (so bytes inside a
//! message that happen to look like records are never replayed), else byte by byte
//! for a frame whose length, fields and CRC agree. A segment whose header is damaged
//! is reported at offset 0 (with `skip_corrupt`: skipped and left in place). With
//! `skip_corrupt`, appends after a damaged newest segment go to a new segment.
//!
//! # Reclaiming space
//!
//! The writer tracks, per segment, how many enqueues are still live. Segments are
//! deleted oldest first only — a segment may hold acks for messages in older segments,
//! so deleting out of order would resurrect them. The oldest segment is deleted as soon
//! as nothing in it is live. When a few live messages pin it (its live bytes are under
//! 25% of the bytes its deletion would free: itself plus the dead segments queued
//! behind it, and the journal has more than 2 segments), they are *copied forward*:
//! appended again with their delivery counts, fsynced, and only then is the old segment
//! deleted (and the directory fsynced). A crash in between leaves the same message
//! enqueued twice; replay keeps one — the first, so every record about the message
//! (its delivery counts too) stays in segments that cannot be deleted before it — and
//! the interrupted copy-forward is simply done again later. Reclaim syncs before
//! deleting even when [`JournalConfig::fsync`] is off, so it never loses messages that
//! were already on disk.
//!
//! Only one process may use a journal directory at a time.

#![warn(missing_docs)]

pub mod clock;
mod crc;
mod index;
mod journal;
pub mod metadata;
mod metadata_writer;
pub mod pages;
mod record;
mod recovery;
mod restore;
mod segment;
mod seq_map;
mod will_record;
mod writer;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use crc::{crc32c, Crc32c};
pub use journal::Journal;
pub use metadata::{
    BlobTable, BlobWrite, Committed, MetadataError, MetadataStore, SubscriptionRecord,
};
pub use pages::{PageStore, PagedMessage, PagedMeta, DEFAULT_PAGE_FILE_BYTES};
pub use record::{Record, MAX_QUEUE_NAME_LEN, RECORD_HEADER_LEN};
pub use restore::{RecoveredRef, RecoveryReader, ReplayStats};
pub use segment::{
    parse_segment_file_name, segment_file_name, SEGMENT_HEADER_LEN, SEGMENT_MAGIC, SEGMENT_VERSION,
};
pub use will_record::{WillRecord, WillRecordError};

/// What became of a journaled record, as its [`OnWritten`] callback hears it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// On disk (fsync'ed when the journal syncs): it survives a crash.
    Durable,
    /// The journal failed (a write or fsync error, a full disk) before the record was
    /// known to be on disk: whoever waits for it must not be told it is safe.
    Failed,
}

/// Runs once a journaled record is durable, or once the journal has failed before it was.
pub type OnWritten = Box<dyn FnOnce(Written) + Send>;

/// Default size at which a new segment starts: large enough that segment churn is
/// rare, small enough that one pinned segment does not hold much disk.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Where the journal lives and how it trades safety for speed.
#[derive(Debug, Clone)]
pub struct JournalConfig {
    /// The journal's directory (created if missing). Files in it that are not named
    /// like segments are left alone.
    pub dir: PathBuf,
    /// A new segment starts when a record would take the current one past this size.
    /// Default 64 MiB.
    pub segment_bytes: u64,
    /// Whether a record is fdatasync'ed before its callback runs. Default true; false
    /// trades power-loss durability for speed (a process crash still loses nothing
    /// that was written).
    pub fsync: bool,
    /// Whether replay skips damaged records (with a warning) instead of refusing to
    /// open. Default false: damage should stop the node until an operator decides.
    pub skip_corrupt: bool,
    /// How long the oldest segment's live messages must stay put before they are copied
    /// forward. Consumers draining a deep queue in order empty each segment soon after
    /// it drops under the copy threshold; copying it then would rewrite a quarter of the
    /// journal for nothing. Default 10 s.
    pub copy_forward_after: Duration,
    /// Where the writer reads elapsed time (the copy-forward patience). Default: the
    /// system's monotonic clock.
    pub ticks: clock::Ticks,
}

impl JournalConfig {
    /// A configuration with the defaults: 64 MiB segments, fsync on, corruption fatal.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        JournalConfig {
            dir: dir.into(),
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            fsync: true,
            skip_corrupt: false,
            copy_forward_after: Duration::from_secs(10),
            ticks: clock::Ticks::system(),
        }
    }
}

/// What [`Journal::open`] found: the live state to rebuild queues from, plus what
/// replay did, for the start-up log line.
#[derive(Debug, Clone, Default)]
pub struct Recovered {
    /// Every queue with live messages, its messages in sequence order. Queues without
    /// live messages are absent.
    pub queues: BTreeMap<String, Vec<RecoveredMessage>>,
    /// Well-formed records replayed.
    pub records: u64,
    /// Time taken to open the journal.
    pub elapsed: Duration,
    /// Segment files replayed.
    pub segments: usize,
    /// Bytes cut off the newest segment as a torn tail (0 after a clean shutdown).
    pub truncated_bytes: u64,
    /// Damaged regions skipped because of [`JournalConfig::skip_corrupt`].
    pub skipped_regions: u64,
}

/// A live message as recovered: enough to put it back in its queue.
#[derive(Debug, Clone, PartialEq)]
pub struct RecoveredMessage {
    /// Its sequence number in the queue.
    pub seq: u64,
    /// The message bytes exactly as received.
    pub message: bytes::Bytes,
    /// Its latest delivery count (0 if never redelivered).
    pub delivery_count: u32,
}

/// Why a journal operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file system failed, or a record could not be represented
    /// ([`std::io::ErrorKind::InvalidInput`]). Once the writer fails, every later call
    /// returns the writer's error.
    #[error("journal I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Damage that is not a torn tail: the journal refuses to open rather than silently
    /// lose or invent messages.
    #[error("corrupt journal record in {} at offset {offset}", segment.display())]
    Corrupt {
        /// The damaged segment file.
        segment: PathBuf,
        /// Byte offset of the damaged record (0: the segment header).
        offset: u64,
    },
    /// The journal is shutting down.
    #[error("journal is closed")]
    Closed,
}

/// Counters, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JournalStats {
    /// Records appended and written (copies made by reclaim not included).
    pub records: u64,
    /// Group-commit batches written; with fsync on, each cost one fdatasync.
    pub batches: u64,
    /// fdatasync calls of any kind (batches, segment roll-over, reclaim).
    pub fsyncs: u64,
    /// Bytes written to segments, headers and copies included.
    pub bytes_written: u64,
    /// Segment files that exist now.
    pub segments_live: u64,
    /// Segment files deleted since open.
    pub segments_deleted: u64,
    /// Live messages copied forward out of pinned segments since open.
    pub copied_forward: u64,
}
