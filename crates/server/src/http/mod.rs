//! The HTTP listener: the REST API under `/api/v1` (more of the control plane — the
//! console, metrics, WebSocket — joins it here).
//!
//! | method and path                                          | permission | does |
//! |----------------------------------------------------------|------------|------|
//! | `GET /api/v1/tenants/{tenant}/addresses`                 | view       | lists the tenant's addresses with their depth |
//! | `GET /api/v1/tenants/{tenant}/addresses/{address}`       | view       | one address |
//! | `DELETE /api/v1/tenants/{tenant}/addresses/{address}/messages` | manage | purges: removes every waiting message |
//!
//! Address names are percent-encoded in paths (`a%2Fb` for `a/b`). Authentication is
//! HTTP Basic with the tenant's users (`user` or `user@tenant`); a tenant without users
//! admits anonymous requests, as on AMQP. Answers are JSON; errors are
//! `{"error": "..."}` with 401, 403 or 404.

mod api;

use std::sync::Arc;
use throng_core::Node;
use tokio::net::TcpListener;

/// Serves HTTP on `listener` until the task is aborted.
pub async fn serve(listener: TcpListener, node: Arc<Node>) {
    if let Err(e) = axum::serve(listener, api::router(node)).await {
        tracing::error!("http listener failed: {e}");
    }
}
