//! The periodic look at every pending retirement: new dependents found in the graph
//! (declared since, or seen in traffic or downloads) are added with their own notice
//! clock and told at once; last traffic is brought up to date; reminders that are due go
//! out; and the state follows from the dependents: needs-decision while one's notice
//! would end after the effective date, ready once the date has come and nobody holds the
//! retirement back, scheduled otherwise.
//!
//! Runs from the scheduler once per tick across instances (`job_runs`), after each
//! traffic scan, and from tests with an injected clock.

use super::{Found, ServiceError, Services, not_found, outbox};
use crate::audit::{Action, AuditEntry, SubjectType};
use crate::domain::ConsumerId;
use crate::domain::RetirementId;
use crate::domain::{Dependent, Retirement};
use crate::domain::{DependentStanding, FoundBy, RetirementState, Tier};
use crate::store::notices as outbox_repo;
use crate::store::retirements as repo;
use chrono::{DateTime, Utc};
use notifiers::NoticeKind;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// How often the watch looks again for retirements scheduled through other instances.
const WATCH_IDLE: std::time::Duration = std::time::Duration::from_secs(30);

/// The most pending retirements one pass looks at.
pub(super) const MAX_PENDING: u64 = 10_000;

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckReport {
    pub checked: usize,
    pub new_dependents: usize,
    pub reminders: usize,
    pub state_changes: usize,
}

impl crate::service::Retirements<'_> {
    /// Looks at every pending retirement once; `found_by` says what prompted the look
    /// (and so how a dependent found now is recorded).
    pub async fn check_retirements(&self, found_by: FoundBy) -> Result<CheckReport, ServiceError> {
        self.inventory().refresh_inventory().await?;
        let mut report = CheckReport::default();
        for r in repo::pending(self.store().reader(), MAX_PENDING).await? {
            let step = self.check_loaded(&r, found_by).await?;
            report.checked += 1;
            report.new_dependents += step.new_dependents;
            report.reminders += step.reminders;
            report.state_changes += step.state_changes;
        }
        if report.new_dependents + report.reminders > 0 {
            self.wake_delivery();
        }
        Ok(report)
    }

    /// Looks at one pending retirement now: after a download of one of its versions by a
    /// consumer's token, which may make that consumer a dependent.
    pub async fn check_retirement(
        &self,
        id: RetirementId,
        found_by: FoundBy,
    ) -> Result<CheckReport, ServiceError> {
        self.inventory().refresh_inventory().await?;
        let report = self
            .check_loaded(&self.retirement(id).await?, found_by)
            .await?;
        if report.new_dependents + report.reminders > 0 {
            self.wake_delivery();
        }
        Ok(report)
    }

    /// Walks the graph for `r`'s dependents and checks it against them; tells
    /// subscriptions when that found someone or moved the state.
    async fn check_loaded(
        &self,
        r: &Retirement,
        found_by: FoundBy,
    ) -> Result<CheckReport, ServiceError> {
        let tier = self.tier_of(r).await?;
        let found = self.find_dependents(&r.model, &r.affected_versions);
        let report = self.check_one(r.id, tier, &found, found_by).await?;
        if report.new_dependents + report.state_changes > 0 {
            self.publish_retirement(r.id, "checked");
        }
        Ok(report)
    }

    /// Pending retirements by model name.
    async fn pending_by_model(
        &self,
    ) -> Result<BTreeMap<crate::domain::ModelName, Vec<RetirementId>>, ServiceError> {
        let mut out: BTreeMap<crate::domain::ModelName, Vec<RetirementId>> = BTreeMap::new();
        for r in repo::pending(self.store().reader(), MAX_PENDING).await? {
            out.entry(r.model).or_default().push(r.id);
        }
        Ok(out)
    }

    /// The scheduled check at `tick`, if this instance claims it first.
    pub async fn run_scheduled_retirement_check(
        &self,
        tick: DateTime<Utc>,
        instance: &str,
    ) -> Result<Option<CheckReport>, ServiceError> {
        if !self.claim_tick("retirement-check", tick, instance).await? {
            return Ok(None);
        }
        // Executions that stopped (a crash, a step that failed, purges settled
        // elsewhere) go on from where they are.
        if let Err(e) = self
            .decommission()
            .escalate_silent_enforcement_points()
            .await
        {
            tracing::error!(error = %e, "escalating silent enforcement points failed");
        }
        if let Err(e) = self.decommission().resume_decommissions().await {
            tracing::error!(error = %e, "resuming decommissions failed");
        }
        // Emergency deployments whose time is up: validated, or rolled back.
        if let Err(e) = self.registry().settle_emergency_deployments().await {
            tracing::error!(error = %e, "settling emergency deployments failed");
        }
        // Enforcement points hear of brownouts that changed since they were told.
        if let Err(e) = self.push_brownouts().await {
            tracing::error!(error = %e, "pushing brownouts to enforcement points failed");
        }
        self.check_retirements(FoundBy::GraphChange).await.map(Some)
    }

    async fn check_one(
        &self,
        id: RetirementId,
        tier: Tier,
        found: &BTreeMap<ConsumerId, Found>,
        found_by: FoundBy,
    ) -> Result<CheckReport, ServiceError> {
        in_write_tx!(self, |tx| {
            let now = self.now();
            let mut report = CheckReport::default();
            let before = repo::find(tx.conn(), id)
                .await?
                .ok_or_else(|| not_found(id))?;
            if !before.state.is_pending() {
                return Ok(report);
            }
            let mut dependents: HashMap<ConsumerId, Dependent> = repo::dependents(tx.conn(), id)
                .await?
                .into_iter()
                .map(|d| (d.consumer_id, d))
                .collect();
            let escalate_to = outbox::escalation_contacts(self, tx.conn(), &before).await?;
            let mut audits = Vec::new();
            let mut notices = Vec::new();

            // Newly found dependents: their own notice clock, told at once.
            let new = self.newly_found(&before, tier, found, &dependents, found_by, now);
            if !new.is_empty() {
                repo::insert_dependents(tx.conn(), &new).await?;
                notices.extend(self.notices_for(
                    &before,
                    NoticeKind::Scheduled,
                    new.iter().map(|d| (d, &found[&d.consumer_id].consumer)),
                    &escalate_to,
                    now,
                ));
                audits.extend(new.iter().map(|d| {
                    AuditEntry::new(
                        ("retirement-check", "system"),
                        Action::RetirementDependentAdded,
                        SubjectType::Retirement,
                        id.to_string(),
                    )
                    .after(d)
                }));
                report.new_dependents = new.len();
            }
            for d in dependents.values_mut() {
                let (changed, reminded) =
                    self.take_in_traffic_and_remind(&before, tier, d, found, now, &mut notices);
                report.reminders += usize::from(reminded);
                if changed {
                    repo::update_dependent(tx.conn(), d).await?;
                }
            }
            outbox_repo::insert(tx.conn(), &notices).await?;

            // The state follows from the dependents.
            let all: Vec<&Dependent> = dependents.values().chain(new.iter()).collect();
            if let Some((_, entry)) = self
                .follow_dependents(
                    tx,
                    &before,
                    &all,
                    now,
                    ("retirement-check", "system").into(),
                )
                .await?
            {
                audits.push(entry);
                report.state_changes = 1;
            }
            if !audits.is_empty() {
                tx.append_audits(now, audits, self.service_key().audit_mac_key())
                    .await?;
            }
            Ok(report)
        })
    }

    /// The dependents found that the retirement does not count yet, each with its own
    /// notice clock from `now` (never ending before the effective date).
    fn newly_found(
        &self,
        before: &Retirement,
        tier: Tier,
        found: &BTreeMap<ConsumerId, Found>,
        known: &HashMap<ConsumerId, Dependent>,
        found_by: FoundBy,
        now: DateTime<Utc>,
    ) -> Vec<Dependent> {
        let policy = self.notice_policy();
        found
            .values()
            .filter(|f| !known.contains_key(&f.id))
            .map(|f| {
                let notice_ends_at = (now + policy.tier(tier).min_notice).max(before.effective_at);
                f.dependent(
                    before.id,
                    found_by,
                    now,
                    notice_ends_at,
                    policy.next_reminder(tier, now, notice_ends_at),
                )
            })
            .collect()
    }

    /// Takes in traffic seen since the last check, and sends the reminder that is due
    /// (none once the dependent acknowledged or was overridden): whether `d` changed,
    /// and whether it was reminded.
    fn take_in_traffic_and_remind(
        &self,
        before: &Retirement,
        tier: Tier,
        d: &mut Dependent,
        found: &BTreeMap<ConsumerId, Found>,
        now: DateTime<Utc>,
        notices: &mut Vec<crate::domain::OutboxNotice>,
    ) -> (bool, bool) {
        let (mut changed, mut reminded) = (false, false);
        let seen = found.get(&d.consumer_id).and_then(|f| f.last_traffic_at);
        if let Some(after) = d.with_traffic(seen) {
            *d = after;
            changed = true;
        }
        if let Some(due) = d.next_reminder_at
            && due <= now
        {
            let next = if d.settled() {
                None
            } else {
                if let Some(c) = found.get(&d.consumer_id) {
                    notices.extend(self.notices_for(
                        before,
                        NoticeKind::Reminder,
                        [(&*d, &c.consumer)],
                        &[],
                        now,
                    ));
                    reminded = true;
                }
                self.notice_policy()
                    .next_reminder(tier, now, d.notice_ends_at)
            };
            *d = d.reminded_next(next);
            changed = true;
        }
        (changed, reminded)
    }
}

impl crate::service::Retirements<'_> {
    /// Moves `before` to the state its dependents give at `now`, when that is a move it
    /// may make; returns the retirement after and the audit record of the change, for the
    /// caller to append with the rest of its transaction.
    pub(super) async fn follow_dependents(
        &self,
        tx: &mut crate::store::WriteTx,
        before: &Retirement,
        dependents: &[&Dependent],
        now: DateTime<Utc>,
        by: crate::audit::AuditIdentity<'_>,
    ) -> Result<Option<(Retirement, AuditEntry)>, ServiceError> {
        let next = next_state(before, dependents, now, self.notice_policy().quiet_period);
        // Out of needs-decision, a retirement is scheduled again before it can be ready.
        let next = match (before.state, next) {
            (RetirementState::NeedsDecision, RetirementState::Ready) => RetirementState::Scheduled,
            (_, next) => next,
        };
        if next == before.state {
            return Ok(None);
        }
        let Ok(after) = before.moved_to(next, now, None) else {
            return Ok(None);
        };
        repo::update(tx.conn(), &after).await?;
        let entry = AuditEntry::new(
            by,
            Action::RetirementStateChanged,
            SubjectType::Retirement,
            before.id.to_string(),
        )
        .before(before)
        .after(&after);
        tracing::info!(retirement = before.id.0, from = %before.state, to = %next, "retirement state changed");
        Ok(Some((after, entry)))
    }
}

/// Where a pending retirement stands given its dependents at `now`.
fn next_state(
    r: &Retirement,
    dependents: &[&Dependent],
    now: DateTime<Utc>,
    quiet: chrono::Duration,
) -> RetirementState {
    let too_late = dependents
        .iter()
        .any(|d| d.overridden_at.is_none() && d.notice_ends_at > r.effective_at);
    if too_late {
        return RetirementState::NeedsDecision;
    }
    let holding = dependents.iter().any(|d| {
        DependentStanding {
            found_at: d.found_at,
            notice_ends_at: d.notice_ends_at,
            acknowledged: d.acknowledged_at.is_some(),
            overridden: d.overridden_at.is_some(),
            last_traffic_at: d.last_traffic_at,
        }
        .holding(now, quiet)
        .is_some()
    });
    if now >= r.effective_at && !holding {
        RetirementState::Ready
    } else {
        RetirementState::Scheduled
    }
}

/// Background work owns the whole service (the supervisor spawns it).
impl Services {
    /// Runs until aborted: checks a pending retirement as soon as a committed inventory
    /// change touches its model (a new declaration, a registration webhook), so a new
    /// dependent is told at once rather than at the next scheduled check. It listens to
    /// inventory changes only while some retirement is pending, since listening makes
    /// every change work out which models it touches.
    pub async fn run_retirement_watch(self) {
        let mut retirements = self.retirements().retirement_events();
        loop {
            let pending = match self.retirements().pending_by_model().await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "reading pending retirements failed");
                    BTreeMap::new()
                }
            };
            if pending.is_empty() {
                // Nothing to watch for until a retirement is scheduled (here, or seen on
                // a later look when scheduled through another instance).
                tokio::select! {
                    _ = retirements.recv() => {}
                    () = tokio::time::sleep(WATCH_IDLE) => {}
                }
                continue;
            }
            let mut changes = self.inventory().inventory_events();
            loop {
                tokio::select! {
                    event = changes.recv() => {
                        let mut models = std::collections::BTreeSet::new();
                        let mut everything = false;
                        let mut take = |e: Result<crate::service::InventoryEvent, tokio::sync::broadcast::error::RecvError>| match e {
                            Ok(e) => models.extend(e.models.iter().cloned()),
                            Err(_) => everything = true,
                        };
                        take(event);
                        // A burst of changes is looked at once.
                        while let Ok(e) = changes.try_recv() {
                            take(Ok(e));
                        }
                        let due: BTreeSet<RetirementId> = pending
                            .iter()
                            .filter(|(m, _)| everything || models.contains(*m))
                            .flat_map(|(_, ids)| ids.iter().copied())
                            .collect();
                        for id in due {
                            if let Err(e) = self.retirements().check_retirement(id, FoundBy::GraphChange).await {
                                tracing::warn!(retirement = id.0, error = %e, "checking a retirement after an inventory change failed");
                            }
                        }
                    }
                    _ = retirements.recv() => break,
                    () = tokio::time::sleep(WATCH_IDLE) => break,
                }
            }
        }
    }
}
