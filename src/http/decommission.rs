//! What decommissioning publishes over plain HTTP: the signed revocation list (public:
//! whoever verifies a model signature must be able to check it, token or not) and
//! destruction certificates (auditors).

use super::{ApiError, AppState, Authenticated};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// DSSE has no registered media type; JSON is what it is.
pub(super) const ENVELOPE: HeaderValue = HeaderValue::from_static("application/json");

/// `GET /v1/revocations`: the revocation list, a DSSE envelope signed with the service
/// key (see `sunset keys public`). No token needed.
pub async fn revocations(State(state): State<AppState>) -> Result<Response, ApiError> {
    let envelope = state.services.decommission().revocation_list().await?;
    Ok((
        [
            (header::CONTENT_TYPE, ENVELOPE),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        envelope,
    )
        .into_response())
}

/// `GET /v1/certificates/{id}`: a destruction certificate, exactly as issued. Auditors.
pub async fn certificate(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::not_found(format!("no certificate {id}")))?;
    let certificate = state
        .services
        .decommission()
        .certificate(&actor, id)
        .await?;
    Ok((
        [
            (header::CONTENT_TYPE, ENVELOPE),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&format!(
                    "attachment; filename=\"sunset-certificate-{id}.dsse.json\""
                ))
                .unwrap_or(HeaderValue::from_static("attachment")),
            ),
        ],
        certificate.envelope,
    )
        .into_response())
}

/// `POST /v1/enforcement/confirmations`: an enforcement point confirms it applied the
/// disabled list with an ETag, `{"point": name, "etag": "…"}`, signed per Standard
/// Webhooks with its own secret (the one its notices are signed with). No token: the
/// signature is the credential.
pub async fn confirm(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let confirmed = state
        .services
        .decommission()
        .confirm_enforcement(&super::hooks::webhook_headers(&headers), &body)
        .await?;
    Ok(Json(json!({ "confirmed": confirmed })))
}
