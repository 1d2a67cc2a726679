//! REST handlers: addresses and their messages (see the table in the module above).

use super::AppState;
use crate::auth::{self, Principal};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use base64::Engine;
use serde::Serialize;
use throng_core::{Address, Node, Op};

/// The API's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tenants/{tenant}/addresses", get(list_addresses))
        .route(
            "/api/v1/tenants/{tenant}/addresses/{address}",
            get(show_address),
        )
        .route(
            "/api/v1/tenants/{tenant}/addresses/{address}/messages",
            delete(purge_address),
        )
        .route("/api/v1/mesh", get(show_mesh))
}

/// The mesh as this node sees it: its id and role, its inter-router connections, its
/// routes, and the addresses other nodes have consumers for — with credentials, those
/// of the caller's tenant it may view; without, those of tenants open to anonymous
/// clients (401 when no tenant is). A standalone node answers with its role only.
async fn show_mesh(
    State(AppState { node, mesh, .. }): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<crate::mesh::Status>, ApiError> {
    let creds = basic_credentials(&headers)?;
    let principal = match &creds {
        Some((u, p)) => Some(
            auth::authenticate_password(&node, None, Some((u.as_str(), p.as_bytes()))).map_err(
                |reason| {
                    tracing::warn!("http: authentication refused: {reason}");
                    ApiError(StatusCode::UNAUTHORIZED, reason)
                },
            )?,
        ),
        None if node.tenants().any(|t| !t.requires_auth()) => None,
        None => {
            return Err(ApiError(
                StatusCode::UNAUTHORIZED,
                "credentials required".into(),
            ))
        }
    };
    let Some(mesh) = mesh else {
        return Ok(Json(crate::mesh::Status {
            role: "standalone".into(),
            ..Default::default()
        }));
    };
    let mut status = mesh.status();
    status.addresses.retain(|a| match &principal {
        Some(p) => a.tenant == p.tenant.name() && p.may(Op::View, &a.address),
        None => node.tenant(&a.tenant).is_some_and(|t| !t.requires_auth()),
    });
    Ok(Json(status))
}

/// An address as the API shows it.
#[derive(Debug, Serialize)]
struct AddressView {
    name: String,
    #[serde(rename = "type")]
    kind: &'static str,
    /// Messages waiting (queues: in memory and paged; topics: summed over subscriptions).
    depth: u64,
    /// Of those, messages in page files on disk.
    paged: u64,
    /// Messages delivered and not yet settled.
    unacked: u64,
}

fn view(name: String, address: &Address) -> AddressView {
    let (depth, paged, unacked) = match address {
        Address::Queue(q) => (q.depth() as u64, q.paged().0, q.unacked() as u64),
        Address::Topic(t) => t.subscription_queues().iter().fold((0, 0, 0), |acc, q| {
            (
                acc.0 + q.depth() as u64,
                acc.1 + q.paged().0,
                acc.2 + q.unacked() as u64,
            )
        }),
        Address::Anycast(_) | Address::Multicast(_) => (0, 0, 0),
    };
    AddressView {
        name,
        kind: address.kind().as_str(),
        depth,
        paged,
        unacked,
    }
}

/// An error answer: status and a JSON body saying why.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"throng\""),
            );
        }
        r
    }
}

/// The Basic credentials of a request, if it has any.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || {
        ApiError(
            StatusCode::UNAUTHORIZED,
            "malformed Authorization header".into(),
        )
    };
    let text = value.to_str().map_err(|_| bad())?;
    let encoded = text
        .strip_prefix("Basic ")
        .or_else(|| text.strip_prefix("basic "))
        .ok_or_else(bad)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (user, password) = decoded.split_once(':').ok_or_else(bad)?;
    Ok(Some((user.to_string(), password.to_string())))
}

/// Authenticates the request for `tenant` and checks it may do `op` on `address`
/// (`None`: a listing, which the caller filters address by address).
fn authorize(
    node: &Node,
    headers: &HeaderMap,
    tenant: &str,
    op: Op,
    address: Option<&str>,
) -> Result<Principal, ApiError> {
    if node.tenant(tenant).is_none() {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no tenant `{tenant}`"),
        ));
    }
    let creds = basic_credentials(headers)?;
    let principal = auth::authenticate_password(
        node,
        Some(tenant),
        creds.as_ref().map(|(u, p)| (u.as_str(), p.as_bytes())),
    )
    .map_err(|reason| {
        tracing::warn!(tenant, "http: authentication refused: {reason}");
        ApiError(StatusCode::UNAUTHORIZED, reason)
    })?;
    if principal.tenant.name() != tenant {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            format!("credentials are for tenant `{}`", principal.tenant.name()),
        ));
    }
    let allowed = address.is_none_or(|a| principal.may(op, a));
    if !allowed {
        tracing::warn!(tenant, address, op = ?op, "http: operation refused");
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            format!("not permitted: {op:?}"),
        ));
    }
    Ok(principal)
}

async fn list_addresses(
    State(AppState { node, .. }): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Vec<AddressView>>, ApiError> {
    let p = authorize(&node, &headers, &tenant, Op::View, None)?;
    let mut out: Vec<AddressView> = p
        .tenant
        .addresses()
        .into_iter()
        .filter(|(name, _)| p.may(Op::View, name))
        .filter_map(|(name, _)| p.tenant.lookup(&name).map(|a| view(name, &a)))
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(out))
}

async fn show_address(
    State(AppState { node, .. }): State<AppState>,
    Path((tenant, address)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<AddressView>, ApiError> {
    let p = authorize(&node, &headers, &tenant, Op::View, Some(&address))?;
    let a = lookup(&p, &address)?;
    Ok(Json(view(address, &a)))
}

async fn purge_address(
    State(AppState { node, .. }): State<AppState>,
    Path((tenant, address)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let p = authorize(&node, &headers, &tenant, Op::Manage, Some(&address))?;
    let a = lookup(&p, &address)?;
    let purged = match &a {
        Address::Queue(q) => q.purge(),
        Address::Topic(t) => t.subscription_queues().iter().map(|q| q.purge()).sum(),
        Address::Anycast(_) | Address::Multicast(_) => {
            return Err(ApiError(
                StatusCode::CONFLICT,
                format!(
                    "`{address}` is {}: direct addresses hold no messages to purge",
                    a.kind().as_str()
                ),
            ))
        }
    };
    // answer once the acks are on disk: a purge must not come undone in a crash
    if let Some(journal) = p.tenant.journal().cloned() {
        tokio::task::spawn_blocking(move || journal.sync())
            .await
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    }
    tracing::info!(tenant = %tenant, address = %address, purged, "purged");
    Ok(Json(serde_json::json!({ "purged": purged })))
}

fn lookup(p: &Principal, address: &str) -> Result<Address, ApiError> {
    p.tenant.lookup(address).ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("no address `{address}` in tenant `{}`", p.tenant.name()),
        )
    })
}
