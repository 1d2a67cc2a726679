//! A message coming into the queue: stored (and journaled when durable), staged for a
//! transaction's commit, restored from the journal after a restart; and the ways one
//! leaves without a consumer (expiry, purge).
use super::paging::PAGE_IN_BATCH;
use super::*;

impl Queue {
    /// Puts a message recovered from the journal back, before any client attaches.
    pub fn restore(&self, seq: u64, msg: Message, delivery_count: u32) {
        let mut st = self.lock();
        st.bytes += msg.len();
        st.next_seq = st.next_seq.max(seq + 1);
        let prep = Prepared::of(&msg, &*self.clock);
        let entry = Entry::new(seq, msg, &prep, delivery_count, true);
        self.admit(&mut st, entry, true);
    }

    /// Stores a message and hands it to a consumer with credit, if there is one; a durable
    /// message is also journaled and `on_durable` runs once it is on disk. Returns what
    /// happened and whether the queue still has room. Producers reach this through
    /// [`crate::Tenant::publish`], which decides what they are told.
    pub(crate) fn publish_durably(
        &self,
        msg: Message,
        on_durable: Option<MakeOnDurable<'_>>,
    ) -> (Stored, bool) {
        let prep = Prepared::of(&msg, &*self.clock);
        self.store(msg, &prep, on_durable, true)
    }

    /// Like [`Queue::publish_durably`] with the message already read (a topic reads it
    /// once for all its subscriptions).
    pub(crate) fn publish_prepared(
        &self,
        msg: Message,
        prep: &Prepared,
        on_durable: Option<MakeOnDurable<'_>>,
    ) -> (Stored, bool) {
        self.store(msg, prep, on_durable, true)
    }

    /// Stores a message; without `expires`, it never expires here (a message moved to an
    /// expiry address must not expire again).
    pub(super) fn store(
        &self,
        msg: Message,
        prep: &Prepared,
        on_durable: Option<MakeOnDurable<'_>>,
        expires: bool,
    ) -> (Stored, bool) {
        let durable = self.is_persistent() && prep.durable;
        let mut st = self.lock();
        if self.reject_when_full && st.bytes >= self.max_bytes {
            return (Stored::Full, false);
        }
        let seq = st.next_seq;
        let stored = match self.journal_enqueue(&mut st, durable, seq, &msg, on_durable) {
            Ok(true) => Stored::WhenDurable,
            Ok(false) => Stored::Now,
            Err(()) => return (Stored::Failed, st.bytes < self.max_bytes),
        };
        st.next_seq += 1;
        st.bytes += msg.len();
        let mut entry = Entry::new(seq, msg, prep, 0, durable);
        if !expires {
            entry.expires_at = None;
        }
        self.admit(&mut st, entry, true);
        self.dispatch(&mut st);
        let room = st.bytes < self.max_bytes;
        self.finish(st);
        (stored, room)
    }

    /// Takes a transaction's message in without showing it to consumers: counted against
    /// the byte bound (refused when it does not fit, whatever the full policy: a commit
    /// never takes a queue past its bound) and journaled when durable, `on_durable`
    /// running once it is on disk. Returns the entry and whether it was journaled;
    /// [`Queue::admit_staged`] shows it once the whole transaction is safe,
    /// [`Queue::abandon_staged`] takes it back.
    pub(crate) fn stage(
        &self,
        msg: Message,
        prep: &Prepared,
        on_durable: Option<MakeOnDurable<'_>>,
    ) -> Result<(Entry, bool), Refusal> {
        let durable = self.is_persistent() && prep.durable;
        let mut st = self.lock();
        if st.bytes.saturating_add(msg.len()) > self.max_bytes {
            return Err(Refusal::Full);
        }
        let seq = st.next_seq;
        let journaled = self
            .journal_enqueue(&mut st, durable, seq, &msg, on_durable)
            .map_err(|()| Refusal::StoreFailed)?;
        st.next_seq += 1;
        st.bytes += msg.len();
        Ok((Entry::new(seq, msg, prep, 0, durable), journaled))
    }

    /// Appends the `Enqueue` record of a durable message under the queue lock (journal
    /// order is queue order), `on_durable` running once it is on disk. `Ok(false)`: not
    /// journaled (not durable, or no journal); `Err`: the journal refused it (logged once
    /// per queue).
    pub(super) fn journal_enqueue(
        &self,
        st: &mut State,
        durable: bool,
        seq: u64,
        msg: &Message,
        on_durable: Option<MakeOnDurable<'_>>,
    ) -> Result<bool, ()> {
        let (true, Some(p)) = (durable, &self.persistence) else {
            return Ok(false);
        };
        let rec = Record::Enqueue {
            queue: p.key.clone(),
            seq,
            message: msg.bytes().clone(),
        };
        match p.journal.append(rec, on_durable.map(|make| make())) {
            Ok(()) => Ok(true),
            Err(e) => {
                if !std::mem::replace(&mut st.journal_error_logged, true) {
                    tracing::error!(queue = %self.name, "journal append failed: {e}; durable messages are refused");
                }
                Err(())
            }
        }
    }

    /// Shows staged entries to consumers (a committed transaction's messages).
    pub(crate) fn admit_staged(&self, entries: Vec<Entry>) {
        let mut st = self.lock();
        for e in entries {
            self.admit(&mut st, e, false);
        }
        self.dispatch(&mut st);
        self.finish(st);
    }

    /// Takes staged entries back (a transaction that could not commit): their bytes are
    /// freed and the journaled ones acknowledged, so a restart does not bring them back.
    pub(crate) fn abandon_staged(&self, entries: Vec<Entry>) {
        let mut st = self.lock();
        for e in &entries {
            st.bytes = st.bytes.saturating_sub(e.msg.len());
        }
        self.unblock_if_room(&mut st);
        drop(st);
        for e in &entries {
            self.journal_ack(e);
        }
    }

    /// Journals that a durable entry is gone.
    pub(super) fn journal_ack(&self, entry: &Entry) {
        if let (true, Some(p)) = (entry.durable, &self.persistence) {
            let _ = p.journal.append(
                Record::Ack {
                    queue: p.key.clone(),
                    seq: entry.seq,
                },
                None,
            );
        }
    }

    /// Takes an expired entry out of circulation (its ack is journaled in `finish`, after
    /// the copy to the expiry address).
    pub(super) fn expire(&self, st: &mut State, entry: Entry) {
        st.expired_count += 1;
        self.release_bytes(st, &entry);
        st.expired.push(entry);
    }

    /// Removes every message waiting in the queue, in memory and paged; messages out on
    /// loan to consumers stay theirs. Returns how many were removed.
    pub fn purge(&self) -> u64 {
        let mut st = self.lock();
        let mut gone = Vec::with_capacity(st.ready.len() + st.scheduled.len());
        while let Some(e) = st.ready.pop_first() {
            gone.push(e);
        }
        gone.extend(std::mem::take(&mut st.scheduled).into_values());
        let mut removed = gone.len() as u64;
        for e in &gone {
            self.forget(&mut st, e);
        }
        if let Some(mut pages) = st.pages.take() {
            loop {
                match pages.read(PAGE_IN_BATCH) {
                    Ok(batch) if !batch.is_empty() => {
                        for m in batch {
                            removed += 1;
                            st.bytes = st.bytes.saturating_sub(m.message.len());
                            if let (true, Some(p)) = (m.meta.durable, &self.persistence) {
                                let _ = p.journal.append(
                                    Record::Ack {
                                        queue: p.key.clone(),
                                        seq: m.meta.seq,
                                    },
                                    None,
                                );
                            }
                        }
                    }
                    Ok(_) => break,
                    Err(e) => {
                        tracing::error!(queue = %self.name, "purge: page files unreadable: {e}");
                        st.bytes = st.bytes.saturating_sub(pages.bytes() as usize);
                        break;
                    }
                }
            }
        }
        self.unblock_if_room(&mut st);
        self.finish(st);
        removed
    }
}
