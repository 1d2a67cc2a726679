//! Consumers, browsers and producers waiting for room, coming and going; consumer
//! credit.
use super::*;

impl Queue {
    /// Asks for a [`Command::Unblocked`] on `link` once the queue has room for `need`
    /// more bytes (at once if it has now); asking again while waiting changes nothing.
    pub(crate) fn notify_when_room(&self, outbox: Arc<Outbox>, link: Handle, need: usize) {
        let mut st = self.lock();
        let need = need.max(1);
        if st.bytes.saturating_add(need) <= self.max_bytes {
            outbox.push(Command::Unblocked { link });
        } else if let Some(b) = st
            .blocked
            .iter_mut()
            .find(|(o, l, _)| *l == link && Arc::ptr_eq(o, &outbox))
        {
            b.2 = b.2.max(need);
        } else {
            st.blocked.push((outbox, link, need));
        }
    }

    /// Forgets a blocked producer (its link is gone).
    pub fn remove_producer(&self, outbox: &Arc<Outbox>, link: Handle) {
        self.lock()
            .blocked
            .retain(|(o, l, _)| !(Arc::ptr_eq(o, outbox) && *l == link));
    }

    /// How many producers wait for room (for management, and to show none is left
    /// behind by a producer that went).
    pub fn waiting_producers(&self) -> usize {
        self.lock().blocked.len()
    }

    /// Registers a consumer; it gets messages once it grants credit.
    pub fn add_consumer(&self, outbox: Arc<Outbox>, link: Handle, presettled: bool) -> ConsumerKey {
        self.add_consumer_selecting(outbox, link, presettled, None)
    }

    /// Registers a consumer that only takes messages matching `selector`; messages it
    /// skips stay in the queue, in order, for other consumers.
    pub fn add_consumer_selecting(
        &self,
        outbox: Arc<Outbox>,
        link: Handle,
        presettled: bool,
        selector: Option<Selector>,
    ) -> ConsumerKey {
        let key = ConsumerKey::fresh();
        self.lock().consumers.push(Consumer {
            key,
            outbox,
            link,
            presettled,
            credit: CreditWindow::new(),
            selector: selector.map(Arc::new),
            browse_from: None,
        });
        key
    }

    /// Registers a browser: it receives presettled copies of the waiting messages, in
    /// arrival order, then of new ones, and takes nothing from the queue.
    pub fn add_browser(
        &self,
        outbox: Arc<Outbox>,
        link: Handle,
        selector: Option<Selector>,
    ) -> ConsumerKey {
        let key = ConsumerKey::fresh();
        self.lock().consumers.push(Consumer {
            key,
            outbox,
            link,
            presettled: true,
            credit: CreditWindow::new(),
            selector: selector.map(Arc::new),
            browse_from: Some(0),
        });
        key
    }

    /// Updates a consumer's credit: `limit` is the deliveries its connection took from the
    /// address so far plus the credit the link has now (see `CreditWindow` in the link module).
    pub fn flow(&self, key: ConsumerKey, limit: u32, drain: bool) {
        let mut st = self.lock();
        if let Some(c) = st.consumers.iter_mut().find(|c| c.key == key) {
            c.credit.limit = limit;
            c.credit.drain = drain;
        }
        self.dispatch(&mut st);
        self.finish(st);
    }

    /// Removes a consumer; its unsettled messages go back to the queue in their order.
    pub fn remove_consumer(&self, key: ConsumerKey) {
        let mut st = self.lock();
        st.consumers.retain(|c| c.key != key);
        let mut back: Vec<Entry> = Vec::new();
        st.unacked.retain(|_, (k, e)| {
            if *k == key {
                back.push(e.clone());
                false
            } else {
                true
            }
        });
        back.sort_by_key(|e| e.seq);
        for e in back {
            st.ready.requeue(e);
        }
        self.dispatch(&mut st);
        self.finish(st);
    }
}
