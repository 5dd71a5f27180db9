//! The audit log for auditors: records filtered by time, actor, change type and subject,
//! a page at a time; the chain verified on request with the newest signed checkpoint.
//! Every page read is itself recorded (`audit.read`), as through the API, and the
//! export is the API's (JSON Lines, streamed).

use super::{Chrome, ConsolePage, ConsoleUser, PageError};
use crate::audit::{Checkpoint, SealedRecord};
use crate::http::AppState;
use crate::service::AuditQuery;
use askama::Template;
use axum::Extension;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, Utc};

const PAGE: u64 = 100;

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct Filters {
    actor: String,
    action: String,
    subject: String,
    /// Days, `YYYY-MM-DD` (UTC), both included.
    from: String,
    until: String,
    after: Option<i64>,
    verify: Option<String>,
}

/// What verifying the chain found, in words.
struct Verified {
    intact: bool,
    text: String,
    checkpoint: Option<Checkpoint>,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    chrome: Chrome,
    filters: Filters,
    actions: Vec<&'static str>,
    records: Vec<SealedRecord>,
    next: Option<String>,
    verified: Option<Verified>,
    export: String,
}

fn day(
    field: &'static str,
    raw: &str,
    end: bool,
) -> Result<Option<chrono::DateTime<Utc>>, PageError> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    let date = NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d").map_err(|_| {
        PageError::invalid(format!("{field}: give a day as YYYY-MM-DD, not {raw:?}"))
    })?;
    let time = if end {
        date.and_hms_opt(23, 59, 59)
    } else {
        date.and_hms_opt(0, 0, 0)
    };
    Ok(time.map(|t| t.and_utc()))
}

impl Filters {
    fn query(&self) -> Result<AuditQuery, PageError> {
        let some = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
        Ok(AuditQuery {
            actor: some(&self.actor),
            action: some(&self.action),
            subject: some(&self.subject),
            from: day("from", &self.from, false)?,
            until: day("until", &self.until, true)?,
        })
    }

    fn params(&self) -> Vec<(&'static str, String)> {
        [
            ("actor", &self.actor),
            ("action", &self.action),
            ("subject", &self.subject),
            ("from", &self.from),
            ("until", &self.until),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k, v.clone()))
        .collect()
    }
}

/// `GET /ui/audit`.
pub async fn page(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
    Query(filters): Query<Filters>,
) -> Result<Response, PageError> {
    let query = filters.query()?;
    let audit = state.services.audit();
    let found = audit
        .audit_records(user.actor(), &query, filters.after, PAGE)
        .await?;
    let next = (found.has_next)
        .then(|| found.records.last().map(|r| r.seq))
        .flatten()
        .map(|seq| {
            let mut params = filters.params();
            params.push(("after", seq.to_string()));
            format!(
                "/ui/audit?{}",
                serde_urlencoded::to_string(&params).unwrap_or_default()
            )
        });
    let verified = match filters.verify {
        Some(_) => {
            let (outcome, checkpoint) = audit.verify_audit_chain_for(user.actor()).await?;
            Some(match outcome {
                Ok(report) => Verified {
                    intact: true,
                    text: format!(
                        "intact: {} records, head {}, {} signed checkpoints agree",
                        report.records, report.head_hash, report.checkpoints_checked
                    ),
                    checkpoint,
                },
                Err(broken) => Verified {
                    intact: false,
                    text: format!("broken: {broken}"),
                    checkpoint,
                },
            })
        }
        None => None,
    };
    let export = format!(
        "/ui/audit/export?{}",
        serde_urlencoded::to_string(filters.params()).unwrap_or_default()
    );
    Ok(ConsolePage(AuditPage {
        chrome: Chrome::new(&user, "/ui/audit", "Audit log"),
        actions: crate::audit::Action::ALL
            .iter()
            .map(|a| a.as_str())
            .collect(),
        records: found.records,
        next,
        verified,
        export,
        filters,
    })
    .into_response())
}

/// `GET /ui/audit/export`: what the filters select, as JSON Lines (the API's export).
pub async fn export(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
    Query(filters): Query<Filters>,
) -> Result<Response, PageError> {
    let query = filters.query()?;
    Ok(crate::http::audit_export::export_as(&state, user.actor(), &query).await?)
}
