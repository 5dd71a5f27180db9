//! Governance decides retention's proposals from the model's page: accept (the
//! version's retirement is scheduled with the tier's notice, and the retirement's page
//! follows) or dismiss with a note saying why the version is kept. The use cases
//! authorise; a refusal is a refusal page, any other error comes back on the model's page.

use super::catalogue::render_model;
use super::{PageError, Posted};
use crate::domain::ParseError;
use crate::http::AppState;
use crate::service::ServiceError;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct ProposalForm {
    /// `accept` or `dismiss`: the button pressed.
    decision: String,
    note: String,
}

/// `POST /ui/models/{name}/retention/{version}`.
pub async fn decide(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    posted: Posted<ProposalForm>,
) -> Result<Response, PageError> {
    let Posted { user, form } = posted;
    let retirements = state.services.retirements();
    let done = match form.decision.as_str() {
        "accept" => retirements
            .accept_retention_proposal(user.actor(), &name, &version, Some(&form.note))
            .await
            .map(|(_, r)| format!("/ui/retirements/{}", r.id)),
        "dismiss" => retirements
            .dismiss_retention_proposal(user.actor(), &name, &version, &form.note)
            .await
            .map(|p| format!("/ui/models/{}", p.model)),
        _ => Err(ServiceError::from(ParseError::new(
            "decision",
            "must be accept or dismiss",
        ))),
    };
    match done {
        Ok(to) => Ok(Redirect::to(&to).into_response()),
        Err(e) => {
            let message = PageError::refusal_or_message(e)?;
            render_model(&state, &user, &name, Some(message)).await
        }
    }
}
