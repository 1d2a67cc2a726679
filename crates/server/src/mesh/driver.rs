//! The task that owns the node's routing protocol (`throng_mesh::Router`, sans-IO): it
//! feeds it the connections' news and the time, sends its messages, logs one line per
//! neighbour up/down and per route change, and keeps the core's remote consumers true
//! to the routes — for every other node with consumers of an anycast address, one remote
//! consumer on the connection its route starts with, at the level that node advertised;
//! for a multicast address likewise, one remote consumer per other node with members,
//! which gets one copy of each message.

use super::{link, Direct, Forward, Input, Mesh};
use crate::socket_buffers::sleep_until;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use throng_core::tenant::DYNAMIC_PREFIX;
use throng_core::{Address, AddressKind, ConsumerKey, Handle, Outbox};
use throng_mesh::{AddressKey, DownReason, Event, LinkId, NodeId, Router};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

/// What `GET /api/v1/mesh` shows: this node, its connections, its routes, and the
/// addresses other nodes have consumers for.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    pub node: String,
    pub role: String,
    pub links: Vec<LinkStatus>,
    pub routes: Vec<RouteStatus>,
    pub addresses: Vec<AddressStatus>,
}

/// One inter-router connection.
#[derive(Debug, Clone, Serialize)]
pub struct LinkStatus {
    pub link: u64,
    /// The neighbour, once heard.
    pub node: Option<String>,
    pub cost: u32,
    /// Two-way: both sides hear each other.
    pub up: bool,
}

/// How this node reaches another.
#[derive(Debug, Clone, Serialize)]
pub struct RouteStatus {
    pub node: String,
    pub next_hop: String,
    pub cost: u64,
}

/// An address with consumers on other nodes.
#[derive(Debug, Clone, Serialize)]
pub struct AddressStatus {
    pub tenant: String,
    pub address: String,
    /// The nodes with consumers, with the level each advertised.
    pub nodes: Vec<(String, u32)>,
}

struct LinkEntry {
    outbox: Arc<Outbox>,
    control: mpsc::UnboundedSender<bytes::Bytes>,
}

/// One remote consumer the driver registered.
struct Binding {
    link: LinkId,
    handle: Handle,
    key: ConsumerKey,
    direct: Direct,
    level: u32,
}

struct Driver {
    mesh: Arc<Mesh>,
    router: Router,
    links: HashMap<LinkId, LinkEntry>,
    /// Remote consumers by address and the node they stand for.
    bindings: BTreeMap<AddressKey, BTreeMap<NodeId, Binding>>,
    /// Addresses created here only because other nodes have consumers for them (dynamic
    /// reply addresses): removed when those go.
    proxies: BTreeSet<AddressKey>,
}

pub(super) async fn run(mesh: Arc<Mesh>, mut rx: mpsc::UnboundedReceiver<Input>) {
    // the run's instance grows from one start to the next
    let instance = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_millis() as u64);
    let router = Router::new(mesh.id.clone(), instance, mesh.settings.timers.clone());
    let mut d = Driver {
        mesh,
        router,
        links: HashMap::new(),
        bindings: BTreeMap::new(),
        proxies: BTreeSet::new(),
    };
    d.publish_status();
    loop {
        let deadline = d.router.poll_timeout();
        tokio::select! {
            i = rx.recv() => {
                let Some(i) = i else { return };
                let now = Instant::now();
                d.input(i, now);
                while let Ok(i) = rx.try_recv() {
                    d.input(i, now);
                }
            }
            _ = sleep_until(deadline), if deadline.is_some() => {
                d.router.handle_timeout(Instant::now());
            }
        }
        d.after();
    }
}

impl Driver {
    fn input(&mut self, i: Input, now: Instant) {
        match i {
            Input::LinkUp {
                link,
                cost,
                outbox,
                control,
            } => {
                self.links.insert(link, LinkEntry { outbox, control });
                self.router.link_up(link, cost, now);
            }
            Input::LinkDown { link } => {
                self.router.link_down(link, now);
                self.links.remove(&link);
                // remote consumers on the connection go now (their unsettled deliveries
                // back to their producers); the new routes bind them again
                let keys: Vec<AddressKey> = self.bindings.keys().cloned().collect();
                for key in keys {
                    self.unbind_where(&key, |(_, b)| b.link == link);
                }
            }
            Input::Received { link, msg } => self.router.receive(link, msg, now),
            Input::Local { key, level } => match level {
                Some(l) => self.router.set_address(key, l, now),
                None => self.router.remove_address(key, now),
            },
        }
    }

    /// Sends what the router said, logs and applies its events.
    fn after(&mut self) {
        while let Some((link, msg)) = self.router.poll_transmit() {
            if let Some(l) = self.links.get(&link) {
                let _ = l.control.send(link::control_message(&msg));
            }
        }
        let mut changed: BTreeSet<AddressKey> = BTreeSet::new();
        let mut all = false;
        let mut any = false;
        while let Some(ev) = self.router.poll_event() {
            any = true;
            match ev {
                Event::NeighbourUp { node, link, cost } => {
                    info!(
                        neighbour = node.as_str(),
                        link = link.0,
                        cost,
                        "mesh neighbour up"
                    )
                }
                Event::NeighbourDown { node, link, reason } => {
                    let why = match reason {
                        DownReason::Closed => "connection closed",
                        DownReason::Silent => "silent",
                        DownReason::OneWay => "no longer hears us",
                        DownReason::Replaced => "another node on the link",
                    };
                    warn!(
                        neighbour = node.as_str(),
                        link = link.0,
                        "mesh neighbour down: {why}"
                    )
                }
                Event::RouteChanged { dest, route } => {
                    all = true;
                    match route {
                        Some(r) => info!(
                            node = dest.as_str(),
                            next_hop = r.next_hop.as_str(),
                            cost = r.cost,
                            "mesh route"
                        ),
                        None => warn!(node = dest.as_str(), "mesh route: unreachable"),
                    }
                }
                Event::AddressChanged(key) => {
                    changed.insert(key);
                }
                Event::DuplicateId { link } => error!(
                    link = link.0,
                    "a neighbour uses this node's id `{}`: every node of a mesh needs its own",
                    self.mesh.id.as_str()
                ),
            }
        }
        if all {
            changed.extend(self.bindings.keys().cloned());
            changed.extend(self.router.remote_addresses().cloned());
        }
        for key in changed {
            self.resync(&key);
        }
        if any {
            self.publish_status();
        }
    }

    /// Makes the remote consumers of `key` match the nodes that advertise it now.
    fn resync(&mut self, key: &AddressKey) {
        let dests = self.router.destinations(key);
        let Some(tenant) = self.mesh.node.tenant(key.tenant()) else {
            return;
        };
        let direct = match tenant.lookup(key.name()) {
            Some(Address::Anycast(a)) => Some(Direct::Anycast(a)),
            Some(Address::Multicast(m)) => Some(Direct::Multicast(m)),
            // a reply address of a client of another node: there for as long as it is
            None if !dests.is_empty() && key.name().starts_with(DYNAMIC_PREFIX) => {
                match tenant.create(key.name(), AddressKind::Anycast) {
                    Address::Anycast(a) => {
                        self.proxies.insert(key.clone());
                        Some(Direct::Anycast(a))
                    }
                    _ => None,
                }
            }
            // queues and topics are reached through brokers, which come next
            _ => None,
        };
        let Some(direct) = direct else {
            self.unbind_where(key, |_| true);
            return;
        };
        let wanted: BTreeMap<&NodeId, (LinkId, u32)> = dests
            .iter()
            .map(|d| (&d.node, (d.link, d.credit)))
            .collect();
        // gone from the advertisements, or reached over another connection now
        self.unbind_where(key, |(node, b)| {
            wanted.get(node).map(|w| w.0) != Some(b.link)
        });
        for (node, (link, level)) in wanted {
            let bound = self.bindings.get_mut(key).and_then(|m| m.get_mut(node));
            if let Some(b) = bound {
                if b.level != level {
                    b.level = level;
                    b.direct.set_level(b.key, level);
                }
                continue;
            }
            let Some(l) = self.links.get(&link) else {
                continue;
            };
            let handle = self.mesh.fresh_handle();
            let ckey = direct.add_remote(l.outbox.clone(), handle);
            let f = Arc::new(Forward {
                direct: direct.clone(),
                key: ckey,
                tenant: Arc::from(key.tenant()),
                address: Arc::from(key.name()),
                dest: node.clone(),
            });
            crate::lock(&self.mesh.forwards).insert(handle, f);
            crate::lock(&self.mesh.transit)
                .entry(Arc::from(key.tenant()))
                .or_default()
                .entry(Arc::from(key.name()))
                .or_default()
                .insert(Arc::from(node.as_str()), ckey);
            direct.set_level(ckey, level);
            self.bindings.entry(key.clone()).or_default().insert(
                node.clone(),
                Binding {
                    link,
                    handle,
                    key: ckey,
                    direct: direct.clone(),
                    level,
                },
            );
        }
        if self.proxies.contains(key) && dests.is_empty() && direct.consumer_count() == 0 {
            self.proxies.remove(key);
            tenant.remove(key.name());
        }
    }

    /// Removes the remote consumers of `key` that `pred` picks (node, binding).
    fn unbind_where(&mut self, key: &AddressKey, pred: impl Fn((&NodeId, &Binding)) -> bool) {
        let Some(m) = self.bindings.get_mut(key) else {
            return;
        };
        let gone: Vec<NodeId> = m
            .iter()
            .filter(|(n, b)| pred((n, b)))
            .map(|(n, _)| n.clone())
            .collect();
        for node in gone {
            let Some(b) = m.remove(&node) else { continue };
            crate::lock(&self.mesh.forwards).remove(&b.handle);
            let mut t = crate::lock(&self.mesh.transit);
            if let Some(by_addr) = t.get_mut(key.tenant()) {
                if let Some(by_dest) = by_addr.get_mut(key.name()) {
                    by_dest.remove(node.as_str());
                    if by_dest.is_empty() {
                        by_addr.remove(key.name());
                    }
                }
                if by_addr.is_empty() {
                    t.remove(key.tenant());
                }
            }
            drop(t);
            b.direct.remove_consumer(b.key);
        }
        if m.is_empty() {
            self.bindings.remove(key);
        }
    }

    fn publish_status(&self) {
        let links = self
            .router
            .links()
            .map(|(id, node, cost, up)| LinkStatus {
                link: id.0,
                node: node.map(|n| n.as_str().to_string()),
                cost,
                up,
            })
            .collect();
        let routes = self
            .router
            .routes()
            .map(|(node, r)| RouteStatus {
                node: node.as_str().to_string(),
                next_hop: r.next_hop.as_str().to_string(),
                cost: r.cost,
            })
            .collect();
        let addresses = self
            .router
            .remote_addresses()
            .map(|k| AddressStatus {
                tenant: k.tenant().to_string(),
                address: k.name().to_string(),
                nodes: self
                    .router
                    .destinations(k)
                    .into_iter()
                    .map(|d| (d.node.as_str().to_string(), d.credit))
                    .collect(),
            })
            .collect();
        *crate::lock(&self.mesh.status) = Status {
            node: self.mesh.id.as_str().to_string(),
            role: self.mesh.settings.role.as_str().to_string(),
            links,
            routes,
            addresses,
        };
    }
}
