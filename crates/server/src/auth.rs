//! Authentication and tenant selection, shared by the protocol adapters: SASL for
//! AMQP, HTTP Basic for the REST API (checked as SASL PLAIN).

use std::sync::Arc;
use throng_core::{Node, Tenant, User};

/// Who a connection belongs to once authenticated.
#[derive(Clone)]
pub struct Principal {
    pub tenant: Arc<Tenant>,
    /// `None` for anonymous access (allowed only on tenants without users).
    pub user: Option<User>,
}

/// Checks a SASL exchange. PLAIN's authentication id may be `user` (looked up in the
/// tenant named by the SASL hostname, else the default tenant, else any tenant holding a
/// unique user of that name) or `user@tenant`.
pub fn authenticate(
    node: &Node,
    mechanism: &str,
    response: Option<&[u8]>,
    hostname: Option<&str>,
) -> Result<Principal, String> {
    let hinted = hostname.and_then(|h| node.tenant(h));
    match mechanism {
        "ANONYMOUS" => {
            let tenant = hinted
                .or_else(|| node.default_tenant())
                .ok_or("no tenant for anonymous access")?;
            if tenant.requires_auth() {
                return Err(format!(
                    "tenant `{}` does not allow anonymous access",
                    tenant.name()
                ));
            }
            Ok(Principal { tenant, user: None })
        }
        "PLAIN" => {
            let resp = response.ok_or("PLAIN without a response")?;
            let mut parts = resp.split(|b| *b == 0);
            let (_authzid, authcid, passwd) =
                match (parts.next(), parts.next(), parts.next(), parts.next()) {
                    (Some(z), Some(c), Some(p), None) => (z, c, p),
                    _ => return Err("malformed PLAIN response".into()),
                };
            let authcid = std::str::from_utf8(authcid).map_err(|_| "user name is not UTF-8")?;
            let (name, tenant) = match authcid.rsplit_once('@') {
                Some((n, t)) if node.tenant(t).is_some() => (n, node.tenant(t)),
                _ => (authcid, None),
            };
            let candidates: Vec<Arc<Tenant>> = match tenant.or(hinted) {
                Some(t) => vec![t],
                None => {
                    let mut with_user: Vec<Arc<Tenant>> = node
                        .tenants()
                        .filter(|t| t.user(name).is_some())
                        .cloned()
                        .collect();
                    if with_user.len() > 1 {
                        // ambiguous: prefer the default tenant
                        with_user
                            .retain(|t| node.default_tenant().is_some_and(|d| Arc::ptr_eq(&d, t)));
                    }
                    with_user
                }
            };
            for t in candidates {
                if let Some(u) = t.user(name) {
                    if u.password_matches(passwd) {
                        return Ok(Principal {
                            user: Some(u.clone()),
                            tenant: t,
                        });
                    }
                    return Err(format!("wrong password for user `{name}`"));
                }
            }
            Err(format!("unknown user `{name}`"))
        }
        other => Err(format!("unsupported SASL mechanism `{other}`")),
    }
}

/// Whether SASL ANONYMOUS with this SASL `hostname` leaves the tenant to the open
/// frame's hostname: it names no tenant and the node has no default one (proton sends
/// the virtual host only in the open). The open then decides, as for a client without
/// SASL ([`anonymous_without_sasl`]).
pub fn anonymous_waits_for_open(node: &Node, hostname: Option<&str>) -> bool {
    hostname.and_then(|h| node.tenant(h)).is_none() && node.default_tenant().is_none()
}

/// The tenant of a client that skipped SASL: the one named by its open hostname, else
/// the default tenant; only when that tenant admits anonymous clients.
pub fn anonymous_without_sasl(node: &Node, hostname: Option<&str>) -> Result<Principal, String> {
    authenticate(node, "ANONYMOUS", None, hostname)
}

/// Checks a user name (`user` or `user@tenant`) and password, as protocols without SASL
/// present them (HTTP Basic, MQTT CONNECT), by the SASL PLAIN rules; `tenant` hints the
/// tenant as the SASL hostname does. No credentials is anonymous access, allowed only on
/// tenants without users.
pub fn authenticate_password(
    node: &Node,
    tenant: Option<&str>,
    credentials: Option<(&str, &[u8])>,
) -> Result<Principal, String> {
    match credentials {
        None => authenticate(node, "ANONYMOUS", None, tenant),
        Some((user, password)) => {
            let mut plain = Vec::with_capacity(user.len() + password.len() + 2);
            plain.push(0);
            plain.extend_from_slice(user.as_bytes());
            plain.push(0);
            plain.extend_from_slice(password);
            authenticate(node, "PLAIN", Some(&plain), tenant)
        }
    }
}

impl Principal {
    /// Whether this principal may do `op` on `address` (anonymous access may do
    /// whatever its tenant admits).
    pub fn may(&self, op: throng_core::Op, address: &str) -> bool {
        Tenant::permits(self.user.as_ref(), op, address)
    }
}
