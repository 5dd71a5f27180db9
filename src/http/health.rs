//! Liveness and readiness, for load balancers and orchestrators. No token needed.
//! `/readyz` answers 200 or 503 with each check's result as JSON: the database reached,
//! the inventory graph loaded and not behind, and the KEK epochs this replica holds.

use super::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

pub async fn live() -> &'static str {
    "ok\n"
}

pub async fn ready(State(state): State<AppState>) -> axum::response::Response {
    let readiness = state.services.admin().readiness().await;
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness)).into_response()
}
