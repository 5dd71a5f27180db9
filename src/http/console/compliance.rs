//! A model's compliance report as a printable page (auditors and governance), with the
//! same report signed for download. Each view generates the report afresh and is
//! recorded, as through the API.

use super::{Chrome, ConsolePage, ConsoleUser, PageError};
use crate::http::AppState;
use crate::service::ComplianceReport;
use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

/// Days as a date input sends them; the period runs from the start of `from` to the
/// end of `to` (its last microsecond), in UTC.
#[derive(Deserialize, Default)]
pub struct Period {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

/// A period's ends, either open (the model's registration; now).
type Bounds = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

impl Period {
    fn bounds(&self) -> Result<Bounds, PageError> {
        let day = |field: &'static str, raw: &str, after: i64| {
            if raw.is_empty() {
                return Ok(None);
            }
            NaiveDate::parse_from_str(raw, "%Y-%m-%d")
                .map(|d| {
                    Some(
                        d.and_time(chrono::NaiveTime::MIN).and_utc()
                            + chrono::Duration::days(after),
                    )
                })
                .map_err(|_| {
                    PageError::from(crate::service::ServiceError::from(
                        crate::domain::ParseError::new(
                            field,
                            format!("{raw:?} is not a date (YYYY-MM-DD)"),
                        ),
                    ))
                })
        };
        let end = day("to", &self.to, 1)?.map(|t| t - chrono::Duration::microseconds(1));
        Ok((day("from", &self.from, 0)?, end))
    }

    fn query(&self) -> String {
        serde_urlencoded::to_string([("from", &self.from), ("to", &self.to)]).unwrap_or_default()
    }
}

/// The report over `period`, as the signed-in user asks for it.
async fn signed(
    state: &AppState,
    user: &ConsoleUser,
    model: &str,
    period: &Period,
) -> Result<crate::service::SignedReport, PageError> {
    let (from, to) = period.bounds()?;
    Ok(state
        .services
        .audit()
        .compliance_report(user.actor(), model, from, to)
        .await?)
}

#[derive(Template)]
#[template(path = "console/compliance.html")]
struct ReportPage {
    chrome: Chrome,
    report: ComplianceReport,
    from: String,
    to: String,
    download: String,
}

/// `GET /ui/models/{name}/compliance?from=&to=`.
pub async fn page(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
    Path(model): Path<String>,
    Query(period): Query<Period>,
) -> Result<Response, PageError> {
    let report = signed(&state, &user, &model, &period).await?.report;
    Ok(ConsolePage(ReportPage {
        chrome: Chrome::new(
            &user,
            "/ui/models",
            format!("Compliance report: {}", report.model.name),
        ),
        from: report.period.from.format("%Y-%m-%d").to_string(),
        to: report.period.to.format("%Y-%m-%d").to_string(),
        download: format!(
            "/ui/models/{}/compliance.dsse.json?{}",
            report.model.name,
            period.query()
        ),
        report,
    })
    .into_response())
}

/// `GET /ui/models/{name}/compliance.dsse.json?from=&to=`: the report signed.
pub async fn download(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
    Path(model): Path<String>,
    Query(period): Query<Period>,
) -> Result<Response, PageError> {
    let signed = signed(&state, &user, &model, &period).await?;
    let name = format!(
        "attachment; filename=\"sunset-{}-compliance-report.dsse.json\"",
        signed.report.model.name
    );
    let mut response = signed.envelope.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, crate::http::decommission::ENVELOPE);
    if let Ok(value) = HeaderValue::from_str(&name) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}
