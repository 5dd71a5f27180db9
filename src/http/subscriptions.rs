//! `GET /graphql/ws`: GraphQL subscriptions over WebSocket (the graphql-transport-ws
//! protocol, and the older graphql-ws). Browsers cannot set headers on a WebSocket, so
//! the token may come in the `connection_init` payload (`{"authorization": "Bearer …"}`)
//! as well as in the upgrade request's `Authorization` header. Without a valid token the
//! connection is refused before any operation runs.

use super::AppState;
use crate::auth::Actor;
use async_graphql::Data;
use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::response::Response;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;

/// The most one WebSocket message may hold: subscription operations are small.
const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// How often a connection checks that its token is still valid.
const TOKEN_CHECK: Duration = Duration::from_secs(1);

/// Why a connection ends before its client ends it.
#[derive(Default)]
struct Gate {
    /// The token `connection_init` presented, once it authenticated.
    secret: std::sync::Mutex<Option<String>>,
    initialised: tokio::sync::Notify,
}

pub async fn upgrade(
    State(state): State<AppState>,
    protocol: GraphQLProtocol,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let from_header = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let init_timeout = Duration::from_secs(state.connection_init_timeout_secs);
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| {
            let services = state.services.clone();
            let gate = Arc::new(Gate::default());
            let (sink, stream) = socket.split();
            // The client's messages end (and with them the connection) when it has not
            // authenticated in time, or when its token is revoked.
            let stream = stream.take_until(ended(services.clone(), gate.clone(), init_timeout));
            GraphQLWebSocket::new_with_pair(sink, stream, state.schema.clone(), protocol)
                .on_connection_init(move |payload| async move {
                    let offered = payload
                        .get("authorization")
                        .or_else(|| payload.get("Authorization"))
                        .and_then(|v| v.as_str())
                        .map(str::to_owned)
                        .or(from_header);
                    let secret = offered
                        .as_deref()
                        .and_then(|v| v.strip_prefix("Bearer "))
                        .map(str::trim)
                        .ok_or_else(|| {
                            async_graphql::Error::new(
                                "send {\"authorization\": \"Bearer <token>\"} in connection_init",
                            )
                        })?;
                    let actor: Actor = services
                        .admin()
                        .authenticate(secret)
                        .await
                        .map_err(|_| async_graphql::Error::new("could not check the token"))?
                        .ok_or_else(|| async_graphql::Error::new("unknown or revoked token"))?;
                    if let Ok(mut slot) = gate.secret.lock() {
                        *slot = Some(secret.to_owned());
                    }
                    gate.initialised.notify_one();
                    let mut data = Data::default();
                    data.insert(actor);
                    Ok(data)
                })
                .serve()
        })
}

/// Resolves when the connection must end: no authenticated `connection_init` within
/// `init_timeout`, or the token it presented no longer authenticates (revoked).
async fn ended(services: crate::service::Services, gate: Arc<Gate>, init_timeout: Duration) {
    if tokio::time::timeout(init_timeout, gate.initialised.notified())
        .await
        .is_err()
    {
        tracing::info!("subscription socket closed: no connection_init in time");
        return;
    }
    let Some(secret) = gate.secret.lock().ok().and_then(|s| s.clone()) else {
        return;
    };
    let mut tick = tokio::time::interval(TOKEN_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // A database hiccup is not a revocation: only a definite answer ends it.
        if let Ok(None) = services.admin().authenticate(&secret).await {
            tracing::info!("subscription socket closed: its token was revoked");
            return;
        }
    }
}
