//! One node's routing protocol: the state machine the server drives with links coming
//! and going, messages from neighbours and the time, and that answers with messages to
//! send, events, and the tables the data plane forwards by.
//!
//! - **Neighbours** (`neighbours.rs`): hellos on every link; a link is two-way once each
//!   side's hello names the other; a neighbour is dead when its link closes (at once) or
//!   when it has been silent for `dead_after`.
//! - **Records**: each node's link-state record (its two-way neighbours with costs) and
//!   its address set (addresses with consumers, with their credit) are versioned and
//!   flooded: a node forwards a record to its other neighbours only when it was news.
//!   Address sets travel as changes; a change that does not apply on top of what a node
//!   holds is dropped and repaired by the summary exchange.
//! - **Repair**: on link-up both sides exchange a summary (every record's version) and
//!   ask each other for what they lack; afterwards every hello carries a digest of the
//!   database, and a digest that keeps differing triggers the same exchange. At rest a
//!   node sends only hellos: traffic grows with its neighbours, not with the mesh.
//! - **Routes**: shortest paths by cost over two-way links, recomputed on every change
//!   of a link-state record; loop-free because every node computes from the same records
//!   and every hop strictly shortens the remaining distance.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;

use crate::config::Config;
use crate::event::{DownReason, Event, Route};
use crate::id::{AddressKey, LinkId, NodeId};
use crate::spf::{Graph, Tree};
use crate::wire::{
    AddressChange, Addresses, LinkState, Message, Request, Summary, SummaryEntry, Version, Want,
};

mod addresses;
mod neighbours;
mod records;

use neighbours::Link;
use records::Record;

/// The routing protocol of one node. Sans-IO: no sockets, no clock, no threads; see the
/// module docs for the protocol.
pub struct Router {
    id: NodeId,
    instance: u64,
    config: Config,
    links: BTreeMap<LinkId, Link>,
    /// Every node's records, this node's own included.
    db: BTreeMap<NodeId, Record>,
    /// This node's address changes not yet sent, and when they go.
    pending: BTreeMap<AddressKey, Option<u32>>,
    flush_at: Option<Instant>,
    /// When the routes are recomputed next (a change needs it).
    spf_at: Option<Instant>,
    graph: Graph,
    routes: BTreeMap<NodeId, Route>,
    /// Shortest-path trees from multicast origins, until the graph changes.
    trees: BTreeMap<NodeId, Tree>,
    /// For every address, the other nodes that advertise it, with their credit.
    index: BTreeMap<AddressKey, BTreeMap<NodeId, u32>>,
    digest: Option<u64>,
    out: VecDeque<(LinkId, Message)>,
    events: VecDeque<Event>,
}

impl Router {
    /// A node named `id` in its run `instance`, which must grow from one start of the
    /// node to the next (the start time in milliseconds does).
    pub fn new(id: NodeId, instance: u64, config: Config) -> Router {
        let mut db = BTreeMap::new();
        let v = Version { instance, seq: 0 };
        db.insert(
            id.clone(),
            Record {
                link_state: Some((v, Vec::new())),
                addresses: Some((v, BTreeMap::new())),
                unreachable_since: None,
            },
        );
        let mut r = Router {
            id,
            instance,
            config,
            links: BTreeMap::new(),
            db,
            pending: BTreeMap::new(),
            flush_at: None,
            spf_at: None,
            graph: Graph::default(),
            routes: BTreeMap::new(),
            trees: BTreeMap::new(),
            index: BTreeMap::new(),
            digest: None,
            out: VecDeque::new(),
            events: VecDeque::new(),
        };
        r.graph = r.build_graph();
        r
    }

    /// This node's id.
    pub fn id(&self) -> &NodeId {
        &self.id
    }

    /// The timers this router runs on.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A connection to a neighbour opened (either end may have dialled). Hellos start on
    /// it at once; costs below 1 count as 1.
    pub fn link_up(&mut self, link: LinkId, cost: u32, now: Instant) {
        self.links.insert(link, Link::new(cost.max(1), now));
        self.send_due_hellos(now);
    }

    /// A connection to a neighbour closed: the neighbour is gone from this link at once.
    pub fn link_down(&mut self, link: LinkId, now: Instant) {
        if let Some(l) = self.links.remove(&link) {
            if let (true, Some(peer)) = (l.up, l.peer) {
                self.events.push_back(Event::NeighbourDown {
                    node: peer,
                    link,
                    reason: DownReason::Closed,
                });
            }
            self.neighbours_changed(now);
        }
    }

    /// A message arrived from the neighbour on `link`. Messages on links the router does
    /// not know (already closed) are ignored.
    pub fn receive(&mut self, link: LinkId, msg: Message, now: Instant) {
        if !self.links.contains_key(&link) {
            return;
        }
        match msg {
            Message::Hello(h) => self.on_hello(link, h, now),
            Message::LinkState(ls) => self.on_link_state(link, ls, now),
            Message::Addresses(a) => self.on_addresses(Some(link), a),
            Message::Summary(s) => self.on_summary(link, s),
            Message::Request(r) => self.on_request(link, r),
        }
        self.send_due_hellos(now);
    }

    /// When [`Router::handle_timeout`] should run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let links = self.links.values().flat_map(|l| l.deadlines(&self.config));
        let forget = self
            .db
            .values()
            .filter_map(|r| r.unreachable_since.map(|t| t + self.config.forget_after));
        links
            .chain(forget)
            .chain(self.flush_at)
            .chain(self.spf_at)
            .min()
    }

    /// Runs what is due at `now`: dead neighbours, hellos, this node's address changes,
    /// forgetting long-unreachable nodes.
    pub fn handle_timeout(&mut self, now: Instant) {
        let dead: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(_, l)| l.up && l.silent_since(now, &self.config))
            .map(|(id, _)| *id)
            .collect();
        if !dead.is_empty() {
            for link in dead {
                self.set_down(link, DownReason::Silent);
            }
            self.neighbours_changed(now);
        }
        if self.flush_at.is_some_and(|t| t <= now) {
            self.flush_addresses();
        }
        if self.spf_at.is_some_and(|t| t <= now) {
            self.recompute(now);
        }
        self.forget(now);
        self.send_due_hellos(now);
    }

    /// The next message to send, and the link to send it on.
    pub fn poll_transmit(&mut self) -> Option<(LinkId, Message)> {
        self.out.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// How this node reaches `dest`, if it can.
    pub fn route(&self, dest: &NodeId) -> Option<&Route> {
        self.routes.get(dest)
    }

    /// Every node this node can reach, with its route.
    pub fn routes(&self) -> impl Iterator<Item = (&NodeId, &Route)> {
        self.routes.iter()
    }

    /// This node's links: the neighbour on each (once heard), its cost, and whether it is
    /// two-way now.
    pub fn links(&self) -> impl Iterator<Item = (LinkId, Option<&NodeId>, u32, bool)> {
        self.links
            .iter()
            .map(|(id, l)| (*id, l.peer.as_ref(), l.cost, l.up))
    }

    fn set_down(&mut self, link: LinkId, reason: DownReason) {
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        if !l.up {
            return;
        }
        l.up = false;
        l.mismatches = 0;
        if reason == DownReason::Silent {
            l.heard = None;
        }
        if let Some(node) = l.peer.clone() {
            self.events
                .push_back(Event::NeighbourDown { node, link, reason });
        }
    }

    /// The link the router uses to reach neighbour `node`: its cheapest two-way link.
    fn active_link(&self, node: &NodeId) -> Option<LinkId> {
        self.links
            .iter()
            .filter(|(_, l)| l.up && l.peer.as_ref() == Some(node))
            .min_by_key(|(id, l)| (l.cost, **id))
            .map(|(id, _)| *id)
    }

    /// The active link of every neighbour: where floods go (one copy per neighbour).
    fn active_links(&self) -> Vec<LinkId> {
        let mut best: BTreeMap<&NodeId, (u32, LinkId)> = BTreeMap::new();
        for (id, l) in &self.links {
            if let (true, Some(p)) = (l.up, l.peer.as_ref()) {
                let e = best.entry(p).or_insert((l.cost, *id));
                *e = (*e).min((l.cost, *id));
            }
        }
        best.values().map(|(_, id)| *id).collect()
    }

    fn flood(&mut self, msg: &Message, except: Option<LinkId>) {
        for link in self.active_links() {
            if Some(link) != except {
                self.out.push_back((link, msg.clone()));
            }
        }
    }

    /// Re-derives this node's link-state record from its two-way links; floods it and
    /// recomputes the routes when it changed.
    fn neighbours_changed(&mut self, now: Instant) {
        let mut ns: BTreeMap<NodeId, u32> = BTreeMap::new();
        for l in self.links.values() {
            if let (true, Some(p)) = (l.up, &l.peer) {
                let c = ns.entry(p.clone()).or_insert(l.cost);
                *c = (*c).min(l.cost);
            }
        }
        let ns: Vec<(NodeId, u32)> = ns.into_iter().collect();
        let own = self.db.get(&self.id).and_then(|r| r.link_state.as_ref());
        let (version, same) = match own {
            Some((v, cur)) => (*v, *cur == ns),
            None => (
                Version {
                    instance: self.instance,
                    seq: 0,
                },
                false,
            ),
        };
        if same {
            // the neighbour set is the same, but which link reaches a neighbour may not be
            self.recompute(now);
            return;
        }
        self.publish_link_state(
            Version {
                seq: version.seq + 1,
                ..version
            },
            ns,
            now,
        );
    }

    fn publish_link_state(
        &mut self,
        version: Version,
        neighbours: Vec<(NodeId, u32)>,
        now: Instant,
    ) {
        let rec = self.db.entry(self.id.clone()).or_default();
        rec.link_state = Some((version, neighbours.clone()));
        self.digest = None;
        let msg = Message::LinkState(LinkState {
            origin: self.id.clone(),
            version,
            neighbours,
        });
        self.flood(&msg, None);
        // this node's own links changed (rare, and what failover waits for): at once
        self.recompute(now);
    }

    fn own_version(&self, addresses: bool) -> Version {
        let rec = self.db.get(&self.id);
        let v = if addresses {
            rec.and_then(|r| r.addresses.as_ref()).map(|(v, _)| *v)
        } else {
            rec.and_then(|r| r.link_state.as_ref()).map(|(v, _)| *v)
        };
        v.unwrap_or(Version {
            instance: self.instance,
            seq: 0,
        })
    }

    fn on_link_state(&mut self, from: LinkId, ls: LinkState, now: Instant) {
        if ls.origin == self.id {
            // our own record from an earlier run, or from a node that shares our id:
            // supersede it so the mesh keeps the current one
            let own = self.own_version(false);
            let cur = self
                .db
                .get(&self.id)
                .and_then(|r| r.link_state.as_ref())
                .map(|(_, n)| n);
            if ls.version > own || (ls.version == own && Some(&ls.neighbours) != cur) {
                let ns = cur.cloned().unwrap_or_default();
                let v = Version {
                    instance: own.instance.max(ls.version.instance),
                    seq: ls.version.seq.max(own.seq) + 1,
                };
                self.publish_link_state(v, ns, now);
            }
            return;
        }
        let rec = self.db.entry(ls.origin.clone()).or_default();
        if rec
            .link_state
            .as_ref()
            .is_some_and(|(v, _)| *v >= ls.version)
        {
            return;
        }
        rec.link_state = Some((ls.version, ls.neighbours.clone()));
        self.digest = None;
        self.flood(&Message::LinkState(ls), Some(from));
        self.routes_stale(now);
    }

    /// A change needs the routes recomputed: within `spf_delay`, with whatever else
    /// arrives meanwhile.
    fn routes_stale(&mut self, now: Instant) {
        if self.spf_at.is_none() {
            self.spf_at = Some(now + self.config.spf_delay);
        }
    }

    /// Recomputes the graph, this node's routes and every node's reachability; reports
    /// what changed.
    fn recompute(&mut self, now: Instant) {
        self.spf_at = None;
        self.graph = self.build_graph();
        self.trees.clear();
        let mut routes = BTreeMap::new();
        if let Some(me) = self.graph.index(&self.id) {
            let tree = self.graph.tree(me);
            let first = tree.first_hops(me);
            for &v in &tree.order {
                let (Some(f), Some(cost)) = (first[v], tree.dist[v]) else {
                    continue;
                };
                let next_hop = self.graph.node(f).clone();
                if let Some(link) = self.active_link(&next_hop) {
                    routes.insert(
                        self.graph.node(v).clone(),
                        Route {
                            next_hop,
                            link,
                            cost,
                        },
                    );
                }
            }
        }
        let old = std::mem::replace(&mut self.routes, routes);
        let mut reach_changed = Vec::new();
        for (dest, r) in &self.routes {
            if old.get(dest) != Some(r) {
                self.events.push_back(Event::RouteChanged {
                    dest: dest.clone(),
                    route: Some(r.clone()),
                });
            }
            if !old.contains_key(dest) {
                reach_changed.push(dest.clone());
            }
        }
        for dest in old.keys() {
            if !self.routes.contains_key(dest) {
                self.events.push_back(Event::RouteChanged {
                    dest: dest.clone(),
                    route: None,
                });
                reach_changed.push(dest.clone());
            }
        }
        for (id, rec) in self.db.iter_mut() {
            if *id == self.id {
                continue;
            }
            if self.routes.contains_key(id) {
                rec.unreachable_since = None;
            } else if rec.unreachable_since.is_none() {
                rec.unreachable_since = Some(now);
            }
        }
        if !reach_changed.is_empty() {
            self.digest = None;
        }
        for node in reach_changed {
            let keys: Vec<AddressKey> = self
                .db
                .get(&node)
                .and_then(|r| r.addresses.as_ref())
                .map(|(_, m)| m.keys().cloned().collect())
                .unwrap_or_default();
            self.events
                .extend(keys.into_iter().map(Event::AddressChanged));
        }
    }

    fn build_graph(&self) -> Graph {
        Graph::build(
            self.db
                .iter()
                .filter_map(|(id, r)| r.link_state.as_ref().map(|(_, ns)| (id, ns.as_slice()))),
        )
    }

    fn is_reachable(&self, node: &NodeId) -> bool {
        *node == self.id || self.routes.contains_key(node)
    }

    /// The digest hellos carry: over the versions of the records of every node this node
    /// can reach (itself included), independent of order. Records of unreachable nodes are
    /// kept a while but left out, so two neighbours that agree on the reachable part agree.
    fn digest(&mut self) -> u64 {
        if let Some(d) = self.digest {
            return d;
        }
        let mut d: u64 = 0;
        for (id, rec) in &self.db {
            if self.is_reachable(id) {
                d = d.wrapping_add(records::entry_hash(
                    id,
                    rec.ls_version(),
                    rec.addr_version(),
                ));
            }
        }
        self.digest = Some(d);
        d
    }

    fn summary(&self) -> Summary {
        Summary {
            entries: self
                .db
                .iter()
                .filter(|(id, _)| self.is_reachable(id))
                .map(|(id, r)| SummaryEntry {
                    origin: id.clone(),
                    link_state: r.ls_version(),
                    addresses: r.addr_version(),
                })
                .collect(),
        }
    }

    fn send_summary(&mut self, link: LinkId, now: Instant) {
        let s = self.summary();
        if let Some(l) = self.links.get_mut(&link) {
            l.last_summary = Some(now);
            l.mismatches = 0;
        }
        self.out.push_back((link, Message::Summary(s)));
    }

    fn on_summary(&mut self, link: LinkId, s: Summary) {
        let mut wants = Vec::new();
        let mut mentioned = BTreeSet::new();
        let mut send: Vec<(NodeId, bool, bool)> = Vec::new();
        for e in s.entries {
            let rec = self.db.get(&e.origin);
            let (mine_ls, mine_addr) =
                rec.map_or((None, None), |r| (r.ls_version(), r.addr_version()));
            // (for our own origin, a newer record is a previous run's: asking for it
            // makes on_link_state / on_addresses supersede it)
            if e.link_state > mine_ls || e.addresses > mine_addr {
                wants.push(Want {
                    origin: e.origin.clone(),
                    link_state: e.link_state > mine_ls,
                    addresses: e.addresses > mine_addr,
                });
            }
            let give_ls = mine_ls > e.link_state;
            let give_addr = mine_addr > e.addresses;
            if give_ls || give_addr {
                send.push((e.origin.clone(), give_ls, give_addr));
            }
            mentioned.insert(e.origin);
        }
        for id in self.db.keys() {
            if !mentioned.contains(id) && self.is_reachable(id) {
                send.push((id.clone(), true, true));
            }
        }
        for (origin, ls, addr) in send {
            self.send_records(link, &origin, ls, addr);
        }
        if !wants.is_empty() {
            self.out
                .push_back((link, Message::Request(Request { wants })));
        }
        // the exchange answers the mismatch this neighbour's hellos showed
        if let Some(l) = self.links.get_mut(&link) {
            l.mismatches = 0;
        }
    }

    fn on_request(&mut self, link: LinkId, r: Request) {
        for w in r.wants {
            self.send_records(link, &w.origin, w.link_state, w.addresses);
        }
    }

    /// Sends what this node holds of `origin`'s records on `link`: the link-state record
    /// and the whole address set, as asked.
    fn send_records(&mut self, link: LinkId, origin: &NodeId, link_state: bool, addresses: bool) {
        let Some(rec) = self.db.get(origin) else {
            return;
        };
        if link_state {
            if let Some((v, ns)) = &rec.link_state {
                let msg = Message::LinkState(LinkState {
                    origin: origin.clone(),
                    version: *v,
                    neighbours: ns.clone(),
                });
                self.out.push_back((link, msg));
            }
        }
        if addresses {
            if let Some((v, set)) = &rec.addresses {
                let msg = Message::Addresses(Addresses {
                    origin: origin.clone(),
                    version: *v,
                    change: AddressChange::Full(set.iter().map(|(k, c)| (k.clone(), *c)).collect()),
                });
                self.out.push_back((link, msg));
            }
        }
    }

    fn forget(&mut self, now: Instant) {
        let after = self.config.forget_after;
        let gone: Vec<NodeId> = self
            .db
            .iter()
            .filter(|(_, r)| r.unreachable_since.is_some_and(|t| t + after <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            if let Some(rec) = self.db.remove(&id) {
                if let Some((_, set)) = rec.addresses {
                    for key in set.keys() {
                        self.unindex(key, &id);
                    }
                }
            }
        }
    }
}
