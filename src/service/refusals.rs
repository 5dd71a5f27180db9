//! Refused requests kept as evidence (AISVS C3.4). An authenticated caller refused by an
//! authorisation rule is recorded in the audit trail, beside the refusals recorded where
//! they happen (integrity, rollback, signing, downloads of retired versions, audit reads).
//! Unauthenticated refusals (no token, a forged webhook) are logged only: anyone on the
//! network could otherwise write to the trail.

use crate::audit::{Action, AuditEntry, SubjectType};
use crate::auth::Actor;

/// Refusals kept per request, and characters kept of each message.
const MAX_REFUSALS: usize = 20;
const MAX_MESSAGE: usize = 300;

/// One refused part of a request: a GraphQL field's path, or the route.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Refusal {
    pub at: String,
    pub message: String,
}

impl super::Audit<'_> {
    /// Records that `actor` was refused within `operation` (a GraphQL request or an HTTP
    /// route). The refusal is already the answer: a failure to record it is logged.
    pub async fn record_refusals(&self, actor: &Actor, operation: &str, refusals: &[Refusal]) {
        if refusals.is_empty() {
            return;
        }
        let kept: Vec<Refusal> = refusals
            .iter()
            .take(MAX_REFUSALS)
            .map(|r| Refusal {
                at: r.at.chars().take(MAX_MESSAGE).collect(),
                message: r.message.chars().take(MAX_MESSAGE).collect(),
            })
            .collect();
        tracing::info!(actor = %actor.name, operation, refused = refusals.len(), "request refused");
        let entry = AuditEntry::new(
            actor.audit_identity(),
            Action::AccessRefused,
            SubjectType::Operation,
            operation.chars().take(MAX_MESSAGE).collect::<String>(),
        )
        .after(&serde_json::json!({ "refused": kept, "of": refusals.len() }));
        let recorded = in_write_tx!(self, |tx| {
            self.append_audit(tx, self.now(), entry.clone()).await
        });
        if let Err(e) = recorded {
            tracing::error!(error = %e, actor = %actor.name, "could not record a refused request");
        }
    }
}
