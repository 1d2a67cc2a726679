//! Reclaiming disk, on the writer thread after each batch: dead segments are deleted
//! oldest first, and the live messages of a pinned oldest segment are copied forward.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::atomic::Ordering::Relaxed;

use tracing::{debug, warn};

use super::{Op, PendingOp, Writer};
use crate::record::RecordRef;
use crate::segment::{self, read_at, Scan};

/// Copy-forward writes its copies in chunks of about this size.
const COPY_CHUNK_BYTES: usize = 1024 * 1024;

impl Writer {
    /// Deletes dead segments oldest first and copies live messages out of a pinned
    /// oldest segment (at most one per call). `Err` only when writing the copies
    /// failed (fatal, like any write); a failed deletion or read is warned about and
    /// reclaim pauses.
    pub fn reclaim(&mut self) -> io::Result<()> {
        if !self.reclaim_enabled {
            return Ok(());
        }
        // With fsync on, every record written is already durable. Otherwise sync once
        // before the first deletion: the acks that make a segment dead must not be lost
        // after the segment is gone.
        let mut synced = self.fsync;
        let mut copied = false;
        while let Some((&oldest, usage)) = self.index.segments().first_key_value() {
            if oldest >= self.cur_id {
                break;
            }
            if usage.live == 0 {
                if !synced {
                    self.file.sync_data()?;
                    self.shared.counters.fsyncs.fetch_add(1, Relaxed);
                    synced = true;
                }
                if !self.delete(oldest) {
                    self.reclaim_enabled = false;
                    break;
                }
                continue;
            }
            // One segment's copying per call, so appenders never wait long; the rest
            // happens after the next batches.
            if !copied && self.should_copy_forward(oldest) && self.copy_forward(oldest)? {
                synced = true;
                copied = true;
                continue;
            }
            break;
        }
        Ok(())
    }

    /// Whether to copy the oldest segment's live messages forward: with more than 2
    /// segments, when the live bytes of some run of oldest segments (the oldest alone,
    /// or with the ones behind it) are under 25% of the run's size. The oldest alone is
    /// the plain case — a few messages pin it. The longer runs cover a full oldest
    /// segment (a stuck consumer) blocking dead segments behind it: once they are 3
    /// times its size, copying it frees 4 times what it costs, so disk use stays
    /// bounded and the copying costs at most a quarter of what is freed.
    fn should_copy_forward(&mut self, oldest: u64) -> bool {
        if !self.oldest_is_stuck(oldest) {
            return false;
        }
        let segs = self.index.segments();
        if segs.len() <= 2 || self.uncopyable.contains(&oldest) {
            return false;
        }
        let (mut live, mut size) = (0u64, 0u64);
        for (&id, u) in segs {
            if id >= self.cur_id {
                break;
            }
            live += u.live_bytes;
            size += u.size;
            if live.saturating_mul(4) < size {
                return true;
            }
        }
        false
    }

    /// Whether the oldest segment's live count has not dropped for
    /// `copy_forward_after` (consumers are not draining it).
    fn oldest_is_stuck(&mut self, oldest: u64) -> bool {
        let live = self.index.segments().get(&oldest).map_or(0, |u| u.live);
        let now = self.ticks.now();
        match self.oldest_watch {
            Some((id, count, since)) if id == oldest && count == live => {
                now.saturating_sub(since) >= self.copy_forward_after
            }
            _ => {
                self.oldest_watch = Some((oldest, live, now));
                self.copy_forward_after.is_zero()
            }
        }
    }

    /// Appends the live enqueues of `id` again (with their delivery counts) and syncs
    /// them, leaving `id` with nothing live. `Ok(false)` if they could not be read back
    /// (the segment is then left alone for good).
    fn copy_forward(&mut self, id: u64) -> io::Result<bool> {
        let entries = self.index.entries_in(id);
        let path = self.dir.join(segment::segment_file_name(id));
        let give_up = |this: &mut Writer, why: &dyn std::fmt::Display| {
            warn!(segment = %path.display(), reason = %why, "journal: cannot copy live messages out of the oldest segment; it stays");
            this.uncopyable.insert(id);
            Ok(false)
        };
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) => return give_up(self, &e),
        };
        let mut buf = Vec::new();
        let mut ops = Vec::new();
        let mut rec = Vec::new();
        let copied = entries.len() as u64;
        for (queue, seq, loc, count) in entries {
            // The length comes from our own index (validated at replay or written by
            // us), and is checked against what is read.
            let Ok(len) = usize::try_from(loc.len) else {
                return give_up(self, &"record too large");
            };
            rec.resize(len, 0);
            if let Err(e) = file
                .seek(SeekFrom::Start(loc.offset))
                .and_then(|_| file.read_exact(&mut rec))
            {
                return give_up(self, &e);
            }
            match read_at(&rec, 0) {
                Scan::Record(
                    RecordRef::Enqueue {
                        queue: q, seq: s, ..
                    },
                    end,
                ) if q == queue && s == seq && end == rec.len() => {}
                _ => return give_up(self, &"record changed on disk"),
            }
            buf.extend_from_slice(&rec);
            if count > 0 {
                let dc = RecordRef::DeliveryCount {
                    queue: &queue,
                    seq,
                    count,
                };
                dc.write_to(dc.crc(), &mut buf);
                ops.push(PendingOp {
                    len: loc.len,
                    op: Op::Copy {
                        queue: queue.clone(),
                        seq,
                    },
                });
                ops.push(PendingOp {
                    len: dc.encoded_len() as u64,
                    op: Op::DeliveryCount { queue, seq, count },
                });
            } else {
                ops.push(PendingOp {
                    len: loc.len,
                    op: Op::Copy { queue, seq },
                });
            }
            if buf.len() >= COPY_CHUNK_BYTES {
                self.write_records(&buf, &mut ops)?;
                buf.clear();
            }
        }
        self.write_records(&buf, &mut ops)?;
        // Durable before the original can go, whatever `fsync` says.
        self.file.sync_data()?;
        self.shared.counters.fsyncs.fetch_add(1, Relaxed);
        self.shared
            .counters
            .copied_forward
            .fetch_add(copied, Relaxed);
        debug!(
            segment = id,
            messages = copied,
            "journal: live messages copied forward"
        );
        Ok(true)
    }

    /// Deletes segment `id` and makes the deletion durable before any later one.
    fn delete(&mut self, id: u64) -> bool {
        let path = self.dir.join(segment::segment_file_name(id));
        if let Err(e) = fs::remove_file(&path) {
            warn!(segment = %path.display(), error = %e, "journal: cannot delete a dead segment; reclaim paused");
            return false;
        }
        self.index.remove_segment(id);
        self.uncopyable.remove(&id);
        let c = &self.shared.counters;
        c.segments_live.fetch_sub(1, Relaxed);
        c.segments_deleted.fetch_add(1, Relaxed);
        debug!(segment = id, "journal: segment deleted");
        // Deletions must not be reordered by a crash: a segment of acks must never
        // vanish while an older segment they cancel survives.
        if let Err(e) = segment::sync_dir(&self.dir) {
            warn!(dir = %self.dir.display(), error = %e, "journal: cannot sync the directory after a deletion; reclaim paused");
            return false;
        }
        true
    }
}
