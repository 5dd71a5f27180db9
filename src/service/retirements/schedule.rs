//! Scheduling a retirement: parse what governance asks, find the versions and every
//! transitive dependent, then record it, its dependents and their notices with the audit
//! record in one transaction; effects (delivery, subscribers) after the commit.

use super::{MAX_TEXT, RetirementInput, outbox, require_governance};
use crate::audit::{Action, AuditEntry, SubjectType};
use crate::auth::Actor;
use crate::domain::{
    Dependent, FoundBy, ModelName, ParseError, Retirement, RetirementState, Text, Version,
    VersionRange,
};
use crate::domain::{ModelId, RetirementId};
use crate::service::ServiceError;
use crate::store::notices as outbox_repo;
use crate::store::registry as registry_repo;
use crate::store::retirements as repo;
use chrono::{DateTime, Utc};

impl crate::service::Retirements<'_> {
    /// What scheduling `input` would do, without doing it: the versions it would retire,
    /// every dependent that would be told, and the earliest effective date the model's
    /// tier allows (`too_early` says why the asked date would be refused). The same
    /// parsing, authorisation and walk as [`Self::schedule_retirement`].
    pub async fn preview_retirement(
        &self,
        actor: &Actor,
        input: RetirementInput,
    ) -> Result<RetirementPreview, ServiceError> {
        let plan = self.plan(actor, &input, "preview retirements").await?;
        let too_early = self
            .notice_policy()
            .check_effective(plan.tier, self.now(), plan.asked.effective_at)
            .err()
            .map(|e| e.to_string());
        Ok(RetirementPreview {
            model: plan.asked.model.clone(),
            tier: plan.tier,
            versions: plan.versions,
            earliest_effective_at: self
                .notice_policy()
                .earliest_effective(plan.tier, self.now()),
            too_early,
            dependents: plan
                .found
                .into_values()
                .map(|f| PreviewDependent {
                    consumer: f.consumer,
                    path: f.path,
                    last_traffic_at: f.last_traffic_at,
                })
                .collect(),
        })
    }

    /// Parses, authorises and checks `input`, then finds the versions it names and
    /// their dependents on a graph caught up with every instance's changes.
    async fn plan(
        &self,
        actor: &Actor,
        input: &RetirementInput,
        what: &str,
    ) -> Result<Plan, ServiceError> {
        let asked = ScheduleRequest::parse(input, self.now())?;
        let acting = self.acting_on(actor, &asked.model).await?;
        require_governance(&acting, what)?;
        let model = &asked.model;
        let (model_id, registered) = registry_repo::find_model(self.store().reader(), model)
            .await?
            .ok_or_else(|| crate::service::inventory::no_model(model))?;
        let (_, versions) = self
            .decommission()
            .matching_versions(model, &asked.selection)
            .await?;
        self.check_replacement(&asked, &versions).await?;
        // Catch up with changes other instances made, so the walk sees them.
        self.inventory().refresh_inventory().await?;
        let found = self.find_dependents(model, &versions);
        Ok(Plan {
            model_id,
            tier: registered.tier,
            versions,
            found,
            asked,
            acting,
        })
    }

    /// Schedules the retirement of a model's versions and notifies every dependent.
    pub async fn schedule_retirement(
        &self,
        actor: &Actor,
        input: RetirementInput,
    ) -> Result<(Retirement, Vec<Dependent>), ServiceError> {
        self.schedule_with(actor, input, None).await
    }

    /// [`Self::schedule_retirement`], settling a retention proposal in the same
    /// transaction when `proposal` says which.
    pub(super) async fn schedule_with(
        &self,
        actor: &Actor,
        input: RetirementInput,
        proposal: Option<super::retention::ProposalLink>,
    ) -> Result<(Retirement, Vec<Dependent>), ServiceError> {
        let plan = self.plan(actor, &input, "schedule retirements").await?;
        self.notice_policy()
            .check_effective(plan.tier, self.now(), plan.asked.effective_at)
            .map_err(|e| ParseError::new("effectiveAt", e.to_string()))?;
        let Plan {
            model_id,
            tier,
            versions,
            found,
            asked,
            acting,
        } = plan;
        let actor = &acting;
        let model = &asked.model;
        let result = in_write_tx!(self, |tx| {
            let now = self.now();
            refuse_retired_or_pending(tx, model, model_id, &versions).await?;
            let mut retirement = asked.retirement(model_id, versions.clone(), &actor.name, now);
            retirement.id = repo::insert(tx.conn(), &retirement).await?;
            let next_reminder =
                self.notice_policy()
                    .next_reminder(tier, now, retirement.effective_at);
            let dependents: Vec<Dependent> = found
                .values()
                .map(|f| {
                    let d = f.dependent(
                        retirement.id,
                        FoundBy::Scheduling,
                        now,
                        retirement.effective_at,
                        next_reminder,
                    );
                    if retirement.levers.tells(f.last_seen_at, now) {
                        d
                    } else {
                        d.left_to_owner()
                    }
                })
                .collect();
            repo::insert_dependents(tx.conn(), &dependents).await?;
            let escalate_to = outbox::escalation_contacts(self, tx.conn(), &retirement).await?;
            let notices = self.notices_for(
                &retirement,
                notifiers::NoticeKind::Scheduled,
                dependents
                    .iter()
                    .filter(|d| !d.informed_by_owner)
                    .map(|d| (d, &found[&d.consumer_id].consumer)),
                &escalate_to,
                now,
            );
            outbox_repo::insert(tx.conn(), &notices).await?;
            let entry = AuditEntry::new(
                actor.audit_identity(),
                Action::RetirementScheduled,
                SubjectType::Retirement,
                retirement.id.to_string(),
            )
            .after(&scheduled_record(&retirement, &dependents, notices.len()));
            self.append_audit(tx, now, entry).await?;
            if let Some(link) = &proposal {
                self.settle_proposal(tx, link, (actor, &retirement), now)
                    .await?;
            }
            Ok((retirement, dependents))
        })?;
        tracing::info!(
            retirement = result.0.id.0,
            model = %model,
            versions = %asked.selection,
            dependents = result.1.len(),
            actor = %actor.name,
            "retirement scheduled"
        );
        self.wake_delivery();
        self.publish_retirement(result.0.id, "scheduled");
        Ok(result)
    }

    /// A replacement must exist, and may not be one of the versions it replaces.
    async fn check_replacement(
        &self,
        asked: &ScheduleRequest,
        retired: &[Version],
    ) -> Result<(), ServiceError> {
        let Some((rm, rv)) = &asked.replacement else {
            return Ok(());
        };
        let reader = self.store().reader();
        let (rid, _) = registry_repo::find_model(reader, rm)
            .await?
            .ok_or_else(|| crate::service::inventory::no_model(rm))?;
        if let Some(rv) = *rv {
            if rm == &asked.model && retired.contains(&rv) {
                return Err(ParseError::new(
                    "replacementVersion",
                    format!("{rm}@{rv} is among the versions being retired"),
                )
                .into());
            }
            registry_repo::find_version(reader, rid, rm, rv)
                .await?
                .ok_or_else(|| ServiceError::NotFound(format!("no version {rm}@{rv}")))?;
        }
        Ok(())
    }
}

/// What a retirement would retire and whom it would tell.
#[derive(Debug, Clone)]
pub struct RetirementPreview {
    pub model: ModelName,
    pub tier: crate::domain::Tier,
    pub versions: Vec<Version>,
    pub earliest_effective_at: DateTime<Utc>,
    /// Why the asked effective date would be refused, if it would.
    pub too_early: Option<String>,
    pub dependents: Vec<PreviewDependent>,
}

/// A dependent a retirement would tell, and how it depends on the versions.
#[derive(Debug, Clone)]
pub struct PreviewDependent {
    pub consumer: crate::domain::Consumer,
    /// From the dependent to the retired version.
    pub path: Vec<String>,
    pub last_traffic_at: Option<DateTime<Utc>>,
}

/// A schedule request checked and walked, before anything is written.
struct Plan {
    model_id: ModelId,
    tier: crate::domain::Tier,
    versions: Vec<Version>,
    found: std::collections::BTreeMap<crate::domain::ConsumerId, super::Found>,
    asked: ScheduleRequest,
    /// The actor as it acts on the model (its grants applied).
    acting: Actor,
}

/// A retirement as asked for, parsed.
struct ScheduleRequest {
    model: ModelName,
    selection: VersionRange,
    reason: Text,
    effective_at: DateTime<Utc>,
    replacement: Option<(ModelName, Option<Version>)>,
    levers: crate::domain::Levers,
}

impl ScheduleRequest {
    fn parse(input: &RetirementInput, now: DateTime<Utc>) -> Result<Self, ServiceError> {
        let model = ModelName::parse(&input.model)?;
        let selection = VersionRange::parse(&input.versions)?;
        let reason = Text::parse("reason", &input.reason, MAX_TEXT)?;
        if reason.as_str().is_empty() {
            return Err(ParseError::new("reason", "must say why the model is retired").into());
        }
        let replacement_model = input
            .replacement_model
            .as_deref()
            .map(ModelName::parse)
            .transpose()?;
        let replacement_version = input
            .replacement_version
            .as_deref()
            .map(Version::parse)
            .transpose()?;
        if replacement_version.is_some() && replacement_model.is_none() {
            return Err(ParseError::new(
                "replacementVersion",
                "needs replacementModel: a version of which model?",
            )
            .into());
        }
        Ok(Self {
            model,
            selection,
            reason,
            effective_at: input.effective_at,
            replacement: replacement_model.map(|m| (m, replacement_version)),
            levers: super::levers::levers_of(&input.levers, input.effective_at, now)?,
        })
    }

    /// The scheduled retirement of `versions`, not yet stored.
    fn retirement(
        &self,
        model_id: ModelId,
        versions: Vec<Version>,
        by: &str,
        now: DateTime<Utc>,
    ) -> Retirement {
        Retirement {
            id: RetirementId(0),
            model_id,
            model: self.model.clone(),
            selection: self.selection.clone(),
            affected_versions: versions,
            reason: self.reason.as_str().to_owned(),
            effective_at: self.effective_at,
            replacement_model: self.replacement.as_ref().map(|(m, _)| m.clone()),
            replacement_version: self.replacement.as_ref().and_then(|(_, v)| *v),
            state: RetirementState::Scheduled,
            sequence: 0,
            decision_note: None,
            created_at: now,
            created_by: by.to_owned(),
            updated_at: now,
            levers: self.levers.clone(),
        }
    }
}

/// A version is retired once: not if the kill switch disabled it, nor while another
/// retirement of it is pending.
async fn refuse_retired_or_pending(
    tx: &mut crate::store::WriteTx,
    model: &ModelName,
    model_id: ModelId,
    versions: &[Version],
) -> Result<(), ServiceError> {
    for &v in versions {
        if let Some(d) =
            crate::store::kill_switch::find(tx.conn(), model.as_str(), &v.to_string()).await?
        {
            return Err(ServiceError::Conflict(format!(
                "{model}@{v} is disabled already (retirement {}); it cannot be retired twice",
                d.retirement_id
                    .map_or_else(|| "-".to_owned(), |r| r.to_string())
            )));
        }
    }
    for pending in repo::pending_of_model(tx.conn(), model_id).await? {
        if let Some(v) = pending
            .affected_versions
            .iter()
            .find(|v| versions.contains(v))
        {
            return Err(ServiceError::Conflict(format!(
                "{model}@{v} is already being retired (retirement {}, {})",
                pending.id, pending.state
            )));
        }
    }
    Ok(())
}

/// The audit record of a scheduled retirement: it, its dependents and their notices.
fn scheduled_record(
    retirement: &Retirement,
    dependents: &[Dependent],
    notices: usize,
) -> serde_json::Value {
    serde_json::json!({
        "retirement": retirement,
        "dependents": dependents.iter().map(|d| serde_json::json!({
            "consumer": d.consumer,
            "path": d.path,
            "noticeEndsAt": d.notice_ends_at,
        })).collect::<Vec<_>>(),
        "notices": notices,
    })
}
