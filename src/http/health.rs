//! Liveness and readiness, for load balancers and orchestrators. No token needed,
//! nothing revealed beyond up or down.

use super::{ApiError, AppState};
use axum::extract::State;
use axum::response::IntoResponse;

pub async fn live() -> &'static str {
    "ok\n"
}

pub async fn ready(State(state): State<AppState>) -> axum::response::Response {
    match state.services.store().ping().await {
        Ok(()) => "ready\n".into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            ApiError::unavailable("the database is not reachable").into_response()
        }
    }
}
