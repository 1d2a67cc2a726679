//! What a consumer's outcome does to the message it settles: removed, returned in
//! order, counted as failed, dead-lettered, merged with new annotations, kept from the
//! consumer that called it undeliverable.
use super::*;
/// Largest message-annotations section a `modified` outcome's merge may leave a message
/// with (a consumer could otherwise grow a message at every redelivery).
pub const MAX_MODIFIED_ANNOTATIONS: usize = 64 * 1024;

impl Queue {
    /// Applies a consumer's outcome for the delivery `token`.
    pub fn settle(&self, key: ConsumerKey, token: u64, outcome: Outcome) {
        let mut dead: Option<Entry> = None;
        let mut guard = self.lock();
        {
            let st = &mut *guard;
            let Some((owner, mut entry)) = st.unacked.remove(&token) else {
                return;
            };
            if owner != key {
                st.unacked.insert(token, (owner, entry));
                return;
            }
            if let Outcome::Modified {
                undeliverable_here,
                annotations,
                ..
            } = &outcome
            {
                self.modify(
                    st,
                    &mut entry,
                    key,
                    *undeliverable_here,
                    annotations.as_ref(),
                );
            }
            match outcome {
                Outcome::Accepted => self.forget(st, &entry),
                Outcome::Released | Outcome::Modified { failed: false, .. } => {
                    self.redeliver(st, entry)
                }
                Outcome::Modified { failed: true, .. } => {
                    entry.delivery_count += 1;
                    if entry.delivery_count >= self.max_delivery_attempts {
                        self.release_bytes(st, &entry);
                        dead = Some(entry);
                    } else {
                        if let (true, Some(p)) = (entry.durable, &self.persistence) {
                            let rec = Record::DeliveryCount {
                                queue: p.key.clone(),
                                seq: entry.seq,
                                count: entry.delivery_count,
                            };
                            let _ = p.journal.append(rec, None);
                        }
                        self.redeliver(st, entry);
                    }
                }
                Outcome::Rejected(_) => {
                    self.release_bytes(st, &entry);
                    dead = Some(entry);
                }
            }
            self.dispatch(st);
        }
        // releases the lock, then moves anything that expired during dispatch
        self.finish(guard);
        if let Some(entry) = dead {
            // into the DLQ first, then gone from here: a crash in between duplicates
            if let Some(dlq) = &self.dead_letter {
                dlq.publish_durably(entry.msg.clone(), None);
            }
            self.journal_ack(&entry);
        }
    }

    /// What a `modified` outcome changes besides the count: the annotations it carries
    /// are merged into the message's (the bare message is kept byte for byte; a merge
    /// that fails, or would make the annotations larger than [`MAX_MODIFIED_ANNOTATIONS`],
    /// is skipped), and with `undeliverable_here` the consumer never gets it again.
    pub(super) fn modify(
        &self,
        st: &mut State,
        entry: &mut Entry,
        key: ConsumerKey,
        undeliverable_here: bool,
        annotations: Option<&throng_amqp::codec::Fields>,
    ) {
        if let Some(extra) = annotations {
            match entry.msg.with_annotations(extra) {
                Ok(m) if m.message_annotations_len() <= MAX_MODIFIED_ANNOTATIONS => {
                    let (old, new) = (entry.msg.len(), m.len());
                    st.bytes = (st.bytes + new).saturating_sub(old);
                    st.mem_bytes = (st.mem_bytes + new).saturating_sub(old);
                    entry.msg = m;
                }
                Ok(_) => {
                    tracing::debug!(queue = %self.name, seq = entry.seq, "modified: annotations too large, not merged")
                }
                Err(e) => {
                    tracing::debug!(queue = %self.name, seq = entry.seq, "modified: annotations not merged: {e}")
                }
            }
        }
        if undeliverable_here {
            let keys = &mut entry.not_to.get_or_insert_with(Box::default).0;
            // only consumers still attached: a client cycling links cannot grow it
            keys.retain(|k| st.consumers.iter().any(|c| c.key == *k));
            keys.push(key);
        }
    }

    /// Puts a delivery the connection could not send back at the head, unchanged.
    pub fn undeliverable(&self, key: ConsumerKey, token: u64) {
        let mut st = self.lock();
        if let Some((owner, entry)) = st.unacked.remove(&token) {
            if owner == key {
                st.ready.requeue(entry);
            } else {
                st.unacked.insert(token, (owner, entry));
            }
        }
    }

    /// An entry is settled: journal its ack and release its bytes.
    pub(super) fn forget(&self, st: &mut State, entry: &Entry) {
        self.journal_ack(entry);
        self.release_bytes(st, entry);
    }

    /// An entry held in memory leaves the queue.
    pub(super) fn release_bytes(&self, st: &mut State, entry: &Entry) {
        st.bytes = st.bytes.saturating_sub(entry.msg.len());
        st.mem_bytes = st.mem_bytes.saturating_sub(entry.msg.len());
        self.unblock_if_room(st);
    }

    /// Gives blocked producers their credit back once the queue has room for them.
    pub(super) fn unblock_if_room(&self, st: &mut State) {
        if st.bytes < self.max_bytes && !st.blocked.is_empty() {
            let (bytes, max) = (st.bytes, self.max_bytes);
            st.blocked.retain(|(outbox, link, need)| {
                let fits = bytes.saturating_add(*need) <= max;
                if fits {
                    outbox.push(Command::Unblocked { link: *link });
                }
                !fits
            });
        }
    }
}
