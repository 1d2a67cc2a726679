//! Who this node is in a mesh and whom it dials: `[node]`, `[listeners] inter_router`,
//! `[mesh]` and `[[mesh.connect]]` of the config, overridden by `--node-id`, `--role`,
//! `--inter-router` and `--connect HOST:PORT[,COST]`.

use crate::config::{Config, ConnectConfig};
use std::time::Duration;
use throng_mesh::NodeId;

/// What a node does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Router and broker in one process, no mesh (the default without mesh settings).
    Standalone,
    /// Holds client connections and forwards through the mesh.
    Router,
    /// Holds queues and topics for the mesh (not available yet).
    Broker,
    /// A router at the edge with uplinks only (not available yet).
    Edge,
}

impl Role {
    fn parse(s: &str) -> Result<Role, String> {
        match s {
            "standalone" => Ok(Role::Standalone),
            "router" => Ok(Role::Router),
            "broker" => Ok(Role::Broker),
            "edge" => Ok(Role::Edge),
            other => Err(format!(
                "unknown role `{other}` (standalone, router, broker, edge)"
            )),
        }
    }

    /// The role's name in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Standalone => "standalone",
            Role::Router => "router",
            Role::Broker => "broker",
            Role::Edge => "edge",
        }
    }
}

/// The mesh flags of `throng serve`.
#[derive(Debug, Default, Clone)]
pub struct MeshFlags {
    pub node_id: Option<String>,
    pub role: Option<String>,
    pub inter_router: Option<String>,
    /// `HOST:PORT` or `HOST:PORT,COST`, one per `--connect`.
    pub connect: Vec<String>,
}

/// A node's mesh settings, checked.
#[derive(Debug, Clone)]
pub struct MeshSettings {
    pub id: NodeId,
    pub role: Role,
    pub secret: Option<String>,
    /// Where other nodes connect (`listening inter-router HOST:PORT`).
    pub listen: Option<String>,
    pub connect: Vec<ConnectConfig>,
    pub timers: throng_mesh::Config,
}

impl MeshSettings {
    /// The settings from the config and the flags; `None`: a standalone node.
    pub fn from(config: &Config, flags: &MeshFlags) -> Result<Option<MeshSettings>, String> {
        let node = config.node.clone().unwrap_or_default();
        let mesh = config.mesh.clone().unwrap_or_default();
        let listen = flags.inter_router.clone().or_else(|| {
            config
                .listeners
                .as_ref()
                .and_then(|l| l.inter_router.clone())
        });
        let mut connect = mesh.connect.clone();
        for c in &flags.connect {
            connect.push(parse_connect(c)?);
        }
        let in_mesh = listen.is_some() || !connect.is_empty();
        let role = match flags.role.as_deref().or(node.role.as_deref()) {
            Some(r) => Role::parse(r)?,
            None if in_mesh => Role::Router,
            None => Role::Standalone,
        };
        match (role, in_mesh) {
            (Role::Standalone, false) => return Ok(None),
            (Role::Standalone, true) => {
                return Err(
                    "role `standalone` takes no part in a mesh: drop --inter-router/--connect \
                     ([listeners] inter_router, [[mesh.connect]]) or use role `router`"
                        .into(),
                )
            }
            (Role::Broker | Role::Edge, _) => {
                return Err(format!(
                    "role `{}` is not available in this version (it comes with brokers behind \
                     the mesh); use `router`, or `standalone` for one node",
                    role.as_str()
                ))
            }
            (Role::Router, false) => {
                return Err(
                    "role `router` needs a mesh: an inter-router listener (--inter-router, \
                     [listeners] inter_router) or a node to connect to (--connect, \
                     [[mesh.connect]])"
                        .into(),
                )
            }
            (Role::Router, true) => {}
        }
        let id = flags
            .node_id
            .clone()
            .or(node.id.clone())
            .ok_or("a node in a mesh needs an id: --node-id ID or [node] id")?;
        let id = NodeId::new(&id).map_err(|e| format!("node id `{id}`: {e}"))?;
        let secret = mesh.secret.clone().filter(|s| !s.is_empty());
        if secret.is_none() {
            let mut addrs = listen.iter().chain(connect.iter().map(|c| &c.address));
            if let Some(open) = addrs.find(|a| !is_loopback(a)) {
                return Err(format!(
                    "the mesh needs a secret ([mesh] secret) when an inter-router listener or \
                     connection is not on loopback ({open})"
                ));
            }
        }
        let mut timers = throng_mesh::Config::default();
        if let Some(ms) = mesh.hello_interval_ms {
            timers.hello_interval = Duration::from_millis(ms.max(10));
        }
        if let Some(ms) = mesh.dead_after_ms {
            timers.dead_after = Duration::from_millis(ms.max(30));
        }
        if timers.dead_after <= timers.hello_interval {
            return Err("[mesh] dead_after_ms must be longer than hello_interval_ms".into());
        }
        Ok(Some(MeshSettings {
            id,
            role,
            secret,
            listen,
            connect,
            timers,
        }))
    }
}

/// `HOST:PORT` or `HOST:PORT,COST`.
fn parse_connect(s: &str) -> Result<ConnectConfig, String> {
    let (address, cost) = match s.rsplit_once(',') {
        Some((a, c)) => (
            a,
            c.trim()
                .parse::<u32>()
                .ok()
                .filter(|c| *c > 0)
                .ok_or_else(|| format!("--connect {s}: the cost must be a whole number above 0"))?,
        ),
        None => (s, 1),
    };
    if !address.contains(':') {
        return Err(format!("--connect {s}: expected HOST:PORT[,COST]"));
    }
    Ok(ConnectConfig {
        address: address.trim().to_string(),
        cost,
    })
}

/// Whether `addr` (HOST:PORT) names the loopback interface.
fn is_loopback(addr: &str) -> bool {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(f: impl FnOnce(&mut MeshFlags)) -> MeshFlags {
        let mut m = MeshFlags::default();
        f(&mut m);
        m
    }

    #[test]
    fn no_mesh_settings_is_a_standalone_node() {
        let s = MeshSettings::from(&Config::default(), &MeshFlags::default()).unwrap();
        assert!(s.is_none());
    }

    #[test]
    fn flags_make_a_router_with_costs() {
        let f = flags(|f| {
            f.node_id = Some("r1".into());
            f.inter_router = Some("127.0.0.1:0".into());
            f.connect = vec!["127.0.0.1:5001".into(), "localhost:5002,7".into()];
        });
        let s = MeshSettings::from(&Config::default(), &f).unwrap().unwrap();
        assert_eq!(s.role, Role::Router);
        assert_eq!(s.id.as_str(), "r1");
        let costs: Vec<_> = s
            .connect
            .iter()
            .map(|c| (c.address.as_str(), c.cost))
            .collect();
        assert_eq!(costs, [("127.0.0.1:5001", 1), ("localhost:5002", 7)]);
    }

    #[test]
    fn the_config_file_names_the_same_things() {
        let c = Config::parse(
            r#"
            [node]
            id = "r2"
            role = "router"
            [listeners]
            inter_router = "0.0.0.0:55672"
            [mesh]
            secret = "s3cret"
            [[mesh.connect]]
            address = "10.0.0.2:55672"
            cost = 3
            "#,
        )
        .unwrap();
        let s = MeshSettings::from(&c, &MeshFlags::default())
            .unwrap()
            .unwrap();
        assert_eq!(s.id.as_str(), "r2");
        assert_eq!(s.secret.as_deref(), Some("s3cret"));
        assert_eq!(s.connect[0].cost, 3);
        assert_eq!(s.listen.as_deref(), Some("0.0.0.0:55672"));
    }

    #[test]
    fn what_cannot_work_is_refused_with_the_reason() {
        let cases: [(MeshFlags, &str); 6] = [
            (
                flags(|f| f.inter_router = Some("127.0.0.1:0".into())),
                "needs an id",
            ),
            (
                flags(|f| {
                    f.node_id = Some("b1".into());
                    f.role = Some("broker".into());
                    f.inter_router = Some("127.0.0.1:0".into());
                }),
                "not available in this version",
            ),
            (
                flags(|f| {
                    f.node_id = Some("r1".into());
                    f.role = Some("router".into());
                }),
                "needs a mesh",
            ),
            (
                flags(|f| {
                    f.node_id = Some("r1".into());
                    f.inter_router = Some("0.0.0.0:55672".into());
                }),
                "needs a secret",
            ),
            (
                flags(|f| {
                    f.node_id = Some("r1".into());
                    f.connect = vec!["127.0.0.1:1,0".into()];
                }),
                "above 0",
            ),
            (
                flags(|f| {
                    f.node_id = Some("r1".into());
                    f.role = Some("standalone".into());
                    f.connect = vec!["127.0.0.1:1".into()];
                }),
                "takes no part",
            ),
        ];
        for (f, want) in cases {
            let e = MeshSettings::from(&Config::default(), &f).unwrap_err();
            assert!(e.contains(want), "{e:?} should say {want:?}");
        }
    }
}
