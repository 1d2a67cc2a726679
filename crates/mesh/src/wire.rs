//! The routing protocol's messages and their encoding: what one node says to a
//! neighbour. Nothing here is routed further than one hop; records are flooded by each
//! node forwarding what was news to it.
//!
//! The encoding is ours and compact: a protocol version byte, a kind byte, then the
//! fields as LEB128 integers and length-prefixed UTF-8. The server carries one message
//! per AMQP message body on the inter-router control link. Decoding is hostile-input
//! safe: every length is checked against what is left of the buffer before anything is
//! allocated, names are validated as [`NodeId`] / [`AddressKey`], and no input panics.

use std::fmt;

use crate::id::{AddressKey, InvalidName, NodeId, MAX_ADDRESS, MAX_NODE_ID, MAX_TENANT};

/// The version byte every message starts with; a node refuses other versions.
pub const PROTOCOL_VERSION: u8 = 1;

/// How a record's versions order: a node's `instance` grows with every start (the
/// caller passes, e.g., the start time in milliseconds), `seq` with every change within
/// one run. Ordered by instance first, so a restarted node's records supersede the ones
/// its previous run left in the mesh.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Which run of the node made the record.
    pub instance: u64,
    /// Which change within that run.
    pub seq: u64,
}

/// One routing protocol message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Sent on every link every hello interval: who I am, whom I hear, my database digest.
    Hello(Hello),
    /// A node's neighbours and their costs (flooded).
    LinkState(LinkState),
    /// A node's addresses with consumers (flooded; whole or as a change).
    Addresses(Addresses),
    /// The versions of every record the sender has (neighbour to neighbour, on link-up
    /// and when digests differ), so each side can ask for what it lacks.
    Summary(Summary),
    /// Records the sender lacks or holds older than the receiver.
    Request(Request),
}

/// The neighbour-discovery beacon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// The sending node.
    pub from: NodeId,
    /// The sender's run (see [`Version`]); a change means it restarted.
    pub instance: u64,
    /// The node the sender hears on this link, if any: the link is two-way once each
    /// side sees itself here.
    pub seen: Option<NodeId>,
    /// A digest of the versions of every record the sender holds for reachable nodes;
    /// equal digests mean equal databases.
    pub digest: u64,
}

/// A node's link-state record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkState {
    /// The node the record describes.
    pub origin: NodeId,
    /// The record's version.
    pub version: Version,
    /// The origin's two-way neighbours, each with the cost of its cheapest link.
    pub neighbours: Vec<(NodeId, u32)>,
}

/// A node's addresses, each with the credit its consumers have (aggregated).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Addresses {
    /// The node the record describes.
    pub origin: NodeId,
    /// The version after this update.
    pub version: Version,
    /// The whole set, or the change from the version just before.
    pub change: AddressChange,
}

/// A whole address set or a change to one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddressChange {
    /// Every address of the origin; replaces what the receiver had.
    Full(Vec<(AddressKey, u32)>),
    /// Applies only on top of version `seq - 1` of the same instance: addresses added or
    /// whose credit changed, and addresses gone.
    Delta {
        /// Added or changed, with their credit.
        set: Vec<(AddressKey, u32)>,
        /// No longer has consumers on the origin.
        removed: Vec<AddressKey>,
    },
}

/// The versions of every record a node holds (for reachable nodes, its own included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// One entry per origin.
    pub entries: Vec<SummaryEntry>,
}

/// What a node holds about one origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SummaryEntry {
    /// The node the records describe.
    pub origin: NodeId,
    /// Version of its link-state record, if held.
    pub link_state: Option<Version>,
    /// Version of its address set, if held.
    pub addresses: Option<Version>,
}

/// Records the sender asks its neighbour for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// One entry per origin.
    pub wants: Vec<Want>,
}

/// Which of one origin's records are wanted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Want {
    /// The node the records describe.
    pub origin: NodeId,
    /// Its link-state record.
    pub link_state: bool,
    /// Its whole address set.
    pub addresses: bool,
}

/// Why bytes were not a routing message. The text names the kind of fault only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The message ended inside a field.
    Truncated,
    /// A protocol version this node does not speak.
    Version(u8),
    /// An unknown message kind.
    Kind(u8),
    /// An integer too long or out of its field's range.
    Integer,
    /// A name that is not valid UTF-8 or not a valid node id / address key.
    Name,
    /// Unknown flag bits.
    Flags,
    /// Bytes after the message's end.
    Trailing,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated => f.write_str("routing message truncated"),
            DecodeError::Version(v) => write!(f, "routing protocol version {v} not spoken"),
            DecodeError::Kind(k) => write!(f, "unknown routing message kind {k}"),
            DecodeError::Integer => f.write_str("malformed integer in routing message"),
            DecodeError::Name => f.write_str("malformed name in routing message"),
            DecodeError::Flags => f.write_str("unknown flags in routing message"),
            DecodeError::Trailing => f.write_str("bytes after the end of a routing message"),
        }
    }
}

impl std::error::Error for DecodeError {}

impl From<InvalidName> for DecodeError {
    fn from(_: InvalidName) -> Self {
        DecodeError::Name
    }
}

const HELLO: u8 = 1;
const LINK_STATE: u8 = 2;
const ADDRESSES_FULL: u8 = 3;
const ADDRESSES_DELTA: u8 = 4;
const SUMMARY: u8 = 5;
const REQUEST: u8 = 6;

impl Message {
    /// Appends the encoded message to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(PROTOCOL_VERSION);
        match self {
            Message::Hello(h) => {
                out.push(HELLO);
                put_str(out, h.from.as_str());
                put_uint(out, h.instance);
                match &h.seen {
                    Some(s) => {
                        out.push(1);
                        put_str(out, s.as_str());
                    }
                    None => out.push(0),
                }
                out.extend_from_slice(&h.digest.to_be_bytes());
            }
            Message::LinkState(ls) => {
                out.push(LINK_STATE);
                put_str(out, ls.origin.as_str());
                put_version(out, ls.version);
                put_uint(out, ls.neighbours.len() as u64);
                for (n, cost) in &ls.neighbours {
                    put_str(out, n.as_str());
                    put_uint(out, u64::from(*cost));
                }
            }
            Message::Addresses(a) => {
                match &a.change {
                    AddressChange::Full(_) => out.push(ADDRESSES_FULL),
                    AddressChange::Delta { .. } => out.push(ADDRESSES_DELTA),
                }
                put_str(out, a.origin.as_str());
                put_version(out, a.version);
                match &a.change {
                    AddressChange::Full(set) => put_credits(out, set),
                    AddressChange::Delta { set, removed } => {
                        put_credits(out, set);
                        put_uint(out, removed.len() as u64);
                        for k in removed {
                            put_key(out, k);
                        }
                    }
                }
            }
            Message::Summary(s) => {
                out.push(SUMMARY);
                put_uint(out, s.entries.len() as u64);
                for e in &s.entries {
                    put_str(out, e.origin.as_str());
                    out.push(
                        u8::from(e.link_state.is_some()) | u8::from(e.addresses.is_some()) << 1,
                    );
                    for v in [e.link_state, e.addresses].into_iter().flatten() {
                        put_version(out, v);
                    }
                }
            }
            Message::Request(r) => {
                out.push(REQUEST);
                put_uint(out, r.wants.len() as u64);
                for w in &r.wants {
                    put_str(out, w.origin.as_str());
                    out.push(u8::from(w.link_state) | u8::from(w.addresses) << 1);
                }
            }
        }
    }

    /// Decodes one whole message; `buf` must hold exactly one.
    pub fn decode(buf: &[u8]) -> Result<Message, DecodeError> {
        let mut r = Reader { buf };
        let version = r.byte()?;
        if version != PROTOCOL_VERSION {
            return Err(DecodeError::Version(version));
        }
        let kind = r.byte()?;
        let msg = match kind {
            HELLO => {
                let from = r.node()?;
                let instance = r.uint()?;
                let seen = match r.byte()? {
                    0 => None,
                    1 => Some(r.node()?),
                    _ => return Err(DecodeError::Flags),
                };
                let digest =
                    u64::from_be_bytes(r.take(8)?.try_into().map_err(|_| DecodeError::Truncated)?);
                Message::Hello(Hello {
                    from,
                    instance,
                    seen,
                    digest,
                })
            }
            LINK_STATE => {
                let origin = r.node()?;
                let version = r.version()?;
                let n = r.count()?;
                let mut neighbours = Vec::with_capacity(n);
                for _ in 0..n {
                    neighbours.push((r.node()?, r.u32()?));
                }
                Message::LinkState(LinkState {
                    origin,
                    version,
                    neighbours,
                })
            }
            ADDRESSES_FULL | ADDRESSES_DELTA => {
                let origin = r.node()?;
                let version = r.version()?;
                let set = r.credits()?;
                let change = if kind == ADDRESSES_FULL {
                    AddressChange::Full(set)
                } else {
                    let n = r.count()?;
                    let mut removed = Vec::with_capacity(n);
                    for _ in 0..n {
                        removed.push(r.key()?);
                    }
                    AddressChange::Delta { set, removed }
                };
                Message::Addresses(Addresses {
                    origin,
                    version,
                    change,
                })
            }
            SUMMARY => {
                let n = r.count()?;
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    let origin = r.node()?;
                    let flags = r.byte()?;
                    if flags & !3 != 0 {
                        return Err(DecodeError::Flags);
                    }
                    let link_state = if flags & 1 != 0 {
                        Some(r.version()?)
                    } else {
                        None
                    };
                    let addresses = if flags & 2 != 0 {
                        Some(r.version()?)
                    } else {
                        None
                    };
                    entries.push(SummaryEntry {
                        origin,
                        link_state,
                        addresses,
                    });
                }
                Message::Summary(Summary { entries })
            }
            REQUEST => {
                let n = r.count()?;
                let mut wants = Vec::with_capacity(n);
                for _ in 0..n {
                    let origin = r.node()?;
                    let flags = r.byte()?;
                    if flags & !3 != 0 {
                        return Err(DecodeError::Flags);
                    }
                    wants.push(Want {
                        origin,
                        link_state: flags & 1 != 0,
                        addresses: flags & 2 != 0,
                    });
                }
                Message::Request(Request { wants })
            }
            other => return Err(DecodeError::Kind(other)),
        };
        if !r.buf.is_empty() {
            return Err(DecodeError::Trailing);
        }
        Ok(msg)
    }
}

fn put_uint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_uint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn put_version(out: &mut Vec<u8>, v: Version) {
    put_uint(out, v.instance);
    put_uint(out, v.seq);
}

fn put_key(out: &mut Vec<u8>, k: &AddressKey) {
    put_str(out, k.tenant());
    put_str(out, k.name());
}

fn put_credits(out: &mut Vec<u8>, set: &[(AddressKey, u32)]) {
    put_uint(out, set.len() as u64);
    for (k, credit) in set {
        put_key(out, k);
        put_uint(out, u64::from(*credit));
    }
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let (&b, rest) = self.buf.split_first().ok_or(DecodeError::Truncated)?;
        self.buf = rest;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.buf.len() {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn uint(&mut self) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            if i == 9 && bits > 1 {
                return Err(DecodeError::Integer);
            }
            v |= bits << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::Integer)
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        u32::try_from(self.uint()?).map_err(|_| DecodeError::Integer)
    }

    /// A list's element count: every element takes at least one byte, so a count above
    /// what is left is refused before anything is allocated for it.
    fn count(&mut self) -> Result<usize, DecodeError> {
        let n = usize::try_from(self.uint()?).map_err(|_| DecodeError::Integer)?;
        if n > self.buf.len() {
            return Err(DecodeError::Truncated);
        }
        Ok(n)
    }

    fn str(&mut self, max: usize) -> Result<&'a str, DecodeError> {
        let n = usize::try_from(self.uint()?).map_err(|_| DecodeError::Integer)?;
        if n > max {
            return Err(DecodeError::Name);
        }
        std::str::from_utf8(self.take(n)?).map_err(|_| DecodeError::Name)
    }

    fn node(&mut self) -> Result<NodeId, DecodeError> {
        Ok(NodeId::new(self.str(MAX_NODE_ID)?)?)
    }

    fn key(&mut self) -> Result<AddressKey, DecodeError> {
        let tenant = self.str(MAX_TENANT)?;
        let name = self.str(MAX_ADDRESS)?;
        Ok(AddressKey::new(tenant, name)?)
    }

    fn version(&mut self) -> Result<Version, DecodeError> {
        Ok(Version {
            instance: self.uint()?,
            seq: self.uint()?,
        })
    }

    fn credits(&mut self) -> Result<Vec<(AddressKey, u32)>, DecodeError> {
        let n = self.count()?;
        let mut set = Vec::with_capacity(n);
        for _ in 0..n {
            set.push((self.key()?, self.u32()?));
        }
        Ok(set)
    }
}
