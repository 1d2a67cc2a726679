//! A Rust AMQP 1.0 client on Throng's own sans-IO engine and tokio.
//!
//! Used by the integration tests, `throng bench`, and later the CLI and inter-router
//! links. One [`Connection`] runs a driver task that owns the engine and the socket;
//! [`Sender`] and [`Receiver`] handles talk to it over channels.

mod driver;

use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use throng_amqp::codec::{Symbol, Value};
use throng_amqp::definitions::{
    DeliveryState, Error, Role, SenderSettleMode, Source, Target, TargetTerminus,
};
use throng_amqp::engine::{LinkId, LinkSpec, SaslClient};
use throng_amqp::message::Message;
use tokio::sync::{mpsc, oneshot};

pub use driver::Command;

/// Why a client operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error("i/o: {0}")]
    Io(String),
    #[error("refused by peer: {}: {}", .0.condition, .0.description.clone().unwrap_or_default())]
    Refused(Error),
    #[error("connection closed")]
    Closed,
    #[error("timed out")]
    Timeout,
}

/// How to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub container_id: String,
    pub hostname: Option<String>,
    pub sasl: SaslClient,
    pub max_frame_size: u32,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        static N: AtomicU64 = AtomicU64::new(1);
        ConnectOptions {
            container_id: format!(
                "throng-client-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ),
            hostname: None,
            sasl: SaslClient::Anonymous,
            max_frame_size: 65536,
        }
    }
}

/// Options of a receiving link.
#[derive(Debug, Clone)]
pub struct ReceiverOptions {
    /// Credit kept topped up automatically; 0 means credit is granted by hand.
    pub window: u32,
    /// Ask the server for a temporary address.
    pub dynamic: bool,
    /// Ask for presettled deliveries.
    pub presettled: bool,
    /// Source capabilities (e.g. `topic`).
    pub capabilities: Vec<Symbol>,
    /// A JMS selector, sent as the `apache.org:selector-filter:string` source filter.
    pub selector: Option<String>,
    /// Browse: ask for copies (distribution-mode `copy`) instead of taking messages.
    pub browse: bool,
    /// A durable subscription: terminus durability `unsettled-state` and expiry-policy
    /// `never`; it is named by the container-id and `link_name`.
    pub durable: bool,
    /// The link name (default: a unique one).
    pub link_name: Option<String>,
}

impl Default for ReceiverOptions {
    fn default() -> Self {
        ReceiverOptions {
            window: 100,
            dynamic: false,
            presettled: false,
            capabilities: Vec::new(),
            selector: None,
            browse: false,
            durable: false,
            link_name: None,
        }
    }
}

/// Options of a sending link.
#[derive(Debug, Clone, Default)]
pub struct SenderOptions {
    /// Send every message presettled.
    pub presettled: bool,
    /// Target capabilities (e.g. `topic`).
    pub capabilities: Vec<Symbol>,
}

/// A connection to an AMQP 1.0 server.
#[derive(Clone)]
pub struct Connection {
    cmds: mpsc::UnboundedSender<Command>,
}

impl Connection {
    /// Connects over TCP and completes SASL and open.
    pub async fn connect(addr: &str, opts: ConnectOptions) -> Result<Connection, ClientError> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| ClientError::Io(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        tokio::spawn(driver::run(stream, opts, rx, ready_tx));
        ready_rx.await.map_err(|_| ClientError::Closed)??;
        Ok(Connection { cmds: tx })
    }

    fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, ClientError>>) -> Command,
    ) -> oneshot::Receiver<Result<T, ClientError>> {
        let (tx, rx) = oneshot::channel();
        let _ = self.cmds.send(make(tx));
        rx
    }

    /// Attaches a sender to `address` (`None`: the anonymous relay).
    pub async fn open_sender(
        &self,
        address: Option<&str>,
        opts: SenderOptions,
    ) -> Result<Sender, ClientError> {
        let spec = LinkSpec {
            name: link_name("sender"),
            role: Role::Sender,
            source: Some(Source::default()),
            target: Some(TargetTerminus::Target(Target {
                address: address.map(str::to_string),
                capabilities: (!opts.capabilities.is_empty()).then(|| opts.capabilities.clone()),
                ..Target::default()
            })),
            snd_settle_mode: if opts.presettled {
                SenderSettleMode::Settled
            } else {
                SenderSettleMode::Unsettled
            },
            ..LinkSpec::default()
        };
        let (link, _) = self
            .call(|reply| Command::Attach {
                spec,
                window: 0,
                reply,
            })
            .await
            .map_err(|_| ClientError::Closed)??;
        Ok(Sender {
            link,
            presettled: opts.presettled,
            cmds: self.cmds.clone(),
        })
    }

    /// Attaches a receiver to `address` (ignored when `opts.dynamic`).
    pub async fn open_receiver(
        &self,
        address: &str,
        opts: ReceiverOptions,
    ) -> Result<Receiver, ClientError> {
        let spec = LinkSpec {
            name: opts
                .link_name
                .clone()
                .unwrap_or_else(|| link_name("receiver")),
            role: Role::Receiver,
            source: Some(Source {
                address: (!opts.dynamic).then(|| address.to_string()),
                dynamic: opts.dynamic.then_some(true),
                distribution_mode: opts.browse.then(|| Symbol::new("copy")),
                durable: opts.durable.then_some(2),
                expiry_policy: opts.durable.then(|| Symbol::new("never")),
                capabilities: (!opts.capabilities.is_empty()).then(|| opts.capabilities.clone()),
                filter: opts.selector.as_ref().map(|sel| {
                    vec![(
                        Symbol::new("jms-selector"),
                        Value::Described(
                            Box::new(Value::Symbol(Symbol::new(
                                "apache.org:selector-filter:string",
                            ))),
                            Box::new(Value::String(sel.clone())),
                        ),
                    )]
                }),
                ..Source::default()
            }),
            target: Some(TargetTerminus::Target(Target::default())),
            snd_settle_mode: if opts.presettled {
                SenderSettleMode::Settled
            } else {
                SenderSettleMode::Unsettled
            },
            ..LinkSpec::default()
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let window = opts.window;
        let (link, remote_address) = self
            .call(|reply| Command::AttachReceiver {
                spec,
                window,
                deliveries: tx,
                reply,
            })
            .await
            .map_err(|_| ClientError::Closed)??;
        Ok(Receiver {
            link,
            address: remote_address,
            deliveries: rx,
            window,
            consumed: 0,
            cmds: self.cmds.clone(),
        })
    }

    /// Closes the connection and waits for the peer's close.
    pub async fn close(&self) -> Result<(), ClientError> {
        self.call(|reply| Command::Close { reply })
            .await
            .map_err(|_| ClientError::Closed)?
    }
}

fn link_name(kind: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(1);
    format!(
        "{kind}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Counts of outcomes of sends made with [`Sender::send_counted`].
#[derive(Debug, Default)]
pub struct OutcomeCounter {
    pub accepted: AtomicU64,
    pub other: AtomicU64,
    pub notify: tokio::sync::Notify,
}

impl OutcomeCounter {
    /// All outcomes so far.
    pub fn settled(&self) -> u64 {
        self.accepted.load(Ordering::Acquire) + self.other.load(Ordering::Acquire)
    }
}

/// A sending link.
pub struct Sender {
    link: LinkId,
    presettled: bool,
    cmds: mpsc::UnboundedSender<Command>,
}

impl Sender {
    /// Sends an encoded message and waits for its outcome (`Accepted` at once when the
    /// link sends presettled). Waits for credit if there is none.
    pub async fn send(&self, message: Bytes) -> Result<DeliveryState, ClientError> {
        let (tx, rx) = oneshot::channel();
        let _ = self.cmds.send(Command::Send {
            link: self.link,
            payload: message,
            settled: self.presettled,
            reply: Some(tx),
            counter: None,
        });
        rx.await.map_err(|_| ClientError::Closed)?
    }

    /// Queues a message without waiting; its outcome is counted in `counter`.
    pub fn send_counted(&self, message: Bytes, counter: &Arc<OutcomeCounter>) {
        let _ = self.cmds.send(Command::Send {
            link: self.link,
            payload: message,
            settled: self.presettled,
            reply: None,
            counter: Some(counter.clone()),
        });
    }

    /// The credit the peer granted and this side has not used, as last seen.
    pub async fn credit(&self) -> u32 {
        let (tx, rx) = oneshot::channel();
        let _ = self.cmds.send(Command::Credit {
            link: self.link,
            reply: tx,
        });
        rx.await.unwrap_or(0)
    }

    /// Detaches (closes) the link.
    pub async fn close(self) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        let _ = self.cmds.send(Command::Detach {
            link: self.link,
            closed: true,
            reply: tx,
        });
        rx.await.map_err(|_| ClientError::Closed)?
    }
}

/// A message received, to be settled.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub delivery_id: u32,
    pub settled: bool,
    pub message: Message,
    pub(crate) link: LinkId,
}

/// A receiving link.
pub struct Receiver {
    link: LinkId,
    address: Option<String>,
    deliveries: mpsc::UnboundedReceiver<Result<Delivery, ClientError>>,
    window: u32,
    consumed: u32,
    cmds: mpsc::UnboundedSender<Command>,
}

impl Receiver {
    /// The source address the server assigned (dynamic receivers) or confirmed.
    pub fn address(&self) -> Option<&str> {
        self.address.as_deref()
    }

    /// The next delivery; `None` once the link or connection is gone.
    pub async fn recv(&mut self) -> Option<Result<Delivery, ClientError>> {
        let d = self.deliveries.recv().await;
        if matches!(d, Some(Ok(_))) && self.window > 0 {
            self.consumed += 1;
            if self.consumed >= self.window / 2 {
                let _ = self.cmds.send(Command::AddCredit {
                    link: self.link,
                    credit: self.consumed,
                });
                self.consumed = 0;
            }
        }
        d
    }

    /// The next delivery within `timeout`.
    pub async fn recv_timeout(
        &mut self,
        timeout: std::time::Duration,
    ) -> Result<Delivery, ClientError> {
        match tokio::time::timeout(timeout, self.recv()).await {
            Err(_) => Err(ClientError::Timeout),
            Ok(None) => Err(ClientError::Closed),
            Ok(Some(r)) => r,
        }
    }

    /// Grants `credit` more (for receivers opened with `window: 0`).
    pub fn add_credit(&self, credit: u32) {
        let _ = self.cmds.send(Command::AddCredit {
            link: self.link,
            credit,
        });
    }

    /// Asks the sender to use up or give back the credit; resolves when it has.
    pub async fn drain(&self) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        let _ = self.cmds.send(Command::Drain {
            link: self.link,
            reply: tx,
        });
        rx.await.map_err(|_| ClientError::Closed)?
    }

    /// Settles a delivery with an outcome.
    pub fn settle(&self, d: &Delivery, state: DeliveryState) {
        let _ = self.cmds.send(Command::Settle {
            link: d.link,
            delivery_id: d.delivery_id,
            state,
        });
    }

    /// Accepts a delivery.
    pub fn accept(&self, d: &Delivery) {
        self.settle(d, DeliveryState::Accepted)
    }

    /// Detaches (closes) the link.
    pub async fn close(self) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        let _ = self.cmds.send(Command::Detach {
            link: self.link,
            closed: true,
            reply: tx,
        });
        rx.await.map_err(|_| ClientError::Closed)?
    }

    /// Detaches without closing: a durable subscription stays and keeps collecting.
    pub async fn detach(self) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        let _ = self.cmds.send(Command::Detach {
            link: self.link,
            closed: false,
            reply: tx,
        });
        rx.await.map_err(|_| ClientError::Closed)?
    }
}
