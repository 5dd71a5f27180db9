//! Lifting an emergency's kill switch (a false alarm) before its erasure: the versions are
//! served again with the statuses they had, the retirement is cancelled, the retirements
//! it superseded are restored, and dependents are told.

use super::{KillSwitchRecord, ServiceError};
use crate::audit::{Action, AuditEntry, SubjectType};
use crate::auth::Actor;
use crate::domain::DecommissionStep;
use crate::domain::Retirement;
use crate::domain::RetirementId;
use crate::domain::{LifecycleStatus, RetirementState, Text, Version};
use crate::service::authorise::require;
use crate::service::retirements::MAX_TEXT;
use crate::store::kill_switch as steps;
use crate::store::notices as notice_repo;
use crate::store::registry as registry_repo;
use crate::store::retirements as retirement_repo;

impl crate::service::Decommission<'_> {
    /// Lifts the kill switch of an executing retirement whose erasure has not started
    /// (a false alarm): its versions are served again, the retirement is cancelled and
    /// its dependents told. `security` only, with a justification.
    pub async fn lift_kill_switch(
        &self,
        actor: &Actor,
        id: RetirementId,
        justification: &str,
    ) -> Result<Retirement, ServiceError> {
        let acting = self.acting_on_retirement(actor, id).await?;
        let actor = &acting;
        require(
            actor,
            super::emergency::SECURITY_ROLES,
            "lift a kill switch",
        )?;
        let justification = Text::parse_required("justification", justification, MAX_TEXT)?;
        let _gate = self.inner.decommission.gate.lock().await;
        let after = in_write_tx!(self, |tx| {
            let now = self.now();
            let before = retirement_repo::find(tx.conn(), id)
                .await?
                .ok_or_else(|| ServiceError::NotFound(format!("no retirement {id}")))?;
            if before.state != RetirementState::Executing {
                return Err(ServiceError::Conflict(format!(
                    "retirement {id} is {}; only an executing retirement's kill switch is lifted",
                    before.state
                )));
            }
            if steps::steps(tx.conn(), id)
                .await?
                .iter()
                .any(|s| s.step == DecommissionStep::EraseKeys)
            {
                return Err(ServiceError::Conflict(format!(
                    "retirement {id}'s erasure has started: its versions cannot come back"
                )));
            }
            let enabled = steps::enable(tx.conn(), id).await?;
            self.restore_statuses(tx, actor, &before, &enabled, now)
                .await?;
            let restored = self.restore_superseded(tx, actor, id, now).await?;
            let after = before.lifted(
                now,
                format!("kill switch lifted: {}", justification.as_str()),
            )?;
            retirement_repo::update(tx.conn(), &after).await?;
            let dependents = retirement_repo::dependents(tx.conn(), id).await?;
            let mut reachable = Vec::new();
            for d in &dependents {
                if let Some(c) =
                    crate::store::inventory::consumer_by_id(tx.conn(), d.consumer_id).await?
                {
                    reachable.push((d, c));
                }
            }
            let escalate_to =
                crate::service::retirements::escalation_contacts(self, tx.conn(), &after).await?;
            let notices = self.retirements().notices_for(
                &after,
                notifiers::NoticeKind::Cancelled,
                reachable.iter().map(|(d, c)| (*d, c)),
                &escalate_to,
                now,
            );
            notice_repo::insert(tx.conn(), &notices).await?;
            let entry = AuditEntry::new(
                actor.audit_identity(),
                Action::KillSwitchLifted,
                SubjectType::Retirement,
                id.to_string(),
            )
            .before(&before)
            .after(&serde_json::json!({
                "retirement": &after,
                "versionsEnabled": enabled,
                "retirementsRestored": restored,
                "justification": justification.as_str(),
            }));
            self.append_audit(tx, now, entry).await?;
            Ok(after)
        })?;
        tracing::warn!(retirement = id.0, actor = %actor.name, "kill switch lifted");
        self.retirements().wake_delivery();
        if let Err(e) = self.publish_kill_switch().await {
            tracing::warn!(error = %e, "could not publish the kill switch to subscribers");
        }
        self.retirements().publish_retirement(id, "cancelled");
        Ok(after)
    }

    /// Puts the versions a lifted kill switch serves again back in the status they had
    /// before it retired them. A production version comes back deprecated when another
    /// version was promoted meanwhile (a model has one production version).
    async fn restore_statuses(
        &self,
        tx: &mut crate::store::WriteTx,
        actor: &Actor,
        retirement: &Retirement,
        enabled: &[crate::domain::DisabledVersion],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), ServiceError> {
        let model_id = retirement.model_id;
        for d in enabled {
            let Some(prior) = d.prior_status.as_deref() else {
                continue;
            };
            let mut prior = LifecycleStatus::parse(prior).map_err(ServiceError::internal)?;
            let Ok(version) = Version::parse(&d.version) else {
                continue;
            };
            let Some((version_id, current)) =
                registry_repo::find_version(tx.conn(), model_id, &retirement.model, version)
                    .await?
            else {
                continue;
            };
            if prior == LifecycleStatus::Production
                && !registry_repo::versions_in_status(
                    tx.conn(),
                    model_id,
                    &retirement.model,
                    LifecycleStatus::Production,
                )
                .await?
                .is_empty()
            {
                prior = LifecycleStatus::Deprecated;
            }
            self.registry()
                .move_for_retirement(tx, actor, (version_id, &current), prior, retirement.id, now)
                .await?;
        }
        Ok(())
    }

    /// Puts back the pending retirements emergency `id` cancelled when it began (those
    /// still cancelled for that reason), in the state each was in; returns their ids.
    async fn restore_superseded(
        &self,
        tx: &mut crate::store::WriteTx,
        actor: &Actor,
        id: RetirementId,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<RetirementId>, ServiceError> {
        let superseded = steps::steps(tx.conn(), id)
            .await?
            .into_iter()
            .find(|s| s.step == DecommissionStep::KillSwitch)
            .and_then(|s| s.data)
            .and_then(|d| serde_json::from_str::<KillSwitchRecord>(&d).ok())
            .and_then(|k| k.emergency)
            .map(|e| e.superseded)
            .unwrap_or_default();
        let mut restored = Vec::new();
        for (other, state) in superseded {
            let (Some(before), Ok(state)) = (
                retirement_repo::find(tx.conn(), other).await?,
                RetirementState::parse(&state),
            ) else {
                continue;
            };
            let still_superseded = before.state == RetirementState::Cancelled
                && before
                    .decision_note
                    .as_deref()
                    .is_some_and(|n| n.starts_with("superseded by an emergency"));
            if !still_superseded {
                continue;
            }
            let after = before.restored_to(
                state,
                now,
                format!("restored: emergency retirement {id}, which had superseded it, was lifted"),
            )?;
            retirement_repo::update(tx.conn(), &after).await?;
            let entry = AuditEntry::new(
                actor.audit_identity(),
                Action::RetirementStateChanged,
                SubjectType::Retirement,
                other.to_string(),
            )
            .before(&before)
            .after(&after);
            self.append_audit(tx, now, entry).await?;
            restored.push(other);
        }
        Ok(restored)
    }
}
