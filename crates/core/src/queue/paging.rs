//! Bounded memory: past its memory limit a persistent queue writes new messages to its
//! page files in arrival order and reads them back a batch at a time as memory frees.
use super::*;
/// Bytes read back from page files at a time.
pub(super) const PAGE_IN_BATCH: usize = 1024 * 1024;

impl Queue {
    /// Puts a new entry (already counted in `bytes`) where it belongs: the scheduled
    /// set, the page files (memory full, or older messages wait there), or the ready
    /// list. `in_order` says its sequence number is the highest yet.
    pub(super) fn admit(&self, st: &mut State, entry: Entry, in_order: bool) {
        if let Some(due) = entry.deliver_at {
            st.mem_bytes += entry.msg.len();
            self.schedule(st, entry, due);
            return;
        }
        let entry = if self.must_page(st, entry.msg.len()) {
            match self.page_out(st, entry) {
                None => return,
                Some(entry) => entry,
            }
        } else {
            entry
        };
        st.mem_bytes += entry.msg.len();
        if in_order {
            st.ready.push(entry);
        } else {
            st.ready.requeue(entry);
        }
    }

    /// Whether a new message of `len` bytes goes to disk: older messages already wait
    /// there (order), or it would take memory past the limit.
    pub(super) fn must_page(&self, st: &State, len: usize) -> bool {
        self.persistence.is_some()
            && (st.pages.as_ref().is_some_and(|p| !p.is_empty())
                || st.mem_bytes + len > self.memory_limit)
    }

    /// The queue's page directory, under the journal's.
    pub(super) fn page_dir(&self) -> Option<std::path::PathBuf> {
        let p = self.persistence.as_ref()?;
        Some(p.journal.pages_dir().join(page_dir_name(&p.key)))
    }

    /// Writes an entry to the page files. Gives it back if that fails: it then stays in
    /// memory, so nothing is lost (the failure is logged once).
    pub(super) fn page_out(&self, st: &mut State, entry: Entry) -> Option<Entry> {
        if st.pages.is_none() {
            let Some(dir) = self.page_dir() else {
                return Some(entry);
            };
            match PageStore::create(dir, DEFAULT_PAGE_FILE_BYTES) {
                Ok(p) => st.pages = Some(p),
                Err(e) => {
                    self.page_failed(st, &e);
                    return Some(entry);
                }
            }
        }
        let meta = PagedMeta {
            seq: entry.seq,
            delivery_count: entry.delivery_count,
            expires_at: entry.expires_at,
            priority: entry.priority,
            durable: entry.durable,
        };
        let result = match st.pages.as_mut() {
            Some(pages) => pages.append(meta, entry.msg.bytes()),
            None => return Some(entry),
        };
        match result {
            Ok(()) => None,
            Err(e) => {
                self.page_failed(st, &e);
                Some(entry)
            }
        }
    }

    pub(super) fn page_failed(&self, st: &mut State, e: &std::io::Error) {
        if !std::mem::replace(&mut st.page_error_logged, true) {
            tracing::error!(queue = %self.name, "cannot write page files, keeping messages in memory past the limit: {e}");
        }
    }

    /// Reads paged messages back: while memory is under half its limit, or — `force` —
    /// one batch (a consumer with credit is waiting, nothing else is ready, and memory
    /// is under its limit: the limit is exceeded by at most one batch).
    pub(super) fn page_in(&self, st: &mut State, force: bool) {
        let State {
            pages,
            mem_bytes,
            ready,
            bytes,
            ..
        } = st;
        let Some(store) = pages.as_mut() else {
            return;
        };
        let mut forced = force;
        while !store.is_empty() && (forced || *mem_bytes < self.memory_limit / 2) {
            forced = false;
            let want = (self.memory_limit * 3 / 4)
                .saturating_sub(*mem_bytes)
                .clamp(1, PAGE_IN_BATCH);
            let batch = match store.read(want) {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::error!(queue = %self.name, lost = store.len(), "page files unreadable; their messages are dropped (durable ones come back from the journal on restart): {e}");
                    *bytes = bytes.saturating_sub(store.bytes() as usize);
                    *pages = None;
                    return;
                }
            };
            for m in batch {
                let len = m.message.len();
                match Message::parse(m.message) {
                    Ok(msg) => {
                        *mem_bytes += len;
                        ready.requeue(Entry {
                            seq: m.meta.seq,
                            msg,
                            delivery_count: m.meta.delivery_count,
                            durable: m.meta.durable,
                            priority: m.meta.priority.min(LEVELS as u8 - 1),
                            deliver_at: None,
                            expires_at: m.meta.expires_at,
                            not_to: None,
                        });
                    }
                    Err(e) => {
                        tracing::warn!(queue = %self.name, seq = m.meta.seq, "paged message unparseable, dropped: {e}");
                        *bytes = bytes.saturating_sub(len);
                    }
                }
            }
        }
    }

    /// Messages waiting in page files, and their bytes.
    pub fn paged(&self) -> (u64, u64) {
        let st = self.lock();
        st.pages.as_ref().map_or((0, 0), |p| (p.len(), p.bytes()))
    }
}

/// A file-system-safe directory name for a queue's journal key (`tenant/address`):
/// letters, digits, `.`, `_` and `-` kept, every other byte as `%XX`; a long name is cut
/// and made unique with a hash of the whole.
fn page_dir_name(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-') || (b == b'.' && !out.is_empty()) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.len() > 200 {
        // FNV-1a: stable across runs, unlike the std hasher
        let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
        });
        out.truncate(180);
        while !out.is_char_boundary(out.len()) {
            out.pop();
        }
        out.push_str(&format!("~{hash:016x}"));
    }
    out
}
