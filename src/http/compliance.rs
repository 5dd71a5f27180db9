//! `GET /v1/models/{model}/compliance-report?from=&to=&format=`: a model's compliance
//! report for a period (auditor or governance). `format=json` (the default) answers the
//! report itself; `format=dsse` the same report signed by the service key, as a DSSE
//! envelope to hand on and verify offline with `sunset report verify`.

use super::decommission::ENVELOPE;
use super::{ApiError, AppState, Authenticated};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    format: Option<String>,
}

pub async fn report(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    Path(model): Path<String>,
    Query(p): Query<Params>,
) -> Result<Response, ApiError> {
    let signed = match p.format.as_deref() {
        None | Some("json") => false,
        Some("dsse") => true,
        Some(other) => {
            return Err(
                crate::service::ServiceError::from(crate::domain::ParseError::new(
                    "format",
                    format!("{other:?} is not a report format; json or dsse is"),
                ))
                .into(),
            );
        }
    };
    let report = state
        .services
        .audit()
        .compliance_report(&actor, &model, p.from, p.to)
        .await?;
    let (body, name) = if signed {
        (report.envelope, "compliance-report.dsse.json")
    } else {
        (report.json, "compliance-report.json")
    };
    let disposition = format!("attachment; filename=\"sunset-{model}-{name}\"");
    Ok((
        [
            (header::CONTENT_TYPE, ENVELOPE),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition)
                    .unwrap_or(HeaderValue::from_static("attachment")),
            ),
        ],
        body,
    )
        .into_response())
}
