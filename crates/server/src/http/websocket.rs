//! MQTT over WebSocket (`GET /mqtt`, subprotocol `mqtt`, as mqtt.js and paho connect):
//! the WebSocket's binary messages carry the MQTT byte stream, which the same MQTT
//! connection task as on TCP serves through an in-memory pipe.

use super::AppState;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bytes buffered each way between the WebSocket and the MQTT task.
const PIPE: usize = 64 * 1024;

/// The `/mqtt` route.
pub fn router() -> Router<AppState> {
    Router::new().route("/mqtt", get(upgrade))
}

async fn upgrade(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    ws.protocols(["mqtt"])
        .on_upgrade(move |socket| pump(socket, peer, state))
}

/// Runs the MQTT task on one end of a pipe and moves bytes between the pipe's other end
/// and the WebSocket until either side ends.
async fn pump(mut socket: WebSocket, peer: SocketAddr, state: AppState) {
    let (mqtt_side, mut ours) = tokio::io::duplex(PIPE);
    let task = tokio::spawn(crate::mqtt::serve_connection(
        mqtt_side,
        peer,
        state.node,
        state.sessions,
    ));
    let mut buf = vec![0u8; PIPE];
    loop {
        tokio::select! {
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Binary(data))) => {
                    if ours.write_all(&data).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                // MQTT over WebSocket is binary only (MQTT 5 §6): text is a protocol error
                Some(Ok(Message::Text(_))) => {
                    tracing::warn!(%peer, "mqtt over websocket: text frame; closing");
                    break;
                }
                Some(Ok(_)) => {} // ping/pong: answered by the WebSocket layer
            },
            n = ours.read(&mut buf) => match n {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let data = bytes::Bytes::copy_from_slice(&buf[..n]);
                    if socket.send(Message::Binary(data)).await.is_err() {
                        break;
                    }
                }
            },
        }
    }
    // closing our end tells the MQTT task the transport is gone (will, session release)
    drop(ours);
    let _ = socket.send(Message::Close(None)).await;
    let _ = task.await;
}
