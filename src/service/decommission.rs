//! Executing a ready retirement (issue 6, AISVS 3.6.2 to 3.6.4). Each step is recorded
//! with its time and outcome (`decommission_steps`) and is idempotent, so an execution
//! that dies is resumed by running it again.
//!
//! Built so far: the kill switch. The retirement moves to `executing` and its versions
//! are disabled in the same transaction: from the commit on, every instance refuses
//! their downloads (410 Gone), since each download reads the switch from the database.
//! Still to come: telling enforcement points, derived-data purges, crypto-erasure,
//! signature revocation and the destruction certificate.

use super::{ServiceError, Services};
use crate::audit::{Action, AuditEntry, SubjectType};
use crate::auth::Actor;
use crate::domain::{ModelName, RetirementState, Role, Version};
use crate::store::kill_switch::{self as repo, DisabledVersion, Step};
use crate::store::registry as registry_repo;
use crate::store::retirements::{self as retirement_repo, Retirement};

/// The step names, in the order they run.
const KILL_SWITCH: &str = "kill-switch";

impl Services {
    /// Starts (or resumes) executing a ready retirement: its versions stop being served
    /// at once. Governance only.
    pub async fn execute_retirement(
        &self,
        actor: &Actor,
        id: i64,
    ) -> Result<(Retirement, Vec<Step>), ServiceError> {
        if actor.role != Role::Governance {
            return Err(ServiceError::Forbidden(format!(
                "role {} may not execute retirements; governance may",
                actor.role
            )));
        }
        let retirement = in_write_tx!(self, |tx| {
            let now = self.now();
            let before = retirement_repo::find(tx.conn(), id)
                .await?
                .ok_or_else(|| ServiceError::NotFound(format!("no retirement {id}")))?;
            let after = match before.state {
                RetirementState::Ready => Retirement {
                    state: RetirementState::Executing,
                    sequence: before.sequence + 1,
                    updated_at: now,
                    ..before.clone()
                },
                // Running it again resumes: every step is idempotent.
                RetirementState::Executing => before.clone(),
                other => {
                    return Err(ServiceError::Conflict(format!(
                        "retirement {id} is {other}; only a ready retirement is executed \
                         (every dependent's notice run out and acknowledged, quiet or overridden)"
                    )));
                }
            };
            let mut audits = Vec::new();
            if after.state != before.state {
                retirement_repo::update(tx.conn(), &after).await?;
                audits.push(
                    AuditEntry::new(
                        actor.audit_identity(),
                        Action::RetirementExecutionStarted,
                        SubjectType::Retirement,
                        id.to_string(),
                    )
                    .before(&before)
                    .after(&after),
                );
            }
            // Step 1: the kill switch.
            let mut disabled = Vec::new();
            let model_id = crate::store::registry::ModelId(after.model_id);
            for &v in &after.affected_versions {
                if let Some((version_id, _)) =
                    registry_repo::find_version(tx.conn(), model_id, &after.model, v).await?
                {
                    disabled.push(DisabledVersion {
                        version_id: version_id.0,
                        model: after.model.to_string(),
                        version: v.to_string(),
                        retirement_id: Some(id),
                        disabled_at: now,
                        disabled_by: actor.name.clone(),
                        reason: after.reason.clone(),
                    });
                }
            }
            let added = repo::disable(tx.conn(), &disabled).await?;
            if added > 0 {
                let outcome = format!(
                    "{added} version(s) disabled: {}",
                    disabled
                        .iter()
                        .map(|d| d.version.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                repo::finish_step(tx.conn(), id, KILL_SWITCH, now, now, &outcome).await?;
                audits.push(
                    AuditEntry::new(
                        actor.audit_identity(),
                        Action::VersionsDisabled,
                        SubjectType::Retirement,
                        id.to_string(),
                    )
                    .after(&disabled),
                );
            }
            if !audits.is_empty() {
                tx.append_audits(now, audits, self.service_key().audit_mac_key())
                    .await?;
            }
            Ok(after)
        })?;
        tracing::warn!(retirement = id, model = %retirement.model, actor = %actor.name, "retirement executing: versions disabled");
        self.publish_retirement(id, "executing");
        let steps = self.decommission_steps(id).await?;
        Ok((retirement, steps))
    }

    /// The recorded steps of executing retirement `id`.
    pub async fn decommission_steps(&self, id: i64) -> Result<Vec<Step>, ServiceError> {
        Ok(repo::steps(self.store().reader(), id).await?)
    }

    /// Whether the kill switch has disabled `model@version`.
    pub async fn disabled_version(
        &self,
        model: &ModelName,
        version: Version,
    ) -> Result<Option<DisabledVersion>, ServiceError> {
        Ok(repo::find(self.store().reader(), model.as_str(), &version.to_string()).await?)
    }

    /// Every disabled version: what enforcement points poll.
    pub async fn disabled_versions(&self) -> Result<Vec<DisabledVersion>, ServiceError> {
        Ok(repo::list(self.store().reader()).await?)
    }
}
