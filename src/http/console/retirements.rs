//! Retirements for governance: the list, a form that previews what scheduling would do
//! (versions, every dependent that would be told, the earliest date the tier allows)
//! before it schedules, and a retirement's page with its dependents, notices and
//! cancellation. Everyone may look; only a role that may govern retirements sees the
//! forms, and the use cases refuse anyone else who posts them.

use super::{Chrome, ConsolePage, ConsoleUser, PageError, Posted};
use crate::domain::{Dependent, OutboxNotice, Retirement, RetirementId, RetirementState};
use crate::http::AppState;
use crate::service::{RetirementInput, RetirementPreview, ServiceError, may_govern_retirements};
use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::NaiveDateTime;

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
}

impl ScheduleForm {
    fn input(&self) -> Result<RetirementInput, ServiceError> {
        let effective_at =
            NaiveDateTime::parse_from_str(self.effective_at.trim(), "%Y-%m-%dT%H:%M")
                .map(|t| t.and_utc())
                .map_err(|_| {
                    crate::domain::ParseError::new(
                        "effectiveAt",
                        "give the effective date and time in UTC as YYYY-MM-DDTHH:MM",
                    )
                })?;
        let optional = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
        Ok(RetirementInput {
            model: self.model.trim().to_owned(),
            versions: self.versions.trim().to_owned(),
            reason: self.reason.clone(),
            effective_at,
            replacement_model: optional(&self.replacement_model),
            replacement_version: optional(&self.replacement_version),
        })
    }
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
    let status = if error.is_some() {
        axum::http::StatusCode::UNPROCESSABLE_ENTITY
    } else {
        axum::http::StatusCode::OK
    };
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
    match e {
        ServiceError::Forbidden(m) => Err(PageError::forbidden(m)),
        e => Ok(form_page(
            user,
            form,
            None,
            Some(PageError::from(e).message().to_owned()),
        )),
    }
}

#[derive(Template)]
#[template(path = "console/retirement.html")]
struct RetirementPage {
    chrome: Chrome,
    retirement: Retirement,
    dependents: Vec<Dependent>,
    notices: Vec<OutboxNotice>,
    may_cancel: bool,
}

/// `GET /ui/retirements/{id}`.
pub async fn show(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
    Path(id): Path<i64>,
) -> Result<Response, PageError> {
    let retirements = state.services.retirements();
    let id = RetirementId(id);
    let retirement = retirements.retirement(id).await?;
    let dependents = retirements.retirement_dependents(id).await?;
    let notices = retirements
        .retirement_notices_seen_by(user.actor(), id, None)
        .await?;
    let may_govern = may_govern_retirements(user.actor());
    Ok(ConsolePage(RetirementPage {
        chrome: Chrome::new(
            &user,
            "/ui/retirements",
            format!("Retirement {id} of {}", retirement.model),
        ),
        may_cancel: may_govern && retirement.state.may_become(RetirementState::Cancelled),
        retirement,
        dependents,
        notices,
    })
    .into_response())
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
