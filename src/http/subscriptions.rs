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
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| {
            let services = state.services.clone();
            GraphQLWebSocket::new(socket, state.schema.clone(), protocol)
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
                        .authenticate(secret)
                        .await
                        .map_err(|_| async_graphql::Error::new("could not check the token"))?
                        .ok_or_else(|| async_graphql::Error::new("unknown or revoked token"))?;
                    let mut data = Data::default();
                    data.insert(actor);
                    Ok(data)
                })
                .serve()
        })
}
