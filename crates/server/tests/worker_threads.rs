//! `worker_threads` in the config sets how many threads run connections: a small node
//! can run on one (it then spends less CPU per message at low rates).

mod common;

use common::Node;

/// Threads of process `pid` named as the node names its runtime's threads.
fn tokio_threads(pid: u32) -> usize {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("/proc");
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end() == "throng-worker")
        .count()
}

#[test]
fn the_node_runs_the_configured_number_of_workers() {
    for n in [1, 3] {
        let node = Node::start(&format!("worker_threads = {n}\n"));
        assert_eq!(tokio_threads(node.pid()), n, "worker_threads = {n}");
    }
}
