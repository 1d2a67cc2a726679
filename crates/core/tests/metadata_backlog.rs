//! When the metadata store's disk falls behind, a producer of rows nobody waits for (QoS 0
//! retained publishes) waits for room in the writer's backlog: it must wait alone, not
//! take its tokio worker (and every connection on it) down with it.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;
use throng_core::Tenant;
use throng_store::{BlobTable, MetadataStore};

#[test]
fn producers_waiting_for_the_disk_leave_the_workers_to_others() {
    let dir = std::env::temp_dir().join(format!("throng-core-backlog-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Arc::new(
        MetadataStore::open(&dir.join("m.redb"))
            .unwrap()
            .with_backlog_limit(1_000),
    );
    let tenant = Arc::new(Tenant::new("t", true, vec![]).with_metadata(Some(store.clone())));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // a stalled disk: the writer thread hangs in the first commit's callback until let go
    let (release, stalled) = mpsc::channel::<()>();
    tenant.store_row(
        BlobTable::Retained,
        "gate",
        Some(vec![0; 10]),
        Some(Box::new(move |_| {
            let _ = stalled.recv();
        })),
    );
    // two producers, as many as there are workers, fill the backlog and then wait
    let (finished, producers_done) = mpsc::channel();
    for p in 0..2 {
        let (tenant, finished) = (tenant.clone(), finished.clone());
        rt.spawn(async move {
            for i in 0..10 {
                tenant.store_row(
                    BlobTable::Retained,
                    &format!("p{p}-{i}"),
                    Some(vec![1; 600]),
                    None,
                );
            }
            let _ = finished.send(p);
        });
    }
    std::thread::sleep(Duration::from_millis(300));
    let blocked = producers_done.try_recv().is_err();
    // meanwhile another connection's task must still run
    let (ran, other_ran) = mpsc::channel();
    rt.spawn(async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let _ = ran.send(());
    });
    let other = other_ran.recv_timeout(Duration::from_secs(5));
    let _ = release.send(());

    assert!(
        blocked,
        "the producers waited for room while the disk stalled"
    );
    assert!(other.is_ok(), "another task ran while the producers waited");
    for _ in 0..2 {
        producers_done
            .recv_timeout(Duration::from_secs(10))
            .expect("both producers finish once the disk catches up");
    }
    store.flush();
    assert_eq!(store.retained().unwrap().len(), 21, "every row stored");
    drop(rt);
    let _ = std::fs::remove_dir_all(&dir);
}
