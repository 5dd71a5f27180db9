//! `PUT` and `GET /v1/models/{name}/versions/{version}/artifacts/{*path}`: artifacts as
//! raw byte streams, in and out, never held whole in memory.
//!
//! Upload needs the owner role of the model's team (checked by the service); download
//! needs any role. Downloads carry `Content-Length` and the RFC 9530 `Repr-Digest`.

use super::{ApiError, AppState, Authenticated};
use crate::domain::Role;
use crate::service::ArtifactInfo;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

/// Roles that may upload; the service further requires the model's own team.
pub const UPLOAD_ROLES: &[Role] = &[Role::Owner];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadParams {
    /// weights, config, tokenizer or other (the default).
    kind: Option<String>,
}

pub async fn upload(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    Path((model, version, path)): Path<(String, String, String)>,
    Query(params): Query<UploadParams>,
    body: Body,
) -> Result<(StatusCode, Json<ArtifactInfo>), ApiError> {
    if !actor.has_role(UPLOAD_ROLES) {
        return Err(ApiError::forbidden(format!(
            "uploading artifacts needs the owner role; token {} has role {}",
            actor.name, actor.role
        )));
    }
    let info = state
        .services
        .artifacts()
        .upload_artifact(
            &actor,
            &model,
            &version,
            &path,
            params.kind.as_deref(),
            body.into_data_stream(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(info)))
}

pub async fn download(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    Path((model, version, path)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let opened = state
        .services
        .artifacts()
        .open_artifact(&actor, &model, &version, &path)
        .await;
    let (info, pending, chunks) = match opened {
        Ok(opened) => opened,
        Err(crate::service::ServiceError::BrownedOut {
            message,
            retry_after_secs,
        }) => {
            let e = crate::service::ServiceError::BrownedOut {
                message,
                retry_after_secs,
            };
            let mut response = ApiError::from(e).into_response();
            let headers = response.headers_mut();
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            super::retirements::mark_gone(&state.services, &model, &version, headers).await;
            return Ok(response);
        }
        Err(e @ crate::service::ServiceError::Gone(_)) => {
            // RFC 8594: the Sunset header of a resource already gone names when it went.
            let mut response = ApiError::from(e).into_response();
            super::retirements::mark_gone(
                &state.services,
                &model,
                &version,
                response.headers_mut(),
            )
            .await;
            return Ok(response);
        }
        Err(e) => return Err(e.into()),
    };
    let mut response = Body::from_stream(chunks).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(info.size_bytes));
    if let Ok(digest) = hex::decode(&info.sha256) {
        use base64::Engine;
        let value = format!(
            "sha-256=:{}:",
            base64::engine::general_purpose::STANDARD.encode(digest)
        );
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert("repr-digest", v);
        }
    }
    // The version is going away: say so to every client and gateway that fetches it.
    if let Some(r) = pending {
        super::sunset_headers::SunsetNotice::of(
            &r,
            state.services.retirements().retirement_url(r.id),
        )
        .apply(response.headers_mut());
    }
    Ok(response)
}

/// `PUT /v1/models/{name}/versions/{version}/signature`: the version's OpenSSF
/// model-signing bundle, verified against enabled signers and the stored artifacts.
pub async fn put_signature(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    Path((model, version)): Path<(String, String)>,
    bundle: axum::body::Bytes,
) -> Result<Json<crate::domain::StoredSignature>, ApiError> {
    if !actor.has_role(UPLOAD_ROLES) {
        return Err(ApiError::forbidden(format!(
            "uploading signatures needs the owner role; token {} has role {}",
            actor.name, actor.role
        )));
    }
    let stored = state
        .services
        .registry()
        .attach_signature(&actor, &model, &version, &bundle)
        .await?;
    Ok(Json(stored))
}
