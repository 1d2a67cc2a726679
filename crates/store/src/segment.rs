//! Segment files: names, the header, and walking the records in a segment's bytes.
//!
//! A segment is `NNNNNNNNNNNNNNNNNNNN.log` (its id, zero-padded to 20 digits so names
//! sort like ids) holding a [`SEGMENT_HEADER_LEN`]-byte header followed by framed
//! records. The header is `[8 bytes magic "THRNGJNL"][u32 version][u32 flags = 0][u64
//! segment id]`, little-endian; the id must match the file name, so a foreign file, a
//! file from a future format or a segment copied under another name is reported rather
//! than misread.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::crc::crc32c;
use crate::record::{expected_body_len, RecordRef, RECORD_HEADER_LEN};

/// First bytes of every segment.
pub const SEGMENT_MAGIC: [u8; 8] = *b"THRNGJNL";

/// Format version written in the segment header; a reader refuses other versions.
pub const SEGMENT_VERSION: u32 = 1;

/// Bytes of the segment header, before the first record.
pub const SEGMENT_HEADER_LEN: usize = 24;

/// The file name of segment `id`.
pub fn segment_file_name(id: u64) -> String {
    format!("{id:020}.log")
}

/// The id a segment file name stands for, `None` for any other file.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The segments in `dir`, oldest first. Other files are ignored.
pub(crate) fn list_segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Some(id) = entry.file_name().to_str().and_then(parse_segment_file_name) else {
            continue;
        };
        if entry.file_type()?.is_file() {
            out.push((id, entry.path()));
        }
    }
    out.sort_unstable_by_key(|(id, _)| *id);
    Ok(out)
}

/// The header segment `id` starts with.
pub(crate) fn header(id: u64) -> [u8; SEGMENT_HEADER_LEN] {
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    h[..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&id.to_le_bytes());
    h
}

/// What the first bytes of a segment file are.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeaderCheck {
    /// The expected header.
    Valid,
    /// Shorter than a header but a prefix of it: the file was being created.
    Torn,
    /// Something else, with the reason.
    Invalid(&'static str),
}

pub(crate) fn check_header(data: &[u8], id: u64) -> HeaderCheck {
    let expected = header(id);
    if data.len() < SEGMENT_HEADER_LEN {
        return if expected.starts_with(data) {
            HeaderCheck::Torn
        } else {
            HeaderCheck::Invalid("short file that is not a segment")
        };
    }
    if data[..8] != SEGMENT_MAGIC {
        HeaderCheck::Invalid("not a journal segment (bad magic)")
    } else if data[8..12] != SEGMENT_VERSION.to_le_bytes() {
        HeaderCheck::Invalid("unsupported segment format version")
    } else if data[..SEGMENT_HEADER_LEN] != expected {
        HeaderCheck::Invalid("segment header does not match its file name")
    } else {
        HeaderCheck::Valid
    }
}

/// Creates segment `id` with its header. `durable`: fsync the file and the directory,
/// so the segment still exists after a crash.
pub(crate) fn create(dir: &Path, id: u64, durable: bool) -> io::Result<File> {
    let path = dir.join(segment_file_name(id));
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    file.write_all(&header(id))?;
    if durable {
        file.sync_data()?;
        sync_dir(dir)?;
    }
    Ok(file)
}

/// Makes the directory's entries (created and removed files) durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// One step through a segment's bytes.
#[derive(Debug, PartialEq)]
pub(crate) enum Scan<'a> {
    /// A well-formed record and the offset just past it.
    Record(RecordRef<'a>, usize),
    /// No bytes left.
    End,
    /// The bytes at the offset are not a well-formed record: too short for a header,
    /// a length beyond the end of the file, a checksum mismatch or a malformed body.
    Bad,
}

/// Reads the record at `off`. Lengths from disk are only compared, never used to
/// allocate: the record's bytes are a slice of `data`.
pub(crate) fn read_at(data: &[u8], off: usize) -> Scan<'_> {
    let Some(rest) = data.get(off..) else {
        return Scan::Bad;
    };
    if rest.is_empty() {
        return Scan::End;
    }
    let Some((header, after)) = rest.split_first_chunk::<RECORD_HEADER_LEN>() else {
        return Scan::Bad;
    };
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len == 0 || len > after.len() {
        return Scan::Bad;
    }
    let body = &after[..len];
    if crc32c(body) != crc {
        return Scan::Bad;
    }
    match RecordRef::decode(body) {
        Some(r) => Scan::Record(r, off + RECORD_HEADER_LEN + len),
        None => Scan::Bad,
    }
}

/// The offset of the first well-formed record starting after `from`, if any: where
/// replay resumes after a damaged record, and the test that tells a torn tail (nothing
/// valid after it) from damage in the middle. Offsets whose length field disagrees with
/// the body's own fields are skipped before any checksum is computed, so the scan is
/// linear in practice.
pub(crate) fn find_next_valid(data: &[u8], from: usize) -> Option<usize> {
    (from..data.len())
        .find(|&off| plausible(data, off) && matches!(read_at(data, off), Scan::Record(..)))
}

/// Where the record at `off` ends according to its header, when that header is
/// self-consistent (its length agrees with the fields at the start of its body) — the
/// end may lie beyond the data. Then a damaged record is damaged *within* that extent:
/// its bytes are message content, never records, and the search for the next record
/// starts at its end. `None` when the header cannot be trusted.
pub(crate) fn claimed_end(data: &[u8], off: usize) -> Option<usize> {
    let rest = data.get(off..)?;
    let (header, body) = rest.split_first_chunk::<RECORD_HEADER_LEN>()?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    (len != 0 && expected_body_len(body) == Some(len)).then(|| off + RECORD_HEADER_LEN + len)
}

fn plausible(data: &[u8], off: usize) -> bool {
    let Some(rest) = data.get(off..) else {
        return false;
    };
    let Some((header, body)) = rest.split_first_chunk::<RECORD_HEADER_LEN>() else {
        return false;
    };
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    len != 0 && len <= body.len() && expected_body_len(&body[..len]) == Some(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;
    use bytes::Bytes;

    fn enqueue(seq: u64) -> Record {
        Record::Enqueue {
            queue: "t/q".into(),
            seq,
            message: Bytes::from(vec![seq as u8; 20]),
        }
    }

    fn segment(records: &[Record]) -> Vec<u8> {
        let mut data = header(1).to_vec();
        for r in records {
            data.extend_from_slice(&r.encode());
        }
        data
    }

    #[test]
    fn names() {
        assert_eq!(segment_file_name(7), "00000000000000000007.log");
        assert_eq!(parse_segment_file_name("00000000000000000007.log"), Some(7));
        assert_eq!(
            parse_segment_file_name(&segment_file_name(u64::MAX)),
            Some(u64::MAX)
        );
        for bad in [
            "7.log",
            "0000000000000000007.log",
            "00000000000000000007.tmp",
            "0000000000000000000x.log",
            "99999999999999999999.log",
        ] {
            assert_eq!(parse_segment_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn header_checks() {
        let h = header(5);
        assert_eq!(check_header(&h, 5), HeaderCheck::Valid);
        for cut in 0..SEGMENT_HEADER_LEN {
            assert_eq!(check_header(&h[..cut], 5), HeaderCheck::Torn);
        }
        assert!(matches!(check_header(&h, 6), HeaderCheck::Invalid(_)));
        assert!(matches!(check_header(b"hello", 5), HeaderCheck::Invalid(_)));
        let mut v2 = h;
        v2[8] = 2;
        assert!(matches!(check_header(&v2, 5), HeaderCheck::Invalid(_)));
    }

    #[test]
    fn walks_records_and_stops_at_damage() {
        let records: Vec<Record> = (0..5).map(enqueue).collect();
        let data = segment(&records);
        let mut off = SEGMENT_HEADER_LEN;
        for r in &records {
            match read_at(&data, off) {
                Scan::Record(got, next) => {
                    assert_eq!(got.to_record(), *r);
                    off = next;
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(read_at(&data, off), Scan::End);
        // Every truncation inside the last record is Bad, never a record.
        let last = data.len() - records[4].encoded_len();
        for cut in last + 1..data.len() {
            assert_eq!(read_at(&data[..cut], last), Scan::Bad, "cut {cut}");
        }
    }

    #[test]
    fn resynchronises_after_damage() {
        let records: Vec<Record> = (0..5).map(enqueue).collect();
        let mut data = segment(&records);
        let second = SEGMENT_HEADER_LEN + records[0].encoded_len();
        let third = second + records[1].encoded_len();
        data[second + 12] ^= 0x40; // inside the second record's body
        assert_eq!(read_at(&data, second), Scan::Bad);
        assert_eq!(find_next_valid(&data, second + 1), Some(third));
        // A huge length field is just Bad.
        let mut huge = segment(&records);
        huge[second..second + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(read_at(&huge, second), Scan::Bad);
        assert_eq!(find_next_valid(&huge, second + 1), Some(third));
        // Nothing valid after the last record.
        let last = data.len() - records[4].encoded_len();
        assert_eq!(find_next_valid(&data, last + 1), None);
        // The damaged record's header is intact: its extent is known.
        assert_eq!(claimed_end(&data, second), Some(third));
        assert_eq!(claimed_end(&huge, second), None);
        assert_eq!(claimed_end(&data[..third - 5], second), Some(third));
        assert_eq!(claimed_end(&data[..second + 10], second), None);
    }
}
