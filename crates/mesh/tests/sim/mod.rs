//! A deterministic in-memory mesh: routers joined by simulated links, driven by a seeded
//! scheduler (no sockets, no sleeps, no threads). Messages go through the real encoding,
//! take a random latency (so they reorder), and may be lost; links close, go silent and
//! heal; nodes crash, restart and hang. `check` compares every router's tables with an
//! oracle computed from the true topology.

#![allow(dead_code, clippy::needless_range_loop)]

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::time::{Duration, Instant};

use throng_mesh::{AddressKey, Config, Event, LinkId, Message, NodeId, Router};

/// splitmix64: small, fast, and the same sequence on every platform and toolchain.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5851_f42d_4c95_7f2d)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// What a chaos action did to a link, on top of its ends being alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// The connection is closed (both ends are told).
    Closed,
    /// Messages are dropped both ways; nobody is told.
    Silent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Up,
    Silent,
    Down,
}

pub struct SimLink {
    pub a: usize,
    pub b: usize,
    pub cost: u32,
    pub cut: Option<Cut>,
    state: State,
    /// Bumped on every open and close: a message sent on an earlier connection is lost.
    epoch: u64,
}

impl SimLink {
    pub fn other(&self, n: usize) -> usize {
        if n == self.a {
            self.b
        } else {
            self.a
        }
    }
}

pub struct SimNode {
    pub id: NodeId,
    pub router: Option<Router>,
    pub hung: bool,
    instance: u64,
    timer_at: Option<Instant>,
    /// The addresses this node truly has consumers for (the oracle's view).
    pub addresses: BTreeMap<AddressKey, u32>,
}

enum Ev {
    Deliver {
        to: usize,
        link: usize,
        epoch: u64,
        bytes: Vec<u8>,
    },
    Timer {
        node: usize,
        at: Instant,
    },
}

pub struct Sim {
    pub base: Instant,
    pub now: Instant,
    pub nodes: Vec<SimNode>,
    pub links: Vec<SimLink>,
    pub rng: Rng,
    pub config: Config,
    /// Probability a message is lost.
    pub loss: f64,
    /// Latency of each message, uniform in this range.
    pub latency: (Duration, Duration),
    queue: BinaryHeap<Reverse<(Instant, u64)>>,
    evs: BTreeMap<u64, Ev>,
    seq: u64,
    /// Every event every router reported, with when and where.
    pub events: Vec<(Duration, usize, Event)>,
    /// Messages sent, by kind (hello, link-state, addresses, summary, request).
    pub sent: BTreeMap<&'static str, u64>,
    pub bytes_sent: u64,
}

pub fn kind(m: &Message) -> &'static str {
    match m {
        Message::Hello(_) => "hello",
        Message::LinkState(_) => "link-state",
        Message::Addresses(_) => "addresses",
        Message::Summary(_) => "summary",
        Message::Request(_) => "request",
    }
}

impl Sim {
    /// `n` nodes named n0.., no links yet.
    pub fn new(n: usize, seed: u64, config: Config) -> Sim {
        let base = Instant::now();
        let nodes = (0..n)
            .map(|i| SimNode {
                id: NodeId::new(&format!("n{i}")).unwrap(),
                router: None,
                hung: false,
                instance: 1,
                timer_at: None,
                addresses: BTreeMap::new(),
            })
            .collect();
        let mut sim = Sim {
            base,
            now: base,
            nodes,
            links: Vec::new(),
            rng: Rng::new(seed),
            config,
            loss: 0.0,
            latency: (Duration::from_millis(1), Duration::from_millis(1)),
            queue: BinaryHeap::new(),
            evs: BTreeMap::new(),
            seq: 0,
            events: Vec::new(),
            sent: BTreeMap::new(),
            bytes_sent: 0,
        };
        for i in 0..n {
            sim.start(i);
        }
        sim
    }

    fn start(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        node.router = Some(Router::new(
            node.id.clone(),
            node.instance,
            self.config.clone(),
        ));
        node.addresses.clear();
        node.timer_at = None;
        self.pump(i);
    }

    pub fn add_link(&mut self, a: usize, b: usize, cost: u32) -> usize {
        self.links.push(SimLink {
            a,
            b,
            cost,
            cut: None,
            state: State::Down,
            epoch: 0,
        });
        self.reconcile();
        self.links.len() - 1
    }

    pub fn alive(&self, n: usize) -> bool {
        self.nodes[n].router.is_some()
    }

    /// Alive and running: a node the oracle expects to route.
    pub fn live(&self, n: usize) -> bool {
        self.alive(n) && !self.nodes[n].hung
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.base
    }

    pub fn router(&mut self, n: usize) -> &mut Router {
        self.nodes[n].router.as_mut().expect("node is alive")
    }

    /// Brings every link's state in line with its cut and its ends, telling the routers
    /// of connections that open and close.
    fn reconcile(&mut self) {
        for li in 0..self.links.len() {
            let l = &self.links[li];
            let want = if !self.alive(l.a) || !self.alive(l.b) || l.cut == Some(Cut::Closed) {
                State::Down
            } else if l.cut == Some(Cut::Silent) {
                State::Silent
            } else {
                State::Up
            };
            let (was, a, b, cost) = (l.state, l.a, l.b, l.cost);
            if was == want {
                continue;
            }
            self.links[li].state = want;
            let now = self.now;
            if want == State::Down {
                self.links[li].epoch += 1;
                for n in [a, b] {
                    if let Some(r) = self.nodes[n].router.as_mut() {
                        r.link_down(LinkId(li as u64), now);
                        self.pump(n);
                    }
                }
            } else if was == State::Down {
                self.links[li].epoch += 1;
                for n in [a, b] {
                    if let Some(r) = self.nodes[n].router.as_mut() {
                        r.link_up(LinkId(li as u64), cost, now);
                        self.pump(n);
                    }
                }
            }
        }
    }

    pub fn cut(&mut self, li: usize, cut: Option<Cut>) {
        self.links[li].cut = cut;
        self.reconcile();
    }

    pub fn crash(&mut self, n: usize) {
        self.nodes[n].router = None;
        self.nodes[n].hung = false;
        self.nodes[n].addresses.clear();
        self.reconcile();
    }

    pub fn restart(&mut self, n: usize) {
        if self.alive(n) {
            return;
        }
        self.nodes[n].instance += 1;
        self.start(n);
        self.reconcile();
    }

    pub fn hang(&mut self, n: usize, hung: bool) {
        if !self.alive(n) {
            return;
        }
        self.nodes[n].hung = hung;
        if !hung {
            // the process runs again: its overdue timers fire now
            self.nodes[n].timer_at = None;
            self.push(
                self.now,
                Ev::Timer {
                    node: n,
                    at: self.now,
                },
            );
            self.nodes[n].timer_at = Some(self.now);
        }
    }

    pub fn set_address(&mut self, n: usize, key: AddressKey, credit: Option<u32>) {
        if !self.live(n) {
            return;
        }
        let now = self.now;
        let node = &mut self.nodes[n];
        let r = node.router.as_mut().expect("live");
        match credit {
            Some(c) => {
                node.addresses.insert(key.clone(), c);
                r.set_address(key, c, now);
            }
            None => {
                node.addresses.remove(&key);
                r.remove_address(key, now);
            }
        }
        self.pump(n);
    }

    fn push(&mut self, at: Instant, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq)));
        self.evs.insert(self.seq, ev);
    }

    /// Sends what node `n`'s router has to send, takes its events, re-arms its timer.
    fn pump(&mut self, n: usize) {
        let Some(r) = self.nodes[n].router.as_mut() else {
            return;
        };
        let mut out = Vec::new();
        while let Some(t) = r.poll_transmit() {
            out.push(t);
        }
        let elapsed = self.now - self.base;
        while let Some(e) = r.poll_event() {
            self.events.push((elapsed, n, e));
        }
        let next = r.poll_timeout();
        if let Some(at) = next.filter(|t| Some(*t) != self.nodes[n].timer_at) {
            let at = at.max(self.now);
            self.nodes[n].timer_at = Some(at);
            self.push(at, Ev::Timer { node: n, at });
        }
        for (link, msg) in out {
            *self.sent.entry(kind(&msg)).or_default() += 1;
            let li = link.0 as usize;
            let Some(l) = self.links.get(li) else {
                panic!("router n{n} sent on unknown link {li}");
            };
            if l.state != State::Up {
                continue;
            }
            let mut bytes = Vec::new();
            msg.encode(&mut bytes);
            self.bytes_sent += bytes.len() as u64;
            if self.loss > 0.0 && self.rng.chance(self.loss) {
                continue;
            }
            let (lo, hi) = self.latency;
            let lat =
                Duration::from_micros(self.rng.range(lo.as_micros() as u64, hi.as_micros() as u64));
            let (to, epoch) = (l.other(n), l.epoch);
            self.push(
                self.now + lat,
                Ev::Deliver {
                    to,
                    link: li,
                    epoch,
                    bytes,
                },
            );
        }
    }

    /// Runs every event due up to `until`, then leaves the clock there.
    pub fn run_until(&mut self, until: Instant) {
        while let Some(&Reverse((at, seq))) = self.queue.peek() {
            if at > until {
                break;
            }
            self.queue.pop();
            self.now = at;
            let Some(ev) = self.evs.remove(&seq) else {
                continue;
            };
            match ev {
                Ev::Deliver {
                    to,
                    link,
                    epoch,
                    bytes,
                } => {
                    let l = &self.links[link];
                    if l.epoch != epoch || l.state != State::Up || !self.live(to) {
                        continue;
                    }
                    let msg = Message::decode(&bytes).expect("a router's own encoding decodes");
                    let now = self.now;
                    self.router(to).receive(LinkId(link as u64), msg, now);
                    self.pump(to);
                }
                Ev::Timer { node, at } => {
                    if !self.live(node) || self.nodes[node].timer_at != Some(at) {
                        continue;
                    }
                    self.nodes[node].timer_at = None;
                    self.router(node).handle_timeout(at);
                    self.pump(node);
                }
            }
        }
        self.now = until;
    }

    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Shortest distances from `from` over the links that truly carry messages now.
    pub fn true_distances(&self, from: usize) -> Vec<Option<u64>> {
        let n = self.nodes.len();
        let mut adj: Vec<Vec<(usize, u64)>> = vec![Vec::new(); n];
        for l in &self.links {
            if l.state == State::Up && self.live(l.a) && self.live(l.b) {
                adj[l.a].push((l.b, u64::from(l.cost.max(1))));
                adj[l.b].push((l.a, u64::from(l.cost.max(1))));
            }
        }
        let mut dist = vec![None; n];
        let mut heap = BinaryHeap::new();
        dist[from] = Some(0);
        heap.push(Reverse((0u64, from)));
        while let Some(Reverse((d, u))) = heap.pop() {
            if dist[u] != Some(d) {
                continue;
            }
            for &(v, c) in &adj[u] {
                if dist[v].is_none_or(|dv| d + c < dv) {
                    dist[v] = Some(d + c);
                    heap.push(Reverse((d + c, v)));
                }
            }
        }
        dist
    }

    /// Every live router's routes and address tables against the oracle; multicast
    /// from every live node for every address reaches each member exactly once.
    pub fn check(&mut self, keys: &[AddressKey]) -> Result<(), String> {
        let n = self.nodes.len();
        let by_id: BTreeMap<NodeId, usize> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, x)| (x.id.clone(), i))
            .collect();
        for x in 0..n {
            if !self.live(x) {
                continue;
            }
            let dist = self.true_distances(x);
            let r = self.nodes[x].router.as_ref().expect("live");
            for d in 0..n {
                if d == x {
                    continue;
                }
                let did = &self.nodes[d].id;
                let route = r.route(did);
                match (self.live(d).then_some(dist[d]).flatten(), route) {
                    (None, None) => {}
                    (None, Some(rt)) => {
                        return Err(format!("n{x} has a route to unreachable n{d}: {rt:?}"))
                    }
                    (Some(_), None) => return Err(format!("n{x} has no route to reachable n{d}")),
                    (Some(want), Some(rt)) => {
                        if rt.cost != want {
                            return Err(format!(
                                "n{x} → n{d}: cost {} but the shortest path costs {want}",
                                rt.cost
                            ));
                        }
                        self.walk(x, d, want, &by_id)?;
                    }
                }
            }
            for key in keys {
                let mut want: BTreeMap<NodeId, u32> = BTreeMap::new();
                for d in 0..n {
                    if d != x && self.live(d) && dist[d].is_some() {
                        if let Some(c) = self.nodes[d].addresses.get(key) {
                            want.insert(self.nodes[d].id.clone(), *c);
                        }
                    }
                }
                let got: BTreeMap<NodeId, u32> = r
                    .destinations(key)
                    .into_iter()
                    .map(|d| (d.node, d.credit))
                    .collect();
                if got != want {
                    return Err(format!(
                        "n{x} destinations of {key:?}: {got:?}, truth {want:?}"
                    ));
                }
            }
        }
        for o in 0..n {
            if !self.live(o) {
                continue;
            }
            for key in keys {
                self.check_multicast(o, key, &by_id)?;
            }
        }
        Ok(())
    }

    /// Follows next hops from `x` to `d`: every hop is a real link to the named
    /// neighbour, the remaining cost falls by that link's cost, and `d` is reached.
    fn walk(
        &self,
        x: usize,
        d: usize,
        want: u64,
        by_id: &BTreeMap<NodeId, usize>,
    ) -> Result<(), String> {
        let did = &self.nodes[d].id;
        let (mut cur, mut left, mut hops) = (x, want, 0);
        while cur != d {
            let r = self.nodes[cur]
                .router
                .as_ref()
                .ok_or(format!("path n{x} → n{d} enters dead n{cur}"))?;
            let rt = r
                .route(did)
                .ok_or(format!("path n{x} → n{d}: n{cur} has no route"))?;
            let l = self
                .links
                .get(rt.link.0 as usize)
                .ok_or("route on an unknown link")?;
            let next = l.other(cur);
            if (l.a != cur && l.b != cur)
                || by_id.get(&rt.next_hop) != Some(&next)
                || l.state != State::Up
            {
                return Err(format!(
                    "path n{x} → n{d}: n{cur}'s next hop {:?} is not across its link {}",
                    rt.next_hop, rt.link.0
                ));
            }
            if rt.cost != left {
                return Err(format!(
                    "path n{x} → n{d}: n{cur} says {} left, {left} expected",
                    rt.cost
                ));
            }
            left = left
                .checked_sub(u64::from(l.cost.max(1)))
                .ok_or("path longer than its cost")?;
            cur = next;
            hops += 1;
            if hops > self.nodes.len() {
                return Err(format!("path n{x} → n{d} loops"));
            }
        }
        Ok(())
    }

    fn check_multicast(
        &mut self,
        o: usize,
        key: &AddressKey,
        by_id: &BTreeMap<NodeId, usize>,
    ) -> Result<(), String> {
        let dist = self.true_distances(o);
        let origin = self.nodes[o].id.clone();
        let mut got = vec![0u32; self.nodes.len()];
        let mut todo = vec![(o, None)];
        while let Some((at, arrived)) = todo.pop() {
            let targets = self.nodes[at]
                .router
                .as_mut()
                .expect("multicast only crosses live nodes")
                .multicast_targets(&origin, key, arrived);
            let Some(targets) = targets else {
                return Err(format!(
                    "multicast from n{o} for {key:?} refused at n{at} (arrived on {arrived:?})"
                ));
            };
            for link in targets {
                let l = &self.links[link.0 as usize];
                let next = l.other(at);
                if l.state != State::Up || !self.live(next) {
                    return Err(format!(
                        "multicast from n{o}: n{at} sends on a link that is not up"
                    ));
                }
                got[next] += 1;
                if got[next] > 1 {
                    return Err(format!(
                        "multicast from n{o} for {key:?} reaches n{next} twice"
                    ));
                }
                todo.push((next, Some(link)));
            }
        }
        let _ = by_id;
        for (d, node) in self.nodes.iter().enumerate() {
            let member =
                d != o && self.live(d) && dist[d].is_some() && node.addresses.contains_key(key);
            if member && got[d] != 1 {
                return Err(format!(
                    "multicast from n{o} for {key:?} never reaches member n{d}"
                ));
            }
        }
        Ok(())
    }

    /// Links that carry messages now, as (a, b).
    pub fn up_links(&self) -> BTreeSet<(usize, usize)> {
        self.links
            .iter()
            .filter(|l| l.state == State::Up)
            .map(|l| (l.a, l.b))
            .collect()
    }
}
