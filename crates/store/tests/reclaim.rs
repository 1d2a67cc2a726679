//! Reclaiming disk: dead segments deleted oldest first, live messages copied forward
//! out of a pinned oldest segment, and a randomized check that reclaim never changes
//! what replay returns.

mod common;

use std::collections::BTreeMap;

use common::*;
use throng_store::{segment_file_name, Record};

const SEGMENT: u64 = 2048;

#[test]
fn acking_everything_deletes_old_segments() {
    let dir = TempDir::new("ack-all");
    let cfg = config(dir.path(), SEGMENT);
    let (j, _) = open(&cfg);
    let enq: Vec<Record> = (1..=200).map(|s| enqueue("t/q", s, 100)).collect();
    append_all(&j, &enq);
    let created = segments(dir.path()).len() as u64;
    assert!(created >= 10, "{created}");
    assert_eq!(j.stats().segments_live, created);
    let acks: Vec<Record> = (1..=200).map(|s| ack("t/q", s)).collect();
    append_all(&j, &acks);
    // Only the segment being written survives.
    let left = segments(dir.path());
    assert_eq!(left.len(), 1, "{left:?}");
    let st = j.stats();
    assert_eq!(st.segments_live, 1);
    assert!(st.segments_deleted >= created - 1, "{st:?}");
    drop(j);
    let (_, rec) = open(&cfg);
    assert!(rec.queues.is_empty());
}

/// A queue consumed in order, a little behind its producer: the number of files stays
/// bounded by the backlog, not by the traffic.
#[test]
fn fifo_consumption_keeps_the_file_count_bounded() {
    let dir = TempDir::new("fifo");
    let cfg = config(dir.path(), SEGMENT);
    let (j, _) = open(&cfg);
    let mut all = Vec::new();
    let mut batch = Vec::new();
    let mut max_files = 0;
    for s in 1..=3000u64 {
        batch.push(enqueue("t/q", s, 100));
        if s > 50 {
            batch.push(ack("t/q", s - 50));
        }
        if s % 100 == 0 {
            append_all(&j, &batch);
            all.append(&mut batch);
            max_files = max_files.max(segments(dir.path()).len());
        }
    }
    // The whole history is ~300 segments; a backlog of 50 messages fits in ~4.
    assert!(max_files <= 8, "max files {max_files}");
    assert!(j.stats().segments_deleted > 200, "{:?}", j.stats());
    drop(j);
    let (_, rec) = open(&cfg);
    assert_eq!(state(&rec), model(&all));
    assert_eq!(rec.queues["t/q"].len(), 50);
}

/// One old message pins the oldest segment while traffic flows: it is copied forward
/// (with its delivery count), the pinned segment disappears, and the message survives
/// a reopen.
#[test]
fn copy_forward_frees_a_pinned_segment() {
    let dir = TempDir::new("pinned");
    let cfg = config(dir.path(), SEGMENT);
    let (j, _) = open(&cfg);
    let mut records = vec![enqueue("t/stuck", 1, 100), count("t/stuck", 1, 3)];
    append_all(&j, &records);
    let first = segments(dir.path())[0].0;
    for s in 1..=400u64 {
        let batch = [enqueue("t/flow", s, 100), ack("t/flow", s)];
        append_all(&j, &batch);
        records.extend(batch);
    }
    assert!(
        !dir.path().join(segment_file_name(first)).exists(),
        "pinned segment deleted"
    );
    let st = j.stats();
    assert!(st.copied_forward >= 1, "{st:?}");
    assert!(st.segments_live <= 4, "{st:?}");
    // Redelivered once more after the copy: the newest count wins.
    let more = count("t/stuck", 1, 4);
    append_all(&j, std::slice::from_ref(&more));
    records.push(more);
    drop(j);
    let (j, rec) = open(&cfg);
    assert_eq!(state(&rec), model(&records));
    assert_eq!(rec.queues["t/stuck"][0].delivery_count, 4);
    drop(j);
    // And again: the count was carried by the copy.
    let (_, rec) = open(&cfg);
    assert_eq!(rec.queues["t/stuck"][0].delivery_count, 4);
}

/// A full oldest segment (every message in it live) blocks the dead segments behind it;
/// once they amount to 4 times its live bytes, it is copied forward too, so disk use
/// stays bounded while a consumer is stuck.
#[test]
fn stuck_consumer_does_not_grow_the_journal_without_bound() {
    let dir = TempDir::new("stuck");
    let cfg = config(dir.path(), SEGMENT);
    let (j, _) = open(&cfg);
    let mut records: Vec<Record> = (1..=15).map(|s| enqueue("t/stuck", s, 100)).collect();
    records.push(count("t/stuck", 7, 2));
    append_all(&j, &records);
    let mut max_files = 0;
    for s in 1..=2000u64 {
        let batch = [enqueue("t/flow", s, 100), ack("t/flow", s)];
        append_all(&j, &batch);
        records.extend(batch);
        max_files = max_files.max(segments(dir.path()).len());
    }
    assert!(max_files <= 10, "max files {max_files}");
    assert!(j.stats().copied_forward >= 15, "{:?}", j.stats());
    drop(j);
    let (_, rec) = open(&cfg);
    assert_eq!(state(&rec), model(&records));
    assert_eq!(rec.queues["t/stuck"].len(), 15);
    assert_eq!(rec.queues["t/stuck"][6].delivery_count, 2);
}

/// Mostly-live segments are left alone: copying them would cost more than it frees.
#[test]
fn mostly_live_segments_are_not_copied() {
    let dir = TempDir::new("mostly-live");
    let cfg = config(dir.path(), SEGMENT);
    let (j, _) = open(&cfg);
    let mut records = Vec::new();
    for s in 1..=200u64 {
        records.push(enqueue("t/q", s, 100));
        if s % 5 == 0 {
            records.push(ack("t/q", s)); // 80% stay live
        }
    }
    append_all(&j, &records);
    let st = j.stats();
    assert_eq!(st.copied_forward, 0, "{st:?}");
    assert_eq!(st.segments_deleted, 0, "{st:?}");
    drop(j);
    let (_, rec) = open(&cfg);
    assert_eq!(state(&rec), model(&records));
}

/// Random traffic over a few queues — enqueues, acks in and out of order,
/// redeliveries, drops — with tiny segments so reclaim and copy-forward run all the
/// time, reopening now and then: replay always equals the model.
#[test]
fn random_traffic_replays_like_the_model() {
    for seed in [1u64, 2, 3] {
        random_run(seed, 3000, 500, false);
    }
    random_run(4, 1000, 250, true);
}

fn random_run(seed: u64, ops: usize, reopen_every: usize, fsync: bool) {
    let dir = TempDir::new("random");
    let mut cfg = config(dir.path(), 1024);
    cfg.fsync = fsync;
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let queues = ["t/a", "t/b", "t/c"];
    let mut seqs = [0u64; 3];
    let mut live: BTreeMap<(usize, u64), ()> = BTreeMap::new();
    let mut records: Vec<Record> = Vec::new();
    let (mut j, _) = open(&cfg);
    let (mut copied, mut deleted) = (0, 0);
    for i in 1..=ops {
        let q = next(3) as usize;
        let r = match next(100) {
            0..=44 => {
                seqs[q] += 1;
                live.insert((q, seqs[q]), ());
                enqueue(queues[q], seqs[q], next(150) as usize)
            }
            45..=79 if !live.is_empty() => {
                // Mostly the oldest of the queue, sometimes any.
                let keys: Vec<_> = live.keys().filter(|(lq, _)| *lq == q).copied().collect();
                let key = match keys.len() {
                    0 => *live.keys().next().unwrap(),
                    n if next(4) == 0 => keys[next(n as u64) as usize],
                    _ => keys[0],
                };
                live.remove(&key);
                ack(queues[key.0], key.1)
            }
            80..=94 if !live.is_empty() => {
                let keys: Vec<_> = live.keys().copied().collect();
                let key = keys[next(keys.len() as u64) as usize];
                count(queues[key.0], key.1, 1 + next(9) as u32)
            }
            95 => {
                live.retain(|(lq, _), _| *lq != q);
                drop_queue(queues[q])
            }
            _ => ack(queues[q], 1_000_000 + next(10)),
        };
        j.append(r.clone(), None).unwrap();
        records.push(r);
        if i % reopen_every == 0 {
            j.sync().unwrap();
            copied += j.stats().copied_forward;
            deleted += j.stats().segments_deleted;
            drop(j);
            let (j2, rec) = open(&cfg);
            assert_eq!(
                state(&rec),
                model(&records),
                "seed {seed} after {i} records"
            );
            j = j2;
        }
    }
    let (copied, deleted) = (
        copied + j.stats().copied_forward,
        deleted + j.stats().segments_deleted,
    );
    drop(j);
    let (_, rec) = open(&cfg);
    assert_eq!(state(&rec), model(&records), "seed {seed} at the end");
    // The run exercised reclaim, copy-forward included.
    assert!(
        copied > 0 && deleted > 0,
        "seed {seed}: copied {copied}, deleted {deleted}"
    );
    eprintln!("seed {seed}: {copied} messages copied forward, {deleted} segments deleted");
    assert!(
        segments(dir.path()).len() < 40,
        "seed {seed}: {} files",
        segments(dir.path()).len()
    );
}

/// Copy-forward is patient: live messages that are being drained in order are not copied
/// (they would be consumed moments later), only ones that stay put past the patience.
#[test]
fn copy_forward_waits_until_the_oldest_segment_is_stuck() {
    let dir = TempDir::new("patient");
    let mut cfg = config(dir.path(), SEGMENT);
    cfg.copy_forward_after = std::time::Duration::from_millis(300);
    let time = throng_store::clock::ManualTicks::new();
    cfg.ticks = throng_store::clock::Ticks::manual(&time);
    let (j, _) = open(&cfg);
    append_all(&j, &[enqueue("t/stuck", 1, 100)]);
    let first = segments(dir.path())[0].0;
    for s in 1..=400u64 {
        append_all(&j, &[enqueue("t/flow", s, 100), ack("t/flow", s)]);
    }
    assert_eq!(
        j.stats().copied_forward,
        0,
        "not copied while within the patience"
    );
    assert!(dir.path().join(segment_file_name(first)).exists());
    time.advance(std::time::Duration::from_millis(299));
    for s in 401..=410u64 {
        append_all(&j, &[enqueue("t/flow", s, 100), ack("t/flow", s)]);
    }
    assert_eq!(j.stats().copied_forward, 0, "one millisecond short");
    time.advance(std::time::Duration::from_millis(1));
    for s in 411..=420u64 {
        append_all(&j, &[enqueue("t/flow", s, 100), ack("t/flow", s)]);
    }
    assert!(j.stats().copied_forward >= 1, "{:?}", j.stats());
    assert!(
        !dir.path().join(segment_file_name(first)).exists(),
        "stuck segment freed"
    );
}
