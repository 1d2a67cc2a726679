//! The names the routing protocol speaks of: nodes, the caller's connections to
//! neighbours, and the (tenant, address) pairs nodes advertise consumers for.

use std::fmt;
use std::sync::Arc;

/// Longest node id accepted (`[node] id` in the config, and on the wire).
pub const MAX_NODE_ID: usize = 64;
/// Longest tenant name accepted in an address key.
pub const MAX_TENANT: usize = 255;
/// Longest address name accepted in an address key.
pub const MAX_ADDRESS: usize = 1024;

/// A node's name, unique in the mesh: 1 to 64 characters of `A-Z a-z 0-9 . _ -`.
///
/// Cheap to clone (shared), ordered, so every node iterates the mesh in the same order
/// and computes the same trees from the same records.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(Arc<str>);

/// Why a name was refused as a node id or address key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidName {
    /// Empty, or longer than its limit.
    Length,
    /// A character outside the allowed set (node ids) or a control character.
    Character,
}

impl fmt::Display for InvalidName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InvalidName::Length => "name is empty or too long",
            InvalidName::Character => "name has a character that is not allowed",
        })
    }
}

impl std::error::Error for InvalidName {}

impl NodeId {
    /// Validates `s` as a node id.
    pub fn new(s: &str) -> Result<Self, InvalidName> {
        if s.is_empty() || s.len() > MAX_NODE_ID {
            return Err(InvalidName::Length);
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(InvalidName::Character);
        }
        Ok(NodeId(s.into()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The caller's handle for one connection to a neighbour (an inter-router connection).
/// The router never interprets it; it names where to send and where a message came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkId(pub u64);

/// An address as the mesh knows it: always with its tenant, so two tenants' addresses of
/// the same name are two keys and never meet on any node.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AddressKey {
    tenant: Arc<str>,
    name: Arc<str>,
}

impl AddressKey {
    /// Validates the tenant (1..=255 bytes) and address name (1..=1024 bytes), neither
    /// with control characters.
    pub fn new(tenant: &str, name: &str) -> Result<Self, InvalidName> {
        for (s, max) in [(tenant, MAX_TENANT), (name, MAX_ADDRESS)] {
            if s.is_empty() || s.len() > max {
                return Err(InvalidName::Length);
            }
            if s.chars().any(char::is_control) {
                return Err(InvalidName::Character);
            }
        }
        Ok(AddressKey {
            tenant: tenant.into(),
            name: name.into(),
        })
    }

    /// The tenant the address belongs to.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The address name within its tenant.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for AddressKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tenant, self.name)
    }
}
