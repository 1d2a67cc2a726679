//! The node's part in a mesh of routers: the inter-router listener and connections, and
//! the glue between the routing protocol (`throng-mesh`, sans-IO) and the core.
//!
//! - `settings.rs` — who this node is and whom it dials, from the config and the flags.
//! - `driver.rs` — the one task that owns the protocol's `Router`: it feeds it what the
//!   connections hear and the time, sends what it says, logs neighbours and routes, and
//!   keeps the core's *remote consumers* in step with the routes: for every other node
//!   with consumers for an anycast address, one remote consumer of that address whose
//!   deliveries go to the connection the route to that node starts with.
//! - `link.rs` — one inter-router connection (our AMQP engine at both ends): a control
//!   link each way for the protocol's messages, a data link each way for forwarded
//!   messages, and the outcomes passed back.
//! - `hop.rs` — the route a forwarded message carries to the next node.
//!
//! Forwarding is loop-free by construction: the node a client's message enters at
//! chooses the destination node (among its local and remote consumers, by credit and
//! fewest unsettled, in the core), and every later hop only passes it on along its route
//! to that node (`Reach::Via`), or hands it to its own consumers when it is that node
//! (`Reach::Local`).

mod driver;
mod hop;
mod link;
pub(crate) mod settings;

pub use driver::Status;
pub use settings::MeshSettings;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use throng_core::anycast::Anycast;
use throng_core::multicast::Multicast;
use throng_core::{Advertiser, ConsumerKey, Handle, Node};
use throng_mesh::{AddressKey, LinkId, NodeId};
use tokio::sync::mpsc;
use tracing::warn;

/// What the driver hears from the connections and the core.
enum Input {
    /// A connection to a neighbour is open: its outbox takes the core's deliveries for
    /// it, `control` takes the protocol's messages for it (encoded).
    LinkUp {
        link: LinkId,
        cost: u32,
        outbox: Arc<throng_core::Outbox>,
        control: mpsc::UnboundedSender<bytes::Bytes>,
    },
    /// The connection closed.
    LinkDown { link: LinkId },
    /// A protocol message from the neighbour on `link`.
    Received {
        link: LinkId,
        msg: throng_mesh::Message,
    },
    /// This node's consumers of an address changed (`None`: none left).
    Local { key: AddressKey, level: Option<u32> },
}

/// The direct address a remote consumer belongs to.
#[derive(Clone)]
pub(crate) enum Direct {
    Anycast(Arc<Anycast>),
    Multicast(Arc<Multicast>),
}

impl Direct {
    fn add_remote(&self, outbox: Arc<throng_core::Outbox>, link: Handle) -> ConsumerKey {
        match self {
            Direct::Anycast(a) => a.add_remote(outbox, link),
            Direct::Multicast(m) => m.add_remote(outbox, link),
        }
    }

    /// A remote consumer's new level (multicast copies go regardless of one).
    fn set_level(&self, key: ConsumerKey, level: u32) {
        if let Direct::Anycast(a) = self {
            a.set_level(key, level)
        }
    }

    /// A forwarded copy's outcome (multicast copies are presettled: none).
    fn settle(&self, key: ConsumerKey, token: u64, outcome: throng_core::Outcome) {
        if let Direct::Anycast(a) = self {
            a.settle(key, token, outcome)
        }
    }

    fn remove_consumer(&self, key: ConsumerKey) {
        match self {
            Direct::Anycast(a) => a.remove_consumer(key),
            Direct::Multicast(m) => m.remove_consumer(key),
        }
    }

    /// Consumers of this node.
    fn consumer_count(&self) -> usize {
        match self {
            Direct::Anycast(a) => a.consumer_count(),
            Direct::Multicast(m) => m.consumer_count(),
        }
    }
}

/// Where a remote consumer's deliveries go: what its connection needs to forward one.
pub(crate) struct Forward {
    pub direct: Direct,
    pub key: ConsumerKey,
    pub tenant: Arc<str>,
    pub address: Arc<str>,
    pub dest: NodeId,
}

type Transit = HashMap<Arc<str>, HashMap<Arc<str>, HashMap<Arc<str>, ConsumerKey>>>;

/// The node's mesh: shared by the driver, the connections and the REST API.
pub struct Mesh {
    id: NodeId,
    node: Arc<Node>,
    settings: MeshSettings,
    inputs: mpsc::UnboundedSender<Input>,
    next_link: AtomicU64,
    next_handle: AtomicU32,
    /// The remote consumers, by the handle their deliveries carry.
    forwards: Mutex<HashMap<Handle, Arc<Forward>>>,
    /// The remote consumer a message in transit to a node goes on with: by tenant,
    /// address and destination node (nested, so a lookup borrows the names).
    transit: Mutex<Transit>,
    status: Mutex<driver::Status>,
}

impl Mesh {
    /// Starts the mesh of `node`: the driver task, the advertisements of every tenant's
    /// direct addresses, and a dialler per configured connection. The inter-router
    /// listener is opened by the caller (`serve.rs`), which hands its connections to
    /// [`Mesh::accept`].
    pub fn start(node: Arc<Node>, settings: MeshSettings) -> Arc<Mesh> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mesh = Arc::new(Mesh {
            id: settings.id.clone(),
            node,
            settings,
            inputs: tx,
            next_link: AtomicU64::new(1),
            next_handle: AtomicU32::new(1),
            forwards: Mutex::new(HashMap::new()),
            transit: Mutex::new(HashMap::new()),
            status: Mutex::new(driver::Status::default()),
        });
        tokio::spawn(driver::run(mesh.clone(), rx));
        let advertiser: Arc<dyn Advertiser> = Arc::new(Advertise(mesh.inputs.clone()));
        for t in mesh.node.tenants() {
            t.advertise_to(advertiser.clone());
        }
        for c in mesh.settings.connect.clone() {
            tokio::spawn(link::dial(mesh.clone(), c.address, c.cost));
        }
        mesh
    }

    /// Serves a connection accepted on the inter-router listener.
    pub async fn accept(
        self: Arc<Self>,
        stream: tokio::net::TcpStream,
        peer: std::net::SocketAddr,
    ) {
        link::serve(self, stream, peer, None).await
    }

    /// What the mesh looks like from here, for the REST API.
    pub fn status(&self) -> driver::Status {
        crate::lock(&self.status).clone()
    }

    fn input(&self, i: Input) {
        // the driver lives as long as the node; a send fails only while stopping
        let _ = self.inputs.send(i);
    }

    fn fresh_link(&self) -> LinkId {
        LinkId(self.next_link.fetch_add(1, Ordering::Relaxed))
    }

    fn fresh_handle(&self) -> Handle {
        Handle(self.next_handle.fetch_add(1, Ordering::Relaxed))
    }

    fn forward(&self, h: Handle) -> Option<Arc<Forward>> {
        crate::lock(&self.forwards).get(&h).cloned()
    }

    fn via(&self, tenant: &str, address: &str, dest: &str) -> Option<ConsumerKey> {
        let t = crate::lock(&self.transit);
        t.get(tenant)?.get(address)?.get(dest).copied()
    }
}

/// Passes the core's news of local consumers to the driver.
struct Advertise(mpsc::UnboundedSender<Input>);

impl Advertiser for Advertise {
    fn advertise(&self, tenant: &str, address: &str, level: Option<u32>) {
        match AddressKey::new(tenant, address) {
            Ok(key) => {
                let _ = self.0.send(Input::Local { key, level });
            }
            Err(e) => {
                warn!(tenant, address, "address not advertised to the mesh: {e}")
            }
        }
    }
}
