//! `throng serve`: builds the node from config and flags, opens the listeners, and runs
//! until SIGTERM or SIGINT.

use crate::amqp::{serve_connection, ConnectionLimits};
use crate::config::{Config, Listeners};
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use throng_core::Node;
use throng_store::{Journal, JournalConfig, MetadataStore};
use tokio::net::{TcpListener, TcpStream};
use tracing::{error, info, warn};

/// Command-line overrides of the config file.
#[derive(Debug, Default, Clone)]
pub struct ServeOverrides {
    pub data_dir: Option<PathBuf>,
    pub amqp: Option<String>,
    pub mqtt: Option<String>,
    pub http: Option<String>,
    /// Skip corrupt journal records instead of refusing to start.
    pub skip_corrupt_journal: bool,
    /// `--node-id`, `--role`, `--inter-router`, `--connect`.
    pub mesh: crate::mesh::settings::MeshFlags,
}

/// Runs a standalone node until a termination signal; `Ok` means a clean stop.
pub async fn serve(config: Config, overrides: ServeOverrides) -> Result<(), String> {
    let stop = StopSignals::register();
    let mesh_settings = crate::mesh::MeshSettings::from(&config, &overrides.mesh)?;
    let data_dir = overrides
        .data_dir
        .clone()
        .or(config.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from("./data"));
    std::fs::create_dir_all(&data_dir)
        .map_err(|e| format!("cannot create data dir {}: {e}", data_dir.display()))?;
    let mut journal_config = JournalConfig::new(data_dir.join("journal"));
    journal_config.skip_corrupt = overrides.skip_corrupt_journal;
    let (journal, recovered) = Journal::open_indexed(journal_config)
        .map_err(|e| format!("cannot open the journal in {}: {e}", data_dir.display()))?;
    let metadata = MetadataStore::open(&data_dir.join("metadata.redb"))
        .map(Arc::new)
        .map_err(|e| {
            format!(
                "cannot open the metadata store in {}: {e}",
                data_dir.display()
            )
        })?;
    let subscriptions = metadata.subscriptions().map_err(|e| e.to_string())?;
    let tenants = config
        .tenants(Some(journal.clone()))
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|t| t.with_metadata(Some(metadata.clone())))
        .collect();
    let node = Arc::new(Node::new(tenants));
    let addresses = metadata.addresses().map_err(|e| e.to_string())?;
    let retained = metadata.retained().map_err(|e| e.to_string())?;
    for t in node.tenants() {
        t.restore_addresses(&addresses);
        t.restore_subscriptions(&subscriptions);
        t.restore_retained(&retained);
    }
    crate::recovery::restore(&node, recovered)?;

    // When any listener is named (flag or [listeners]), only the named ones open.
    let named = overrides.amqp.is_some()
        || overrides.mqtt.is_some()
        || overrides.http.is_some()
        || overrides.mesh.inter_router.is_some()
        || config.listeners.is_some();
    let from_file = config.listeners.clone().unwrap_or_default();
    let listeners = if named {
        Listeners {
            amqp: overrides.amqp.clone().or(from_file.amqp),
            amqps: from_file.amqps,
            mqtt: overrides.mqtt.clone().or(from_file.mqtt),
            mqtts: from_file.mqtts,
            http: overrides.http.clone().or(from_file.http),
            inter_router: None,
        }
    } else {
        Listeners {
            amqp: Some("0.0.0.0:5672".into()),
            mqtt: Some("0.0.0.0:1883".into()),
            http: Some("0.0.0.0:8080".into()),
            ..Listeners::default()
        }
    };
    for (name, addr) in [("amqps", &listeners.amqps), ("mqtts", &listeners.mqtts)] {
        if let Some(a) = addr {
            warn!(
                "the {name} listener ({a}) is not available in this version (no TLS yet); it is not opened"
            );
        }
    }
    let mut tasks = Vec::new();
    let mqtt_sessions = Arc::new(crate::mqtt::Sessions::new(config.mqtt.clone()));
    let stored_sessions = metadata.mqtt_sessions().map_err(|e| e.to_string())?;
    mqtt_sessions.restore(&node, &stored_sessions);
    // wills of connections the last run lost: published now, or after their delay
    let stored_wills = metadata.wills().map_err(|e| e.to_string())?;
    mqtt_sessions.restore_wills(crate::wills::read_stored(&node, &stored_wills));
    let mesh = mesh_settings.map(|s| {
        info!(
            node = s.id.as_str(),
            role = s.role.as_str(),
            "joining the mesh"
        );
        (s.listen.clone(), crate::mesh::Mesh::start(node.clone(), s))
    });
    if let Some((Some(addr), mesh)) = &mesh {
        let listener = open_listener("inter-router", addr).await?;
        let mesh = mesh.clone();
        tasks.push(tokio::spawn(accept_loop(
            "inter-router",
            listener,
            move |stream, peer| mesh.clone().accept(stream, peer),
        )));
    }
    if let Some(addr) = &listeners.amqp {
        let listener = open_listener("amqp", addr).await?;
        let (node, limits) = (node.clone(), ConnectionLimits::default());
        tasks.push(tokio::spawn(accept_loop(
            "amqp",
            listener,
            move |stream, peer| serve_connection(stream, peer, node.clone(), limits.clone()),
        )));
    }
    if let Some(addr) = &listeners.mqtt {
        let listener = open_listener("mqtt", addr).await?;
        let (node, sessions) = (node.clone(), mqtt_sessions.clone());
        tasks.push(tokio::spawn(accept_loop(
            "mqtt",
            listener,
            move |stream, peer| {
                crate::mqtt::serve_connection(stream, peer, node.clone(), sessions.clone())
            },
        )));
    }
    if let Some(addr) = &listeners.http {
        let listener = open_listener("http", addr).await?;
        tasks.push(tokio::spawn(crate::http::serve(
            listener,
            node.clone(),
            mqtt_sessions.clone(),
            mesh.as_ref().map(|(_, m)| m.clone()),
        )));
    }
    if tasks.is_empty() && mesh.is_none() {
        return Err("no listener to open".into());
    }
    info!(data_dir = %data_dir.display(), "node running");
    stop.wait().await;
    info!("stopping");
    for t in tasks {
        t.abort();
    }
    journal
        .sync()
        .map_err(|e| format!("flushing the journal: {e}"))?;
    metadata.flush();
    let st = journal.stats();
    info!(
        records = st.records,
        fsyncs = st.fsyncs,
        records_per_fsync = st.records as f64 / st.fsyncs.max(1) as f64,
        segments_live = st.segments_live,
        segments_deleted = st.segments_deleted,
        "journal flushed"
    );
    Ok(())
}

/// Pending connections the kernel queues for us. The default (128) overflows when
/// hundreds of clients connect at once, and each overflow costs a client a one-second
/// SYN retransmit.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds a listener on `addr` (HOST:PORT, names resolved) with a deep accept queue.
async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    let mut last = None;
    for sa in tokio::net::lookup_host(addr).await? {
        let socket = if sa.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(sa).and_then(|_| socket.listen(LISTEN_BACKLOG)) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "address resolves to nothing",
        )
    }))
}

/// Binds the `proto` listener on `addr` and prints the `listening PROTO HOST:PORT` line
/// tests rely on.
async fn open_listener(proto: &str, addr: &str) -> Result<TcpListener, String> {
    let listener = bind(addr)
        .await
        .map_err(|e| format!("cannot listen for {proto} on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening {proto} {local}");
    let _ = out.flush();
    Ok(listener)
}

/// Accepts `proto` connections for ever, each served by its own task (`serve`), with
/// Nagle off. A failed accept (out of file descriptors, say) is logged and retried
/// after a pause instead of spinning.
async fn accept_loop<F, Fut>(proto: &'static str, listener: TcpListener, serve: F)
where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve(stream, peer));
            }
            Err(e) => {
                error!(proto, "accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// The stop signals, registered before any listener opens: a SIGTERM that arrives
/// while the node is still starting (a test that stops it at once) is a clean stop
/// too, not the default action that kills the process.
struct StopSignals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn register() -> Self {
        StopSignals {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok(),
        }
    }

    /// Resolves at SIGTERM or SIGINT.
    async fn wait(mut self) {
        #[cfg(unix)]
        if let Some(term) = self.term.as_mut() {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
