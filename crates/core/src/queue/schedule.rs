//! Messages that are not due yet: scheduled delivery (`x-opt-delivery-time` /
//! `x-opt-delivery-delay`) and the redelivery delay, kept by due time and woken by a
//! timer.
use super::*;

impl Queue {
    /// Keeps `entry` until `due`, arming the wake-up timer if it is the earliest.
    pub(super) fn schedule(&self, st: &mut State, entry: Entry, due: u64) {
        st.scheduled.insert((due, entry.seq), entry);
        if st.timer_at.is_some_and(|t| t <= due) {
            return;
        }
        st.timer_at = Some(due);
        // the timer holds the queue weakly: a deleted queue's timer finds nothing to wake
        let me = self.me.clone();
        self.clock.wake_at(
            due,
            Box::new(move || {
                if let Some(q) = me.upgrade() {
                    q.wake_scheduled();
                }
            }),
        );
    }

    /// Timer expiry: due messages become ready; the timer is re-armed for the next one.
    pub(super) fn wake_scheduled(&self) {
        let mut st = self.lock();
        st.timer_at = None;
        self.dispatch(&mut st);
        if let Some((&(due, seq), _)) = st.scheduled.first_key_value() {
            if let Some(e) = st.scheduled.remove(&(due, seq)) {
                self.schedule(&mut st, e, due);
            }
        }
        self.finish(st);
    }

    /// Moves scheduled messages that are due to the ready list.
    pub(super) fn release_due(st: &mut State, now: u64) {
        while let Some(entry) = st.scheduled.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let e = entry.remove();
            st.ready.requeue(e);
        }
    }

    /// Returns a released or failed message, after the redelivery delay if there is one.
    pub(super) fn redeliver(&self, st: &mut State, entry: Entry) {
        if self.redelivery_delay > 0 {
            let due = self.clock.now_ms() + self.redelivery_delay;
            self.schedule(st, entry, due);
        } else {
            st.ready.requeue(entry);
        }
    }
}
