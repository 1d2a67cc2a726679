//! Lock helpers. A panic while one connection task holds an address lock must not poison
//! the address for every other client, so poisoned locks are taken over as they are: each
//! critical section leaves its state consistent between statements that can panic.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, recovering the guard from a poisoned lock.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
