//! The node's TOML configuration (the contract in docs/ARCHITECTURE.md). Unknown keys are errors
//! that name the key, so a typo never silently changes behaviour.

use serde::Deserialize;
use std::path::PathBuf;
use throng_core::{AddressKind, AddressOptions, Op, Permission, Tenant, User};

/// The whole config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub data_dir: Option<PathBuf>,
    /// Threads that run connections (tokio workers); default one per CPU core. A node
    /// that carries little traffic spends less CPU per message on one: with several,
    /// an idle worker is woken to share every burst of work (docs/BENCHMARKS.md, MQTT).
    pub worker_threads: Option<std::num::NonZeroUsize>,
    pub listeners: Option<Listeners>,
    #[serde(default)]
    pub mqtt: MqttConfig,
    #[serde(default)]
    pub tenant: Vec<TenantConfig>,
    /// This node's place in a mesh (`[node]`).
    pub node: Option<NodeConfig>,
    /// The mesh it joins (`[mesh]`, `[[mesh.connect]]`).
    pub mesh: Option<MeshConfig>,
}

/// `[node]`: who this node is in a mesh.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Unique in the mesh.
    pub id: Option<String>,
    /// `standalone` (the default without a mesh), `router` (the default with one),
    /// `broker`, `edge`.
    pub role: Option<String>,
}

/// `[mesh]`: how this node reaches the others.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeshConfig {
    /// The secret the nodes of one mesh prove to each other (SASL PLAIN on the
    /// inter-router connections); optional only while every inter-router listener and
    /// connection is on loopback.
    pub secret: Option<String>,
    /// Interval between hellos, ms (default 250).
    pub hello_interval_ms: Option<u64>,
    /// Silence after which a neighbour is dead, ms (default 750).
    pub dead_after_ms: Option<u64>,
    /// Nodes this one dials.
    #[serde(default)]
    pub connect: Vec<ConnectConfig>,
}

/// One `[[mesh.connect]]`: a node to dial, and the cost of the connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectConfig {
    /// HOST:PORT of its inter-router listener.
    pub address: String,
    /// The connection's cost in routing (default 1).
    #[serde(default = "one")]
    pub cost: u32,
}

fn one() -> u32 {
    1
}

/// MQTT settings for the whole node (`[mqtt]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// The longest keep-alive an MQTT 5 client may use, in seconds: a client asking for
    /// more, or for none (0), is told this one in the CONNACK (Server Keep Alive) and is
    /// disconnected after 1.5 times it without traffic. 0 lets clients choose freely.
    /// 3.1.1 cannot be told: its clients keep their own. Default 65535 (the largest).
    #[serde(default = "MqttConfig::default_max_keep_alive")]
    pub max_keep_alive: u16,
}

impl MqttConfig {
    fn default_max_keep_alive() -> u16 {
        u16::MAX
    }
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            max_keep_alive: Self::default_max_keep_alive(),
        }
    }
}

/// Listener addresses; when any is named, only the named ones open.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listeners {
    pub amqp: Option<String>,
    pub amqps: Option<String>,
    pub mqtt: Option<String>,
    pub mqtts: Option<String>,
    pub http: Option<String>,
    /// Other nodes of the mesh connect here (never ordinary clients).
    pub inter_router: Option<String>,
}

/// One tenant.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    pub name: String,
    #[serde(default = "yes")]
    pub auto_create: bool,
    #[serde(default)]
    pub address: Vec<AddressConfig>,
    #[serde(default)]
    pub user: Vec<UserConfig>,
    /// MQTT topic filters this tenant refuses subscriptions to (e.g. `"secret/#"`): a
    /// SUBSCRIBE filter that could match a topic one of them matches (so `#` too) gets
    /// SUBACK 0x80 / 0x87.
    #[serde(default)]
    pub deny_filters: Vec<String>,
}

fn yes() -> bool {
    true
}

/// A declared address.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressConfig {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Bytes a queue (or each topic subscription) holds, in memory and page files,
    /// before `full_policy` applies: the disk limit. Default 4 GiB.
    pub max_bytes: Option<u64>,
    /// Bytes of messages a queue keeps in memory; past it, new messages wait in page
    /// files on disk and are read back in order. Default 32 MiB.
    pub memory_limit: Option<u64>,
    /// Where rejected and too-often-failed messages go (default: the tenant's `DLQ`).
    pub dead_letter_address: Option<String>,
    /// Failed deliveries before dead-lettering (default 10).
    pub max_delivery_attempts: Option<u32>,
    /// Where expired messages go (default: dropped).
    pub expiry_address: Option<String>,
    /// Delay before a released or failed message is offered again, ms (default 0).
    pub redelivery_delay_ms: Option<u64>,
    /// What a full queue does: `block` (producers get no credit, the default) or
    /// `reject` (new messages are rejected with `amqp:resource-limit-exceeded`).
    pub full_policy: Option<String>,
}

/// A tenant user.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    pub password: String,
    #[serde(default)]
    pub permissions: Vec<PermissionConfig>,
}

/// A permission entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionConfig {
    pub pattern: String,
    pub ops: Vec<String>,
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Reads and parses a config file.
    pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.into(),
                message,
            },
            other => other,
        })
    }

    /// Parses config text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::new(),
            message: e.to_string(),
        })
    }

    /// Builds the tenants; with none configured, the standalone `default` tenant that
    /// auto-creates addresses and admits anonymous clients.
    pub fn tenants(
        &self,
        journal: Option<throng_store::Journal>,
    ) -> Result<Vec<Tenant>, ConfigError> {
        if self.tenant.is_empty() {
            return Ok(vec![Tenant::with_journal(
                "default",
                true,
                Vec::new(),
                journal,
            )]);
        }
        let mut out = Vec::new();
        for t in &self.tenant {
            if out.iter().any(|x: &Tenant| x.name() == t.name) {
                return Err(ConfigError::Invalid(format!(
                    "tenant `{}` is declared twice",
                    t.name
                )));
            }
            let mut users = Vec::new();
            for u in &t.user {
                let mut permissions = Vec::new();
                for p in &u.permissions {
                    let mut ops = Vec::new();
                    for op in &p.ops {
                        ops.push(Op::parse(op).ok_or_else(|| {
                            ConfigError::Invalid(format!(
                                "tenant `{}` user `{}`: unknown operation `{op}` (send, recv, view, manage)",
                                t.name, u.name
                            ))
                        })?);
                    }
                    permissions.push(Permission {
                        pattern: p.pattern.clone(),
                        ops,
                    });
                }
                users.push(User {
                    name: u.name.clone(),
                    password: u.password.clone(),
                    permissions,
                });
            }
            for f in &t.deny_filters {
                if throng_mqtt::topic::validate_filter(f).is_err() {
                    return Err(ConfigError::Invalid(format!(
                        "tenant `{}`: deny_filters entry `{f}` is not a valid MQTT topic filter",
                        t.name
                    )));
                }
            }
            let tenant =
                Tenant::with_journal(t.name.clone(), t.auto_create, users, journal.clone())
                    .with_denied_filters(t.deny_filters.clone());
            for a in &t.address {
                let kind = AddressKind::parse(&a.kind).ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "tenant `{}` address `{}`: unknown type `{}` (queue, topic, anycast, multicast)",
                        t.name, a.name, a.kind
                    ))
                })?;
                if let Some(existing) = tenant.lookup(&a.name) {
                    if existing.kind() != kind {
                        return Err(ConfigError::Invalid(format!(
                            "tenant `{}` address `{}` is declared twice with different types",
                            t.name, a.name
                        )));
                    }
                }
                tenant.create_with(
                    &a.name,
                    kind,
                    &AddressOptions {
                        max_bytes: a.max_bytes.map(|b| b as usize),
                        memory_limit: a.memory_limit.map(|b| b as usize),
                        dead_letter_address: a.dead_letter_address.clone(),
                        max_delivery_attempts: a.max_delivery_attempts,
                        expiry_address: a.expiry_address.clone(),
                        redelivery_delay_ms: a.redelivery_delay_ms,
                        reject_when_full: match a.full_policy.as_deref() {
                            None | Some("block") => None,
                            Some("reject") => Some(true),
                            Some(other) => {
                                return Err(ConfigError::Invalid(format!(
                                    "tenant `{}` address `{}`: unknown full_policy `{other}` (block, reject)",
                                    t.name, a.name
                                )))
                            }
                        },
                    },
                );
            }
            out.push(tenant);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_is_named() {
        let err = Config::parse("data_dir = \"x\"\nlisteners = { amqp = \"1\", smtp = \"2\" }\n")
            .unwrap_err();
        assert!(err.to_string().contains("smtp"), "{err}");
    }

    #[test]
    fn mqtt_settings_default_and_parse() {
        assert_eq!(Config::parse("").unwrap().mqtt.max_keep_alive, u16::MAX);
        let c = Config::parse("[mqtt]\nmax_keep_alive = 60\n").unwrap();
        assert_eq!(c.mqtt.max_keep_alive, 60);
        let err = Config::parse("[mqtt]\nkeepalive = 60\n").unwrap_err();
        assert!(err.to_string().contains("keepalive"), "{err}");
    }

    #[test]
    fn worker_threads_is_a_positive_count() {
        assert_eq!(Config::parse("").unwrap().worker_threads, None);
        let c = Config::parse("worker_threads = 1\n").unwrap();
        assert_eq!(c.worker_threads.map(|n| n.get()), Some(1));
        let err = Config::parse("worker_threads = 0\n").unwrap_err();
        assert!(err.to_string().contains("worker_threads"), "{err}");
    }

    #[test]
    fn design_example_parses() {
        let c = Config::parse(
            r#"
data_dir = "./data"
[listeners]
amqp = "0.0.0.0:5672"
mqtt = "0.0.0.0:1883"
http = "0.0.0.0:8080"

[[tenant]]
name = "default"
auto_create = true

[[tenant.address]]
name = "orders"
type = "queue"

[[tenant.user]]
name = "alice"
password = "secret"
permissions = [{ pattern = "orders*", ops = ["send", "recv"] }]
"#,
        )
        .unwrap();
        let tenants = c.tenants(None).unwrap();
        assert_eq!(tenants.len(), 1);
        assert_eq!(
            tenants[0].lookup("orders").map(|a| a.kind()),
            Some(AddressKind::Queue)
        );
        let alice = tenants[0].user("alice").unwrap();
        assert!(alice.may(Op::Send, "orders.eu"));
        assert!(!alice.may(Op::Send, "billing"));
        assert!(!alice.may(Op::Manage, "orders"));
    }

    #[test]
    fn bad_address_type_is_refused() {
        let c = Config::parse(
            "[[tenant]]\nname = \"t\"\n[[tenant.address]]\nname = \"a\"\ntype = \"fifo\"\n",
        )
        .unwrap();
        assert!(c.tenants(None).is_err());
    }
}
