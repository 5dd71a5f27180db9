//! Retirements over plain HTTP, for gateways, clients and calendars: a version's status
//! (with `Deprecation`, `Sunset` and `Link` headers while a retirement is pending), one
//! retirement as JSON (where those links point), and the iCalendar feed of upcoming
//! retirements. All need a token.

use super::sunset_headers::SunsetNotice;
use super::{ApiError, AppState, Authenticated};
use crate::domain::Retirement;
use crate::domain::RetirementId;
use crate::domain::RetirementState;
use crate::export::icalendar::{CalendarEntry, feed};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

fn retirement_json(r: &Retirement) -> Value {
    json!({
        "id": r.id.to_string(),
        "model": r.model.as_str(),
        "versions": r.selection.to_string(),
        "affectedVersions": r.affected_versions.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "state": r.state.as_str(),
        "reason": r.reason,
        "effectiveAt": r.effective_at,
        "scheduledAt": r.created_at,
        "replacement": r.replacement_model.as_ref().map(|m| json!({
            "model": m.as_str(),
            "version": r.replacement_version.map(|v| v.to_string()),
        })),
    })
}

/// `GET /v1/models/{model}/versions/{version}/status`: the lifecycle status and any
/// pending retirement.
pub async fn version_status(
    State(state): State<AppState>,
    Authenticated(_actor): Authenticated,
    Path((model, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let services = &state.services;
    let found = services
        .registry()
        .version(&model, &version)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no version {model}@{version}")))?;
    let disabled = services
        .decommission()
        .disabled_version(&found.model, found.version)
        .await?;
    let retirement = match &disabled {
        Some(d) => match d.retirement_id {
            Some(id) => Some(services.retirements().retirement(id).await?),
            None => None,
        },
        None => {
            services
                .retirements()
                .pending_retirement_of(&model, &version)
                .await?
        }
    };
    let body = json!({
        "model": found.model.as_str(),
        "version": found.version.to_string(),
        "status": found.status.as_str(),
        // Set once the kill switch has been pulled: downloads answer 410 Gone.
        "disabled": disabled.as_ref().map(|d| json!({
            "at": d.disabled_at,
            "by": d.disabled_by,
            "reason": d.reason,
        })),
        "retirement": retirement.as_ref().map(retirement_json),
    });
    let mut response = Json(body).into_response();
    if let Some(r) = &retirement {
        let mut notice = SunsetNotice::of(r, services.retirements().retirement_url(r.id));
        if let Some(d) = &disabled {
            notice.sunset_at = d.disabled_at;
        }
        notice.apply(response.headers_mut());
    }
    Ok(response)
}

/// `GET /v1/retirements/{id}`.
pub async fn retirement(
    State(state): State<AppState>,
    Authenticated(_actor): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::not_found(format!("no retirement {id:?}")))?;
    Ok(Json(retirement_json(
        &state
            .services
            .retirements()
            .retirement(RetirementId(id))
            .await?,
    )))
}

/// `GET /v1/retirements.ics`: pending retirements, and those cancelled in the last
/// weeks (so calendars drop them rather than keep a stale event).
pub async fn calendar(
    State(state): State<AppState>,
    Authenticated(_actor): Authenticated,
) -> Result<Response, ApiError> {
    calendar_of(&state.services).await
}

/// `GET /v1/calendars/{secret}.ics`: the same feed at a secret address a calendar
/// application can subscribe to (it cannot send a bearer token). No token: the secret
/// in the path is the credential (request spans log the path without it).
pub async fn secret_calendar(
    State(state): State<AppState>,
    axum::extract::Path(file): axum::extract::Path<String>,
) -> Result<Response, ApiError> {
    let secret = file.strip_suffix(".ics").unwrap_or(&file);
    state
        .services
        .retirements()
        .calendar_feed_by_secret(secret)
        .await?;
    calendar_of(&state.services).await
}

async fn calendar_of(services: &crate::service::Services) -> Result<Response, ApiError> {
    let shown: Vec<RetirementState> = RetirementState::ALL
        .iter()
        .copied()
        .filter(|s| s.is_pending() || *s == RetirementState::Cancelled)
        .collect();
    let since = services.now() - chrono::Duration::days(90);
    let entries: Vec<CalendarEntry> = services
        .retirements()
        .list(
            &shown,
            Some(since),
            None,
            Some(crate::service::MAX_RETIREMENT_LIST),
        )
        .await?
        .into_iter()
        .map(|r| CalendarEntry {
            retirement_id: r.id.0,
            model: r.model.to_string(),
            versions: r.selection.to_string(),
            state: r.state,
            effective_at: r.effective_at,
            reason: r.reason,
            replacement: r.replacement_model.map(|m| match r.replacement_version {
                Some(v) => format!("{m} {v}"),
                None => m.to_string(),
            }),
            sequence: u32::try_from(r.sequence).unwrap_or(0),
            changed_at: r.updated_at,
            brownouts: r
                .levers
                .brownouts
                .iter()
                .map(|w| (w.start, w.end))
                .collect(),
        })
        .collect();
    let host = services
        .retirements()
        .public_host()
        .unwrap_or("sunset.invalid")
        .to_owned();
    let mut response = feed(&entries, &host).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/calendar; charset=utf-8"),
    );
    Ok(response)
}

/// Adds the `Sunset` header and `Link` to a 410: when a disabled version went, or when a
/// version closed to new consumers goes for everyone.
pub(super) async fn mark_gone(
    services: &crate::service::Services,
    model: &str,
    version: &str,
    headers: &mut axum::http::HeaderMap,
) {
    let (Ok(model), Ok(version)) = (
        crate::domain::ModelName::parse(model),
        crate::domain::Version::parse(version),
    ) else {
        return;
    };
    let Ok(Some(d)) = services
        .decommission()
        .disabled_version(&model, version)
        .await
    else {
        // Not disabled: closed to this caller by a retirement that froze new consumers
        // out; its Sunset headers say when the version goes for everyone, and where.
        if let Ok(Some(r)) = services
            .retirements()
            .pending_retirement_covering(&model, version)
            .await
        {
            SunsetNotice::of(&r, services.retirements().retirement_url(r.id)).apply(headers);
        }
        return;
    };
    let Some(id) = d.retirement_id else {
        return;
    };
    if let Ok(r) = services.retirements().retirement(id).await {
        let mut notice = SunsetNotice::of(&r, services.retirements().retirement_url(id));
        notice.sunset_at = d.disabled_at;
        notice.apply(headers);
    }
}

/// `GET /v1/disabled-versions`: every version the kill switch has disabled, for
/// enforcement points (gateways) to poll. The `ETag` is a digest of the list, so a poll
/// with `If-None-Match` that matches costs a `304` and no body.
pub async fn disabled_versions(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    request_headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let (body, etag) = state.services.decommission().disabled_list().await?;
    // A poll by an enforcement point's bound token confirms what it was told, whether
    // the list comes back whole or as a 304 (it has it already).
    if let Err(e) = state
        .services
        .decommission()
        .note_enforcement_poll(&actor)
        .await
    {
        tracing::warn!(error = %e, "could not record an enforcement point's poll");
    }
    Ok(tagged_json(body, &etag, &request_headers))
}

/// `GET /v1/brownouts`: every brownout window not yet over, with whom a gateway
/// refuses in it; an ETag, and `304` to a matching `If-None-Match`. Any token.
pub async fn brownouts(
    State(state): State<AppState>,
    Authenticated(_): Authenticated,
    request_headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let (body, etag) = state.services.retirements().brownout_list().await?;
    Ok(tagged_json(body, &etag, &request_headers))
}

/// A JSON list enforcement points poll: `304` when `If-None-Match` names `etag`,
/// otherwise the body; the ETag either way, and `no-cache` so caches ask again.
fn tagged_json(body: Vec<u8>, etag: &str, request_headers: &axum::http::HeaderMap) -> Response {
    let matches = request_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if matches {
        axum::http::StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response()
    };
    if let Ok(v) = HeaderValue::from_str(etag) {
        response.headers_mut().insert(header::ETAG, v);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
