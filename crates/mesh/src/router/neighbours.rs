//! Neighbour discovery on each link: hellos out every interval, two-way detection from
//! the peer's hellos, death by silence, and the digest comparison that starts a repair.

use std::time::Instant;

use super::Router;
use crate::config::Config;
use crate::event::{DownReason, Event};
use crate::id::{LinkId, NodeId};
use crate::wire::{Hello, Message};

/// The protocol's state of one link.
#[derive(Debug)]
pub(super) struct Link {
    /// The configured cost (at least 1).
    pub cost: u32,
    /// The node whose hellos arrive on the link, once one has.
    pub peer: Option<NodeId>,
    /// That node's run.
    pub peer_instance: u64,
    /// When its last hello arrived (`None` once it was declared silent).
    pub heard: Option<Instant>,
    /// Two-way: the peer's hellos name this node.
    pub up: bool,
    pub next_hello: Instant,
    /// Consecutive hellos whose digest differed from ours.
    pub mismatches: u8,
    pub last_summary: Option<Instant>,
    pub duplicate_reported: bool,
}

impl Link {
    pub fn new(cost: u32, now: Instant) -> Link {
        Link {
            cost,
            peer: None,
            peer_instance: 0,
            heard: None,
            up: false,
            next_hello: now,
            mismatches: 0,
            last_summary: None,
            duplicate_reported: false,
        }
    }

    /// The link's timers: the next hello, and while up, when the peer counts as silent.
    pub fn deadlines(&self, config: &Config) -> impl Iterator<Item = Instant> {
        let dead = if self.up {
            self.heard.map(|t| t + config.dead_after)
        } else {
            None
        };
        std::iter::once(self.next_hello).chain(dead)
    }

    /// No hello from the peer within `dead_after`.
    pub fn silent_since(&self, now: Instant, config: &Config) -> bool {
        self.heard.is_none_or(|t| now >= t + config.dead_after)
    }
}

impl Router {
    pub(super) fn on_hello(&mut self, link: LinkId, h: Hello, now: Instant) {
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        if h.from == self.id {
            if !l.duplicate_reported {
                l.duplicate_reported = true;
                self.events.push_back(Event::DuplicateId { link });
            }
            return;
        }
        let mut changed = false;
        if l.peer.as_ref() != Some(&h.from) || l.peer_instance != h.instance {
            // a new neighbour (or a restarted one) on this link: answer at once so it
            // learns of us without waiting a hello interval
            let was_up = l.up;
            l.peer_instance = h.instance;
            l.next_hello = now;
            if was_up {
                self.set_down(link, DownReason::Replaced);
                changed = true;
            }
        }
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        l.peer = Some(h.from);
        l.heard = Some(now);
        let hears_us = h.seen.as_ref() == Some(&self.id);
        if !hears_us {
            // it does not hear us (yet): our next hello tells it we hear it
            l.next_hello = now;
        }
        if hears_us && !l.up {
            l.up = true;
            l.mismatches = 0;
            let node = l.peer.clone().unwrap_or_else(|| self.id.clone());
            let cost = l.cost;
            self.events
                .push_back(Event::NeighbourUp { node, link, cost });
            self.send_summary(link, now);
            changed = true;
        } else if !hears_us && l.up {
            self.set_down(link, DownReason::OneWay);
            changed = true;
        }
        if changed {
            self.neighbours_changed(now);
        }
        self.compare_digest(link, h.digest, now);
    }

    /// A neighbour's database digest that differs from ours on two hellos in a row
    /// (one may just be a flood in flight) starts a summary exchange, at most once per
    /// `resync_interval`.
    fn compare_digest(&mut self, link: LinkId, theirs: u64, now: Instant) {
        let ours = self.digest();
        let resync = self.config.resync_interval;
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        if !l.up || theirs == ours {
            l.mismatches = 0;
            return;
        }
        l.mismatches = l.mismatches.saturating_add(1);
        if l.mismatches >= 2 && l.last_summary.is_none_or(|t| now >= t + resync) {
            self.send_summary(link, now);
        }
    }

    pub(super) fn send_due_hellos(&mut self, now: Instant) {
        if !self.links.values().any(|l| l.next_hello <= now) {
            return;
        }
        let digest = self.digest();
        let (dead_after, interval) = (self.config.dead_after, self.config.hello_interval);
        for (id, l) in self.links.iter_mut() {
            if l.next_hello > now {
                continue;
            }
            let hears = l.heard.is_some_and(|t| now < t + dead_after);
            let hello = Hello {
                from: self.id.clone(),
                instance: self.instance,
                seen: if hears { l.peer.clone() } else { None },
                digest,
            };
            self.out.push_back((*id, Message::Hello(hello)));
            l.next_hello = now + interval;
        }
    }
}
