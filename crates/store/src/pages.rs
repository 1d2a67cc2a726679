//! Page files: where a queue keeps the messages past its memory limit.
//!
//! A deep queue must not hold its whole backlog in memory. Past its limit, a queue
//! appends each new message to its [`PageStore`] — a directory of files written strictly
//! in order — and keeps nothing of it in memory but two counters. As consumers take
//! messages, the queue reads the next batch back, oldest first, in one `pread` per batch.
//! A file is deleted once every message in it has been read back.
//!
//! Page files are scratch, not a durability mechanism: they are never fsync'ed and are
//! wiped when the store is created. Durable messages are in the journal as well (the
//! journal is what recovery replays); a non-durable message in a page file is lost in a
//! crash like any other non-durable message.
//!
//! ```text
//! file   = record*                         (NNNNNNNNNNNNNNNNNNNN.page, oldest first)
//! record = u32 body length | u32 crc32c(body) | body
//! body   = u64 seq | u32 delivery count | u64 expires-at ms (0: never) | u8 priority
//!          | u8 flags (bit 0: durable) | message
//! ```

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::crc::{crc32c, Crc32c};

/// Default size at which a page file is closed and a new one started: small enough that
/// a file is deleted soon after its messages are read back.
pub const DEFAULT_PAGE_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Appended bytes are buffered up to this much before one `write`.
const WRITE_BUFFER: usize = 256 * 1024;

/// `[u32 length][u32 crc]`.
const FRAME_HEADER: usize = 8;
/// seq, delivery count, expires-at, priority, flags.
const FIELDS: usize = 8 + 4 + 8 + 1 + 1;
const DURABLE: u8 = 1;

/// What a queue remembers about a paged message besides its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PagedMeta {
    /// Its sequence number in the queue.
    pub seq: u64,
    /// Deliveries that failed so far.
    pub delivery_count: u32,
    /// When it expires (ms since the Unix epoch), if it does: kept so paging never
    /// extends a TTL.
    pub expires_at: Option<u64>,
    /// Its priority lane.
    pub priority: u8,
    /// Whether it is also in the journal (its ack must be journaled).
    pub durable: bool,
}

/// A message read back from a page file.
#[derive(Debug, Clone, PartialEq)]
pub struct PagedMessage {
    /// What was stored with it.
    pub meta: PagedMeta,
    /// The message bytes as received.
    pub message: Bytes,
}

struct PageFile {
    path: PathBuf,
    /// Bytes on disk (not counting what is still in the write buffer).
    written: u64,
}

/// One queue's messages on disk, in arrival order. Not thread-safe on its own: the queue
/// calls it under its lock.
pub struct PageStore {
    dir: PathBuf,
    file_bytes: u64,
    /// Oldest first; the last is the one appended to.
    files: VecDeque<PageFile>,
    tail: Option<File>,
    /// Appended records not yet written to the tail file.
    pending: Vec<u8>,
    /// Offset of the next record to read in the oldest file.
    read_offset: u64,
    next_id: u64,
    messages: u64,
    bytes: u64,
}

impl std::fmt::Debug for PageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageStore")
            .field("dir", &self.dir)
            .field("files", &self.files.len())
            .field("messages", &self.messages)
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl PageStore {
    /// A store in `dir`, which is created, or emptied if it exists (page files never
    /// outlive the process that wrote them). A file is closed once it reaches
    /// `file_bytes`.
    pub fn create(dir: impl Into<PathBuf>, file_bytes: u64) -> io::Result<PageStore> {
        let dir = dir.into();
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        fs::create_dir_all(&dir)?;
        Ok(PageStore {
            dir,
            file_bytes: file_bytes.max(1),
            files: VecDeque::new(),
            tail: None,
            pending: Vec::new(),
            read_offset: 0,
            next_id: 1,
            messages: 0,
            bytes: 0,
        })
    }

    /// Messages stored and not yet read back.
    pub fn len(&self) -> u64 {
        self.messages
    }

    /// Whether every message has been read back.
    pub fn is_empty(&self) -> bool {
        self.messages == 0
    }

    /// Message bytes stored and not yet read back (framing not counted).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends a message after every other. Buffered: the bytes reach the file when the
    /// buffer fills or a read needs them.
    pub fn append(&mut self, meta: PagedMeta, message: &[u8]) -> io::Result<()> {
        let body_len = FIELDS + message.len();
        let body_len_u32 = u32::try_from(body_len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "message too large"))?;
        let record_len = (FRAME_HEADER + body_len) as u64;
        let tail_size =
            self.files.back().map(|f| f.written).unwrap_or(0) + self.pending.len() as u64;
        if self.files.is_empty() || (tail_size > 0 && tail_size + record_len > self.file_bytes) {
            self.roll()?;
        }
        let mut fields = [0u8; FIELDS];
        fields[0..8].copy_from_slice(&meta.seq.to_le_bytes());
        fields[8..12].copy_from_slice(&meta.delivery_count.to_le_bytes());
        fields[12..20].copy_from_slice(&meta.expires_at.unwrap_or(0).to_le_bytes());
        fields[20] = meta.priority;
        fields[21] = if meta.durable { DURABLE } else { 0 };
        let mut crc = Crc32c::new();
        crc.update(&fields);
        crc.update(message);
        self.pending.extend_from_slice(&body_len_u32.to_le_bytes());
        self.pending.extend_from_slice(&crc.finish().to_le_bytes());
        self.pending.extend_from_slice(&fields);
        self.pending.extend_from_slice(message);
        self.messages += 1;
        self.bytes += message.len() as u64;
        if self.pending.len() >= WRITE_BUFFER {
            self.flush()?;
        }
        Ok(())
    }

    /// Reads back the oldest messages, about `max_bytes` of them (at least one if any
    /// is stored), in the order they were appended. Deletes the files it finishes.
    pub fn read(&mut self, max_bytes: usize) -> io::Result<Vec<PagedMessage>> {
        let mut out = Vec::new();
        let mut taken = 0usize;
        while self.messages > 0 && (out.is_empty() || taken < max_bytes) {
            let Some(front) = self.files.front() else {
                break;
            };
            if self.files.len() == 1 && self.read_offset + FRAME_HEADER as u64 > front.written {
                self.flush()?;
            }
            let Some(front) = self.files.front() else {
                break;
            };
            let available = front.written.saturating_sub(self.read_offset);
            if available == 0 {
                if self.files.len() == 1 {
                    // counters say there is more, the file says no: a bug, not data loss
                    return Err(invalid("page store counters disagree with its files"));
                }
                self.finish_front_file()?;
                continue;
            }
            let chunk_len = available.min((max_bytes - taken.min(max_bytes)).max(64 * 1024) as u64);
            let file = File::open(&front.path)?;
            let mut chunk = vec![0u8; chunk_len as usize];
            file.read_exact_at(&mut chunk, self.read_offset)?;
            let (parsed, consumed, need) = parse_records(&chunk)?;
            if parsed.is_empty() {
                // the first record is larger than the chunk: read exactly that record
                let need = need.ok_or_else(|| invalid("truncated page record"))?;
                if need as u64 > available {
                    return Err(invalid("page record runs past the end of its file"));
                }
                let mut record = vec![0u8; need];
                file.read_exact_at(&mut record, self.read_offset)?;
                let (parsed, consumed, _) = parse_records(&record)?;
                if parsed.is_empty() {
                    return Err(invalid("unreadable page record"));
                }
                let record = Bytes::from(record);
                self.take(&record, parsed, consumed, &mut out, &mut taken);
                continue;
            }
            let chunk = Bytes::from(chunk);
            self.take(&chunk, parsed, consumed, &mut out, &mut taken);
        }
        Ok(out)
    }

    /// Turns parsed records of `buf` into messages (slices of `buf`, no copy).
    fn take(
        &mut self,
        buf: &Bytes,
        parsed: Vec<(PagedMeta, std::ops::Range<usize>)>,
        consumed: usize,
        out: &mut Vec<PagedMessage>,
        taken: &mut usize,
    ) {
        for (meta, range) in parsed {
            let message = buf.slice(range);
            *taken += message.len();
            self.messages = self.messages.saturating_sub(1);
            self.bytes = self.bytes.saturating_sub(message.len() as u64);
            out.push(PagedMessage { meta, message });
        }
        self.read_offset += consumed as u64;
    }

    /// Deletes the oldest file (every record in it has been read).
    fn finish_front_file(&mut self) -> io::Result<()> {
        if let Some(f) = self.files.pop_front() {
            fs::remove_file(&f.path)?;
        }
        self.read_offset = 0;
        if self.files.is_empty() {
            self.tail = None;
        }
        Ok(())
    }

    /// Writes the buffered records to the tail file.
    fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let (Some(tail), Some(meta)) = (self.tail.as_mut(), self.files.back_mut()) else {
            return Err(invalid("page store has buffered records but no file"));
        };
        tail.write_all(&self.pending)?;
        meta.written += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// Starts a new tail file.
    fn roll(&mut self) -> io::Result<()> {
        self.flush()?;
        let id = self.next_id;
        self.next_id += 1;
        let path = self.dir.join(format!("{id:020}.page"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)?;
        self.tail = Some(file);
        self.files.push_back(PageFile { path, written: 0 });
        Ok(())
    }

    /// Page files that exist now (for tests and metrics).
    pub fn files(&self) -> usize {
        self.files.len()
    }
}

impl Drop for PageStore {
    fn drop(&mut self) {
        // a queue that goes away takes its overflow with it
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(dir = %self.dir.display(), "cannot remove page files: {e}");
            }
        }
    }
}

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Parses the complete records at the start of `buf`: their metadata and message ranges,
/// the bytes they span, and — when the next record is incomplete — its full length.
#[allow(clippy::type_complexity)]
fn parse_records(
    buf: &[u8],
) -> io::Result<(
    Vec<(PagedMeta, std::ops::Range<usize>)>,
    usize,
    Option<usize>,
)> {
    let mut out = Vec::new();
    let mut off = 0usize;
    loop {
        let rest = &buf[off..];
        if rest.len() < FRAME_HEADER {
            return Ok((out, off, None));
        }
        let body_len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if body_len < FIELDS {
            return Err(invalid("page record shorter than its fields"));
        }
        let total = FRAME_HEADER + body_len;
        if rest.len() < total {
            return Ok((out, off, Some(total)));
        }
        let body = &rest[FRAME_HEADER..total];
        if crc32c(body) != crc {
            return Err(invalid("page record fails its CRC"));
        }
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&body[i..i + 8]);
            u64::from_le_bytes(b)
        };
        let meta = PagedMeta {
            seq: u64_at(0),
            delivery_count: u32::from_le_bytes([body[8], body[9], body[10], body[11]]),
            expires_at: Some(u64_at(12)).filter(|t| *t != 0),
            priority: body[20],
            durable: body[21] & DURABLE != 0,
        };
        let start = off + FRAME_HEADER + FIELDS;
        out.push((meta, start..off + total));
        off += total;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(seq: u64) -> PagedMeta {
        PagedMeta {
            seq,
            delivery_count: (seq % 3) as u32,
            expires_at: if seq.is_multiple_of(2) {
                Some(1_000 + seq)
            } else {
                None
            },
            priority: (seq % 10) as u8,
            durable: seq.is_multiple_of(4),
        }
    }

    fn body(seq: u64, len: usize) -> Vec<u8> {
        (0..len).map(|i| (seq as usize + i) as u8).collect()
    }

    #[test]
    fn messages_come_back_in_order_and_files_are_deleted() {
        let tmp = std::env::temp_dir().join(format!("throng-pages-{}", std::process::id()));
        let mut store = PageStore::create(&tmp, 64 * 1024).expect("create");
        let sizes = |seq: u64| {
            if seq.is_multiple_of(97) {
                100_000
            } else {
                10 + (seq as usize % 500)
            }
        };
        for seq in 0..3_000u64 {
            store
                .append(meta(seq), &body(seq, sizes(seq)))
                .expect("append");
        }
        assert_eq!(store.len(), 3_000);
        assert!(store.files() > 5, "files roll over at the size limit");
        let mut next = 0u64;
        let mut appended = 3_000u64;
        // interleave reads and appends, as a queue that is drained while it is fed
        while !store.is_empty() {
            let batch = store.read(50_000).expect("read");
            assert!(!batch.is_empty());
            for m in batch {
                assert_eq!(m.meta, meta(next));
                assert_eq!(m.message.as_ref(), body(next, sizes(next)).as_slice());
                next += 1;
            }
            while appended < 3_000 + next.min(1_500) {
                store
                    .append(meta(appended), &body(appended, sizes(appended)))
                    .expect("append");
                appended += 1;
            }
        }
        assert_eq!(next, appended);
        assert_eq!(appended, 4_500);
        assert_eq!(store.bytes(), 0);
        assert!(store.files() <= 1, "read files are deleted");
        drop(store);
        assert!(!tmp.exists(), "the directory goes with the store");
    }

    #[test]
    fn a_damaged_record_is_an_error_not_garbage() {
        let tmp = std::env::temp_dir().join(format!("throng-pages-bad-{}", std::process::id()));
        let mut store = PageStore::create(&tmp, 1 << 20).expect("create");
        store.append(meta(1), b"hello").expect("append");
        store.flush().expect("flush");
        let path = store.files.front().map(|f| f.path.clone()).expect("file");
        let mut data = fs::read(&path).expect("read");
        let last = data.len() - 1;
        data[last] ^= 0xff;
        fs::write(&path, data).expect("write");
        let err = store.read(1024).expect_err("crc must catch it");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn create_wipes_what_a_previous_process_left() {
        let tmp = std::env::temp_dir().join(format!("throng-pages-old-{}", std::process::id()));
        fs::create_dir_all(&tmp).expect("mkdir");
        fs::write(tmp.join("00000000000000000001.page"), b"stale").expect("write");
        let store = PageStore::create(&tmp, 1 << 20).expect("create");
        assert_eq!(fs::read_dir(&tmp).expect("ls").count(), 0);
        assert!(store.is_empty());
    }
}
