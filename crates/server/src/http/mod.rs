//! The HTTP listener: the REST API under `/api/v1`, and MQTT over WebSocket at `/mqtt`
//! (more of the control plane — the console, metrics — joins it here).
//!
//! | method and path                                          | permission | does |
//! |----------------------------------------------------------|------------|------|
//! | `GET /api/v1/tenants/{tenant}/addresses`                 | view       | lists the tenant's addresses with their depth |
//! | `GET /api/v1/tenants/{tenant}/addresses/{address}`       | view       | one address |
//! | `DELETE /api/v1/tenants/{tenant}/addresses/{address}/messages` | manage | purges: removes every waiting message |
//! | `GET /api/v1/mesh`                                       | (any user) | the mesh from here: node, role, connections, routes, the caller's tenant's addresses with consumers elsewhere |
//! | `GET /mqtt` (WebSocket upgrade, subprotocol `mqtt`)      | (MQTT CONNECT) | an MQTT connection over WebSocket |
//!
//! Address names are percent-encoded in paths (`a%2Fb` for `a/b`). Authentication is
//! HTTP Basic with the tenant's users (`user` or `user@tenant`); a tenant without users
//! admits anonymous requests, as on AMQP. Answers are JSON; errors are
//! `{"error": "..."}` with 401, 403 or 404.

mod api;
mod websocket;

use crate::mqtt::Sessions;
use std::net::SocketAddr;
use std::sync::Arc;
use throng_core::Node;
use tokio::net::TcpListener;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub node: Arc<Node>,
    /// MQTT sessions, shared with the MQTT listener (one client id, one session).
    pub sessions: Arc<Sessions>,
    /// The node's mesh, when it is in one.
    pub mesh: Option<Arc<crate::mesh::Mesh>>,
}

/// Serves HTTP on `listener` until the task is aborted.
pub async fn serve(
    listener: TcpListener,
    node: Arc<Node>,
    sessions: Arc<Sessions>,
    mesh: Option<Arc<crate::mesh::Mesh>>,
) {
    let app = api::router()
        .merge(websocket::router())
        .with_state(AppState {
            node,
            sessions,
            mesh,
        });
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    if let Err(e) = axum::serve(listener, service).await {
        tracing::error!("http listener failed: {e}");
    }
}
