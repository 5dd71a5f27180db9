//! Retirements over GraphQL: governance schedules and cancels; dependents' owners (or a
//! token bound to the dependent) acknowledge; anyone may see what is being retired, by
//! whom it is used, and how each notice fared.
//!
//! Why this file is long: retirements, dependents, notices, steps, purges and enforcement
//! points each have an output type with its documentation (the SDL's); the resolvers are
//! thin calls into `service`.

use super::guard::{ANY_ROLE, ModelGuard, RetirementGuard, RoleGuard, actor, services};
use crate::domain::OutboxNotice;
use crate::domain::{self, Role};
use crate::domain::{ConsumerId, RetirementId};
use crate::domain::{Dependent, Retirement as StoredRetirement};
use crate::service::{Requester, RetirementInput};
use async_graphql::{
    ComplexObject, Context, Enum, ID, InputObject, Object, Result, SimpleObject, Subscription,
};
use chrono::{DateTime, Utc};
use futures_util::Stream;

const GOVERNANCE: &[Role] = &[Role::Governance];
/// Who may see dead letters: they name recipients' systems and what went wrong.
const OVERSEERS: &[Role] = &[Role::Governance, Role::Admin, Role::Auditor, Role::Security];
const AUDITORS: &[Role] = &[Role::Auditor];
const SECURITY: &[Role] = &[Role::Security];
/// The second person an emergency erasure needs.
const ERASURE_APPROVERS: &[Role] = &[Role::Security, Role::Governance];
/// A derived store's owner confirms its purge (admins too, for stores without an owner).
const PURGE_CONFIRMERS: &[Role] = &[Role::Owner, Role::Admin];

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "RetirementState")]
pub enum RetirementStateGql {
    Scheduled,
    NeedsDecision,
    Ready,
    Executing,
    Retired,
    Cancelled,
}

impl RetirementStateGql {
    fn domain(self) -> domain::RetirementState {
        use domain::RetirementState as S;
        match self {
            Self::Scheduled => S::Scheduled,
            Self::NeedsDecision => S::NeedsDecision,
            Self::Ready => S::Ready,
            Self::Executing => S::Executing,
            Self::Retired => S::Retired,
            Self::Cancelled => S::Cancelled,
        }
    }
}

impl From<domain::RetirementState> for RetirementStateGql {
    fn from(s: domain::RetirementState) -> Self {
        use domain::RetirementState as S;
        match s {
            S::Scheduled => Self::Scheduled,
            S::NeedsDecision => Self::NeedsDecision,
            S::Ready => Self::Ready,
            S::Executing => Self::Executing,
            S::Retired => Self::Retired,
            S::Cancelled => Self::Cancelled,
        }
    }
}

/// A scheduled (or past) retirement of some versions of one model.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Retirement {
    id: ID,
    model: String,
    /// The selection as governance wrote it: `2.1.0`, `^1`, `*`.
    versions: String,
    /// The versions that selection matched when the retirement was scheduled.
    affected_versions: Vec<String>,
    reason: String,
    effective_at: DateTime<Utc>,
    replacement_model: Option<String>,
    replacement_version: Option<String>,
    state: RetirementStateGql,
    /// Grows with every change a calendar should show (RFC 5545 SEQUENCE).
    sequence: i32,
    /// The latest decision's justification (cancellation, accepted shorter notice).
    decision_note: Option<String>,
    created_at: DateTime<Utc>,
    created_by: String,
    updated_at: DateTime<Utc>,
    /// Consumers that were not dependents when the notice went out are refused.
    freeze_new_consumers: bool,
    /// Only dependents seen within this many days were told; the others are informed by
    /// their owner (`informedByOwner` on the dependent).
    notify_seen_within_days: Option<u32>,
    /// Windows in which downloads by dependents that have not acknowledged answer 503.
    brownouts: Vec<BrownoutWindow>,
    #[graphql(skip)]
    raw_id: RetirementId,
}

/// A brownout window of a retirement's notice period.
#[derive(SimpleObject)]
pub struct BrownoutWindow {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl From<StoredRetirement> for Retirement {
    fn from(r: StoredRetirement) -> Self {
        Self {
            id: ID(r.id.to_string()),
            raw_id: r.id,
            model: r.model.to_string(),
            versions: r.selection.to_string(),
            affected_versions: r
                .affected_versions
                .iter()
                .map(ToString::to_string)
                .collect(),
            reason: r.reason,
            effective_at: r.effective_at,
            replacement_model: r.replacement_model.map(|m| m.to_string()),
            replacement_version: r.replacement_version.map(|v| v.to_string()),
            state: r.state.into(),
            sequence: r.sequence,
            decision_note: r.decision_note,
            created_at: r.created_at,
            created_by: r.created_by,
            updated_at: r.updated_at,
            freeze_new_consumers: r.levers.freeze_new_consumers,
            notify_seen_within_days: r.levers.notify_seen_within_days,
            brownouts: r
                .levers
                .brownouts
                .iter()
                .map(|w| BrownoutWindow {
                    start: w.start,
                    end: w.end,
                })
                .collect(),
        }
    }
}

#[ComplexObject]
impl Retirement {
    /// Every dependent notified, with its notice clock and acknowledgement.
    async fn dependents(&self, ctx: &Context<'_>) -> Result<Vec<RetirementDependent>> {
        Ok(services(ctx)?
            .retirements()
            .retirement_dependents(self.raw_id)
            .await?
            .into_iter()
            .map(RetirementDependent::from)
            .collect())
    }

    /// The steps of its execution so far, each with its time and outcome.
    async fn steps(&self, ctx: &Context<'_>) -> Result<Vec<DecommissionStep>> {
        Ok(services(ctx)?
            .decommission()
            .decommission_steps(self.raw_id)
            .await?
            .into_iter()
            .map(|s| DecommissionStep {
                step: s.step.to_string(),
                started_at: s.started_at,
                finished_at: s.finished_at,
                outcome: s.outcome,
            })
            .collect())
    }

    /// The enforcement points told of its kill switch, and when each confirmed.
    async fn enforcement_points(&self, ctx: &Context<'_>) -> Result<Vec<EnforcementConfirmation>> {
        Ok(services(ctx)?
            .decommission()
            .enforcement_confirmations(self.raw_id)
            .await?
            .into_iter()
            .map(|c| EnforcementConfirmation {
                point: c.point,
                told_at: c.told_at,
                etag: c.etag,
                confirmed_at: c.confirmed_at,
                via: c.via,
                escalated_at: c.escalated_at,
            })
            .collect())
    }

    /// The id of its destruction certificate, once issued (`certificate(id:)` reads it;
    /// auditors).
    async fn certificate_id(&self, ctx: &Context<'_>) -> Result<Option<ID>> {
        Ok(services(ctx)?
            .decommission()
            .certificate_id_of(self.raw_id)
            .await?
            .map(|id| ID(id.to_string())))
    }

    /// Derived stores' purge confirmations and governance waivers.
    async fn purges(&self, ctx: &Context<'_>) -> Result<Vec<Purge>> {
        Ok(services(ctx)?
            .decommission()
            .purges(self.raw_id)
            .await?
            .into_iter()
            .map(Purge::from)
            .collect())
    }

    /// Counts of this retirement's notices by state.
    async fn notice_summary(&self, ctx: &Context<'_>) -> Result<NoticeSummary> {
        use crate::domain::NoticeState;
        let counts = services(ctx)?
            .retirements()
            .retirement_notice_counts(self.raw_id)
            .await?;
        let count = |state: NoticeState| {
            counts
                .iter()
                .filter(|(s, _)| *s == state)
                .map(|&(_, n)| i32::try_from(n).unwrap_or(i32::MAX))
                .sum()
        };
        Ok(NoticeSummary {
            total: counts
                .iter()
                .map(|&(_, n)| i32::try_from(n).unwrap_or(i32::MAX))
                .sum(),
            pending: count(NoticeState::Pending),
            delivered: count(NoticeState::Delivered),
            dead: count(NoticeState::Dead),
            cancelled: count(NoticeState::Cancelled),
        })
    }
}

/// One recorded step of executing a retirement.
#[derive(SimpleObject)]
pub struct DecommissionStep {
    /// In order: `kill-switch`, `enforcement`, `derived-data`, `erase-keys`, `rotate-kek`,
    /// `destroy-kek`, `delete-ciphertext`, `verify-erasure`, `revoke-signatures`,
    /// `certificate`. A step not finished shows why in `outcome`.
    step: String,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    outcome: Option<String>,
}

/// An enforcement point told of a kill switch.
#[derive(SimpleObject)]
pub struct EnforcementConfirmation {
    point: String,
    told_at: DateTime<Utc>,
    /// The disabled list's ETag it was told of.
    etag: String,
    confirmed_at: Option<DateTime<Utc>>,
    /// `webhook` (a signed acknowledgement) or `poll`.
    via: Option<String>,
    /// When governance was told it had not confirmed in time.
    escalated_at: Option<DateTime<Utc>>,
}

/// A derived store's purge, confirmed by its owner or waived by governance.
#[derive(SimpleObject)]
pub struct Purge {
    consumer: String,
    /// `confirmed` or `waived`.
    outcome: String,
    by: String,
    at: DateTime<Utc>,
    /// A waiver's justification.
    note: Option<String>,
}

impl From<crate::domain::Purge> for Purge {
    fn from(p: crate::domain::Purge) -> Self {
        Self {
            consumer: p.consumer,
            outcome: p.outcome,
            by: p.by,
            at: p.at,
            note: p.note,
        }
    }
}

/// A signed destruction certificate.
#[derive(SimpleObject)]
pub struct Certificate {
    id: ID,
    retirement_id: ID,
    issued_at: DateTime<Utc>,
    /// SHA-256 of `envelope`.
    sha256: String,
    /// The DSSE envelope exactly as issued: save it and run
    /// `sunset certificate verify FILE --public-key service.pem`.
    envelope: String,
}

impl From<crate::service::CertificateView> for Certificate {
    fn from(c: crate::service::CertificateView) -> Self {
        Self {
            id: ID(c.id.to_string()),
            retirement_id: ID(c.retirement_id.to_string()),
            issued_at: c.issued_at,
            sha256: c.sha256,
            envelope: c.envelope,
        }
    }
}

/// A version the kill switch has disabled: downloads answer 410 Gone.
#[derive(SimpleObject)]
pub struct DisabledVersion {
    model: String,
    version: String,
    retirement_id: Option<ID>,
    disabled_at: DateTime<Utc>,
    disabled_by: String,
    reason: String,
}

impl From<crate::domain::DisabledVersion> for DisabledVersion {
    fn from(d: crate::domain::DisabledVersion) -> Self {
        Self {
            model: d.model,
            version: d.version,
            retirement_id: d.retirement_id.map(|r| ID(r.to_string())),
            disabled_at: d.disabled_at,
            disabled_by: d.disabled_by,
            reason: d.reason,
        }
    }
}

#[derive(SimpleObject)]
pub struct NoticeSummary {
    total: i32,
    pending: i32,
    delivered: i32,
    /// Dead letters: every attempt failed, or the notice could never be delivered.
    dead: i32,
    cancelled: i32,
}

/// One dependent of a retirement.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct RetirementDependent {
    consumer: String,
    found_at: DateTime<Utc>,
    /// `scheduling`, `graph-change`, `scan` or `download`.
    found_by: String,
    /// Why it depends on the retired versions, dependent first.
    path: Vec<String>,
    notice_ends_at: DateTime<Utc>,
    next_reminder_at: Option<DateTime<Utc>>,
    /// When a notice about this retirement first reached it.
    notified_at: Option<DateTime<Utc>>,
    acknowledged_at: Option<DateTime<Utc>>,
    acknowledged_by: Option<String>,
    /// The last use seen (scan or download).
    last_traffic_at: Option<DateTime<Utc>>,
    extension_state: Option<String>,
    extension_until: Option<DateTime<Utc>>,
    extension_reason: Option<String>,
    override_note: Option<String>,
    overridden_by: Option<String>,
    overridden_at: Option<DateTime<Utc>>,
    /// Not seen within the retirement's look-back when it was scheduled: sunset sent it
    /// no notice, and its owner is expected to tell it.
    informed_by_owner: bool,
    #[graphql(skip)]
    retirement_id: RetirementId,
    #[graphql(skip)]
    consumer_id: ConsumerId,
}

impl From<Dependent> for RetirementDependent {
    fn from(d: Dependent) -> Self {
        Self {
            consumer: d.consumer,
            found_at: d.found_at,
            found_by: d.found_by.to_string(),
            path: d.path,
            notice_ends_at: d.notice_ends_at,
            next_reminder_at: d.next_reminder_at,
            notified_at: d.notified_at,
            acknowledged_at: d.acknowledged_at,
            acknowledged_by: d.acknowledged_by,
            last_traffic_at: d.last_traffic_at,
            extension_state: d.extension_state.map(|s| s.to_string()),
            extension_until: d.extension_until,
            extension_reason: d.extension_reason,
            override_note: d.override_note,
            overridden_by: d.overridden_by,
            overridden_at: d.overridden_at,
            informed_by_owner: d.informed_by_owner,
            retirement_id: d.retirement_id,
            consumer_id: d.consumer_id,
        }
    }
}

#[ComplexObject]
impl RetirementDependent {
    /// Every notice to this dependent and how its delivery went.
    async fn deliveries(&self, ctx: &Context<'_>) -> Result<Vec<NoticeDelivery>> {
        Ok(services(ctx)?
            .retirements()
            .retirement_notices_seen_by(actor(ctx)?, self.retirement_id, Some(self.consumer_id))
            .await?
            .into_iter()
            .map(NoticeDelivery::from)
            .collect())
    }
}

/// One notice and its delivery.
#[derive(SimpleObject)]
pub struct NoticeDelivery {
    /// The notice id: the `webhook-id` of every attempt, and the email's Message-ID.
    id: String,
    retirement_id: ID,
    /// The payload's `type`, e.g. `model.retirement.scheduled`.
    kind: String,
    /// `webhook` or `email`.
    channel: String,
    /// `pending`, `delivered`, `dead` or `cancelled`.
    state: String,
    attempts: i32,
    next_attempt_at: Option<DateTime<Utc>>,
    last_attempt_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
    delivered_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

impl From<OutboxNotice> for NoticeDelivery {
    fn from(n: OutboxNotice) -> Self {
        let pending = n.state == crate::domain::NoticeState::Pending;
        Self {
            id: n.id,
            retirement_id: ID(n.retirement_id.to_string()),
            kind: n.kind,
            channel: n.channel.as_str().to_owned(),
            state: n.state.as_str().to_owned(),
            attempts: n.attempts,
            next_attempt_at: pending.then_some(n.next_attempt_at),
            last_attempt_at: n.last_attempt_at,
            last_error: n.last_error,
            delivered_at: n.delivered_at,
            created_at: n.created_at,
        }
    }
}

#[derive(InputObject)]
pub struct ScheduleRetirementInput {
    model: String,
    /// One version (`2.1.0`), a semver range (`^1`, `>=1.4, <2`) or all (`*`).
    versions: String,
    reason: String,
    /// At least the model tier's minimum notice from now.
    effective_at: DateTime<Utc>,
    replacement_model: Option<String>,
    replacement_version: Option<String>,
    /// From scheduling on, refuse the versions to consumers that were not dependents
    /// when the notice went out: their downloads answer 410 with a `Link` to the
    /// retirement, and a new use declared is refused. Dependents keep access until the
    /// effective date. Consumers are known by tokens bound to them.
    freeze_new_consumers: Option<bool>,
    /// Tell only the dependents seen (declared, observed or downloading) within this many
    /// days (1 to 3650); the others get no notice and are listed as informed by their
    /// owner.
    notify_seen_within_days: Option<i32>,
    /// Brownout windows in the notice period: downloads by dependents that have not
    /// acknowledged answer 503 with `Retry-After` during each.
    brownouts: Option<Vec<BrownoutWindowInput>>,
    /// Daily brownouts over the notice's last days, growing.
    daily_brownouts: Option<DailyBrownoutsGql>,
}

/// One brownout window: from `start`, for `minutes` (1 to 1440).
#[derive(InputObject)]
pub struct BrownoutWindowInput {
    start: DateTime<Utc>,
    minutes: i32,
}

/// A brownout every day of the notice's last `lastDays` days at `atUtc` (`HH:MM`),
/// growing from `firstMinutes` to `lastMinutes`.
#[derive(InputObject)]
pub struct DailyBrownoutsGql {
    last_days: i32,
    at_utc: String,
    first_minutes: i32,
    last_minutes: i32,
}

impl ScheduleRetirementInput {
    fn levers(&self) -> crate::service::LeverInput {
        crate::service::LeverInput {
            freeze_new_consumers: self.freeze_new_consumers,
            notify_seen_within_days: self.notify_seen_within_days.map(i64::from),
            brownouts: self
                .brownouts
                .iter()
                .flatten()
                .map(|w| (w.start, i64::from(w.minutes)))
                .collect(),
            daily_brownouts: self.daily_brownouts.as_ref().map(|d| {
                crate::service::DailyBrownoutsInput {
                    last_days: i64::from(d.last_days),
                    at_utc: d.at_utc.clone(),
                    first_minutes: i64::from(d.first_minutes),
                    last_minutes: i64::from(d.last_minutes),
                }
            }),
        }
    }
}

fn parse_retirement_id(id: &ID) -> Result<RetirementId> {
    id.parse::<i64>()
        .map(RetirementId)
        .map_err(|_| super::error::validation(format!("{:?} is not a retirement id", id.as_str())))
}

fn parse_certificate_id(id: &ID) -> Result<i64> {
    id.parse::<i64>()
        .map_err(|_| super::error::validation(format!("{:?} is not a certificate id", id.as_str())))
}

#[derive(Default)]
pub struct RetirementQuery;

#[Object]
impl RetirementQuery {
    /// Retirements, by effective date: in any of `states` (all when absent), effective
    /// in `[from, to)`.
    #[graphql(guard = "RoleGuard::new(ANY_ROLE)")]
    async fn retirements(
        &self,
        ctx: &Context<'_>,
        states: Option<Vec<RetirementStateGql>>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        #[graphql(default = 100)] first: i32,
    ) -> Result<Vec<Retirement>> {
        let states: Vec<domain::RetirementState> = states
            .unwrap_or_default()
            .into_iter()
            .map(RetirementStateGql::domain)
            .collect();
        let limit =
            u64::try_from(first).map_err(|_| super::error::validation("first must be positive"))?;
        Ok(services(ctx)?
            .retirements()
            .list(&states, from, to, Some(limit))
            .await?
            .into_iter()
            .map(Retirement::from)
            .collect())
    }

    #[graphql(guard = "RoleGuard::new(ANY_ROLE)")]
    async fn retirement(&self, ctx: &Context<'_>, id: ID) -> Result<Retirement> {
        Ok(services(ctx)?
            .retirements()
            .retirement(parse_retirement_id(&id)?)
            .await?
            .into())
    }

    /// Every version the kill switch has disabled.
    #[graphql(guard = "RoleGuard::new(ANY_ROLE)")]
    async fn disabled_versions(&self, ctx: &Context<'_>) -> Result<Vec<DisabledVersion>> {
        Ok(services(ctx)?
            .decommission()
            .disabled_versions()
            .await?
            .into_iter()
            .map(DisabledVersion::from)
            .collect())
    }

    /// Destruction certificates, newest first. Auditors.
    #[graphql(guard = "RoleGuard::new(AUDITORS)")]
    async fn certificates(&self, ctx: &Context<'_>) -> Result<Vec<Certificate>> {
        Ok(services(ctx)?
            .decommission()
            .certificates(actor(ctx)?)
            .await?
            .into_iter()
            .map(Certificate::from)
            .collect())
    }

    /// One destruction certificate, by its id or its retirement's. Auditors.
    #[graphql(guard = "RoleGuard::new(AUDITORS)")]
    async fn certificate(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        retirement_id: Option<ID>,
    ) -> Result<Option<Certificate>> {
        let services = services(ctx)?;
        let actor = actor(ctx)?;
        let found = match (id, retirement_id) {
            (Some(id), None) => Some(
                services
                    .decommission()
                    .certificate(actor, parse_certificate_id(&id)?)
                    .await?,
            ),
            (None, Some(r)) => {
                services
                    .decommission()
                    .certificate_of(actor, parse_retirement_id(&r)?)
                    .await?
            }
            _ => {
                return Err(super::error::validation("give either id or retirementId"));
            }
        };
        Ok(found.map(Certificate::from))
    }

    /// Notices that could not be delivered, newest first.
    #[graphql(guard = "RoleGuard::new(OVERSEERS)")]
    async fn dead_letters(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 100)] first: i32,
    ) -> Result<Vec<NoticeDelivery>> {
        let limit = u64::try_from(first)
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| super::error::validation("first must be between 1 and 500"))?;
        Ok(services(ctx)?
            .retirements()
            .dead_letters(actor(ctx)?, limit)
            .await?
            .into_iter()
            .map(NoticeDelivery::from)
            .collect())
    }
}

#[derive(Default)]
pub struct RetirementMutation;

#[Object]
impl RetirementMutation {
    /// Schedules a retirement: every transitive dependent is found and notified.
    #[graphql(guard = "ModelGuard::new(GOVERNANCE, &input.model)")]
    async fn schedule_retirement(
        &self,
        ctx: &Context<'_>,
        input: ScheduleRetirementInput,
    ) -> Result<Retirement> {
        let levers = input.levers();
        let (retirement, _) = services(ctx)?
            .retirements()
            .schedule_retirement(
                actor(ctx)?,
                RetirementInput {
                    model: input.model,
                    versions: input.versions,
                    reason: input.reason,
                    effective_at: input.effective_at,
                    replacement_model: input.replacement_model,
                    replacement_version: input.replacement_version,
                    levers,
                },
            )
            .await?;
        Ok(retirement.into())
    }

    /// Cancels a pending retirement, with a written reason; dependents are told.
    #[graphql(guard = "RetirementGuard::new(GOVERNANCE, &id)")]
    async fn cancel_retirement(
        &self,
        ctx: &Context<'_>,
        id: ID,
        reason: String,
    ) -> Result<Retirement> {
        Ok(services(ctx)?
            .retirements()
            .cancel_retirement(actor(ctx)?, parse_retirement_id(&id)?, &reason)
            .await?
            .into())
    }

    /// Executes a ready retirement (or resumes its execution): first the kill switch,
    /// which stops every download of its versions at once.
    #[graphql(guard = "RetirementGuard::new(GOVERNANCE, &id)")]
    async fn execute_retirement(&self, ctx: &Context<'_>, id: ID) -> Result<Retirement> {
        let (retirement, _) = services(ctx)?
            .decommission()
            .execute_retirement(actor(ctx)?, parse_retirement_id(&id)?)
            .await?;
        Ok(retirement.into())
    }

    /// Retires versions now, for a security reason (AISVS 3.6.4): the kill switch is
    /// pulled at once, dependents are told it is an emergency, and erasure waits for a
    /// second actor's `approveEmergencyErasure`. Security only.
    #[graphql(guard = "ModelGuard::new(SECURITY, &model)")]
    async fn emergency_retirement(
        &self,
        ctx: &Context<'_>,
        model: String,
        versions: String,
        risk_assessment: String,
    ) -> Result<Retirement> {
        let (retirement, _) = services(ctx)?
            .decommission()
            .emergency_retirement(actor(ctx)?, &model, &versions, &risk_assessment, "manual")
            .await?;
        Ok(retirement.into())
    }

    /// A second security or governance actor approves erasing an emergency retirement's
    /// versions (once forensic work is done); the execution goes on.
    #[graphql(guard = "RetirementGuard::new(ERASURE_APPROVERS, &id)")]
    async fn approve_emergency_erasure(
        &self,
        ctx: &Context<'_>,
        id: ID,
        note: String,
    ) -> Result<Retirement> {
        let (retirement, _) = services(ctx)?
            .decommission()
            .approve_emergency_erasure(actor(ctx)?, parse_retirement_id(&id)?, &note)
            .await?;
        Ok(retirement.into())
    }

    /// Lifts the kill switch of an executing retirement whose erasure has not started (a
    /// false alarm): its versions are served again and the retirement is cancelled.
    /// Security only, with a justification.
    #[graphql(guard = "RetirementGuard::new(SECURITY, &id)")]
    async fn lift_kill_switch(
        &self,
        ctx: &Context<'_>,
        id: ID,
        justification: String,
    ) -> Result<Retirement> {
        Ok(services(ctx)?
            .decommission()
            .lift_kill_switch(actor(ctx)?, parse_retirement_id(&id)?, &justification)
            .await?
            .into())
    }

    /// A derived store's owner (or an admin) confirms its purge of what it built from
    /// the retired versions; the execution goes on once every derived store is settled.
    #[graphql(guard = "RoleGuard::new(PURGE_CONFIRMERS)")]
    async fn confirm_purge(
        &self,
        ctx: &Context<'_>,
        id: ID,
        consumer: String,
    ) -> Result<Vec<Purge>> {
        Ok(services(ctx)?
            .decommission()
            .settle_purge(actor(ctx)?, parse_retirement_id(&id)?, &consumer, None)
            .await?
            .into_iter()
            .map(Purge::from)
            .collect())
    }

    /// Governance waives a derived store's purge, by name, with a written justification.
    #[graphql(guard = "RetirementGuard::new(GOVERNANCE, &id)")]
    async fn waive_purge(
        &self,
        ctx: &Context<'_>,
        id: ID,
        consumer: String,
        justification: String,
    ) -> Result<Vec<Purge>> {
        Ok(services(ctx)?
            .decommission()
            .settle_purge(
                actor(ctx)?,
                parse_retirement_id(&id)?,
                &consumer,
                Some(&justification),
            )
            .await?
            .into_iter()
            .map(Purge::from)
            .collect())
    }

    /// Moves a pending retirement's date later; every dependent's notice runs at least
    /// to it, and each is told.
    #[graphql(guard = "RetirementGuard::new(GOVERNANCE, &id)")]
    async fn postpone_retirement(
        &self,
        ctx: &Context<'_>,
        id: ID,
        effective_at: DateTime<Utc>,
        reason: String,
    ) -> Result<Retirement> {
        Ok(services(ctx)?
            .retirements()
            .postpone_retirement(
                actor(ctx)?,
                parse_retirement_id(&id)?,
                effective_at,
                &reason,
            )
            .await?
            .into())
    }

    /// Accepts that dependents found late get less than their full notice (it ends on
    /// the effective date); needs a written justification.
    #[graphql(guard = "RetirementGuard::new(GOVERNANCE, &id)")]
    async fn accept_shorter_notice(
        &self,
        ctx: &Context<'_>,
        id: ID,
        justification: String,
    ) -> Result<Retirement> {
        Ok(services(ctx)?
            .retirements()
            .accept_shorter_notice(actor(ctx)?, parse_retirement_id(&id)?, &justification)
            .await?
            .into())
    }

    /// Releases named dependents from holding the retirement back, with a written
    /// justification.
    #[graphql(guard = "RetirementGuard::new(GOVERNANCE, &id)")]
    async fn override_dependents(
        &self,
        ctx: &Context<'_>,
        id: ID,
        consumers: Vec<String>,
        justification: String,
    ) -> Result<Vec<RetirementDependent>> {
        Ok(services(ctx)?
            .retirements()
            .override_dependents(
                actor(ctx)?,
                parse_retirement_id(&id)?,
                &consumers,
                &justification,
            )
            .await?
            .into_iter()
            .map(RetirementDependent::from)
            .collect())
    }

    /// A dependent asks for its notice to run until `until` (its owners, a token bound
    /// to it, or governance).
    #[graphql(guard = "RoleGuard::new(ANY_ROLE)")]
    async fn request_extension(
        &self,
        ctx: &Context<'_>,
        id: ID,
        consumer: String,
        until: DateTime<Utc>,
        reason: String,
    ) -> Result<RetirementDependent> {
        Ok(services(ctx)?
            .retirements()
            .request_extension(
                Requester::Actor(actor(ctx)?, &consumer),
                parse_retirement_id(&id)?,
                until,
                &reason,
            )
            .await?
            .into())
    }

    /// Grants or refuses a dependent's request for more time, with a note.
    #[graphql(guard = "RetirementGuard::new(GOVERNANCE, &id)")]
    async fn decide_extension(
        &self,
        ctx: &Context<'_>,
        id: ID,
        consumer: String,
        grant: bool,
        note: String,
    ) -> Result<RetirementDependent> {
        Ok(services(ctx)?
            .retirements()
            .decide_extension(
                actor(ctx)?,
                parse_retirement_id(&id)?,
                &consumer,
                grant,
                &note,
            )
            .await?
            .into())
    }

    /// Acknowledges a retirement for one dependent (its owners, a token bound to it, or
    /// governance).
    #[graphql(guard = "RoleGuard::new(ANY_ROLE)")]
    async fn acknowledge_retirement(
        &self,
        ctx: &Context<'_>,
        id: ID,
        consumer: String,
    ) -> Result<RetirementDependent> {
        Ok(services(ctx)?
            .retirements()
            .acknowledge_retirement(actor(ctx)?, parse_retirement_id(&id)?, &consumer)
            .await?
            .into())
    }
}

/// One committed change of a retirement.
#[derive(SimpleObject)]
pub struct RetirementUpdate {
    retirement_id: ID,
    /// `scheduled`, `cancelled`, `decided`, `acknowledged`, `extension-requested` or
    /// `checked` (dependents found, state moved).
    change: String,
    /// Changes this subscriber missed because it read too slowly; query to catch up.
    missed: u64,
}

#[derive(Default)]
pub struct RetirementSubscription;

/// The disabled list as an enforcement point sees it.
#[derive(SimpleObject)]
pub struct DisabledList {
    /// The same strong ETag `GET /v1/disabled-versions` answers with.
    etag: String,
    versions: Vec<DisabledVersion>,
}

#[Subscription]
impl RetirementSubscription {
    /// The list of disabled versions: now, then again each time it changes, through
    /// whichever instance (within `inventory.poll_interval_ms` of the commit). What an
    /// enforcement point can follow instead of polling.
    #[graphql(guard = "RoleGuard::new(ANY_ROLE)")]
    async fn disabled_versions_changed(
        &self,
        ctx: &Context<'_>,
    ) -> Result<impl Stream<Item = DisabledList> + use<>> {
        let services = services(ctx)?.clone();
        let changes = services.decommission().kill_switch_changes();
        // The list as it stands first, then each list with another ETag: a wake-up that
        // changes nothing (the instance's first read of the list, say) is not pushed.
        Ok(futures_util::stream::unfold(
            (services, changes, None::<String>),
            |(services, mut changes, last)| async move {
                loop {
                    if last.is_some() && changes.changed().await.is_err() {
                        return None;
                    }
                    changes.borrow_and_update();
                    let (list, etag) = services
                        .decommission()
                        .disabled_versions_tagged()
                        .await
                        .ok()?;
                    if last.as_deref() == Some(etag.as_str()) {
                        continue;
                    }
                    let versions = list.into_iter().map(DisabledVersion::from).collect();
                    let pushed = DisabledList {
                        etag: etag.clone(),
                        versions,
                    };
                    return Some((pushed, (services, changes, Some(etag))));
                }
            },
        ))
    }

    /// Pushes each committed change of a retirement made through this instance (of the
    /// one named by `id`, or of any).
    #[graphql(guard = "RoleGuard::new(ANY_ROLE)")]
    async fn retirement_updated(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
    ) -> Result<impl Stream<Item = RetirementUpdate> + use<>> {
        let only = id.as_ref().map(parse_retirement_id).transpose()?;
        let events = services(ctx)?.retirements().retirement_events();
        Ok(futures_util::stream::unfold(
            events,
            move |mut events| async move {
                loop {
                    match events.recv().await {
                        Ok(e) if only.is_none_or(|id| id == e.retirement) => {
                            let update = RetirementUpdate {
                                retirement_id: ID(e.retirement.to_string()),
                                change: e.change.to_owned(),
                                missed: 0,
                            };
                            return Some((update, events));
                        }
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            let update = RetirementUpdate {
                                retirement_id: ID(String::new()),
                                change: "unknown".into(),
                                missed: n,
                            };
                            return Some((update, events));
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                    }
                }
            },
        ))
    }
}
