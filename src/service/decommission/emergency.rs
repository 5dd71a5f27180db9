//! Emergency retirement (AISVS 3.6.4, 3.3.4): a `security` actor, or the circuit breaker
//! on a signed critical security alert, retires versions at once with a written risk
//! assessment. In one transaction: the retirement (executing, effective now), its
//! dependents told it is an emergency, the kill switch, and the enforcement points told.
//! The later steps run as for any execution, except that erasure waits for a second
//! `security` or `governance` actor's approval (`erasure-approval`), so forensic work can
//! finish first. Until erasure starts, `security` may lift the kill switch with a
//! justification (a false alarm must not cost a model); once it has, nothing brings the
//! versions back.

use super::{KillSwitchRecord, ServiceError, to_json};
use crate::audit::{Action, AuditEntry, SubjectType};
use crate::auth::Actor;
use crate::domain::DecommissionStep;
use crate::domain::RetirementId;
use crate::domain::{Dependent, Retirement};
use crate::domain::{
    FoundBy, ModelName, ParseError, RetirementState, Role, Text, Version, VersionRange,
};
use crate::service::authorise::require;
use crate::service::retirements::MAX_TEXT;
use crate::store::kill_switch as steps;
use crate::store::notices as notice_repo;
use crate::store::registry as registry_repo;
use crate::store::retirements as retirement_repo;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// The shortest risk assessment accepted: it must say something.
const MIN_ASSESSMENT_CHARS: usize = 20;

/// Why an emergency retirement was triggered, kept with its kill switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EmergencyRecord {
    pub risk_assessment: String,
    /// `manual`, or `circuit-breaker:<source>`.
    pub trigger: String,
    /// The pending retirements it cancelled, with the state each was in: a lifted kill
    /// switch puts them back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub superseded: Vec<(RetirementId, String)>,
}

/// An emergency as people read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmergencyView {
    pub risk_assessment: String,
    /// `manual`, or `circuit-breaker:<source>`.
    pub trigger: String,
}

/// Who retires models in an emergency and lifts kill switches.
pub(super) const SECURITY_ROLES: &[Role] = &[Role::Security];
/// Who approves an emergency's erasure (never its requester).
const APPROVERS: &[Role] = &[Role::Security, Role::Governance];

/// Whether `actor` may retire models in an emergency or lift a kill switch.
pub fn may_pull_kill_switches(actor: &Actor) -> bool {
    actor.has_role(SECURITY_ROLES)
}

/// Whether `actor` may approve an emergency's erasure (if it did not request it).
pub fn may_approve_erasures(actor: &Actor) -> bool {
    actor.has_role(APPROVERS)
}

/// The second approval an emergency erasure needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Approval {
    pub by: String,
    pub role: String,
    pub at: chrono::DateTime<chrono::Utc>,
    pub note: String,
}

impl crate::service::Decommission<'_> {
    /// Retires `versions` of `model` now, for the reason `risk_assessment`: the kill
    /// switch is pulled in the same transaction and dependents are told it is an
    /// emergency. `security` only (the circuit breaker acts as `security`).
    pub async fn emergency_retirement(
        &self,
        actor: &Actor,
        model: &str,
        versions: &str,
        risk_assessment: &str,
        trigger: &str,
    ) -> Result<(Retirement, Vec<crate::domain::Step>), ServiceError> {
        let started = Instant::now();
        let (model, selection, assessment) = parse_emergency(model, versions, risk_assessment)?;
        let acting = self.acting_on(actor, &model).await?;
        let actor = &acting;
        require(actor, SECURITY_ROLES, "retire a model in an emergency")?;
        let (model_id, affected) = self.matching_versions(&model, &selection).await?;
        self.inventory().refresh_inventory().await?;
        let found = self.retirements().find_dependents(&model, &affected);
        let emergency = EmergencyRecord {
            risk_assessment: assessment.as_str().to_owned(),
            trigger: trigger.to_owned(),
            superseded: Vec::new(),
        };
        let retirement = in_write_tx!(self, |tx| {
            let now = self.now();
            refuse_disabled(tx, &model, &affected).await?;
            let superseded = self
                .supersede_pending(tx, actor, model_id, &affected, now)
                .await?;
            let mut retirement = Retirement::emergency(
                (model_id, model.clone()),
                (selection.clone(), affected.clone()),
                &assessment,
                &actor.name,
                now,
            );
            retirement.id = retirement_repo::insert(tx.conn(), &retirement).await?;
            let (dependents, notices) = self.tell_emergency(tx, &retirement, &found, now).await?;
            let record = EmergencyRecord {
                superseded: superseded.clone(),
                ..emergency.clone()
            };
            let pulled = self
                .pull_kill_switch(tx, &retirement, actor, now, Some(record))
                .await?;
            let entry = AuditEntry::new(
                actor.audit_identity(),
                Action::EmergencyRetirement,
                SubjectType::Retirement,
                retirement.id.to_string(),
            )
            .after(&serde_json::json!({
                "retirement": &retirement,
                "emergency": emergency,
                "killSwitch": pulled,
                "supersededRetirements": superseded.iter().map(|(id, _)| id).collect::<Vec<_>>(),
                "dependents": dependents.iter().map(|d| &d.consumer).collect::<Vec<_>>(),
                "notices": notices,
            }));
            self.append_audit(tx, now, entry).await?;
            Ok(retirement)
        })?;
        let response_ms = started.elapsed().as_secs_f64() * 1000.0;
        self.record_response_time(retirement.id, response_ms)
            .await?;
        tracing::error!(
            retirement = retirement.id.0,
            model = %model,
            versions = %selection,
            actor = %actor.name,
            trigger,
            response_ms,
            "EMERGENCY retirement: versions disabled"
        );
        self.after_kill_switch(retirement.id).await
    }

    /// Inside `tx`: the emergency's dependents, each told at once (their notice ends now)
    /// and its owners escalated to; returns the dependents and how many notices.
    async fn tell_emergency(
        &self,
        tx: &mut crate::store::WriteTx,
        retirement: &Retirement,
        found: &std::collections::BTreeMap<
            crate::domain::ConsumerId,
            crate::service::retirements::Found,
        >,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(Vec<Dependent>, usize), ServiceError> {
        let dependents: Vec<Dependent> = found
            .values()
            .map(|f| f.dependent(retirement.id, FoundBy::Scheduling, now, now, None))
            .collect();
        retirement_repo::insert_dependents(tx.conn(), &dependents).await?;
        let escalate_to =
            crate::service::retirements::escalation_contacts(self, tx.conn(), retirement).await?;
        let notices = self.retirements().notices_for(
            retirement,
            notifiers::NoticeKind::Emergency,
            dependents
                .iter()
                .map(|d| (d, &found[&d.consumer_id].consumer)),
            &escalate_to,
            now,
        );
        notice_repo::insert(tx.conn(), &notices).await?;
        Ok((dependents, notices.len()))
    }

    /// The versions of `model` that `selection` names; none is an error.
    pub(crate) async fn matching_versions(
        &self,
        model: &ModelName,
        selection: &VersionRange,
    ) -> Result<(registry_repo::ModelId, Vec<Version>), ServiceError> {
        let reader = self.store().reader();
        let (model_id, _) = registry_repo::find_model(reader, model)
            .await?
            .ok_or_else(|| crate::service::inventory::no_model(model))?;
        let affected: Vec<Version> = registry_repo::list_versions(
            reader,
            model_id,
            model,
            None,
            crate::service::retirements::MAX_VERSIONS,
        )
        .await?
        .into_iter()
        .map(|v| v.version)
        .filter(|&v| selection.matches(v))
        .collect();
        if affected.is_empty() {
            return Err(ParseError::new(
                "versions",
                format!("no version of {model} matches {selection}"),
            )
            .into());
        }
        Ok((model_id, affected))
    }

    /// Cancels the pending retirements that name any of `affected`: they would later
    /// execute over what the emergency erases (governance schedules the rest again).
    /// Returns each one's id and the state it had.
    async fn supersede_pending(
        &self,
        tx: &mut crate::store::WriteTx,
        actor: &Actor,
        model_id: registry_repo::ModelId,
        affected: &[Version],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<(RetirementId, String)>, ServiceError> {
        let mut superseded = Vec::new();
        for pending in retirement_repo::pending_of_model(tx.conn(), model_id).await? {
            if !pending
                .affected_versions
                .iter()
                .any(|v| affected.contains(v))
            {
                continue;
            }
            let cancelled = pending.moved_to(
                RetirementState::Cancelled,
                now,
                Some(
                    "superseded by an emergency retirement of some of its versions; \
                     schedule the others again"
                        .into(),
                ),
            )?;
            retirement_repo::update(tx.conn(), &cancelled).await?;
            let entry = AuditEntry::new(
                actor.audit_identity(),
                Action::RetirementStateChanged,
                SubjectType::Retirement,
                pending.id.to_string(),
            )
            .before(&pending)
            .after(&cancelled);
            self.append_audit(tx, now, entry).await?;
            superseded.push((pending.id, pending.state.to_string()));
        }
        Ok(superseded)
    }

    /// After a kill switch's commit: notices go out, subscribers hear of it, and the
    /// execution runs on as far as it can.
    async fn after_kill_switch(
        &self,
        id: RetirementId,
    ) -> Result<(Retirement, Vec<crate::domain::Step>), ServiceError> {
        self.retirements().wake_delivery();
        if let Err(e) = self.publish_kill_switch().await {
            tracing::warn!(error = %e, "could not publish the kill switch to subscribers");
        }
        self.retirements().publish_retirement(id, "executing");
        if let Err(e) = self.advance_decommission(id).await {
            tracing::error!(retirement = id.0, error = %e, "decommission stopped; it resumes on the next run");
        }
        let steps = self.decommission_steps(id).await?;
        Ok((self.retirements().retirement(id).await?, steps))
    }

    /// Why retirement `id` was an emergency (its risk assessment and trigger), if it is
    /// one: what a page shows beside the approval it waits for.
    pub async fn emergency(&self, id: RetirementId) -> Result<Option<EmergencyView>, ServiceError> {
        Ok(self.emergency_of(id).await?.map(|e| EmergencyView {
            risk_assessment: e.risk_assessment,
            trigger: e.trigger,
        }))
    }

    /// The emergency record of retirement `id`, if it is one.
    pub(crate) async fn emergency_of(
        &self,
        id: RetirementId,
    ) -> Result<Option<EmergencyRecord>, ServiceError> {
        Ok(self
            .step(id, DecommissionStep::KillSwitch)
            .await?
            .and_then(|s| s.data)
            .and_then(|d| serde_json::from_str::<KillSwitchRecord>(&d).ok())
            .and_then(|k| k.emergency))
    }

    /// Step `erasure-approval`: an emergency waits for a second actor's approval; any
    /// other retirement gave its notice and needs none.
    pub(super) async fn step_erasure_approval(
        &self,
        r: &Retirement,
    ) -> Result<Option<String>, ServiceError> {
        let now = self.now();
        let db = self.store().reader();
        if self.emergency_of(r.id).await?.is_none() {
            steps::finish_step(
                db,
                r.id,
                DecommissionStep::ErasureApproval,
                now,
                now,
                "not an emergency: the retirement gave its notice",
                None,
            )
            .await?;
            return Ok(None);
        }
        let approved = self
            .step(r.id, DecommissionStep::ErasureApproval)
            .await?
            .and_then(|s| s.data)
            .and_then(|d| serde_json::from_str::<Approval>(&d).ok());
        match approved {
            Some(a) => {
                steps::finish_step(
                    db,
                    r.id,
                    DecommissionStep::ErasureApproval,
                    now,
                    now,
                    &format!("approved by {} ({}): {}", a.by, a.role, a.note),
                    None,
                )
                .await?;
                Ok(None)
            }
            None => {
                let why = "waiting for a second security or governance actor to approve the \
                           erasure (approveEmergencyErasure); until then security may lift the \
                           kill switch (liftKillSwitch)"
                    .to_owned();
                steps::note_step_failure(db, r.id, DecommissionStep::ErasureApproval, now, &why)
                    .await?;
                Ok(Some(why))
            }
        }
    }

    /// A second `security` or `governance` actor approves erasing an emergency
    /// retirement's versions; the execution then goes on.
    pub async fn approve_emergency_erasure(
        &self,
        actor: &Actor,
        id: RetirementId,
        note: &str,
    ) -> Result<(Retirement, Vec<crate::domain::Step>), ServiceError> {
        let acting = self.acting_on_retirement(actor, id).await?;
        let actor = &acting;
        require(actor, APPROVERS, "approve an emergency erasure")?;
        let retirement = self.retirements().retirement(id).await?;
        let Some(_) = self.emergency_of(id).await? else {
            return Err(ServiceError::Conflict(format!(
                "retirement {id} is not an emergency; its erasure needs no approval"
            )));
        };
        if retirement.state != RetirementState::Executing {
            return Err(ServiceError::Conflict(format!(
                "retirement {id} is {}; only an executing emergency is approved",
                retirement.state
            )));
        }
        let kill = self
            .step(id, DecommissionStep::KillSwitch)
            .await?
            .and_then(|s| s.data)
            .and_then(|d| serde_json::from_str::<KillSwitchRecord>(&d).ok());
        if kill.as_ref().is_some_and(|k| k.by == actor.name) {
            return Err(ServiceError::Forbidden(
                "the erasure needs a second person: whoever pulled the kill switch may not approve it"
                    .into(),
            ));
        }
        // Checked after who may approve: a short note from the wrong person is told
        // the rule that matters.
        let note = Text::parse_required("note", note, MAX_TEXT)?;
        let approval = Approval {
            by: actor.name.clone(),
            role: actor.role.to_string(),
            at: self.now(),
            note: note.as_str().to_owned(),
        };
        in_write_tx!(self, |tx| {
            steps::start_step(
                tx.conn(),
                id,
                DecommissionStep::ErasureApproval,
                approval.at,
                None,
            )
            .await?;
            steps::set_data_once(
                tx.conn(),
                id,
                DecommissionStep::ErasureApproval,
                &to_json(&approval),
            )
            .await?;
            let entry = AuditEntry::new(
                actor.audit_identity(),
                Action::EmergencyErasureApproved,
                SubjectType::Retirement,
                id.to_string(),
            )
            .after(&approval);
            self.append_audit(tx, approval.at, entry).await
        })?;
        if let Err(e) = self.advance_decommission(id).await {
            tracing::error!(retirement = id.0, error = %e, "decommission stopped; it resumes on the next run");
        }
        let steps = self.decommission_steps(id).await?;
        Ok((self.retirements().retirement(id).await?, steps))
    }
}

/// The emergency's model, versions and risk assessment, parsed.
fn parse_emergency(
    model: &str,
    versions: &str,
    risk_assessment: &str,
) -> Result<(ModelName, VersionRange, Text), ServiceError> {
    let model = ModelName::parse(model)?;
    let selection = VersionRange::parse(versions)?;
    let assessment = Text::parse_required("riskAssessment", risk_assessment, MAX_TEXT)?;
    if assessment.as_str().chars().count() < MIN_ASSESSMENT_CHARS {
        return Err(ParseError::new(
            "riskAssessment",
            format!("must say what the risk is, in at least {MIN_ASSESSMENT_CHARS} characters"),
        )
        .into());
    }
    Ok((model, selection, assessment))
}

/// A version already disabled cannot be retired again.
async fn refuse_disabled(
    tx: &mut crate::store::WriteTx,
    model: &ModelName,
    affected: &[Version],
) -> Result<(), ServiceError> {
    for &v in affected {
        if let Some(d) = steps::find(tx.conn(), model.as_str(), &v.to_string()).await? {
            return Err(ServiceError::Conflict(format!(
                "{model}@{v} is disabled already (since {})",
                d.disabled_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )));
        }
    }
    Ok(())
}
