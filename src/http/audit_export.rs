//! `GET /v1/audit/export`: the audit log as JSON Lines, streamed in sequence order.
//! Auditor role; the export is recorded before the first line is sent.

use super::{ApiError, AppState, Authenticated};
use crate::audit::SealedRecord;
use crate::service::AuditQuery;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportParams {
    subject: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    from: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Line<'a> {
    seq: i64,
    recorded_at: DateTime<Utc>,
    actor: &'a str,
    actor_role: &'a str,
    action: &'a str,
    subject_type: &'a str,
    subject: &'a str,
    before: Option<&'a str>,
    after: Option<&'a str>,
    prev_hash: &'a str,
    hash: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_ip: Option<&'a str>,
}

fn line(r: &SealedRecord) -> String {
    let l = Line {
        seq: r.seq,
        recorded_at: r.recorded_at,
        actor: &r.actor,
        actor_role: &r.actor_role,
        action: &r.action,
        subject_type: &r.subject_type,
        subject: &r.subject,
        before: r.before_state.as_deref(),
        after: r.after_state.as_deref(),
        prev_hash: &r.prev_hash,
        hash: &r.hash,
        client_ip: r.client_ip.as_deref(),
    };
    let mut s = serde_json::to_string(&l).unwrap_or_default();
    s.push('\n');
    s
}

pub async fn export(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    Query(p): Query<ExportParams>,
) -> Result<Response, ApiError> {
    let query = AuditQuery {
        subject: p.subject,
        actor: p.actor,
        action: p.action,
        from: p.from,
        until: p.until,
    };
    export_as(&state, &actor, &query).await
}

/// The export of what `query` selects, as `actor` (the API's and the console's).
pub(super) async fn export_as(
    state: &AppState,
    actor: &crate::auth::Actor,
    query: &AuditQuery,
) -> Result<Response, ApiError> {
    let filter = state
        .services
        .audit()
        .begin_audit_export(actor, query)
        .await?;
    let services = state.services.clone();
    // Pages are fetched as the client reads, so memory stays flat for any log size.
    let stream = futures_util::stream::try_unfold(Some(0i64), move |after| {
        let services = services.clone();
        let filter = filter.clone();
        async move {
            let Some(after) = after else {
                return Ok::<_, std::io::Error>(None);
            };
            let page = services
                .audit()
                .audit_export_page(&filter, after)
                .await
                .map_err(std::io::Error::other)?;
            let Some(last) = page.last().map(|r| r.seq) else {
                return Ok(None);
            };
            let chunk: String = page.iter().map(line).collect();
            Ok(Some((chunk, Some(last))))
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"sunset-audit.jsonl\"",
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
