//! Retention that acts (AISVS 3.6.1, 3.3.5): on its schedule, one replica per tick
//! finds the deprecated versions their model's policy no longer keeps (`domain::retention`)
//! and proposes each one's retirement to governance, or, when the policy sets a quiet
//! period and no consumer of the version has been seen for it, schedules the retirement
//! itself. Either way the retirement gives the tier's notice to every dependent: nothing
//! with a consumer is retired unannounced. Governance accepts a proposal (scheduling it)
//! or dismisses it (the version is kept and not proposed again); a proposal no longer due
//! lapses.

use super::{RetirementInput, require_governance};
use crate::audit::{Action, AuditEntry, SubjectType};
use crate::auth::{Actor, ActorKind};
use crate::domain::{
    DueVersion, KeptVersion, LifecycleStatus, ModelId, ModelName, ModelPolicy, ProposalState,
    RetentionProposal, Retirement, Role, Text, Tier, Version, VersionId, due_versions,
    effective_date, quiet_enough,
};
use crate::service::ServiceError;
use crate::store::WriteTx;
use crate::store::retention::{self as repo, Decision, NewProposal};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};

/// The most proposals one list returns.
pub const MAX_PROPOSALS: u64 = 500;
/// The longest note on a decision.
const MAX_NOTE: usize = 2_000;

/// What one review of retention did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub proposed: usize,
    pub scheduled: usize,
    pub lapsed: usize,
}

/// Which proposal a scheduling settles, in its transaction.
pub(super) enum ProposalLink {
    /// Open proposal `id` is settled as `state`: accepted by governance, or scheduled by
    /// the service once the quiet period passed.
    Open {
        id: i64,
        state: ProposalState,
        note: Option<String>,
    },
    /// The service schedules a due version after the quiet period, without a proposal.
    Direct { model: ModelId, due: DueVersion },
}

/// A version retention found due, with what deciding on it needs.
struct Due {
    model_id: ModelId,
    model: ModelName,
    tier: Tier,
    policy: ModelPolicy,
    production: Option<Version>,
    due: DueVersion,
}

impl crate::service::Retirements<'_> {
    /// The scheduled review at `tick`, if this instance claims it first.
    pub async fn run_scheduled_retention(
        &self,
        tick: DateTime<Utc>,
        instance: &str,
    ) -> Result<Option<RetentionReport>, ServiceError> {
        if !self.claim_tick("retention", tick, instance).await? {
            return Ok(None);
        }
        self.review_retention().await.map(Some)
    }

    /// Proposes or schedules every version now due, and lapses open proposals no longer
    /// due. A version already proposed (in any state) or being retired is left alone.
    pub async fn review_retention(&self) -> Result<RetentionReport, ServiceError> {
        let now = self.now();
        let due = self.due_now(now).await?;
        let mut report = RetentionReport::default();
        let db = self.store().reader();
        let due_ids: HashSet<VersionId> = due.iter().map(|d| d.due.id).collect();
        for open in repo::open(db).await? {
            if !due_ids.contains(&open.1)
                && self
                    .lapse(open.0, &open.2, "no longer due under the model's policy")
                    .await?
            {
                report.lapsed += 1;
            }
        }
        let ids: Vec<VersionId> = due_ids.into_iter().collect();
        let proposed = repo::proposed_among(db, &ids).await?;
        // New ones, and open ones that may have gone quiet since.
        let undecided: Vec<(Due, Option<i64>)> = due
            .into_iter()
            .filter_map(|d| match proposed.get(&d.due.id) {
                None => Some((d, None)),
                Some(&(id, state)) if state.is_open() => Some((d, Some(id))),
                Some(_) => None,
            })
            .collect();
        if undecided.is_empty() {
            return Ok(report);
        }
        // The quiet period is judged on a graph caught up with every replica's changes.
        self.inventory().refresh_inventory().await?;
        for (d, open) in undecided {
            if self.being_retired(&d).await? {
                // Scheduled by hand meanwhile: nothing is left to decide.
                let subject = format!("{}@{}", d.model, d.due.version);
                if let Some(id) = open
                    && self
                        .lapse(id, &subject, "a retirement scheduled meanwhile covers it")
                        .await?
                {
                    report.lapsed += 1;
                }
                continue;
            }
            let seen = self
                .find_dependents(&d.model, &[d.due.version])
                .into_values()
                .filter_map(|f| f.last_seen_at);
            if quiet_enough(&d.policy, seen, now) {
                self.schedule_quiet(d, open).await?;
                report.scheduled += 1;
            } else if open.is_none() && self.propose(&d, now).await? {
                report.proposed += 1;
            }
        }
        Ok(report)
    }

    /// Every version due at `now`, over every model with a deprecated version.
    async fn due_now(&self, now: DateTime<Utc>) -> Result<Vec<Due>, ServiceError> {
        let models = repo::models_with_deprecated(self.store().reader()).await?;
        self.due_in(&models, now).await
    }

    /// The versions of `models` due at `now`.
    async fn due_in(
        &self,
        models: &[ModelId],
        now: DateTime<Utc>,
    ) -> Result<Vec<Due>, ServiceError> {
        let db = self.store().reader();
        if models.is_empty() {
            return Ok(Vec::new());
        }
        let kept = repo::kept_versions(db, models).await?;
        let tiers: HashMap<ModelId, Tier> = crate::store::policies::tiers_of(db, models)
            .await?
            .into_iter()
            .collect();
        let own: HashMap<_, _> = crate::store::policies::overrides_of(db, models)
            .await?
            .into_iter()
            .collect();
        let mut out = Vec::new();
        for (model_id, (model, versions)) in kept {
            let Some(&tier) = tiers.get(&model_id) else {
                continue;
            };
            let policy = own
                .get(&model_id)
                .cloned()
                .unwrap_or_default()
                .over(&self.inner.policy.of(tier));
            let production = production_of(&versions);
            out.extend(
                due_versions(&policy, &versions, now)
                    .into_iter()
                    .map(|due| Due {
                        model_id,
                        model: model.clone(),
                        tier,
                        policy: policy.clone(),
                        production,
                        due,
                    }),
            );
        }
        Ok(out)
    }

    /// Whether a pending retirement covers the version already.
    async fn being_retired(&self, d: &Due) -> Result<bool, ServiceError> {
        let pending =
            crate::store::retirements::pending_of_model(self.store().reader(), d.model_id).await?;
        Ok(pending
            .iter()
            .any(|r| r.affected_versions.contains(&d.due.version)))
    }

    /// Records the proposal, unless another review did first.
    async fn propose(&self, d: &Due, now: DateTime<Utc>) -> Result<bool, ServiceError> {
        in_write_tx!(self, |tx| {
            let row = NewProposal {
                model: d.model_id,
                version: d.due.id,
                because: d.due.because,
                why: &d.due.why,
                state: ProposalState::Proposed,
                at: now,
                retirement: None,
            };
            let Some(id) = repo::insert_if_new(tx.conn(), &row).await? else {
                return Ok(false);
            };
            let entry = AuditEntry::new(
                ("retention", "system"),
                Action::RetentionProposed,
                SubjectType::ModelVersion,
                format!("{}@{}", d.model, d.due.version),
            )
            .after(&serde_json::json!({
                "proposal": id,
                "reason": d.due.because.as_str(),
                "why": d.due.why,
            }));
            self.append_audit(tx, now, entry).await?;
            Ok(true)
        })
    }

    /// Schedules a quiet due version's retirement as the service, with the tier's
    /// notice, the production version named as its replacement.
    async fn schedule_quiet(&self, d: Due, open: Option<i64>) -> Result<Retirement, ServiceError> {
        let quiet = format!(
            "no consumer seen for {} days",
            d.policy.quiet_days.unwrap_or_default()
        );
        let reason = format!(
            "Retention: {}@{} {}; {quiet}.",
            d.model, d.due.version, d.due.why
        );
        let input = self.retention_input(&d.model, d.tier, d.due.version, d.production, reason);
        let link = match open {
            Some(id) => ProposalLink::Open {
                id,
                state: ProposalState::Scheduled,
                note: Some(quiet),
            },
            None => ProposalLink::Direct {
                model: d.model_id,
                due: d.due,
            },
        };
        let (retirement, _) = self
            .schedule_with(&retention_actor(), input, Some(link))
            .await?;
        Ok(retirement)
    }

    /// What retention asks scheduling for: the one version, the tier's notice to the
    /// next midnight, the production version as the replacement.
    fn retention_input(
        &self,
        model: &ModelName,
        tier: Tier,
        version: Version,
        production: Option<Version>,
        reason: String,
    ) -> RetirementInput {
        let earliest = self.notice_policy().earliest_effective(tier, self.now());
        RetirementInput {
            model: model.to_string(),
            versions: version.to_string(),
            reason,
            effective_at: effective_date(earliest),
            replacement_model: production.map(|_| model.to_string()),
            replacement_version: production.map(|v| v.to_string()),
            levers: super::LeverInput::default(),
        }
    }

    /// Marks open proposal `id` lapsed; false when it was decided meanwhile.
    async fn lapse(&self, id: i64, subject: &str, why: &str) -> Result<bool, ServiceError> {
        let now = self.now();
        in_write_tx!(self, |tx| {
            let d = Decision {
                state: ProposalState::Lapsed,
                at: now,
                by: "retention",
                note: Some(why),
                retirement: None,
            };
            if !repo::decide(tx.conn(), id, &d).await? {
                return Ok(false);
            }
            let entry = decided_entry(("retention", "system"), id, subject, &d);
            self.append_audit(tx, now, entry).await?;
            Ok(true)
        })
    }

    /// Settles `link` with `retirement`, in the scheduling's transaction: an accepted
    /// proposal still open, or a new proposal recorded as scheduled.
    pub(super) async fn settle_proposal(
        &self,
        tx: &mut WriteTx,
        link: &ProposalLink,
        (actor, retirement): (&Actor, &Retirement),
        now: DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        let subject = format!(
            "{}@{}",
            retirement.model,
            retirement
                .affected_versions
                .first()
                .map(ToString::to_string)
                .unwrap_or_default()
        );
        let (id, d) = match link {
            ProposalLink::Open { id, state, note } => {
                let d = Decision {
                    state: *state,
                    at: now,
                    by: &actor.name,
                    note: note.as_deref(),
                    retirement: Some(retirement.id),
                };
                if !repo::decide(tx.conn(), *id, &d).await? {
                    return Err(ServiceError::Conflict(format!(
                        "retention proposal {id} was decided meanwhile; nothing was scheduled"
                    )));
                }
                (*id, d)
            }
            ProposalLink::Direct { model, due } => {
                let row = NewProposal {
                    model: *model,
                    version: due.id,
                    because: due.because,
                    why: &due.why,
                    state: ProposalState::Scheduled,
                    at: now,
                    retirement: Some(retirement.id),
                };
                let Some(id) = repo::insert_if_new(tx.conn(), &row).await? else {
                    return Err(ServiceError::Conflict(format!(
                        "{subject} was proposed meanwhile; nothing was scheduled"
                    )));
                };
                let d = Decision {
                    state: ProposalState::Scheduled,
                    at: now,
                    by: "retention",
                    note: None,
                    retirement: Some(retirement.id),
                };
                (id, d)
            }
        };
        let entry = decided_entry(actor.audit_identity(), id, &subject, &d);
        self.append_audit(tx, now, entry).await
    }

    /// Retention proposals, newest first: of one model or all, in one state or any.
    pub async fn retention_proposals(
        &self,
        model: Option<&str>,
        state: Option<ProposalState>,
    ) -> Result<Vec<RetentionProposal>, ServiceError> {
        let db = self.store().reader();
        let model_id = match model {
            Some(m) => {
                let name = ModelName::parse(m)?;
                match crate::store::registry::find_model(db, &name).await? {
                    Some((id, _)) => Some(id),
                    None => return Err(crate::service::inventory::no_model(&name)),
                }
            }
            None => None,
        };
        Ok(repo::list(db, model_id, state, MAX_PROPOSALS).await?)
    }

    /// Accepts the open proposal for `model@version` (governance): schedules its
    /// retirement with the tier's notice, the proposal settled in the same transaction.
    /// Refused when the version is no longer due (it lapses on the next review).
    pub async fn accept_retention_proposal(
        &self,
        actor: &Actor,
        model: &str,
        version: &str,
        note: Option<&str>,
    ) -> Result<(RetentionProposal, Retirement), ServiceError> {
        let note = note
            .map(|n| Text::parse("note", n, MAX_NOTE))
            .transpose()?
            .map(|t| t.as_str().to_owned())
            .filter(|n| !n.is_empty());
        let (acting, proposal) = self
            .open_proposal(actor, model, version, "accept retention proposals")
            .await?;
        // Still due? Asked of this model alone, not of every model with a deprecated version.
        let model_id = crate::store::registry::find_model(self.store().reader(), &proposal.model)
            .await?
            .map(|(id, _)| id)
            .into_iter()
            .collect::<Vec<_>>();
        let d = self
            .due_in(&model_id, self.now())
            .await?
            .into_iter()
            .find(|d| d.model == proposal.model && d.due.version == proposal.version)
            .ok_or_else(|| {
                ServiceError::Conflict(format!(
                    "{}@{} is no longer due under its model's policy (it may be where rollback returns, or the policy changed); the proposal lapses on the next review",
                    proposal.model, proposal.version
                ))
            })?;
        let reason = format!(
            "Retention proposal {}: {}@{} {}.",
            proposal.id, d.model, d.due.version, d.due.why
        );
        let input = self.retention_input(&d.model, d.tier, d.due.version, d.production, reason);
        let link = ProposalLink::Open {
            id: proposal.id,
            state: ProposalState::Accepted,
            note,
        };
        let (retirement, _) = self.schedule_with(&acting, input, Some(link)).await?;
        let settled = self.proposal_of(&proposal.model, proposal.version).await?;
        Ok((settled, retirement))
    }

    /// Dismisses the open proposal for `model@version` (governance), saying why the
    /// version is kept; it is not proposed again.
    pub async fn dismiss_retention_proposal(
        &self,
        actor: &Actor,
        model: &str,
        version: &str,
        note: &str,
    ) -> Result<RetentionProposal, ServiceError> {
        let note = Text::parse_required("note", note, MAX_NOTE)?;
        let (acting, proposal) = self
            .open_proposal(actor, model, version, "dismiss retention proposals")
            .await?;
        let now = self.now();
        in_write_tx!(self, |tx| {
            let d = Decision {
                state: ProposalState::Dismissed,
                at: now,
                by: &acting.name,
                note: Some(note.as_str()),
                retirement: None,
            };
            if !repo::decide(tx.conn(), proposal.id, &d).await? {
                return Err(ServiceError::Conflict(format!(
                    "retention proposal {} was decided meanwhile",
                    proposal.id
                )));
            }
            let subject = format!("{}@{}", proposal.model, proposal.version);
            let entry = decided_entry(acting.audit_identity(), proposal.id, &subject, &d);
            self.append_audit(tx, now, entry).await
        })?;
        self.proposal_of(&proposal.model, proposal.version).await
    }

    /// Parses, authorises (governance on the model, grants counted) and finds the open
    /// proposal for `model@version`.
    async fn open_proposal(
        &self,
        actor: &Actor,
        model: &str,
        version: &str,
        what: &str,
    ) -> Result<(Actor, RetentionProposal), ServiceError> {
        let name = ModelName::parse(model)?;
        let version = Version::parse(version)?;
        let acting = self.acting_on(actor, &name).await?;
        require_governance(&acting, what)?;
        let proposal = self.proposal_of(&name, version).await?;
        if !proposal.state.is_open() {
            return Err(ServiceError::Conflict(format!(
                "the retention proposal for {name}@{version} is {} already",
                proposal.state
            )));
        }
        Ok((acting, proposal))
    }

    /// The proposal for `model@version`, or why there is none.
    async fn proposal_of(
        &self,
        model: &ModelName,
        version: Version,
    ) -> Result<RetentionProposal, ServiceError> {
        let db = self.store().reader();
        let none =
            || ServiceError::NotFound(format!("no retention proposal for {model}@{version}"));
        let Some((model_id, _)) = crate::store::registry::find_model(db, model).await? else {
            return Err(none());
        };
        let Some((version_id, _)) =
            crate::store::registry::find_version(db, model_id, model, version).await?
        else {
            return Err(none());
        };
        repo::of_version(db, (model, version), version_id)
            .await?
            .ok_or_else(none)
    }
}

/// The production version among `versions`, if any.
fn production_of(versions: &[KeptVersion]) -> Option<Version> {
    versions
        .iter()
        .find(|v| v.status == LifecycleStatus::Production)
        .map(|v| v.version)
}

/// The service acting as retention when it schedules a quiet version itself.
fn retention_actor() -> Actor {
    Actor {
        name: "retention".into(),
        role: Role::Governance,
        team: None,
        kind: ActorKind::System,
        consumer: None,
        client_ip: None,
    }
}

/// The audit record of decision `d` on proposal `id`.
fn decided_entry<'a>(
    by: impl Into<crate::audit::AuditIdentity<'a>>,
    id: i64,
    subject: &str,
    d: &Decision<'_>,
) -> AuditEntry {
    AuditEntry::new(
        by,
        Action::RetentionDecided,
        SubjectType::ModelVersion,
        subject,
    )
    .after(&serde_json::json!({
        "proposal": id,
        "state": d.state.as_str(),
        "note": d.note,
        "retirement": d.retirement,
    }))
}
