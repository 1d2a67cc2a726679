//! Journal throughput: N producer threads append 100-byte Enqueue records with
//! durability callbacks, fsync on, and report records/s and records per fsync.
//!
//! Each producer keeps at most `window` records in flight (appended, callback not yet
//! run), like an AMQP producer with that much credit; window 1 is a producer that waits
//! for every settlement.
//!
//! ```text
//! cargo run --release -p throng-store --example journal_bench -- \
//!     [--threads 1,4,16] [--window 1,100] [--seconds 3] [--size 100] [--no-fsync] [--dir DIR]
//! ```

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use throng_store::{Journal, JournalConfig, Record, Written};

struct Args {
    threads: Vec<usize>,
    windows: Vec<u64>,
    seconds: f64,
    size: usize,
    fsync: bool,
    dir: PathBuf,
}

fn list<T: std::str::FromStr>(s: &str) -> Vec<T> {
    s.split(',')
        .map(|x| {
            x.trim()
                .parse()
                .unwrap_or_else(|_| panic!("bad number {x:?}"))
        })
        .collect()
}

fn parse_args() -> Args {
    let mut a = Args {
        threads: vec![1, 4, 16],
        windows: vec![1, 100],
        seconds: 3.0,
        size: 100,
        fsync: true,
        dir: std::env::temp_dir().join(format!("throng-journal-bench-{}", std::process::id())),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--threads" => a.threads = list(&value()),
            "--window" => a.windows = list(&value()),
            "--seconds" => a.seconds = value().parse().expect("seconds"),
            "--size" => a.size = value().parse().expect("size"),
            "--dir" => a.dir = PathBuf::from(value()),
            "--no-fsync" => a.fsync = false,
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

/// Bounds one producer's records in flight.
struct Window {
    in_flight: Mutex<u64>,
    freed: Condvar,
}

impl Window {
    fn acquire(&self, max: u64) {
        let mut n = self.in_flight.lock().unwrap();
        while *n >= max {
            n = self.freed.wait(n).unwrap();
        }
        *n += 1;
    }

    fn release(&self) {
        *self.in_flight.lock().unwrap() -= 1;
        self.freed.notify_one();
    }

    fn drain(&self) {
        let mut n = self.in_flight.lock().unwrap();
        while *n > 0 {
            n = self.freed.wait(n).unwrap();
        }
    }
}

fn run(args: &Args, threads: usize, window: u64) {
    let dir = args.dir.join(format!("t{threads}-w{window}"));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = JournalConfig::new(&dir);
    cfg.fsync = args.fsync;
    let (journal, _) = Journal::open(cfg).expect("open journal");
    let stop = Arc::new(AtomicBool::new(false));
    let settled = Arc::new(AtomicU64::new(0));
    let payload = Bytes::from(vec![0x5au8; args.size]);
    let start = Instant::now();
    let producers: Vec<_> = (0..threads)
        .map(|t| {
            let journal = journal.clone();
            let stop = Arc::clone(&stop);
            let settled = Arc::clone(&settled);
            let payload = payload.clone();
            thread::spawn(move || {
                let w = Arc::new(Window {
                    in_flight: Mutex::new(0),
                    freed: Condvar::new(),
                });
                let queue = format!("bench/q{t}");
                let mut seq = 0;
                while !stop.load(Ordering::Relaxed) {
                    w.acquire(window);
                    seq += 1;
                    let (w2, settled) = (Arc::clone(&w), Arc::clone(&settled));
                    let record = Record::Enqueue {
                        queue: queue.clone(),
                        seq,
                        message: payload.clone(),
                    };
                    journal
                        .append(
                            record,
                            Some(Box::new(move |_: Written| {
                                settled.fetch_add(1, Ordering::Relaxed);
                                w2.release();
                            })),
                        )
                        .expect("append");
                }
                w.drain();
            })
        })
        .collect();
    thread::sleep(Duration::from_secs_f64(args.seconds));
    stop.store(true, Ordering::Relaxed);
    for p in producers {
        p.join().unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let stats = journal.stats();
    let records = settled.load(Ordering::Relaxed);
    println!(
        "{threads:>7} {window:>7} {records:>10} {:>12.0} {:>10} {:>14.1} {:>9.1}",
        records as f64 / secs,
        stats.batches,
        records as f64 / stats.batches.max(1) as f64,
        stats.bytes_written as f64 / secs / (1024.0 * 1024.0),
    );
    drop(journal);
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let args = parse_args();
    println!(
        "journal bench: {}-byte messages, fsync {}, {}s per run, dir {}",
        args.size,
        if args.fsync { "on" } else { "off" },
        args.seconds,
        args.dir.display()
    );
    println!("threads  window    records    records/s    batches  records/fsync     MiB/s");
    for &threads in &args.threads {
        for &window in &args.windows {
            run(&args, threads, window);
        }
    }
    let _ = std::fs::remove_dir_all(&args.dir);
}
