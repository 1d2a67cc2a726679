//! The routing protocol under chaos, as a deterministic simulation: random topologies of
//! up to 100 nodes, random link closes, silent links, node crashes, restarts and hangs,
//! partitions that heal, lost and reordered messages — all from one seed. After the
//! chaos stops, every surviving router must hold the shortest, loop-free routes of the
//! true topology and the true address tables, and multicast must reach every member
//! exactly once.
//!
//! `MESH_SEEDS=N` runs N seeds (default 1000, one in a hundred with 100 nodes); `MESH_SEED=S` runs seed S alone, which
//! reproduces a failure exactly.

mod sim;

use std::time::Duration;

use sim::{Cut, Sim};
use throng_mesh::{AddressKey, Config};

/// How long the mesh gets after the last fault to settle before the check.
const SETTLE: Duration = Duration::from_secs(4);

fn keys() -> Vec<AddressKey> {
    let mut keys = Vec::new();
    for tenant in ["acme", "globex"] {
        for name in ["orders", "events", "rpc"] {
            keys.push(AddressKey::new(tenant, name).unwrap());
        }
    }
    keys
}

/// One seed's scenario; `Err` says what the check found.
fn scenario(seed: u64) -> Result<String, String> {
    let mut rng = sim::Rng::new(seed);
    let n = if seed.is_multiple_of(100) {
        100
    } else {
        rng.range(2, 30) as usize
    };
    let mut sim = Sim::new(n, seed, Config::default());
    sim.latency = (
        Duration::from_micros(200),
        Duration::from_millis(rng.range(1, 30)),
    );
    // a random spanning tree, then extra links
    for i in 1..n {
        let j = rng.below(i as u64) as usize;
        let cost = rng.range(1, 10) as u32;
        sim.add_link(i, j, cost);
    }
    let extra = rng.below(n as u64 * 2) as usize;
    for _ in 0..extra {
        let (a, b) = (rng.below(n as u64) as usize, rng.below(n as u64) as usize);
        if a != b {
            let cost = rng.range(1, 10) as u32;
            sim.add_link(a, b, cost);
        }
    }
    let keys = keys();
    sim.run_for(Duration::from_millis(rng.range(0, 2000)));
    // chaos
    sim.loss = [0.0, 0.02, 0.1, 0.3][rng.below(4) as usize];
    let actions = rng.range(5, 40);
    for _ in 0..actions {
        sim.run_for(Duration::from_millis(rng.range(0, 400)));
        let links = sim.links.len() as u64;
        match rng.below(10) {
            0 | 1 => {
                let li = rng.below(links) as usize;
                let cut = [None, Some(Cut::Closed), Some(Cut::Silent)][rng.below(3) as usize];
                sim.cut(li, cut);
            }
            2 => sim.crash(rng.below(n as u64) as usize),
            3 => sim.restart(rng.below(n as u64) as usize),
            4 => {
                let node = rng.below(n as u64) as usize;
                let hung = rng.chance(0.5);
                sim.hang(node, hung);
            }
            5 => {
                // a partition: every link between a random half and the rest
                let side: Vec<bool> = (0..n).map(|_| rng.chance(0.5)).collect();
                let cut = if rng.chance(0.5) {
                    Cut::Closed
                } else {
                    Cut::Silent
                };
                for li in 0..sim.links.len() {
                    let l = &sim.links[li];
                    if side[l.a] != side[l.b] {
                        sim.cut(li, Some(cut));
                    }
                }
            }
            6 => {
                // heal everything
                for li in 0..sim.links.len() {
                    sim.cut(li, None);
                }
            }
            _ => {
                let node = rng.below(n as u64) as usize;
                let key = keys[rng.below(keys.len() as u64) as usize].clone();
                let credit = if rng.chance(0.3) {
                    None
                } else {
                    Some(rng.range(0, 1000) as u32)
                };
                sim.set_address(node, key, credit);
            }
        }
    }
    // the chaos stops; lost messages stop with it (hellos lost three in a row would
    // otherwise keep flapping links at random moments)
    sim.loss = 0.0;
    let t0 = std::time::Instant::now();
    sim.run_for(SETTLE);
    let t1 = std::time::Instant::now();
    if std::env::var("MESH_TIMING").is_ok() {
        eprintln!("settle {:?} sent {:?}", t1 - t0, sim.sent);
    }
    let r = sim.check(&keys);
    if std::env::var("MESH_TIMING").is_ok() {
        eprintln!("check {:?}", t1.elapsed());
    }
    r.map_err(|e| format!("{n} nodes, {} links: {e}", sim.links.len()))?;
    Ok(format!("{n} nodes, {} links up", sim.up_links().len()))
}

#[test]
fn routes_converge_loop_free_and_shortest_after_chaos() {
    if let Ok(s) = std::env::var("MESH_SEED") {
        let seed: u64 = s.parse().expect("MESH_SEED is a number");
        match scenario(seed) {
            Ok(what) => eprintln!("seed {seed}: ok ({what})"),
            Err(e) => panic!("seed {seed}: {e}"),
        }
        return;
    }
    let seeds: u64 = std::env::var("MESH_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let mut failed = Vec::new();
    for seed in 0..seeds {
        if let Err(e) = scenario(seed) {
            failed.push(format!("seed {seed}: {e}"));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {seeds} seeds failed (reproduce one with MESH_SEED=S cargo test -p throng-mesh --release --test simulation):\n{}",
        failed.len(),
        failed.iter().take(10).cloned().collect::<Vec<_>>().join("\n")
    );
}
