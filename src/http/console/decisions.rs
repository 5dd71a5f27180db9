//! The decisions governance takes on a retirement's page: postpone, accept a shorter
//! notice, override named dependents, grant or refuse more time, waive a derived
//! store's purge, and execute. Each posts to the use case the API calls; a refusal is a
//! refusal page (recorded), any other error comes back on the retirement's page. The
//! execution, which stops the versions being served at once, needs its box ticked.

use super::retirements::{render, utc_minute};
use super::{ConsoleUser, PageError, Posted};
use crate::domain::RetirementId;
use crate::http::AppState;
use crate::service::ServiceError;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};

/// Back to the retirement's page: after the decision, or with why it was not taken.
async fn decided<T>(
    state: &AppState,
    user: &ConsoleUser,
    id: RetirementId,
    done: Result<T, ServiceError>,
) -> Result<Response, PageError> {
    match done {
        Ok(_) => Ok(Redirect::to(&format!("/ui/retirements/{id}")).into_response()),
        Err(e) => {
            let message = PageError::refusal_or_message(e)?;
            render(state, user, id, 0, Some(message)).await
        }
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct PostponeForm {
    effective_at: String,
    reason: String,
}

/// `POST /ui/retirements/{id}/postpone`.
pub async fn postpone(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    posted: Posted<PostponeForm>,
) -> Result<Response, PageError> {
    let Posted { user, form } = posted;
    let id = RetirementId(id);
    let done = async {
        let at = utc_minute("effectiveAt", &form.effective_at)?;
        state
            .services
            .retirements()
            .postpone_retirement(user.actor(), id, at, &form.reason)
            .await
    };
    decided(&state, &user, id, done.await).await
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct JustifiedForm {
    justification: String,
    /// The dependents an override or a waiver names (one per line, or commas).
    consumers: String,
}

impl JustifiedForm {
    fn consumers(&self) -> Vec<String> {
        self.consumers
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// `POST /ui/retirements/{id}/accept-shorter-notice`.
pub async fn accept_shorter_notice(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    posted: Posted<JustifiedForm>,
) -> Result<Response, PageError> {
    let Posted { user, form } = posted;
    let id = RetirementId(id);
    let done = state
        .services
        .retirements()
        .accept_shorter_notice(user.actor(), id, &form.justification)
        .await;
    decided(&state, &user, id, done).await
}

/// `POST /ui/retirements/{id}/override`.
pub async fn override_dependents(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    posted: Posted<JustifiedForm>,
) -> Result<Response, PageError> {
    let Posted { user, form } = posted;
    let id = RetirementId(id);
    let done = state
        .services
        .retirements()
        .override_dependents(user.actor(), id, &form.consumers(), &form.justification)
        .await;
    decided(&state, &user, id, done).await
}

/// `POST /ui/retirements/{id}/waive-purge`: one derived store, named in `consumers`.
pub async fn waive_purge(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    posted: Posted<JustifiedForm>,
) -> Result<Response, PageError> {
    let Posted { user, form } = posted;
    let id = RetirementId(id);
    let done = state
        .services
        .decommission()
        .settle_purge(
            user.actor(),
            id,
            form.consumers.trim(),
            Some(&form.justification),
        )
        .await;
    decided(&state, &user, id, done).await
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct ExtensionForm {
    consumer: String,
    /// `grant` or `refuse`: the button pressed.
    decision: String,
    note: String,
}

/// `POST /ui/retirements/{id}/extensions`: grants or refuses one request for more time.
pub async fn decide_extension(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    posted: Posted<ExtensionForm>,
) -> Result<Response, PageError> {
    let Posted { user, form } = posted;
    let id = RetirementId(id);
    let grant = match form.decision.as_str() {
        "grant" => true,
        "refuse" => false,
        _ => {
            return Err(PageError::invalid(
                "choose to grant or to refuse the request",
            ));
        }
    };
    let done = state
        .services
        .retirements()
        .decide_extension(user.actor(), id, &form.consumer, grant, &form.note)
        .await;
    decided(&state, &user, id, done).await
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct ExecuteForm {
    /// The box that says the versions stop being served at once must be ticked.
    understood: String,
}

/// `POST /ui/retirements/{id}/execute`: pulls the kill switch and runs the
/// decommission as far as it can go (or resumes one that waits).
pub async fn execute(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    posted: Posted<ExecuteForm>,
) -> Result<Response, PageError> {
    let Posted { user, form } = posted;
    if form.understood != "yes" {
        return Err(PageError::invalid(
            "tick the box confirming that you understand the versions stop being served at once \
             and their artifacts are then erased for good",
        ));
    }
    let id = RetirementId(id);
    let done = state
        .services
        .decommission()
        .execute_retirement(user.actor(), id)
        .await;
    decided(&state, &user, id, done).await
}
