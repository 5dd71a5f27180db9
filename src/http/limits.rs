//! Bounds on every request: a time limit to its response and a cap on requests served
//! at once, so a slow or flooding client cannot hold the service. Artifact transfers
//! stream for as long as their size needs and are exempt from the time limit; health
//! checks are exempt from both, so a busy replica still answers its probes.

use super::ApiError;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct RequestLimits {
    timeout: Duration,
    in_flight: Arc<tokio::sync::Semaphore>,
    max: usize,
}

impl RequestLimits {
    pub fn new(settings: &crate::config::HttpSettings) -> Self {
        Self {
            timeout: Duration::from_secs(settings.request_timeout_secs),
            in_flight: Arc::new(tokio::sync::Semaphore::new(
                settings.max_concurrent_requests,
            )),
            max: settings.max_concurrent_requests,
        }
    }
}

fn is_health(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz")
}

/// Streams whose length only their own limits bound: artifact uploads and downloads,
/// signature uploads, the audit export, and the subscription socket.
fn streams(path: &str) -> bool {
    path.contains("/artifacts/")
        || path.ends_with("/signature")
        || path == "/v1/audit/export"
        || path == "/graphql/ws"
}

pub async fn bound(State(limits): State<RequestLimits>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if is_health(&path) {
        return next.run(request).await;
    }
    let Ok(_permit) = limits.in_flight.clone().try_acquire_owned() else {
        tracing::warn!(max = limits.max, %path, "request refused: too many in flight");
        let mut refused = ApiError::unavailable(format!(
            "this replica is serving {} requests at once (http.max_concurrent_requests); try again shortly",
            limits.max
        ))
        .into_response();
        refused.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        );
        return refused;
    };
    if streams(&path) {
        return next.run(request).await;
    }
    match tokio::time::timeout(limits.timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(%path, timeout_secs = limits.timeout.as_secs(), "request timed out");
            ApiError::timeout(format!(
                "the request took longer than {} s (http.request_timeout_secs) and was stopped",
                limits.timeout.as_secs()
            ))
            .into_response()
        }
    }
}
