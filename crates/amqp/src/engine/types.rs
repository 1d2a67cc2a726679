//! The engine's public vocabulary: configuration, identifiers, events and errors.

use crate::codec::{Fields, Symbol};
use crate::definitions::{
    Attach, DeliveryState, Error, Open, ReceiverSettleMode, Role, SenderSettleMode, Source,
    TargetTerminus,
};
use bytes::Bytes;
use std::time::Duration;

/// Which side opened the TCP connection: the client speaks first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

/// How a client authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslClient {
    /// No SASL layer: the AMQP header is sent straight away.
    None,
    /// SASL ANONYMOUS.
    Anonymous,
    /// SASL PLAIN with a user name and password.
    Plain { username: String, password: String },
}

/// What a server offers for authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslServer {
    /// Mechanisms offered in sasl-mechanisms, in order of preference.
    pub mechanisms: Vec<Symbol>,
    /// Whether a client may skip SASL and send the AMQP header directly.
    pub allow_skip: bool,
}

/// Settings for one connection.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    pub side: Side,
    pub container_id: String,
    pub hostname: Option<String>,
    /// Largest frame we accept (and announce).
    pub max_frame_size: u32,
    /// Highest channel number we accept.
    pub channel_max: u16,
    /// Our idle timeout: a peer silent for this long is closed.
    pub idle_timeout: Option<Duration>,
    /// Frames a session may receive before it must be granted more window.
    pub session_window: u32,
    /// Largest message accepted on our receiving links.
    pub max_message_size: u64,
    pub offered_capabilities: Vec<Symbol>,
    pub properties: Option<Fields>,
    pub sasl_client: SaslClient,
    /// Whether a transfer beyond the credit we granted detaches the link with
    /// `amqp:link:transfer-limit-exceeded` (servers) or is tolerated (clients, since some
    /// brokers overshoot).
    pub strict_credit: bool,
    pub sasl_server: Option<SaslServer>,
}

impl ConnectionConfig {
    /// Defaults for a client (SASL ANONYMOUS).
    pub fn client(container_id: impl Into<String>) -> Self {
        ConnectionConfig {
            side: Side::Client,
            container_id: container_id.into(),
            hostname: None,
            max_frame_size: 65536,
            channel_max: 255,
            idle_timeout: None,
            session_window: 16384,
            max_message_size: 64 * 1024 * 1024,
            offered_capabilities: Vec::new(),
            properties: None,
            sasl_client: SaslClient::Anonymous,
            strict_credit: false,
            sasl_server: None,
        }
    }

    /// Defaults for a server offering ANONYMOUS and PLAIN.
    pub fn server(container_id: impl Into<String>) -> Self {
        ConnectionConfig {
            side: Side::Server,
            sasl_server: Some(SaslServer {
                mechanisms: vec![Symbol::new("PLAIN"), Symbol::new("ANONYMOUS")],
                allow_skip: true,
            }),
            sasl_client: SaslClient::None,
            strict_credit: true,
            ..ConnectionConfig::client(container_id)
        }
    }
}

/// A session, named by its local channel number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u16);

/// A link, named by an id unique for the life of the connection (never reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(pub u32);

/// What we put in our attach, when initiating a link or answering a peer's attach.
#[derive(Debug, Clone, Default)]
pub struct LinkSpec {
    pub name: String,
    /// Our role on the link.
    pub role: Role,
    pub source: Option<Source>,
    pub target: Option<TargetTerminus>,
    pub snd_settle_mode: SenderSettleMode,
    pub rcv_settle_mode: ReceiverSettleMode,
    pub offered_capabilities: Option<Vec<Symbol>>,
    pub desired_capabilities: Option<Vec<Symbol>>,
    pub properties: Option<Fields>,
}

/// What happened on the connection, for the application to act on.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// (Server) the client chose a mechanism; answer with [`super::Connection::sasl_outcome`].
    SaslInit {
        mechanism: Symbol,
        initial_response: Option<Bytes>,
        hostname: Option<String>,
    },
    /// The peer's open arrived.
    Opened(Box<Open>),
    /// A session is mapped (the peer began it, or answered our begin).
    SessionBegun(SessionId),
    /// A session ended (by the peer, or with the connection).
    SessionEnded {
        session: SessionId,
        error: Option<Error>,
    },
    /// The peer attached a new link; answer with `accept_link` or `refuse_link`.
    AttachRequested {
        link: LinkId,
        session: SessionId,
        attach: Box<Attach>,
    },
    /// The peer answered our attach.
    Attached { link: LinkId, attach: Box<Attach> },
    /// Flow state of a link changed: for our sending links, the credit we may use; for our
    /// receiving links, the credit left after the sender's update (drain completes here).
    Flow {
        link: LinkId,
        credit: u32,
        drain: bool,
        available: u32,
    },
    /// A complete message arrived on one of our receiving links.
    Delivery {
        link: LinkId,
        delivery_id: u32,
        tag: Bytes,
        payload: Bytes,
        settled: bool,
        message_format: u32,
        /// The transfer's delivery state: a transactional send carries its txn-id here.
        state: Option<DeliveryState>,
    },
    /// The peer updated or settled a delivery on `link`.
    Disposition {
        link: LinkId,
        delivery_id: u32,
        state: Option<DeliveryState>,
        settled: bool,
    },
    /// The link is gone (the engine already answered the peer's detach).
    Detached {
        link: LinkId,
        closed: bool,
        error: Option<Error>,
    },
    /// The connection is closed; `error` is the peer's or the one we closed with.
    Closed { error: Option<Error>, by_peer: bool },
}

/// Misuse of the engine by the application (never caused by the peer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("unknown link")]
    UnknownLink,
    #[error("unknown session")]
    UnknownSession,
    #[error("link is not attached as a sender")]
    NotSender,
    #[error("link is not attached as a receiver")]
    NotReceiver,
    #[error("no link credit")]
    NoCredit,
    #[error("message exceeds the peer's max-message-size")]
    MessageTooLarge,
    #[error("connection is closed")]
    Closed,
    #[error("no free channel")]
    NoChannel,
}
