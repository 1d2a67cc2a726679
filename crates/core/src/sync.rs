//! Lock helpers. A panic while one connection task holds an address lock must not poison
//! the address for every other client, so poisoned locks are taken over as they are: each
//! critical section leaves its state consistent between statements that can panic.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, recovering the guard from a poisoned lock.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f`, a metadata write that waits for its commit. When other threads already wait
/// for one (`store.writes_waiting()`), the commit is shared: on a worker thread of a
/// multi-thread tokio runtime the worker's other tasks move to another thread
/// meanwhile (`block_in_place`), so that connections creating addresses at the same time
/// get to join the same commit. A lone write just blocks its thread: handing the worker
/// over costs more than the commit saves when nobody else is writing.
pub(crate) fn blocking<R>(store: &throng_store::MetadataStore, f: impl FnOnce() -> R) -> R {
    if store.writes_waiting() == 0 {
        return f();
    }
    off_worker(f)
}

/// Runs `f`, which may block for long, so that a tokio worker running it first hands its
/// other tasks to another thread (`block_in_place`; elsewhere `f` just runs): one stalled
/// connection must not stall every connection that shares its worker.
pub(crate) fn off_worker<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}
