//! Rollback (AISVS 3.3.2): production goes back to the version that was production
//! before, in one transaction, after that version's signature and every artifact's
//! digest are verified again. The current production version becomes deprecated.

use super::ServiceError;
use crate::audit::{Action, AuditEntry, SubjectType};
use crate::auth::Actor;
use crate::domain::{LifecycleStatus, ModelName, RegisteredVersion, Role, Text};
use crate::store::registry as repo;

pub const ROLLBACK_ROLES: &[Role] = &[Role::Owner, Role::Governance, Role::Security];

impl super::Registry<'_> {
    /// A rollback refused because its target failed verification is evidence of
    /// tampering or damage: it is recorded like every integrity refusal.
    async fn record_rollback_refusal(&self, actor: &Actor, target: &str, reason: &str) {
        let entry = AuditEntry::new(
            actor.audit_identity(),
            Action::RollbackRefused,
            SubjectType::ModelVersion,
            target,
        )
        .after(&serde_json::json!({ "reason": reason }));
        let now = self.now();
        if let Err(e) = in_write_tx!(self, |tx| {
            self.append_audit(tx, now, entry.clone()).await
        }) {
            tracing::error!(error = %e, "could not record a refused rollback");
        }
    }

    pub async fn rollback_model(
        &self,
        actor: &Actor,
        model: &str,
        reason: &str,
    ) -> Result<RegisteredVersion, ServiceError> {
        let model = ModelName::parse(model)?;
        let acting = self.acting_on(actor, &model).await?;
        let actor = &acting;
        let reason = Text::parse_required("reason", reason, super::registry::MAX_JUSTIFICATION)?;
        // The service itself rolls back an emergency deployment whose time ran out.
        if actor.kind != crate::auth::ActorKind::System {
            super::authorise::require(actor, ROLLBACK_ROLES, "roll back models")?;
        }
        let db = self.store().reader();
        let (model_id, registered) = repo::find_model(db, &model)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no model named {model}")))?;
        super::registry::require_own_model(actor, &registered.owner_team, &model)?;
        let (target_id, target) = repo::previous_production(db, model_id, &model)
            .await?
            .ok_or_else(|| {
                ServiceError::Conflict(format!(
                    "{model} has no earlier production version to roll back to"
                ))
            })?;
        // Verify the target whole before touching anything: signature, then every byte.
        self.refuse_unverified(actor, &format!("{model}@{}", target.version), target_id)
            .await?;

        let after = in_write_tx!(self, |tx| {
            let current =
                repo::versions_in_status(tx.conn(), model_id, &model, LifecycleStatus::Production)
                    .await?;
            let Some((target_id_now, target_now)) =
                repo::previous_production(tx.conn(), model_id, &model).await?
            else {
                return Err(ServiceError::Conflict(format!(
                    "{model} has no earlier production version to roll back to"
                )));
            };
            if target_id_now != target_id {
                return Err(ServiceError::Conflict(format!(
                    "{model} changed while the rollback was being verified; try again"
                )));
            }
            let now = self.now();
            for (id, version) in &current {
                repo::set_status(tx.conn(), *id, LifecycleStatus::Deprecated, now).await?;
                let mut deprecated = version.clone();
                deprecated.status = LifecycleStatus::Deprecated;
                deprecated.status_changed_at = now;
                let entry = AuditEntry::new(
                    actor.audit_identity(),
                    Action::VersionStatusChanged,
                    SubjectType::ModelVersion,
                    format!("{model}@{}", version.version),
                )
                .before(version)
                .after(&deprecated);
                self.append_audit(tx, now, entry).await?;
            }
            repo::set_status(tx.conn(), target_id, LifecycleStatus::Production, now).await?;
            let mut promoted = target_now.clone();
            promoted.status = LifecycleStatus::Production;
            promoted.status_changed_at = now;
            let entry = AuditEntry::new(actor.audit_identity(), Action::ModelRolledBack, SubjectType::Model, model.as_str())
                .before(&serde_json::json!({ "production": current.iter().map(|(_, v)| v.version.to_string()).collect::<Vec<_>>() }))
                .after(&serde_json::json!({
                    "production": target_now.version.to_string(),
                    "reason": reason.as_str(),
                    "verified": ["signature", "artifact digests"],
                }));
            self.append_audit(tx, now, entry).await?;
            Ok(promoted)
        })?;
        tracing::warn!(model = %model, to = %after.version, actor = %actor.name, "model rolled back");
        Ok(after)
    }

    /// Refuses (and records the refusal of) a rollback to a version whose signature no
    /// longer verifies or whose artifacts no longer match their digests.
    async fn refuse_unverified(
        &self,
        actor: &Actor,
        target_subject: &str,
        target_id: repo::VersionId,
    ) -> Result<(), ServiceError> {
        let db = self.store().reader();
        if let Err(reason) = self.check_version_signature(db, target_id).await? {
            self.record_rollback_refusal(actor, target_subject, &reason)
                .await;
            return Err(ServiceError::Conflict(format!(
                "cannot roll back to {target_subject}: {reason}"
            )));
        }
        if let Err(reason) = self.artifacts().verify_artifacts(target_id).await? {
            self.record_rollback_refusal(actor, target_subject, &reason)
                .await;
            return Err(ServiceError::Integrity(format!(
                "cannot roll back to {target_subject}: {reason}"
            )));
        }
        Ok(())
    }
}
