//! The time the core reads and the timers it arms, injected: the node runs on the system
//! clock with tokio timers ([`SystemClock`]); tests run the core in memory on a clock
//! they move by hand ([`ManualClock`]), so expiry, scheduled delivery and redelivery
//! delays are tested without sleeping, sockets or a runtime. The engines take `now` the
//! same way.
//!
//! Times are milliseconds since the Unix epoch: message expiry and delivery times are
//! absolute (AMQP `absolute-expiry-time`, `x-opt-delivery-time`), and adapters that
//! report a message's remaining lifetime (MQTT 5 message expiry) read the same clock.

use std::sync::{Arc, Mutex, OnceLock};

/// A function a timer runs once it is due.
pub type Wake = Box<dyn FnOnce() + Send>;

/// The clock and timers of a tenant's addresses.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;

    /// Runs `wake` once, at `at_ms` or later (never before). A clock that cannot arm
    /// timers may drop it: queues also move due messages whenever they dispatch.
    fn wake_at(&self, at_ms: u64, wake: Wake);
}

/// How every part of the core holds its clock.
pub type SharedClock = Arc<dyn Clock>;

/// The system clock, with timers on the tokio runtime of the caller (none outside one).
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    fn wake_at(&self, at_ms: u64, wake: Wake) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return; // no runtime: due messages move on the next dispatch
        };
        let wait = std::time::Duration::from_millis(at_ms.saturating_sub(self.now_ms()));
        rt.spawn(async move {
            tokio::time::sleep(wait).await;
            wake();
        });
    }
}

/// The one system clock every tenant without an injected one shares.
pub fn system() -> SharedClock {
    static SYSTEM: OnceLock<SharedClock> = OnceLock::new();
    SYSTEM.get_or_init(|| Arc::new(SystemClock)).clone()
}

/// A clock that moves only when told to ([`ManualClock::advance`]), running the timers
/// that fall due, in due order, on the caller's thread: the core's time in tests.
pub struct ManualClock {
    state: Mutex<Manual>,
}

struct Manual {
    now: u64,
    /// Armed timers: due time, arming order (ties run in the order armed), function.
    timers: Vec<(u64, u64, Wake)>,
    armed: u64,
}

impl ManualClock {
    /// A clock standing at `now_ms`.
    pub fn new(now_ms: u64) -> Arc<Self> {
        Arc::new(ManualClock {
            state: Mutex::new(Manual {
                now: now_ms,
                timers: Vec::new(),
                armed: 0,
            }),
        })
    }

    /// Moves the clock `ms` forward and runs every timer due by then, including those
    /// the timers arm for times already past.
    pub fn advance(&self, ms: u64) {
        let target = {
            let mut st = crate::sync::lock(&self.state);
            st.now = st.now.saturating_add(ms);
            st.now
        };
        loop {
            // one at a time, outside the lock: a timer may read the clock or arm another
            let next = {
                let mut st = crate::sync::lock(&self.state);
                let due = st
                    .timers
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| t.0 <= target)
                    .min_by_key(|(_, t)| (t.0, t.1))
                    .map(|(i, _)| i);
                due.map(|i| st.timers.swap_remove(i).2)
            };
            match next {
                Some(wake) => wake(),
                None => break,
            }
        }
    }

    /// Timers armed and not yet run.
    pub fn pending(&self) -> usize {
        crate::sync::lock(&self.state).timers.len()
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        crate::sync::lock(&self.state).now
    }

    fn wake_at(&self, at_ms: u64, wake: Wake) {
        let mut st = crate::sync::lock(&self.state);
        st.armed += 1;
        let order = st.armed;
        st.timers.push((at_ms, order, wake));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn timers_run_when_due_in_due_order_and_not_before() {
        let clock = ManualClock::new(1_000);
        let log = Arc::new(Mutex::new(Vec::new()));
        for (at, name) in [(1_300, "c"), (1_100, "a"), (1_200, "b"), (1_100, "a2")] {
            let log = log.clone();
            clock.wake_at(at, Box::new(move || log.lock().unwrap().push(name)));
        }
        clock.advance(99);
        assert!(log.lock().unwrap().is_empty(), "nothing is due at 1099");
        clock.advance(101);
        assert_eq!(*log.lock().unwrap(), ["a", "a2", "b"]);
        assert_eq!(clock.pending(), 1);
        assert_eq!(clock.now_ms(), 1_200);
    }

    #[test]
    fn a_timer_may_arm_another_that_is_already_due() {
        let clock = ManualClock::new(0);
        let runs = Arc::new(AtomicU64::new(0));
        let (c, r) = (clock.clone(), runs.clone());
        clock.wake_at(
            10,
            Box::new(move || {
                r.fetch_add(1, Ordering::Relaxed);
                let r = r.clone();
                c.wake_at(
                    5,
                    Box::new(move || {
                        r.fetch_add(1, Ordering::Relaxed);
                    }),
                );
            }),
        );
        clock.advance(10);
        assert_eq!(runs.load(Ordering::Relaxed), 2);
        assert_eq!(clock.pending(), 0);
    }
}
