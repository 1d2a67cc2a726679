//! The journal's API: append/replay round trips, DropQueue, group commit with
//! callbacks, sync, clean drop, failures.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use throng_store::{JournalConfig, Record, StoreError, Written, DEFAULT_SEGMENT_BYTES};

#[test]
fn config_defaults() {
    let cfg = JournalConfig::new("/tmp/x");
    assert_eq!(cfg.segment_bytes, 64 * 1024 * 1024);
    assert_eq!(cfg.segment_bytes, DEFAULT_SEGMENT_BYTES);
    assert!(cfg.fsync);
    assert!(!cfg.skip_corrupt);
}

#[test]
fn empty_journal_opens_and_creates_its_directory() {
    let tmp = TempDir::new("empty");
    let dir = tmp.path().join("a/b/journal");
    let (j, rec) = open(&config(&dir, 4096));
    assert!(rec.queues.is_empty());
    assert_eq!(rec.records, 0);
    assert_eq!(segments(&dir).len(), 1);
    assert_eq!(j.stats().segments_live, 1);
    assert_eq!(j.dir(), dir);
    drop(j);
    let (_, rec) = open(&config(&dir, 4096));
    assert!(rec.queues.is_empty());
}

/// Messages come back per queue in seq order with their latest delivery count; acked
/// messages do not.
#[test]
fn replay_returns_live_messages_in_seq_order_with_counts() {
    let dir = TempDir::new("order");
    let cfg = config(dir.path(), 4096);
    let (j, _) = open(&cfg);
    let records = vec![
        enqueue("t/q", 5, 10),
        enqueue("t/q", 3, 10),
        enqueue("t/q", 9, 10),
        enqueue("t/r", 1, 0),
        count("t/q", 3, 1),
        count("t/q", 3, 2),
        ack("t/q", 5),
        ack("t/q", 77),        // unknown: ignored
        count("t/nope", 1, 4), // unknown: ignored
        enqueue("t/q", 9, 12), // duplicate of a live message: the first is kept
    ];
    append_all(&j, &records);
    drop(j);
    let (_, rec) = open(&cfg);
    assert_eq!(state(&rec), model(&records));
    let q = &rec.queues["t/q"];
    assert_eq!(
        q.iter()
            .map(|m| (m.seq, m.delivery_count))
            .collect::<Vec<_>>(),
        vec![(3, 2), (9, 0)]
    );
    assert_eq!(q[1].message.len(), 10);
    assert_eq!(rec.queues["t/r"][0].message, Bytes::new());
    assert_eq!(rec.records, records.len() as u64);
}

#[test]
fn drop_queue_forgets_its_messages() {
    let dir = TempDir::new("dropq");
    let cfg = config(dir.path(), 4096);
    let (j, _) = open(&cfg);
    let mut records = vec![];
    for s in 1..=3 {
        records.push(enqueue("t/one", s, 20));
        records.push(enqueue("t/two", s, 20));
    }
    records.push(count("t/one", 2, 5));
    records.push(drop_queue("t/one"));
    records.push(drop_queue("t/never"));
    // The name may be used again, sequence numbers restarting.
    records.push(enqueue("t/one", 1, 7));
    append_all(&j, &records);
    drop(j);
    let (j, rec) = open(&cfg);
    assert_eq!(state(&rec), model(&records));
    assert_eq!(rec.queues["t/one"].len(), 1);
    assert_eq!(rec.queues["t/one"][0].message.len(), 7);
    assert_eq!(rec.queues["t/one"][0].delivery_count, 0);
    assert_eq!(rec.queues["t/two"].len(), 3);
    // Dropping the rest empties the journal; it stays empty across a reopen.
    append_all(&j, &[drop_queue("t/one"), drop_queue("t/two")]);
    drop(j);
    let (_, rec) = open(&cfg);
    assert!(rec.queues.is_empty());
}

/// A dropped queue's messages free their segments.
#[test]
fn drop_queue_frees_segments() {
    let dir = TempDir::new("dropq-reclaim");
    let cfg = config(dir.path(), 2048);
    let (j, _) = open(&cfg);
    let records: Vec<Record> = (1..=200).map(|s| enqueue("t/big", s, 100)).collect();
    append_all(&j, &records);
    let many = segments(dir.path()).len();
    assert!(many >= 10, "{many}");
    append_all(&j, &[enqueue("t/small", 1, 10), drop_queue("t/big")]);
    assert_eq!(segments(dir.path()).len(), 1);
    assert_eq!(j.stats().segments_live, 1);
    drop(j);
    let (_, rec) = open(&cfg);
    assert_eq!(state(&rec), model(&[enqueue("t/small", 1, 10)]));
}

/// 4 threads append 10,000 records with callbacks, fsync on: every callback runs, in
/// append order per thread, and there are far fewer batches (fsyncs) than records.
#[test]
fn group_commit_many_producers() {
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 2500;
    let dir = TempDir::new("group");
    let mut cfg = JournalConfig::new(dir.path());
    cfg.segment_bytes = 256 * 1024;
    assert!(cfg.fsync);
    let (j, _) = open(&cfg);
    let done = Arc::new(AtomicU64::new(0));
    let order = Arc::new(Mutex::new(vec![Vec::new(); THREADS as usize]));
    let producers: Vec<_> = (0..THREADS)
        .map(|t| {
            let j = j.clone();
            let done = Arc::clone(&done);
            let order = Arc::clone(&order);
            thread::spawn(move || {
                for i in 0..PER_THREAD {
                    let done = Arc::clone(&done);
                    let order = Arc::clone(&order);
                    let cb = Box::new(move |_: Written| {
                        order.lock().unwrap()[t as usize].push(i);
                        done.fetch_add(1, Ordering::Relaxed);
                    });
                    j.append(enqueue(&format!("t/q{t}"), i, 100), Some(cb))
                        .unwrap();
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    j.sync().unwrap();
    let total = THREADS * PER_THREAD;
    assert_eq!(done.load(Ordering::Relaxed), total);
    for per in order.lock().unwrap().iter() {
        assert_eq!(*per, (0..PER_THREAD).collect::<Vec<_>>());
    }
    let stats = j.stats();
    assert_eq!(stats.records, total);
    assert!(stats.batches < total, "{stats:?}");
    assert!(
        stats.fsyncs >= stats.batches,
        "fsync on: one per batch at least: {stats:?}"
    );
    assert!(stats.bytes_written > total * 100);
    eprintln!(
        "group commit: {stats:?}, {:.1} records per batch",
        total as f64 / stats.batches as f64
    );
    drop(j);
    let (_, rec) = open(&cfg);
    assert_eq!(
        rec.queues.values().map(Vec::len).sum::<usize>() as u64,
        total
    );
}

/// A callback runs only once its record is durable: by then, another open of the files
/// (a crash simulation) sees it.
#[test]
fn callback_runs_after_the_record_is_on_disk() {
    let dir = TempDir::new("durable");
    let mut cfg = JournalConfig::new(dir.path());
    cfg.segment_bytes = 4096;
    let (j, _) = open(&cfg);
    let (tx, rx) = mpsc::channel();
    j.append(
        enqueue("t/q", 1, 10),
        Some(Box::new(move |_: Written| tx.send(()).unwrap())),
    )
    .unwrap();
    rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let copy = copy_dir(dir.path(), "durable-copy");
    let (_, rec) = open(&config(copy.path(), 4096));
    assert_eq!(state(&rec), model(&[enqueue("t/q", 1, 10)]));
}

#[test]
fn sync_flushes_and_waits() {
    let dir = TempDir::new("sync");
    let cfg = config(dir.path(), 1 << 20); // fsync off: sync() still fsyncs
    let (j, _) = open(&cfg);
    // Nothing to do.
    j.sync().unwrap();
    for s in 0..500 {
        j.append(enqueue("t/q", s, 50), None).unwrap();
    }
    let before = j.stats().fsyncs;
    j.sync().unwrap();
    let st = j.stats();
    assert_eq!(st.records, 500);
    assert!(st.fsyncs > before, "{st:?}");
    // sync() from several threads at once.
    let hs: Vec<_> = (0..4)
        .map(|t| {
            let j = j.clone();
            thread::spawn(move || {
                for s in 0..100 {
                    j.append(enqueue("t/p", t * 1000 + s, 10), None).unwrap();
                    if s % 10 == 0 {
                        j.sync().unwrap();
                    }
                }
                j.sync().unwrap();
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(j.stats().records, 900);
    let copy = copy_dir(dir.path(), "sync-copy");
    let (_, rec) = open(&config(copy.path(), 1 << 20));
    assert_eq!(rec.queues["t/q"].len(), 500);
    assert_eq!(rec.queues["t/p"].len(), 400);
}

/// Dropping the last handle writes everything appended, runs every callback and stops
/// the writer before returning.
#[test]
fn drop_flushes_and_stops_cleanly() {
    for fsync in [false, true] {
        let dir = TempDir::new("drop");
        let mut cfg = config(dir.path(), 8192);
        cfg.fsync = fsync;
        let (j, _) = open(&cfg);
        let done = Arc::new(AtomicU64::new(0));
        let clone = j.clone();
        for s in 0..1000 {
            let done = Arc::clone(&done);
            clone
                .append(
                    enqueue("t/q", s, 30),
                    Some(Box::new(move |_: Written| {
                        done.fetch_add(1, Ordering::Relaxed);
                    })),
                )
                .unwrap();
        }
        drop(clone); // not the last handle: nothing happens
        drop(j);
        assert_eq!(done.load(Ordering::Relaxed), 1000, "fsync {fsync}");
        let (_, rec) = open(&cfg);
        assert_eq!(rec.queues["t/q"].len(), 1000);
    }
}

/// The last handle may be dropped inside a callback, on the writer thread: no deadlock.
#[test]
fn last_handle_dropped_in_a_callback() {
    let dir = TempDir::new("drop-in-cb");
    let cfg = config(dir.path(), 8192);
    let (j, _) = open(&cfg);
    let (tx, rx) = mpsc::channel();
    let inner = j.clone();
    j.append(enqueue("t/q", 1, 10), None).unwrap();
    j.append(
        enqueue("t/q", 2, 10),
        Some(Box::new(move |_: Written| {
            // sync() here would wait for itself: refused.
            assert!(inner.sync().is_err());
            drop(inner);
            tx.send(()).unwrap();
        })),
    )
    .unwrap();
    drop(j);
    rx.recv_timeout(Duration::from_secs(10)).unwrap();
    // Let the detached writer finish its last step, then the files are complete.
    thread::sleep(Duration::from_millis(100));
    let (_, rec) = open(&cfg);
    assert_eq!(rec.queues["t/q"].len(), 2);
}

#[test]
fn panicking_callback_does_not_stop_the_journal() {
    let dir = TempDir::new("panic-cb");
    let cfg = config(dir.path(), 8192);
    let (j, _) = open(&cfg);
    let (tx, rx) = mpsc::channel();
    j.append(
        enqueue("t/q", 1, 10),
        Some(Box::new(|_: Written| {
            panic!("callback bug (expected in this test)")
        })),
    )
    .unwrap();
    j.append(
        enqueue("t/q", 2, 10),
        Some(Box::new(move |_: Written| tx.send(()).unwrap())),
    )
    .unwrap();
    rx.recv_timeout(Duration::from_secs(10)).unwrap();
    j.append(enqueue("t/q", 3, 10), None).unwrap();
    j.sync().unwrap();
    drop(j);
    let (_, rec) = open(&cfg);
    assert_eq!(rec.queues["t/q"].len(), 3);
}

#[test]
fn unrepresentable_records_are_refused() {
    let dir = TempDir::new("invalid");
    let cfg = config(dir.path(), 8192);
    let (j, _) = open(&cfg);
    let long = "x".repeat(70_000);
    match j.append(enqueue(&long, 1, 1), None) {
        Err(StoreError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput),
        other => panic!("{other:?}"),
    }
    // The journal is unaffected.
    append_all(&j, &[enqueue("t/q", 1, 1)]);
    drop(j);
    let (_, rec) = open(&cfg);
    assert_eq!(rec.queues.len(), 1);
}

/// A record larger than a segment gets a segment of its own.
#[test]
fn oversized_record_gets_its_own_segment() {
    let dir = TempDir::new("big");
    let cfg = config(dir.path(), 1024);
    let (j, _) = open(&cfg);
    let records = vec![
        enqueue("t/q", 1, 10),
        enqueue("t/q", 2, 5000),
        enqueue("t/q", 3, 10),
    ];
    append_all(&j, &records);
    assert_eq!(segments(dir.path()).len(), 3);
    drop(j);
    let (_, rec) = open(&cfg);
    assert_eq!(state(&rec), model(&records));
}

/// When the writer cannot write (here: the directory vanished, so the next segment
/// cannot be created), the journal fails: sync and append return the error, and every
/// record that was accepted but never became durable has its callback told so
/// (`Written::Failed`), so nobody waits for it forever.
#[test]
fn writer_failure_is_reported() {
    let dir = TempDir::new("fail");
    let cfg = config(dir.path(), 512);
    let (j, _) = open(&cfg);
    append_all(&j, &[enqueue("t/q", 0, 10)]);
    std::fs::remove_dir_all(dir.path()).unwrap();
    let durable = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut appended = 0;
    for s in 1..100 {
        let (durable, failed) = (Arc::clone(&durable), Arc::clone(&failed));
        let cb = Box::new(move |w: Written| {
            let n = if w == Written::Durable {
                durable
            } else {
                failed
            };
            n.fetch_add(1, Ordering::Relaxed);
        });
        if j.append(enqueue("t/q", s, 100), Some(cb)).is_err() {
            break;
        }
        appended += 1;
    }
    let err = j.sync().unwrap_err();
    assert!(matches!(err, StoreError::Io(_)), "{err}");
    assert!(err.to_string().contains("journal writer failed"), "{err}");
    assert!(j.append(enqueue("t/q", 1000, 1), None).is_err());
    // the writer runs the failed callbacks after it reported the failure: wait for them
    // (bounded) rather than racing them
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while durable.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < appended
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let (durable, failed) = (
        durable.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    // Only records before the failed segment roll-over were durable; every other one
    // accepted by `append` heard that it failed. Whether any accepted record was left
    // to fail depends on how far the writer got before the loop's next append saw the
    // failure (CI saw none), so the rule checked is: every record `append` accepted was
    // either made durable or told it failed, exactly once.
    assert!(durable < 10, "{durable}");
    assert_eq!(durable + failed, appended, "every callback ran once");
    drop(j); // and dropping a failed journal does not hang
}

#[test]
fn a_journal_directory_is_used_by_one_journal_at_a_time() {
    let dir = std::env::temp_dir().join(format!("throng-journal-lock-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (first, _) = throng_store::Journal::open(JournalConfig::new(&dir)).expect("first open");
    let err = throng_store::Journal::open(JournalConfig::new(&dir))
        .expect_err("second open must be refused");
    assert!(err.to_string().contains("in use"), "{err}");
    drop(first);
    let (_again, _) =
        throng_store::Journal::open(JournalConfig::new(&dir)).expect("open after close");
    let _ = std::fs::remove_dir_all(&dir);
}
