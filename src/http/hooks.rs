//! `POST /v1/hooks/registrations`: registration webhooks from CI/CD systems and
//! deployment controllers. Authenticated by the Standard Webhooks signature of a
//! registered source rather than a bearer token; acknowledged only after the batch has
//! committed. A redelivered message id answers as it did, without applying it again.

use super::{ApiError, AppState};
use crate::ingest::standard_webhooks::Headers;
use crate::service::{ReceiveError, Received};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{Value, json};

pub async fn registrations(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let received = state
        .services
        .inventory()
        .receive_registrations(webhook_headers(&headers), &body)
        .await
        .map_err(|e| match e {
            ReceiveError::Unauthenticated(why) => ApiError::unauthenticated(why),
            ReceiveError::Service(e) => ApiError::from(e),
        })?;
    Ok(Json(match received {
        Received::Applied {
            registrations,
            edges,
            revision,
            kept,
        } => {
            json!({ "applied": registrations, "edges": edges, "revision": revision, "duplicate": false, "kept": kept })
        }
        Received::Duplicate => json!({ "applied": 0, "duplicate": true }),
    }))
}

/// `POST /v1/hooks/security-alerts`: a signed security alert from a registered webhook
/// source, `{"severity", "model", "version", "summary"}`. A critical one from a source
/// policy allows trips the circuit breaker (an emergency retirement, at once); every
/// alert is recorded.
pub async fn security_alerts(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let outcome = state
        .services
        .decommission()
        .receive_security_alert(webhook_headers(&headers), &body)
        .await
        .map_err(|e| match e {
            ReceiveError::Unauthenticated(why) => ApiError::unauthenticated(why),
            ReceiveError::Service(e) => ApiError::from(e),
        })?;
    Ok(Json(serde_json::to_value(outcome).unwrap_or_default()))
}

/// The three Standard Webhooks headers of a request, as sent.
pub(super) fn webhook_headers(headers: &HeaderMap) -> Headers<'_> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    Headers {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
    }
}
