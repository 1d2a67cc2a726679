//! Replay under crashes and damage: torn tails at every byte offset, garbage tails,
//! corruption in the middle (refused, or skipped with `skip_corrupt`), foreign files.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;

use common::*;
use throng_store::{Journal, Record, SEGMENT_HEADER_LEN};

const SEGMENT: u64 = 1024;

/// A mixed workload over two queues that spans a few segments.
fn workload() -> Vec<Record> {
    let mut rs = Vec::new();
    for i in 1..=40u64 {
        rs.push(enqueue("t/a", i, 20 + (i as usize % 7)));
        if i % 3 == 0 {
            rs.push(ack("t/a", i - 2));
        }
        if i % 4 == 0 {
            rs.push(count("t/a", i - 1, (i / 4) as u32));
            rs.push(enqueue("t/b", i, 5));
        }
        if i == 30 {
            rs.push(drop_queue("t/b"));
        }
    }
    rs
}

/// Writes `records` into a fresh journal and returns the directory, the records that
/// landed in the newest segment (as an index into `records`) and that segment's
/// record offsets.
fn written(name: &str, records: &[Record]) -> (TempDir, usize, Vec<usize>, usize) {
    let dir = TempDir::new(name);
    let cfg = config(dir.path(), SEGMENT);
    let (j, rec) = open(&cfg);
    assert!(rec.queues.is_empty());
    append_all(&j, records);
    drop(j);
    let segs = segments(dir.path());
    assert!(
        segs.len() >= 3,
        "workload spans several segments: {}",
        segs.len()
    );
    let (newest_id, newest) = segs.last().unwrap().clone();
    let (offs, len) = record_offsets(&newest);
    let first = records.len() - offs.len();
    // The newest segment holds exactly the last records, byte for byte.
    let data = fs::read(&newest).unwrap();
    for (k, off) in offs.iter().enumerate() {
        let enc = records[first + k].encode();
        assert_eq!(
            &data[*off..*off + enc.len()],
            &enc[..],
            "record {k} of segment {newest_id}"
        );
    }
    (dir, first, offs, len)
}

fn newest(dir: &TempDir) -> std::path::PathBuf {
    segments(dir.path()).last().unwrap().1.clone()
}

#[test]
fn clean_reopen_recovers_the_live_state() {
    let records = workload();
    let (dir, _, _, _) = written("clean", &records);
    let ((j, rec), warns) = Warnings::capture(|| open(&config(dir.path(), SEGMENT)));
    assert!(warns.is_empty(), "{warns:?}");
    assert_eq!(state(&rec), model(&records));
    assert_eq!(rec.records, records.len() as u64);
    assert_eq!(rec.truncated_bytes, 0);
    // Sanity of the workload: both queues, acks and counts took effect.
    let a = &rec.queues["t/a"];
    assert!(a.iter().any(|m| m.delivery_count > 0));
    assert!(a.len() < 40);
    // t/b was dropped at 30; 32, 36 and 40 came after.
    let b: Vec<u64> = rec.queues["t/b"].iter().map(|m| m.seq).collect();
    assert_eq!(b, vec![32, 36, 40]);
    drop(j);
}

/// A crash can stop the newest segment at any byte. Whatever the byte, open succeeds,
/// recovers exactly the records wholly written before it, warns once if it cut a record
/// (or the header), and the journal then works on from there.
#[test]
fn torn_newest_segment_at_every_byte_offset() {
    let records = workload();
    let (dir, first, offs, len) = written("torn-every", &records);
    let seg_name = newest(&dir).file_name().unwrap().to_owned();
    for cut in 0..=len {
        let copy = copy_dir(dir.path(), "torn-every-copy");
        let path = copy.path().join(&seg_name);
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(cut as u64)
            .unwrap();
        let whole = offs
            .iter()
            .zip(offs.iter().skip(1).chain([&len]))
            .filter(|(_, end)| **end <= cut)
            .count();
        let boundary = if cut < SEGMENT_HEADER_LEN {
            SEGMENT_HEADER_LEN
        } else {
            offs.get(whole).copied().unwrap_or(len).min(cut)
        };
        let cfg = config(copy.path(), SEGMENT);
        let (res, warns) = Warnings::capture(|| Journal::open(cfg.clone()));
        let (j, rec) = res.unwrap_or_else(|e| panic!("cut {cut}: {e}"));
        let expect = model(&records[..first + whole]);
        assert_eq!(state(&rec), expect, "cut {cut}");
        let on_boundary = cut >= SEGMENT_HEADER_LEN && (cut == len || offs.contains(&cut));
        assert_eq!(
            warns.len(),
            usize::from(!on_boundary),
            "cut {cut}: {warns:?}"
        );
        if on_boundary {
            assert_eq!(rec.truncated_bytes, 0);
        }
        assert_eq!(
            fs::metadata(&path).unwrap().len() as usize,
            boundary,
            "cut {cut}: truncated to the last whole record"
        );
        // The journal goes on from the truncation point.
        let extra = enqueue("t/c", 1, 10);
        append_all(&j, std::slice::from_ref(&extra));
        drop(j);
        let (_, rec2) = open(&cfg);
        let mut expect2 = records[..first + whole].to_vec();
        expect2.push(extra);
        assert_eq!(
            state(&rec2),
            model(&expect2),
            "cut {cut}, after append and reopen"
        );
    }
}

/// Something done to a segment's bytes.
type Damage = Box<dyn Fn(&mut Vec<u8>)>;

/// Power loss can leave the end of the file as zeros or garbage instead of missing.
#[test]
fn garbage_or_zeroed_tail_is_truncated() {
    let records = workload();
    let (dir, first, offs, len) = written("garbage", &records);
    let last = *offs.last().unwrap();
    let tails: Vec<(&str, Damage)> = vec![
        (
            "zeros appended",
            Box::new(|d: &mut Vec<u8>| d.extend_from_slice(&[0u8; 300])),
        ),
        (
            "junk appended",
            Box::new(|d: &mut Vec<u8>| d.extend((0..300u32).map(|i| (i * 7919 % 251) as u8))),
        ),
        (
            "last record zeroed",
            Box::new(move |d: &mut Vec<u8>| d[last + 8..].fill(0)),
        ),
        (
            "last record's length huge",
            Box::new(move |d: &mut Vec<u8>| {
                d[last..last + 4].copy_from_slice(&u32::MAX.to_le_bytes())
            }),
        ),
        (
            "last record's crc wrong",
            Box::new(move |d: &mut Vec<u8>| d[last + 4] ^= 1),
        ),
    ];
    for (what, damage) in tails {
        let copy = copy_dir(dir.path(), "garbage-copy");
        let path = newest(&copy);
        let mut data = fs::read(&path).unwrap();
        damage(&mut data);
        fs::write(&path, &data).unwrap();
        let cfg = config(copy.path(), SEGMENT);
        let (res, warns) = Warnings::capture(|| Journal::open(cfg.clone()));
        let (_, rec) = res.unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(warns.len(), 1, "{what}: {warns:?}");
        let kept = if what.starts_with("last") {
            first + offs.len() - 1
        } else {
            records.len()
        };
        assert_eq!(state(&rec), model(&records[..kept]), "{what}");
        let expect_len = if what.starts_with("last") { last } else { len };
        assert_eq!(
            fs::metadata(&path).unwrap().len() as usize,
            expect_len,
            "{what}"
        );
    }
}

/// Damage followed by valid records is not a torn tail: refused, or skipped on request.
#[test]
fn corruption_in_the_middle_of_an_older_segment() {
    let records = workload();
    let (dir, _, _, _) = written("mid-old", &records);
    let (seg_id, seg) = segments(dir.path())[1].clone();
    let (offs, _) = record_offsets(&seg);
    let victim_off = offs[offs.len() / 2];
    // Which record is it? Count the records in the segments before.
    let before: usize = segments(dir.path())[..1]
        .iter()
        .map(|(_, p)| record_offsets(p).0.len())
        .sum();
    let victim = before + offs.len() / 2;
    let mut data = fs::read(&seg).unwrap();
    data[victim_off + 8 + 4] ^= 0x10; // a body byte: the CRC no longer matches
    fs::write(&seg, &data).unwrap();

    let (s, off) = expect_corrupt(Journal::open(config(dir.path(), SEGMENT)));
    assert_eq!(s, seg, "segment {seg_id}");
    assert_eq!(off, victim_off as u64);

    let mut cfg = config(dir.path(), SEGMENT);
    cfg.skip_corrupt = true;
    let (res, warns) = Warnings::capture(|| Journal::open(cfg.clone()));
    let (_, rec) = res.unwrap();
    assert_eq!(warns.len(), 1, "{warns:?}");
    assert_eq!(rec.skipped_regions, 1);
    let mut without: Vec<Record> = records.clone();
    without.remove(victim);
    assert_eq!(state(&rec), model(&without));
}

#[test]
fn corruption_in_the_middle_of_the_newest_segment() {
    let records = workload();
    let (dir, first, offs, _) = written("mid-new", &records);
    let path = newest(&dir);
    let k = 1; // valid records follow it
    assert!(offs.len() > 2);
    let mut data = fs::read(&path).unwrap();
    data[offs[k] + 9] ^= 0xff;
    fs::write(&path, &data).unwrap();
    let (s, off) = expect_corrupt(Journal::open(config(dir.path(), SEGMENT)));
    assert_eq!((s, off), (path.clone(), offs[k] as u64));

    let mut cfg = config(dir.path(), SEGMENT);
    cfg.skip_corrupt = true;
    let (j, rec) = open(&cfg);
    let mut without = records.clone();
    without.remove(first + k);
    assert_eq!(state(&rec), model(&without));
    // Appends go to a fresh segment, after the damaged one, which is left as it is.
    let damaged_len = fs::metadata(&path).unwrap().len();
    append_all(&j, &[enqueue("t/z", 1, 3)]);
    assert_eq!(fs::metadata(&path).unwrap().len(), damaged_len);
    assert_ne!(newest(&dir), path);
}

/// A damaged length field (here: far beyond the file) in an older segment: no huge
/// allocation, an error, and with skip_corrupt a resync at the next record.
#[test]
fn corrupt_length_field_resyncs() {
    let records = workload();
    let (dir, _, _, _) = written("len", &records);
    let segs = segments(dir.path());
    let (offs, _) = record_offsets(&segs[0].1);
    let mut data = fs::read(&segs[0].1).unwrap();
    data[offs[3]..offs[3] + 4].copy_from_slice(&0x7fff_fff0u32.to_le_bytes());
    fs::write(&segs[0].1, &data).unwrap();
    let (_, off) = expect_corrupt(Journal::open(config(dir.path(), SEGMENT)));
    assert_eq!(off, offs[3] as u64);
    let mut cfg = config(dir.path(), SEGMENT);
    cfg.skip_corrupt = true;
    let (_, rec) = open(&cfg);
    let mut without = records.clone();
    without.remove(3);
    assert_eq!(state(&rec), model(&without));
}

/// The end of an older segment damaged, nothing valid after it in that segment: it is
/// not the newest segment, so not a torn tail.
#[test]
fn damaged_end_of_an_older_segment() {
    let records = workload();
    let (dir, _, _, _) = written("old-tail", &records);
    let segs = segments(dir.path());
    let (offs, len) = record_offsets(&segs[0].1);
    let last = *offs.last().unwrap();
    OpenOptions::new()
        .write(true)
        .open(&segs[0].1)
        .unwrap()
        .set_len((len - 3) as u64)
        .unwrap();
    let (s, off) = expect_corrupt(Journal::open(config(dir.path(), SEGMENT)));
    assert_eq!((s, off), (segs[0].1.clone(), last as u64));
    let mut cfg = config(dir.path(), SEGMENT);
    cfg.skip_corrupt = true;
    let (res, warns) = Warnings::capture(|| Journal::open(cfg.clone()));
    let (_, rec) = res.unwrap();
    assert_eq!(warns.len(), 1, "{warns:?}");
    assert!(warns[0].contains("rest of segment dropped"), "{warns:?}");
    assert_eq!(rec.skipped_regions, 1);
    let mut without = records.clone();
    without.remove(offs.len() - 1);
    assert_eq!(state(&rec), model(&without));
}

#[test]
fn foreign_or_future_files_are_reported_not_misread() {
    // Garbage under a segment name.
    let dir = TempDir::new("foreign");
    let path = dir.path().join(throng_store::segment_file_name(1));
    fs::write(
        &path,
        b"this is not a journal segment, just a file with its name",
    )
    .unwrap();
    let (s, off) = expect_corrupt(Journal::open(config(dir.path(), SEGMENT)));
    assert_eq!((s, off), (path.clone(), 0));
    // skip_corrupt: skipped, left in place, never deleted; the journal starts after it.
    let mut cfg = config(dir.path(), SEGMENT);
    cfg.skip_corrupt = true;
    let (j, rec) = open(&cfg);
    assert!(rec.queues.is_empty());
    assert_eq!(rec.skipped_regions, 1);
    append_all(&j, &[enqueue("q", 1, 10), ack("q", 1)]);
    drop(j);
    assert!(path.exists());
    assert_eq!(segments(dir.path()).len(), 2);

    // A segment of a future format version.
    let dir = TempDir::new("future");
    let mut h = segment_header(1);
    h[8] = 2;
    let path = dir.path().join(throng_store::segment_file_name(1));
    fs::write(&path, h).unwrap();
    assert_eq!(
        expect_corrupt(Journal::open(config(dir.path(), SEGMENT))).1,
        0
    );

    // A segment renamed: its header names another id.
    let dir = TempDir::new("renamed");
    write_segment(dir.path(), 1, &[enqueue("q", 1, 10)]);
    fs::rename(
        dir.path().join(throng_store::segment_file_name(1)),
        dir.path().join(throng_store::segment_file_name(9)),
    )
    .unwrap();
    assert_eq!(
        expect_corrupt(Journal::open(config(dir.path(), SEGMENT))).1,
        0
    );

    // Files with other names are ignored.
    let dir = TempDir::new("others");
    fs::write(dir.path().join("README"), b"hello").unwrap();
    fs::write(dir.path().join("1.log"), b"hello").unwrap();
    let (_, rec) = open(&config(dir.path(), SEGMENT));
    assert_eq!(rec.segments, 0);
}

/// A torn header in an older segment is damage, not a torn tail.
#[test]
fn empty_older_segment_is_corrupt() {
    let dir = TempDir::new("empty-old");
    fs::write(dir.path().join(throng_store::segment_file_name(1)), b"").unwrap();
    write_segment(dir.path(), 2, &[enqueue("q", 1, 10)]);
    assert_eq!(
        expect_corrupt(Journal::open(config(dir.path(), SEGMENT))).1,
        0
    );
    // The same empty file as the newest segment: a crash while creating it.
    let dir = TempDir::new("empty-new");
    write_segment(dir.path(), 1, &[enqueue("q", 1, 10)]);
    let mut f = fs::File::create(dir.path().join(throng_store::segment_file_name(2))).unwrap();
    f.write_all(&segment_header(2)[..5]).unwrap();
    drop(f);
    let ((j, rec), warns) = Warnings::capture(|| open(&config(dir.path(), SEGMENT)));
    assert_eq!(warns.len(), 1);
    assert_eq!(state(&rec), model(&[enqueue("q", 1, 10)]));
    append_all(&j, &[enqueue("q", 2, 10)]);
    drop(j);
    let (_, rec) = open(&config(dir.path(), SEGMENT));
    assert_eq!(
        state(&rec),
        model(&[enqueue("q", 1, 10), enqueue("q", 2, 10)])
    );
}

/// Seeing the same (queue, seq) enqueued twice — what a crash during copy-forward, or
/// between it and the deletion of the old segment, leaves — keeps one message with its
/// delivery count, whatever byte the crash cut the copies at, on this open and the
/// next (reclaim at open must not lose the count either).
#[test]
fn crash_during_copy_forward_at_every_byte() {
    let pinned = enqueue("p", 1, 50);
    let seg1 = vec![
        pinned.clone(),
        count("p", 1, 3),
        enqueue("f", 1, 50),
        enqueue("f", 2, 50),
    ];
    let seg2 = vec![ack("f", 1), ack("f", 2), enqueue("f", 3, 50)];
    let seg3 = vec![
        ack("f", 3),
        enqueue("f", 4, 50),
        pinned.clone(),
        count("p", 1, 3),
    ];
    let all: Vec<Record> = seg1.iter().chain(&seg2).chain(&seg3).cloned().collect();
    let expect = model(&all);
    assert_eq!(
        expect["p"],
        vec![(
            1,
            match &pinned {
                Record::Enqueue { message, .. } => message.clone(),
                _ => unreachable!(),
            },
            3
        )]
    );

    let base = TempDir::new("cf-crash");
    write_segment(base.path(), 1, &seg1);
    write_segment(base.path(), 2, &seg2);
    let p3 = write_segment(base.path(), 3, &seg3);
    let len3 = fs::metadata(&p3).unwrap().len() as usize;
    for cut in SEGMENT_HEADER_LEN..=len3 {
        let dir = copy_dir(base.path(), "cf-crash-copy");
        OpenOptions::new()
            .write(true)
            .open(dir.path().join(throng_store::segment_file_name(3)))
            .unwrap()
            .set_len(cut as u64)
            .unwrap();
        let (offs, _) = record_offsets(&p3);
        let whole = offs
            .iter()
            .zip(offs.iter().skip(1).chain([&len3]))
            .filter(|(_, end)| **end <= cut)
            .count();
        let prefix: Vec<Record> = seg1
            .iter()
            .chain(&seg2)
            .chain(&seg3[..whole])
            .cloned()
            .collect();
        let (j, rec) = open(&config(dir.path(), 4096));
        assert_eq!(state(&rec), model(&prefix), "cut {cut}");
        assert_eq!(state(&rec)["p"], expect["p"], "cut {cut}");
        drop(j);
        let (_, rec) = open(&config(dir.path(), 4096));
        assert_eq!(state(&rec), model(&prefix), "cut {cut}, second open");
    }
}

/// A message may contain bytes that look exactly like records (say, a journal segment
/// sent as a message). Torn inside such a message, the tail is still a torn tail; and
/// a damaged message is skipped whole, its contents never replayed as records.
#[test]
fn record_like_bytes_inside_a_message_are_never_replayed() {
    let mut payload = vec![0xAAu8; 40];
    payload.extend_from_slice(&ack("t/victim", 1).encode());
    payload.extend_from_slice(&drop_queue("t/victim").encode());
    payload.extend_from_slice(&[0xBB; 40]);
    let tricky = Record::Enqueue {
        queue: "t/evil".into(),
        seq: 1,
        message: bytes::Bytes::from(payload),
    };
    let records = vec![
        enqueue("t/victim", 1, 10),
        enqueue("t/victim", 2, 10),
        tricky,
        enqueue("t/x", 1, 10),
    ];
    let dir = TempDir::new("embedded");
    let cfg = config(dir.path(), 1 << 20);
    let (j, _) = open(&cfg);
    append_all(&j, &records);
    drop(j);
    let path = newest(&dir);
    let (offs, _) = record_offsets(&path);
    assert_eq!(offs.len(), 4);

    // Torn anywhere inside the tricky message (the last record once the rest is cut).
    for cut in offs[2] + 1..offs[3] {
        let copy = copy_dir(dir.path(), "embedded-copy");
        let p = newest(&copy);
        OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(cut as u64)
            .unwrap();
        let ((_, rec), warns) = Warnings::capture(|| open(&config(copy.path(), 1 << 20)));
        assert_eq!(state(&rec), model(&records[..2]), "cut {cut}");
        assert_eq!(warns.len(), 1, "cut {cut}");
        assert_eq!(fs::metadata(&p).unwrap().len() as usize, offs[2]);
    }

    // A bit flipped in the tricky message's body: refused, or with skip_corrupt exactly
    // that record is skipped.
    let mut data = fs::read(&path).unwrap();
    data[offs[2] + 30] ^= 1;
    fs::write(&path, &data).unwrap();
    assert_eq!(expect_corrupt(Journal::open(cfg.clone())).1, offs[2] as u64);
    let mut skip = cfg.clone();
    skip.skip_corrupt = true;
    let (_, rec) = open(&skip);
    let expect = model(&[records[0].clone(), records[1].clone(), records[3].clone()]);
    assert_eq!(state(&rec), expect);
    assert_eq!(rec.skipped_regions, 1);
}
