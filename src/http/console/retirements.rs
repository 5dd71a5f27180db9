//! Retirements for governance: the list, a form that previews what scheduling would do
//! (versions, every dependent that would be told, the earliest date the tier allows)
//! before it schedules, and a retirement's page: its dependents with their notices,
//! acknowledgements and requests for more time, deliveries, enforcement points, purges
//! and the decommission as a timeline, with the decisions its state allows
//! (`decisions.rs` takes them). Everyone may look; only a role that may govern
//! retirements sees the forms, and the use cases refuse anyone else who posts them.

use super::{Chrome, ConsolePage, ConsoleUser, PageError, Posted};
use crate::domain::{
    DecommissionStep, Dependent, ExtensionState, OutboxNotice, Purge, Retirement, RetirementId,
    RetirementState, Step,
};
use crate::http::AppState;
use crate::service::{
    EnforcementConfirmation as Confirmation, RetirementInput, RetirementPreview, ServiceError,
    may_govern_retirements, may_read_certificates,
};
use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, NaiveDateTime, Utc};

#[derive(Template)]
#[template(path = "console/retirements.html")]
struct ListPage {
    chrome: Chrome,
    retirements: Vec<Retirement>,
    may_govern: bool,
}

/// `GET /ui/retirements`: every retirement, soonest effective first.
pub async fn list(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
) -> Result<Response, PageError> {
    let mut retirements = state
        .services
        .retirements()
        .list(RetirementState::ALL, None, None, Some(500))
        .await?;
    retirements.sort_by_key(|r| (!r.state.is_pending(), r.effective_at));
    Ok(ConsolePage(ListPage {
        may_govern: may_govern_retirements(user.actor()),
        chrome: Chrome::new(&user, "/ui/retirements", "Retirements"),
        retirements,
    })
    .into_response())
}

/// The schedule form's fields, as typed (the date in UTC, `YYYY-MM-DDTHH:MM`).
#[derive(serde::Deserialize, Default, Clone)]
#[serde(default)]
pub struct ScheduleForm {
    model: String,
    versions: String,
    reason: String,
    effective_at: String,
    replacement_model: String,
    replacement_version: String,
    /// `yes` when the box is ticked.
    freeze_new_consumers: String,
    notify_seen_within_days: String,
}

impl ScheduleForm {
    fn input(&self) -> Result<RetirementInput, ServiceError> {
        let effective_at = utc_minute("effectiveAt", &self.effective_at)?;
        let optional = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
        Ok(RetirementInput {
            model: self.model.trim().to_owned(),
            versions: self.versions.trim().to_owned(),
            reason: self.reason.clone(),
            effective_at,
            replacement_model: optional(&self.replacement_model),
            replacement_version: optional(&self.replacement_version),
            levers: crate::service::LeverInput {
                freeze_new_consumers: Some(self.freeze_new_consumers == "yes"),
                notify_seen_within_days: optional(&self.notify_seen_within_days)
                    .map(|d| {
                        d.parse::<i64>().map_err(|_| {
                            crate::domain::ParseError::new(
                                "notifySeenWithinDays",
                                format!("{d:?} is not a number of days"),
                            )
                        })
                    })
                    .transpose()?,
                ..Default::default()
            },
        })
    }
}

/// A date and time typed in a form's `datetime-local` field, read as UTC.
pub(super) fn utc_minute(
    field: &'static str,
    raw: &str,
) -> Result<DateTime<Utc>, crate::domain::ParseError> {
    NaiveDateTime::parse_from_str(raw.trim(), "%Y-%m-%dT%H:%M")
        .map(|t| t.and_utc())
        .map_err(|_| {
            crate::domain::ParseError::new(
                field,
                "give the date and time in UTC as YYYY-MM-DDTHH:MM",
            )
        })
}

#[derive(Template)]
#[template(path = "console/retirement_form.html")]
struct FormPage {
    chrome: Chrome,
    form: ScheduleForm,
    preview: Option<RetirementPreview>,
    error: Option<String>,
}

/// `GET /ui/retirements/new`: the schedule form (a role that may not govern is told so).
pub async fn new(Extension(user): Extension<ConsoleUser>) -> Result<Response, PageError> {
    if !may_govern_retirements(user.actor()) {
        return Err(PageError::forbidden(format!(
            "role {} may not schedule retirements; governance may",
            user.actor().role
        )));
    }
    Ok(form_page(&user, ScheduleForm::default(), None, None))
}

fn form_page(
    user: &ConsoleUser,
    form: ScheduleForm,
    preview: Option<RetirementPreview>,
    error: Option<String>,
) -> Response {
    let status = super::page::status_with(&error);
    let title = if preview.is_some() {
        "Check and schedule"
    } else {
        "Schedule a retirement"
    };
    (
        status,
        ConsolePage(FormPage {
            chrome: Chrome::new(user, "/ui/retirements", title),
            form,
            preview,
            error,
        }),
    )
        .into_response()
}

/// `POST /ui/retirements/preview`: what scheduling would do, and the form again to
/// schedule it. A mistake comes back on the form, with what was typed.
pub async fn preview(
    State(state): State<AppState>,
    posted: Posted<ScheduleForm>,
) -> Result<Response, PageError> {
    let Posted { user, form } = posted;
    let retirements = state.services.retirements();
    let previewed = async {
        retirements
            .preview_retirement(user.actor(), form.input()?)
            .await
    };
    match previewed.await {
        Ok(preview) => Ok(form_page(&user, form, Some(preview), None)),
        Err(e) => back_on_form(&user, form, e),
    }
}

/// `POST /ui/retirements`: schedules, then shows the retirement.
pub async fn schedule(
    State(state): State<AppState>,
    posted: Posted<ScheduleForm>,
) -> Result<Response, PageError> {
    let Posted { user, form } = posted;
    let retirements = state.services.retirements();
    let scheduled = async {
        retirements
            .schedule_retirement(user.actor(), form.input()?)
            .await
    };
    match scheduled.await {
        Ok((retirement, _)) => {
            Ok(Redirect::to(&format!("/ui/retirements/{}", retirement.id)).into_response())
        }
        Err(e) => back_on_form(&user, form, e),
    }
}

/// A refusal is a refusal page (recorded); any other error comes back on the form.
fn back_on_form(
    user: &ConsoleUser,
    form: ScheduleForm,
    e: ServiceError,
) -> Result<Response, PageError> {
    let message = PageError::refusal_or_message(e)?;
    Ok(form_page(user, form, None, Some(message)))
}

/// Dependents listed per page of a retirement's page.
const DEPENDENT_ROWS: usize = 100;

/// What the signed-in person may do on a retirement's page, by role and state.
struct Offers {
    cancel: bool,
    postpone: bool,
    accept_shorter: bool,
    override_dependents: bool,
    decide_extensions: bool,
    execute: bool,
    waive_purges: bool,
}

impl Offers {
    fn new(user: &ConsoleUser, state: RetirementState) -> Self {
        let govern = may_govern_retirements(user.actor());
        let pending = govern && state.is_pending();
        Self {
            cancel: govern && state.may_become(RetirementState::Cancelled),
            postpone: pending,
            accept_shorter: govern && state == RetirementState::NeedsDecision,
            override_dependents: pending,
            decide_extensions: pending,
            execute: govern
                && (state.may_become(RetirementState::Executing)
                    || state == RetirementState::Executing),
            waive_purges: govern && (state.is_pending() || state == RetirementState::Executing),
        }
    }
}

/// One step of the decommission as the timeline shows it.
struct TimelineStep {
    name: &'static str,
    /// `done`, `waiting` (started, not finished) or `not-started`.
    status: &'static str,
    recorded: Option<Step>,
}

fn timeline(steps: Vec<Step>) -> Vec<TimelineStep> {
    DecommissionStep::ALL
        .iter()
        .map(|&name| {
            let recorded = steps.iter().find(|s| s.step == name).cloned();
            let status = match &recorded {
                Some(s) if s.finished_at.is_some() => "done",
                Some(_) => "waiting",
                None => "not-started",
            };
            TimelineStep {
                name: name.as_str(),
                status,
                recorded,
            }
        })
        .collect()
}

#[derive(Template)]
#[template(path = "console/retirement.html")]
struct RetirementPage {
    chrome: Chrome,
    retirement: Retirement,
    dependents_total: usize,
    dependents: Vec<Dependent>,
    previous_page: Option<String>,
    next_page: Option<String>,
    /// Dependents asking for more time, whatever page they are on.
    requests: Vec<Dependent>,
    notices: Vec<OutboxNotice>,
    confirmations: Vec<Confirmation>,
    purges: Vec<Purge>,
    awaited_purges: Vec<String>,
    timeline: Vec<TimelineStep>,
    certificate: Option<String>,
    offers: Offers,
    error: Option<String>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct PageQuery {
    page: usize,
}

/// `GET /ui/retirements/{id}`.
pub async fn show(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
    Path(id): Path<i64>,
    Query(query): Query<PageQuery>,
) -> Result<Response, PageError> {
    render(&state, &user, RetirementId(id), query.page, None).await
}

/// The retirement's page, with `error` (a decision that could not be made) on top.
pub(super) async fn render(
    state: &AppState,
    user: &ConsoleUser,
    id: RetirementId,
    page: usize,
    error: Option<String>,
) -> Result<Response, PageError> {
    let retirements = state.services.retirements();
    let decommission = state.services.decommission();
    let retirement = retirements.retirement(id).await?;
    let all = retirements.retirement_dependents(id).await?;
    let requests = all
        .iter()
        .filter(|d| d.extension_state == Some(ExtensionState::Requested))
        .cloned()
        .collect();
    let pages = all.len().div_ceil(DEPENDENT_ROWS).max(1);
    let page = page.min(pages - 1);
    let page_link = |p: usize| format!("/ui/retirements/{id}?page={p}#dependents");
    let certificate = if may_read_certificates(user.actor()) {
        decommission
            .certificate_id_of(id)
            .await?
            .map(|c| c.to_string())
    } else {
        None
    };
    let status = super::page::status_with(&error);
    let page = RetirementPage {
        chrome: Chrome::new(
            user,
            "/ui/retirements",
            format!("Retirement {id} of {}", retirement.model),
        ),
        offers: Offers::new(user, retirement.state),
        dependents_total: all.len(),
        previous_page: (page > 0).then(|| page_link(page - 1)),
        next_page: (page + 1 < pages).then(|| page_link(page + 1)),
        dependents: all
            .into_iter()
            .skip(page * DEPENDENT_ROWS)
            .take(DEPENDENT_ROWS)
            .collect(),
        requests,
        notices: retirements
            .retirement_notices_seen_by(user.actor(), id, None)
            .await?,
        confirmations: decommission.enforcement_confirmations(id).await?,
        purges: decommission.purges(id).await?,
        awaited_purges: decommission.purges_awaited(id).await?,
        timeline: timeline(decommission.decommission_steps(id).await?),
        certificate,
        retirement,
        error,
    };
    Ok((status, ConsolePage(page)).into_response())
}

#[derive(serde::Deserialize)]
pub struct CancelForm {
    #[serde(default)]
    reason: String,
}

/// `POST /ui/retirements/{id}/cancel`.
pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    posted: Posted<CancelForm>,
) -> Result<Response, PageError> {
    let Posted { user, form } = posted;
    state
        .services
        .retirements()
        .cancel_retirement(user.actor(), RetirementId(id), &form.reason)
        .await?;
    Ok(Redirect::to(&format!("/ui/retirements/{id}")).into_response())
}
