//! The journal's sense of elapsed time, injected: the node runs on the system's monotonic
//! clock; tests move a [`ManualTicks`] by hand, so the copy-forward patience is tested
//! without sleeping and without depending on how fast a loaded machine appends.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Where the journal reads elapsed time: a monotonic duration since an arbitrary start.
#[derive(Clone)]
pub struct Ticks(Arc<dyn Fn() -> Duration + Send + Sync>);

impl Ticks {
    /// The system's monotonic clock.
    pub fn system() -> Ticks {
        static START: OnceLock<Instant> = OnceLock::new();
        let start = *START.get_or_init(Instant::now);
        Ticks(Arc::new(move || start.elapsed()))
    }

    /// Time as `manual` says.
    pub fn manual(manual: &ManualTicks) -> Ticks {
        let t = Arc::clone(&manual.0);
        Ticks(Arc::new(move || {
            Duration::from_millis(t.load(Ordering::Relaxed))
        }))
    }

    /// The time now.
    pub(crate) fn now(&self) -> Duration {
        (self.0)()
    }
}

impl Default for Ticks {
    fn default() -> Self {
        Ticks::system()
    }
}

impl fmt::Debug for Ticks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ticks")
    }
}

/// A clock for tests: it stands still until [`ManualTicks::advance`].
#[derive(Debug, Clone, Default)]
pub struct ManualTicks(Arc<AtomicU64>);

impl ManualTicks {
    /// A clock at zero.
    pub fn new() -> ManualTicks {
        ManualTicks::default()
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as u64, Ordering::Relaxed);
    }
}
