//! Replay: folds the segments back into the live state, repairing a torn tail.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use tracing::warn;

use crate::index::{LiveIndex, Loc};
use crate::record::RecordRef;
use crate::segment::{
    self, check_header, claimed_end, find_next_valid, read_at, HeaderCheck, Scan,
    SEGMENT_HEADER_LEN,
};
use crate::{JournalConfig, StoreError};

/// The outcome of replaying every segment.
#[derive(Debug, Default)]
pub(crate) struct Replayed {
    /// The live messages (with their bytes) and every segment's usage.
    pub index: LiveIndex,
    /// Well-formed records applied.
    pub records: u64,
    /// The newest segment and its size, when it is intact and the writer can continue it.
    pub resume: Option<(u64, u64)>,
    /// The id for a new segment: one past the newest.
    pub next_id: u64,
    /// Segment files seen.
    pub segments: usize,
    pub truncated_bytes: u64,
    pub skipped_regions: u64,
}

/// Replays every segment in `cfg.dir`, oldest first.
pub(crate) fn replay(cfg: &JournalConfig) -> Result<Replayed, StoreError> {
    let segments = segment::list_segments(&cfg.dir)?;
    let mut out = Replayed {
        next_id: segments.last().map_or(1, |(id, _)| id.saturating_add(1)),
        segments: segments.len(),
        ..Replayed::default()
    };
    for (i, (id, path)) in segments.iter().enumerate() {
        let newest = i + 1 == segments.len();
        replay_segment(cfg, *id, path, newest, &mut out)?;
    }
    Ok(out)
}

fn corrupt(path: &Path, offset: usize) -> StoreError {
    StoreError::Corrupt {
        segment: path.to_path_buf(),
        offset: offset as u64,
    }
}

fn replay_segment(
    cfg: &JournalConfig,
    id: u64,
    path: &Path,
    newest: bool,
    out: &mut Replayed,
) -> Result<(), StoreError> {
    let data = fs::read(path)?;
    match check_header(&data, id) {
        HeaderCheck::Valid => {}
        HeaderCheck::Torn if newest => {
            // The crash hit while the segment was being created: start it afresh.
            warn!(segment = %path.display(), bytes = data.len(), "journal: newest segment has a torn header (crash while creating it); rewritten");
            let mut f = OpenOptions::new().write(true).truncate(true).open(path)?;
            f.write_all(&segment::header(id))?;
            f.sync_all()?;
            out.truncated_bytes += data.len() as u64;
            out.index.add_segment(id, SEGMENT_HEADER_LEN as u64);
            out.resume = Some((id, SEGMENT_HEADER_LEN as u64));
            return Ok(());
        }
        bad => {
            let reason = match bad {
                HeaderCheck::Invalid(r) => r,
                _ => "truncated segment header",
            };
            if !cfg.skip_corrupt {
                warn!(segment = %path.display(), reason, "journal: bad segment header");
                return Err(corrupt(path, 0));
            }
            // Not known to be ours: it holds no records we can use, and it is left out of
            // the index so reclaim never deletes it.
            warn!(segment = %path.display(), reason, bytes = data.len(), "journal: bad segment header; file skipped and left in place (skip_corrupt)");
            out.skipped_regions += 1;
            return Ok(());
        }
    }

    out.index.add_segment(id, data.len() as u64);
    let mut clean = true;
    let mut off = SEGMENT_HEADER_LEN;
    loop {
        match read_at(&data, off) {
            Scan::Record(r, next) => {
                apply(
                    &mut out.index,
                    r,
                    Loc {
                        segment: id,
                        offset: off as u64,
                        len: (next - off) as u64,
                    },
                );
                out.records += 1;
                off = next;
            }
            Scan::End => break,
            Scan::Bad => match next_valid_after_damage(&data, off) {
                None if newest => {
                    let cut = data.len() - off;
                    warn!(segment = %path.display(), offset = off, bytes = cut, "journal: torn record at the end of the newest segment (interrupted write); truncated");
                    let f = OpenOptions::new().write(true).open(path)?;
                    f.set_len(off as u64)?;
                    f.sync_all()?;
                    out.truncated_bytes += cut as u64;
                    out.index.add_segment(id, off as u64);
                    break;
                }
                Some(next) if cfg.skip_corrupt => {
                    warn!(segment = %path.display(), offset = off, bytes = next - off, "journal: corrupt record skipped (skip_corrupt); replay resumes at the next valid record");
                    out.skipped_regions += 1;
                    clean = false;
                    off = next;
                }
                None if cfg.skip_corrupt => {
                    warn!(segment = %path.display(), offset = off, bytes = data.len() - off, "journal: corrupt record and no valid record after it; rest of segment dropped (skip_corrupt)");
                    out.skipped_regions += 1;
                    break;
                }
                _ => return Err(corrupt(path, off)),
            },
        }
    }
    if newest && clean {
        out.resume = out.index.segments().get(&id).map(|u| (id, u.size));
    }
    Ok(())
}

/// Where replay can resume after the damaged record at `off`: the first valid record
/// after the damaged record's extent if its header is intact (so a message that
/// happens to contain record-like bytes is never mistaken for records), else after `off`.
fn next_valid_after_damage(data: &[u8], off: usize) -> Option<usize> {
    let from = claimed_end(data, off).unwrap_or(off + 1);
    if from >= data.len() {
        return None;
    }
    find_next_valid(data, from)
}

fn apply(index: &mut LiveIndex, r: RecordRef<'_>, loc: Loc) {
    match r {
        RecordRef::Enqueue {
            queue,
            seq,
            message: _,
        } => {
            index.enqueue(queue, seq, loc);
        }
        RecordRef::Ack { queue, seq } => {
            index.ack(queue, seq);
        }
        RecordRef::DeliveryCount { queue, seq, count } => {
            index.set_delivery_count(queue, seq, count);
        }
        RecordRef::DropQueue { queue } => {
            index.drop_queue(queue);
        }
    }
}
