//! Emergencies for security: declare one (risk assessment required, then a page that
//! says what happens at once and what cannot be undone, then the act), approve another
//! person's erasure, or lift a kill switch before erasure. Each irreversible act needs
//! an explicit confirmation in the form, checked here before the use case runs; the use
//! cases enforce the roles and the two-person rule.

use super::{Chrome, ConsolePage, ConsoleUser, PageError, Posted};
use crate::domain::{Retirement, RetirementId, RetirementState};
use crate::http::AppState;
use crate::service::{EmergencyView, may_approve_erasures, may_pull_kill_switches};
use askama::Template;
use axum::Extension;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};

/// An emergency waiting for its erasure's approval.
struct Waiting {
    retirement: Retirement,
    emergency: EmergencyView,
}

#[derive(Template)]
#[template(path = "console/emergency.html")]
struct EmergencyPage {
    chrome: Chrome,
    may_declare: bool,
    may_approve: bool,
    waiting: Vec<Waiting>,
    form: DeclareForm,
    /// Set when the form is to be confirmed: what will happen.
    confirming: bool,
    error: Option<String>,
}

#[derive(serde::Deserialize, Default, Clone)]
#[serde(default)]
pub struct DeclareForm {
    model: String,
    versions: String,
    risk_assessment: String,
    /// `yes` once the person confirmed on the page that says what happens.
    confirmed: String,
}

async fn waiting(state: &AppState) -> Result<Vec<Waiting>, PageError> {
    let executing = state
        .services
        .retirements()
        .list(&[RetirementState::Executing], None, None, Some(100))
        .await?;
    let mut out = Vec::new();
    for retirement in executing {
        if let Some(emergency) = state
            .services
            .decommission()
            .emergency(retirement.id)
            .await?
        {
            out.push(Waiting {
                retirement,
                emergency,
            });
        }
    }
    Ok(out)
}

async fn render(
    state: &AppState,
    user: &ConsoleUser,
    form: DeclareForm,
    confirming: bool,
    error: Option<String>,
) -> Result<Response, PageError> {
    let status = super::page::status_with(&error);
    let page = EmergencyPage {
        chrome: Chrome::new(user, "/ui/emergency", "Emergency"),
        may_declare: may_pull_kill_switches(user.actor()),
        may_approve: may_approve_erasures(user.actor()),
        waiting: waiting(state).await?,
        form,
        confirming,
        error,
    };
    Ok((status, ConsolePage(page)).into_response())
}

/// `GET /ui/emergency`: the form (security) and the emergencies awaiting approval.
pub async fn page(
    State(state): State<AppState>,
    Extension(user): Extension<ConsoleUser>,
) -> Result<Response, PageError> {
    render(&state, &user, DeclareForm::default(), false, None).await
}

/// `POST /ui/emergency`: first the confirmation page, then, confirmed, the act.
pub async fn declare(
    State(state): State<AppState>,
    posted: Posted<DeclareForm>,
) -> Result<Response, PageError> {
    let Posted { user, form } = posted;
    if !may_pull_kill_switches(user.actor()) {
        return Err(PageError::forbidden(format!(
            "role {} may not retire a model in an emergency; security may",
            user.actor().role
        )));
    }
    if form.confirmed != "yes" {
        return render(&state, &user, form, true, None).await;
    }
    let done = state
        .services
        .decommission()
        .emergency_retirement(
            user.actor(),
            &form.model,
            &form.versions,
            &form.risk_assessment,
            "manual",
        )
        .await;
    match done {
        Ok((retirement, _)) => {
            Ok(Redirect::to(&format!("/ui/retirements/{}", retirement.id)).into_response())
        }
        Err(e) => {
            let message = PageError::refusal_or_message(e)?;
            render(
                &state,
                &user,
                DeclareForm {
                    confirmed: String::new(),
                    ..form
                },
                false,
                Some(message),
            )
            .await
        }
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct DecisionForm {
    note: String,
    /// The box that says the act cannot be undone must be ticked.
    understood: String,
}

fn require_understood(form: &DecisionForm, what: &str) -> Result<(), PageError> {
    if form.understood == "yes" {
        Ok(())
    } else {
        Err(PageError::invalid(format!(
            "tick the box confirming that you understand {what}"
        )))
    }
}

/// `POST /ui/retirements/{id}/approve-erasure`: the second person's approval.
pub async fn approve(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    posted: Posted<DecisionForm>,
) -> Result<Response, PageError> {
    let Posted { user, form } = posted;
    require_understood(&form, "that the erased artifacts can never be recovered")?;
    state
        .services
        .decommission()
        .approve_emergency_erasure(user.actor(), RetirementId(id), &form.note)
        .await?;
    Ok(Redirect::to(&format!("/ui/retirements/{id}")).into_response())
}

/// `POST /ui/retirements/{id}/lift`: a false alarm, before erasure.
pub async fn lift(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    posted: Posted<DecisionForm>,
) -> Result<Response, PageError> {
    let Posted { user, form } = posted;
    require_understood(
        &form,
        "that the versions are served again to every consumer",
    )?;
    state
        .services
        .decommission()
        .lift_kill_switch(user.actor(), RetirementId(id), &form.note)
        .await?;
    Ok(Redirect::to(&format!("/ui/retirements/{id}")).into_response())
}
