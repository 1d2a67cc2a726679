//! Mobile addresses: this node's own (batched into changes and flooded), every other
//! node's (applied as whole sets or changes), and the queries the data plane forwards
//! by — where an anycast message may go, and which links a multicast message takes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use super::Router;
use crate::event::{Destination, Event};
use crate::id::{AddressKey, LinkId, NodeId};
use crate::wire::{AddressChange, Addresses, Message, Version};

impl Router {
    /// This node has consumers for `key` with `credit` between them (0: consumers, but
    /// none can take a message now). Sent within `address_batch`, with other changes.
    pub fn set_address(&mut self, key: AddressKey, credit: u32, now: Instant) {
        self.pending.insert(key, Some(credit));
        self.schedule_flush(now);
    }

    /// This node has no consumers for `key` any more.
    pub fn remove_address(&mut self, key: AddressKey, now: Instant) {
        self.pending.insert(key, None);
        self.schedule_flush(now);
    }

    fn schedule_flush(&mut self, now: Instant) {
        if self.flush_at.is_none() {
            self.flush_at = Some(now + self.config.address_batch);
        }
    }

    /// Applies the pending changes to this node's address set and floods them as one
    /// change (nothing when they cancel out).
    pub(super) fn flush_addresses(&mut self) {
        self.flush_at = None;
        let pending = std::mem::take(&mut self.pending);
        let instance = self.instance;
        let rec = self.db.entry(self.id.clone()).or_default();
        let (version, set) = rec
            .addresses
            .get_or_insert_with(|| (Version { instance, seq: 0 }, BTreeMap::new()));
        let mut changed = Vec::new();
        let mut removed = Vec::new();
        for (key, credit) in pending {
            match credit {
                Some(c) => {
                    if set.insert(key.clone(), c) != Some(c) {
                        changed.push((key, c));
                    }
                }
                None => {
                    if set.remove(&key).is_some() {
                        removed.push(key);
                    }
                }
            }
        }
        if changed.is_empty() && removed.is_empty() {
            return;
        }
        version.seq += 1;
        let msg = Message::Addresses(Addresses {
            origin: self.id.clone(),
            version: *version,
            change: AddressChange::Delta {
                set: changed,
                removed,
            },
        });
        self.digest = None;
        self.flood(&msg, None);
    }

    /// A whole address set or a change from a neighbour. Applied when it is news; a
    /// change that does not follow the version held is dropped (the digest repairs it).
    /// News is flooded on.
    pub(super) fn on_addresses(&mut self, from: Option<LinkId>, a: Addresses) {
        if a.origin == self.id {
            // a previous run's set: supersede it with the current one
            let own = self.own_version(true);
            if a.version >= own {
                let v = Version {
                    instance: own.instance.max(a.version.instance),
                    seq: a.version.seq.max(own.seq) + 1,
                };
                let rec = self.db.entry(self.id.clone()).or_default();
                let set = rec.addresses.take().map(|(_, s)| s).unwrap_or_default();
                let full: Vec<(AddressKey, u32)> =
                    set.iter().map(|(k, c)| (k.clone(), *c)).collect();
                rec.addresses = Some((v, set));
                self.digest = None;
                let msg = Message::Addresses(Addresses {
                    origin: self.id.clone(),
                    version: v,
                    change: AddressChange::Full(full),
                });
                self.flood(&msg, None);
            }
            return;
        }
        let origin = a.origin.clone();
        let rec = self.db.entry(origin.clone()).or_default();
        let held = rec.addr_version();
        let mut touched: Vec<(AddressKey, Option<u32>)> = Vec::new();
        match &a.change {
            AddressChange::Full(set) => {
                if held.is_some_and(|v| v >= a.version) {
                    return;
                }
                let new: BTreeMap<AddressKey, u32> = set.iter().cloned().collect();
                let old = rec.addresses.take().map(|(_, s)| s).unwrap_or_default();
                for (k, c) in &new {
                    if old.get(k) != Some(c) {
                        touched.push((k.clone(), Some(*c)));
                    }
                }
                for k in old.keys() {
                    if !new.contains_key(k) {
                        touched.push((k.clone(), None));
                    }
                }
                rec.addresses = Some((a.version, new));
            }
            AddressChange::Delta { set, removed } => {
                let Some((v, map)) = rec.addresses.as_mut() else {
                    return;
                };
                if v.instance != a.version.instance || v.seq.checked_add(1) != Some(a.version.seq) {
                    return;
                }
                *v = a.version;
                for (k, c) in set {
                    if map.insert(k.clone(), *c) != Some(*c) {
                        touched.push((k.clone(), Some(*c)));
                    }
                }
                for k in removed {
                    if map.remove(k).is_some() {
                        touched.push((k.clone(), None));
                    }
                }
            }
        }
        self.digest = None;
        let reachable = self.routes.contains_key(&origin);
        for (key, credit) in touched {
            match credit {
                Some(c) => {
                    self.index
                        .entry(key.clone())
                        .or_default()
                        .insert(origin.clone(), c);
                }
                None => self.unindex(&key, &origin),
            }
            if reachable {
                self.events.push_back(Event::AddressChanged(key));
            }
        }
        self.flood(&Message::Addresses(a), from);
    }

    pub(super) fn unindex(&mut self, key: &AddressKey, node: &NodeId) {
        if let Some(m) = self.index.get_mut(key) {
            m.remove(node);
            if m.is_empty() {
                self.index.remove(key);
            }
        }
    }

    /// Every address some other node advertises consumers for (reachable or not).
    pub fn remote_addresses(&self) -> impl Iterator<Item = &AddressKey> {
        self.index.keys()
    }

    /// The other nodes this node can reach that have consumers for `key`, with their
    /// advertised credit and the way there: where an anycast message may go.
    pub fn destinations(&self, key: &AddressKey) -> Vec<Destination> {
        let Some(nodes) = self.index.get(key) else {
            return Vec::new();
        };
        nodes
            .iter()
            .filter_map(|(node, credit)| {
                let r = self.routes.get(node)?;
                Some(Destination {
                    node: node.clone(),
                    credit: *credit,
                    cost: r.cost,
                    link: r.link,
                })
            })
            .collect()
    }

    /// The links a multicast message for `key` that `origin` sent takes from this node:
    /// down `origin`'s shortest-path tree, only into branches with consumers, so every
    /// node with consumers gets it once however many paths there are. `arrived_on` is
    /// the link it came on (`None` when this node is the origin). `None`: the message
    /// came from a node other than this node's parent in the tree (a route still
    /// changing) and is dropped, so no node takes it twice.
    pub fn multicast_targets(
        &mut self,
        origin: &NodeId,
        key: &AddressKey,
        arrived_on: Option<LinkId>,
    ) -> Option<Vec<LinkId>> {
        let root = self.graph.index(origin)?;
        let me = self.graph.index(&self.id)?;
        if !self.trees.contains_key(origin) {
            let t = self.graph.tree(root);
            self.trees.insert(origin.clone(), t);
        }
        let tree = self.trees.get(origin)?;
        match (root == me, arrived_on) {
            (true, None) => {}
            (false, Some(link)) => {
                let parent = tree.parent[me]?;
                let peer = self.links.get(&link).and_then(|l| l.peer.as_ref())?;
                if peer != self.graph.node(parent) {
                    return None;
                }
            }
            _ => return None,
        }
        let mut children = BTreeSet::new();
        if let Some(members) = self.index.get(key) {
            for member in members.keys() {
                let Some(m) = self.graph.index(member) else {
                    continue;
                };
                if m == me || tree.dist[m].is_none() || !self.routes.contains_key(member) {
                    continue;
                }
                // walk up from the member; if the path passes through this node, the node
                // just below it is the child to send to
                let (mut below, mut cur) = (m, tree.parent[m]);
                let mut steps = 0;
                while let Some(c) = cur {
                    if c == me {
                        children.insert(below);
                        break;
                    }
                    steps += 1;
                    if steps > self.graph.len() {
                        break;
                    }
                    below = c;
                    cur = tree.parent[c];
                }
            }
        }
        Some(
            children
                .into_iter()
                .filter_map(|c| self.active_link(self.graph.node(c)))
                .collect(),
        )
    }
}
