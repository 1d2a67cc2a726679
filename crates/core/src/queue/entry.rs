//! What a queued message carries besides its bytes (sequence, delivery count, priority,
//! due and expiry times, the consumers that refused it), what is read once of a message
//! when it is published ([`Prepared`]), and the clock those times are read from.
use super::*;

/// A message waiting in (or out on loan from) a queue.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) seq: u64,
    pub(crate) msg: Message,
    pub(crate) delivery_count: u32,
    /// Whether the entry is in the journal (acks must be journaled too).
    pub(crate) durable: bool,
    /// Header priority, 0–9 (default 4).
    pub(crate) priority: u8,
    /// Not to be delivered before this time, ms since the Unix epoch (message annotation
    /// `x-opt-delivery-time`, or arrival + `x-opt-delivery-delay`).
    pub(crate) deliver_at: Option<u64>,
    /// When it expires, in ms since the Unix epoch (header ttl from arrival, or the
    /// properties' absolute-expiry-time, whichever is sooner).
    pub(crate) expires_at: Option<u64>,
    /// The consumers that settled it `modified` with `undeliverable-here`: it is not
    /// offered to them again. One pointer, and no allocation, for the messages nobody
    /// refused (entries move on every dispatch: a wider field costs every message).
    pub(crate) not_to: Option<Box<Refusers>>,
}

/// What a queue needs to know of a message besides its bytes — header facts, expiry,
/// scheduled time — read once per publish: a topic hands the same one to every
/// subscription queue instead of each decoding the message again (each decode also
/// touches the message buffer's shared reference count).
#[derive(Debug, Clone)]
pub struct Prepared {
    pub(super) durable: bool,
    pub(super) priority: u8,
    pub(super) expires_at: Option<u64>,
    pub(super) deliver_at: Option<u64>,
    /// The message asks to be a topic's retained message (`x-opt-retain-message`).
    pub(super) retain: bool,
}

impl Prepared {
    /// Reads `msg`'s header, expiry, scheduling and retain annotations (the annotations in
    /// one pass); relative times (header ttl, `x-opt-delivery-delay`) count from
    /// `clock`'s now.
    pub fn of(msg: &Message, clock: &dyn Clock) -> Prepared {
        Self::with_header(msg, &msg.header().unwrap_or_default(), clock)
    }

    pub(super) fn with_header(msg: &Message, header: &Header, clock: &dyn Clock) -> Prepared {
        let mut now = Now::lazy(clock);
        let by_ttl = header.ttl.map(|t| now.ms() + t as u64);
        let absolute = msg
            .absolute_expiry_time()
            .ok()
            .flatten()
            .filter(|t| *t > 0)
            .map(|t| t as u64);
        let expires_at = match (by_ttl, absolute) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let (deliver_at, retain) = if msg.has_message_annotations() {
            annotated(msg, &mut now)
        } else {
            (None, false)
        };
        Prepared {
            durable: header.durable == Some(true),
            priority: header.priority.unwrap_or(4).min(LEVELS as u8 - 1),
            expires_at,
            deliver_at,
            retain,
        }
    }

    /// Whether the header says `durable`.
    pub fn durable(&self) -> bool {
        self.durable
    }

    /// Whether the message asks to be retained (only topics keep one).
    pub fn retain(&self) -> bool {
        self.retain
    }
}

impl Entry {
    /// A fresh entry from the message and what was read of it.
    pub(super) fn new(
        seq: u64,
        msg: Message,
        prep: &Prepared,
        delivery_count: u32,
        durable: bool,
    ) -> Entry {
        Entry {
            seq,
            msg,
            delivery_count,
            durable,
            priority: prep.priority,
            expires_at: prep.expires_at,
            deliver_at: prep.deliver_at,
            not_to: None,
        }
    }

    pub(super) fn expired(&self, now: &mut Now) -> bool {
        self.expires_at.is_some_and(|t| t <= now.ms())
    }

    /// Whether it may go to consumer `key` (none refused it).
    pub(super) fn deliverable_to(&self, key: ConsumerKey) -> bool {
        self.not_to.as_ref().is_none_or(|r| !r.0.contains(&key))
    }
}

/// What a message asks for in its annotations: a delivery time (`x-opt-delivery-time`, a
/// timestamp, or `x-opt-delivery-delay`, milliseconds from `now`) if in the future, and
/// whether it is to be retained (`x-opt-retain-message`).
pub(super) fn annotated(msg: &Message, now: &mut Now) -> (Option<u64>, bool) {
    // one pass, no allocation for the annotations it does not want (MQTT messages always
    // carry a few)
    let Ok([time, delay, retain]) = msg.find_annotations([
        "x-opt-delivery-time",
        "x-opt-delivery-delay",
        "x-opt-retain-message",
    ]) else {
        return (None, false);
    };
    let retain = matches!(retain, Some(throng_amqp::Value::Bool(true)));
    let at = match (time, delay) {
        (Some(throng_amqp::Value::Timestamp(t)), _) => Some(t as u64),
        (Some(v), _) => v.as_i64().map(|t| t as u64),
        (None, Some(v)) => v.as_i64().filter(|d| *d > 0).map(|d| now.ms() + d as u64),
        (None, None) => return (None, retain),
    };
    (at.filter(|t| *t > now.ms()), retain)
}

/// The time, read at most once per dispatch pass or message, and only if a message has an
/// expiry or a delivery time: most have neither, and reading the clock is a measurable
/// share of a small message's cost.
pub(super) struct Now<'a> {
    clock: &'a dyn Clock,
    at: Option<u64>,
}

impl<'a> Now<'a> {
    pub(super) fn lazy(clock: &'a dyn Clock) -> Self {
        Now { clock, at: None }
    }

    pub(super) fn ms(&mut self) -> u64 {
        *self.at.get_or_insert_with(|| self.clock.now_ms())
    }
}

/// The consumers that refused a message (`undeliverable-here`), behind one pointer.
#[derive(Debug, Clone, Default)]
pub(crate) struct Refusers(pub(crate) Vec<ConsumerKey>);
