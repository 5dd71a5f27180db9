//! Retirements (AISVS 3.6.1): governance schedules one, the graph is walked for every
//! transitive dependent, each is recorded with its own notice clock and told through the
//! outbox in the same transaction; dependents acknowledge (by link or mutation) and may
//! ask for more time; `check_retirements` finds new dependents, sends reminders and moves
//! retirements to ready when nobody holds them back.
//!
//! Delivery itself is `service::delivery`: nothing here talks to a receiver.

mod acknowledge;
mod brownouts;
mod check;
mod decisions;
mod levers;
mod outbox;
mod retention;
mod schedule;
mod seen;
mod state;

pub use brownouts::{BrownoutEntry, brownout_document};
pub use check::CheckReport;
pub use decisions::{Requester, may_act_for};
pub(crate) use levers::FrozenOut;
pub use levers::{DailyBrownoutsInput, LeverInput};
pub(crate) use outbox::{escalation_contacts, new_notice_id};
pub use retention::{MAX_PROPOSALS, RetentionReport};
pub use schedule::{PreviewDependent, RetirementPreview};
pub(super) use state::State;

use super::{ServiceError, Services};
use crate::audit::{Action, AuditEntry, SubjectType};
use crate::auth::Actor;
use crate::domain::OutboxNotice;
use crate::domain::RetirementId;
use crate::domain::{Dependent, Retirement};
use crate::domain::{FoundBy, ModelName, ParseError, RetirementState, Role, Text, Tier, Version};
use crate::graph::{ConsumerId, Query, Target};
use crate::store::notices as outbox_repo;
use crate::store::registry as registry_repo;
use crate::store::retirements as repo;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// The most versions one retirement may cover.
pub(crate) const MAX_VERSIONS: u64 = 10_000;
/// The longest reason or justification accepted.
pub(super) const MAX_TEXT: usize = 4_000;
/// The most retirements one list returns.
pub const MAX_LIST: u64 = 500;

/// What governance asks for.
#[derive(Debug, Clone)]
pub struct RetirementInput {
    pub model: String,
    /// One version (`2.1.0`), a semver range (`^1`, `>=1.4, <2`) or all (`*`).
    pub versions: String,
    pub reason: String,
    pub effective_at: DateTime<Utc>,
    pub replacement_model: Option<String>,
    pub replacement_version: Option<String>,
    pub levers: LeverInput,
}

/// A committed change of a retirement, as a subscription sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetirementEvent {
    pub retirement: RetirementId,
    /// What happened: `scheduled`, `cancelled`, `decided`, `acknowledged`,
    /// `extension-requested` or `checked` (dependents found, state moved).
    pub change: &'static str,
}

/// A dependent as a walk of the graph found it.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub id: ConsumerId,
    pub consumer: crate::domain::Consumer,
    pub path: Vec<String>,
    /// The last use seen on its own edge (scan or download evidence).
    pub last_traffic_at: Option<DateTime<Utc>>,
    /// The last time anything showed it depends (a declaration, an observation or a
    /// download): what "seen lately" means for telling only recent users.
    pub last_seen_at: Option<DateTime<Utc>>,
}

impl Found {
    /// This dependent as `retirement_id` records it when found at `at`: not yet told,
    /// acknowledged or decided on.
    pub(crate) fn dependent(
        &self,
        retirement_id: RetirementId,
        found_by: FoundBy,
        at: DateTime<Utc>,
        notice_ends_at: DateTime<Utc>,
        next_reminder_at: Option<DateTime<Utc>>,
    ) -> Dependent {
        let finding = crate::domain::Finding {
            consumer_id: self.id,
            consumer: self.consumer.name.to_string(),
            path: self.path.clone(),
            last_traffic_at: self.last_traffic_at,
        };
        Dependent::found(
            retirement_id,
            finding,
            (found_by, at),
            notice_ends_at,
            next_reminder_at,
        )
    }
}

/// Who may schedule, cancel and decide on retirements.
pub(super) fn require_governance(actor: &Actor, what: &str) -> Result<(), ServiceError> {
    super::authorise::require(actor, GOVERNANCE, what)
}

/// The roles that schedule, cancel and decide on retirements.
const GOVERNANCE: &[Role] = &[Role::Governance];

/// Whether `actor` may schedule, cancel and decide on retirements: what a page asks to
/// show those forms (the use cases refuse others all the same).
pub fn may_govern(actor: &Actor) -> bool {
    actor.has_role(GOVERNANCE)
}

/// The words a retirement change is announced with.
const CHANGES: [&str; 10] = [
    "scheduled",
    "cancelled",
    "acknowledged",
    "extension-requested",
    "decided",
    "checked",
    "executing",
    "retired",
    "reloaded",
    "changed",
];

/// An announced change as one of [`CHANGES`] (`changed` for a word a newer version
/// announced).
fn known_change(word: &str) -> &'static str {
    CHANGES
        .into_iter()
        .find(|c| *c == word)
        .unwrap_or("changed")
}

fn not_found(id: RetirementId) -> ServiceError {
    ServiceError::NotFound(format!("no retirement {id}"))
}

impl crate::service::Retirements<'_> {
    /// Committed retirement changes, from now on.
    pub fn retirement_events(&self) -> tokio::sync::broadcast::Receiver<RetirementEvent> {
        self.inner.retirements.events.subscribe()
    }

    /// Notes where the retirement follower starts (the last change announced so far), at
    /// start-up before requests are served: a subscriber can connect only afterwards, and
    /// then hears every change committed from there, even one that commits before the
    /// follower's first read.
    pub(crate) async fn start_following_retirements(&self) -> Result<(), ServiceError> {
        let last = crate::store::fleet::last_change(self.store().reader()).await?;
        self.inner
            .retirements
            .followed_to
            .store(last, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// How many subscriptions listen (tests wait for theirs to be in place).
    pub fn retirement_subscribers(&self) -> usize {
        self.inner.retirements.events.receiver_count()
    }

    /// Tells subscriptions of a committed change (nobody listening is fine): this
    /// instance's at once, the other instances' through the database
    /// ([`Self::run_retirement_follow`]).
    pub(crate) fn publish_retirement(&self, retirement: RetirementId, change: &'static str) {
        let _ = self
            .inner
            .retirements
            .events
            .send(RetirementEvent { retirement, change });
        let services = Services::clone(self);
        tokio::spawn(async move {
            let announced = crate::store::fleet::announce(
                services.store().reader(),
                retirement,
                change,
                &services.inner.instance,
                services.now(),
            )
            .await;
            if let Err(e) = announced {
                tracing::warn!(retirement = retirement.0, change, error = %e, "could not announce a retirement change to the other instances");
            }
        });
    }

    pub(crate) fn notice_policy(&self) -> &crate::domain::NoticePolicy {
        &self.inner.retirements.notice_policy
    }
    /// Cancels a pending retirement; dependents are told nothing needs to change.
    pub async fn cancel_retirement(
        &self,
        actor: &Actor,
        id: RetirementId,
        reason: &str,
    ) -> Result<Retirement, ServiceError> {
        let reason = Text::parse_required("reason", reason, MAX_TEXT)?;
        let acting = self.acting_on_retirement(actor, id).await?;
        let actor = &acting;
        require_governance(actor, "cancel retirements")?;
        let after = in_write_tx!(self, |tx| {
            let now = self.now();
            let before = repo::find(tx.conn(), id)
                .await?
                .ok_or_else(|| not_found(id))?;
            if !before.state.may_become(RetirementState::Cancelled) {
                return Err(ServiceError::Conflict(format!(
                    "retirement {id} is {}; only a pending retirement can be cancelled",
                    before.state
                )));
            }
            let after = before.moved_to(
                RetirementState::Cancelled,
                now,
                Some(reason.as_str().to_owned()),
            )?;
            repo::update(tx.conn(), &after).await?;
            // Whatever has not gone out yet need not: the cancellation supersedes it.
            outbox_repo::cancel_pending(tx.conn(), id).await?;
            let dependents = repo::dependents(tx.conn(), id).await?;
            for d in &dependents {
                repo::update_dependent(tx.conn(), &d.unreminded()).await?;
            }
            let consumers = self.consumers_of(&dependents);
            // A cancellation that reaches nobody needs no escalation.
            let notices = self.notices_for(
                &after,
                notifiers::NoticeKind::Cancelled,
                dependents
                    .iter()
                    .filter_map(|d| consumers.get(&d.consumer_id).map(|c| (d, c))),
                &[],
                now,
            );
            outbox_repo::insert(tx.conn(), &notices).await?;
            let entry = AuditEntry::new(
                actor.audit_identity(),
                Action::RetirementStateChanged,
                SubjectType::Retirement,
                id.to_string(),
            )
            .before(&before)
            .after(&after);
            self.append_audit(tx, now, entry).await?;
            Ok(after)
        })?;
        tracing::info!(retirement = id.0, actor = %actor.name, "retirement cancelled");
        self.wake_delivery();
        self.publish_retirement(id, "cancelled");
        Ok(after)
    }

    pub async fn retirement(&self, id: RetirementId) -> Result<Retirement, ServiceError> {
        repo::find(self.store().reader(), id)
            .await?
            .ok_or_else(|| not_found(id))
    }

    pub async fn list(
        &self,
        states: &[RetirementState],
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        limit: Option<u64>,
    ) -> Result<Vec<Retirement>, ServiceError> {
        let limit = limit.unwrap_or(100);
        if limit == 0 || limit > MAX_LIST {
            return Err(ParseError::new(
                "limit",
                format!("must be between 1 and {MAX_LIST}, not {limit}"),
            )
            .into());
        }
        Ok(repo::list(self.store().reader(), states, from, to, limit).await?)
    }

    pub async fn retirement_dependents(
        &self,
        id: RetirementId,
    ) -> Result<Vec<Dependent>, ServiceError> {
        Ok(repo::dependents(self.store().reader(), id).await?)
    }

    /// How many of a retirement's notices are in each state.
    pub async fn retirement_notice_counts(
        &self,
        id: RetirementId,
    ) -> Result<Vec<(crate::domain::NoticeState, u64)>, ServiceError> {
        Ok(outbox_repo::count_by_state(self.store().reader(), id).await?)
    }

    /// One dependent of a retirement.
    pub async fn retirement_dependent(
        &self,
        id: RetirementId,
        consumer_id: ConsumerId,
    ) -> Result<Dependent, ServiceError> {
        repo::dependent(self.store().reader(), id, consumer_id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("retirement {id} has no such dependent")))
    }

    pub async fn retirement_notices(
        &self,
        id: RetirementId,
        consumer_id: Option<ConsumerId>,
    ) -> Result<Vec<OutboxNotice>, ServiceError> {
        Ok(outbox_repo::of_retirement(self.store().reader(), id, consumer_id).await?)
    }

    /// Notices as `actor` may see them (see [`Self::redact_delivery_errors`]).
    pub async fn retirement_notices_seen_by(
        &self,
        actor: &Actor,
        id: RetirementId,
        consumer_id: Option<ConsumerId>,
    ) -> Result<Vec<OutboxNotice>, ServiceError> {
        let mut notices = self.retirement_notices(id, consumer_id).await?;
        self.redact_delivery_errors(actor, &mut notices).await?;
        Ok(notices)
    }

    /// Governance and the consumer's own team read each delivery error whole; everyone
    /// else reads its category (`timeout`, `refused`, `http-5xx`, …): the text can
    /// describe the receiver's network, and a role that could read it for any URL it
    /// set would have a port scanner.
    pub(crate) async fn redact_delivery_errors(
        &self,
        actor: &Actor,
        notices: &mut [OutboxNotice],
    ) -> Result<(), ServiceError> {
        if actor.role == Role::Governance {
            return Ok(());
        }
        let mut teams = std::collections::HashMap::new();
        for notice in notices.iter_mut() {
            if notice.last_error.is_none() {
                continue;
            }
            let own_team = match (actor.role, notice.consumer_id) {
                (Role::Owner, Some(consumer)) => {
                    if let std::collections::hash_map::Entry::Vacant(slot) = teams.entry(consumer) {
                        let team = crate::store::inventory::consumer_by_id(
                            self.store().reader(),
                            consumer,
                        )
                        .await?
                        .map(|c| c.owner_team);
                        slot.insert(team);
                    }
                    teams[&consumer].is_some() && teams[&consumer] == actor.team
                }
                _ => false,
            };
            if !own_team {
                notice.last_error = notice
                    .last_error
                    .as_deref()
                    .map(|e| crate::domain::delivery_error_category(e).to_owned());
            }
        }
        Ok(())
    }

    /// The retirements that found `consumer` among their dependents, newest first (at
    /// most [`MAX_LIST`]), each with the consumer's standing in it: its notice, whether it
    /// was told and acknowledged, and any request for more time.
    pub async fn affecting_consumer(
        &self,
        consumer: &str,
    ) -> Result<Vec<(Retirement, Dependent)>, ServiceError> {
        let name = crate::domain::ConsumerName::parse(consumer)?;
        let reader = self.store().reader();
        let (id, _) = crate::store::inventory::find_consumer(reader, &name)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no consumer named {name}")))?;
        let standings = repo::dependent_of_each(reader, id, MAX_LIST).await?;
        let ids: Vec<RetirementId> = standings.iter().map(|d| d.retirement_id).collect();
        let mut by_id: std::collections::HashMap<RetirementId, Retirement> =
            repo::find_many(reader, &ids)
                .await?
                .into_iter()
                .map(|r| (r.id, r))
                .collect();
        Ok(standings
            .into_iter()
            .filter_map(|d| by_id.remove(&d.retirement_id).map(|r| (r, d)))
            .collect())
    }

    /// The pending retirement that covers `model@version`, if any: what downloads and the
    /// status endpoint announce in their `Deprecation` and `Sunset` headers.
    pub async fn pending_retirement_of(
        &self,
        model: &str,
        version: &str,
    ) -> Result<Option<Retirement>, ServiceError> {
        self.pending_retirement_covering(&ModelName::parse(model)?, Version::parse(version)?)
            .await
    }

    pub(crate) async fn pending_retirement_covering(
        &self,
        model: &ModelName,
        version: Version,
    ) -> Result<Option<Retirement>, ServiceError> {
        let Some((model_id, _)) = registry_repo::find_model(self.store().reader(), model).await?
        else {
            return Ok(None);
        };
        Ok(repo::pending_of_model(self.store().reader(), model_id)
            .await?
            .into_iter()
            .find(|r| r.affected_versions.contains(&version)))
    }

    /// Where the `Link` of those headers points: the retirement over the API.
    pub fn retirement_url(&self, id: RetirementId) -> String {
        format!("{}/v1/retirements/{id}", self.public_url())
    }

    /// Notices that could not be delivered, newest first.
    pub async fn dead_letters(
        &self,
        actor: &Actor,
        limit: u64,
    ) -> Result<Vec<OutboxNotice>, ServiceError> {
        let mut letters = outbox_repo::in_state(
            self.store().reader(),
            crate::domain::NoticeState::Dead,
            limit,
        )
        .await?;
        self.redact_delivery_errors(actor, &mut letters).await?;
        Ok(letters)
    }

    /// Every consumer that depends on any of `versions` of `model`, transitively, stale
    /// edges included (a consumer nobody has confirmed lately still deserves notice),
    /// with the shortest explaining path.
    pub(crate) fn find_dependents(
        &self,
        model: &ModelName,
        versions: &[Version],
    ) -> BTreeMap<ConsumerId, Found> {
        let g = self.read_graph();
        let q = Query {
            transitive: true,
            max_depth: u32::MAX,
            include_stale: true,
            limit: usize::MAX,
            now: self.now(),
            stale_after: self.inventory_settings().stale_after(),
        };
        let mut found: BTreeMap<ConsumerId, Found> = BTreeMap::new();
        let Some(model_id) = g.model_id(model.as_str()) else {
            return found;
        };
        for &v in versions {
            let Some(answer) = g
                .version_id(model_id, v)
                .and_then(|id| g.dependents(id, &q))
            else {
                continue;
            };
            for reached in answer.reached {
                let Target::Consumer(consumer) = reached.target else {
                    continue;
                };
                let Some(id) = g.consumer_id(consumer.name.as_str()) else {
                    continue;
                };
                // Reached from several versions: the shortest explanation is kept.
                if found
                    .get(&id)
                    .is_some_and(|f| f.path.len() <= reached.path.len())
                {
                    continue;
                }
                let path: Vec<String> = reached.path.iter().map(step_label).collect();
                found.insert(
                    id,
                    Found {
                        id,
                        consumer: std::sync::Arc::unwrap_or_clone(consumer),
                        path,
                        last_traffic_at: None,
                        last_seen_at: None,
                    },
                );
            }
        }
        // Once per dependent, not once per version it was reached from.
        for f in found.values_mut() {
            f.last_traffic_at = seen::last_use(&g, f.id, model_id, versions);
            f.last_seen_at = seen::last_seen(&g, f.id, model_id, versions);
        }
        found
    }

    /// The consumers of `dependents` as the graph knows them now (a removed one is left
    /// out: there is nobody left to tell).
    fn consumers_of(
        &self,
        dependents: &[Dependent],
    ) -> BTreeMap<ConsumerId, crate::domain::Consumer> {
        let g = self.read_graph();
        dependents
            .iter()
            .filter_map(|d| {
                g.consumer(d.consumer_id)
                    .map(|c| (d.consumer_id, c.clone()))
            })
            .collect()
    }

    /// The tier of a retirement's model, for its notice policy.
    async fn tier_of(&self, retirement: &Retirement) -> Result<Tier, ServiceError> {
        Ok(
            registry_repo::find_model(self.store().reader(), &retirement.model)
                .await?
                .map(|(_, m)| m.tier)
                .unwrap_or(Tier::Critical),
        )
    }
}

fn step_label(step: &crate::graph::Step) -> String {
    match &step.range {
        Some(range) => format!("{} {} {} (as {range})", step.from, step.kind, step.to),
        None => format!("{} {} {}", step.from, step.kind, step.to),
    }
}

/// Background work owns the whole service (the supervisor spawns it).
impl Services {
    /// Follows the retirement changes other instances announce, so this instance's
    /// `retirementUpdated` subscribers hear of them within one poll interval
    /// (`inventory.poll_interval_ms`). Runs until the process ends.
    pub async fn run_retirement_follow(self) {
        use crate::store::fleet;
        use std::sync::atomic::Ordering::Relaxed;
        let db = self.store().reader();
        let followed = &self.inner.retirements.followed_to;
        let mut last = match followed.load(Relaxed) {
            state::NOT_FOLLOWING => fleet::last_change(db).await.unwrap_or(0),
            last => last,
        };
        let mut ticks = tokio::time::interval(self.inner.decommission.kill_switch_poll);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pruned_at = std::time::Instant::now();
        loop {
            self.poll_or_wake(&mut ticks, crate::store::notify::Topic::Retirements)
                .await;
            match fleet::changes_after(db, last, 500).await {
                Ok(changes) => {
                    for c in changes {
                        last = c.seq;
                        if c.instance != self.inner.instance {
                            let _ = self.inner.retirements.events.send(RetirementEvent {
                                retirement: c.retirement_id,
                                change: known_change(&c.change),
                            });
                        }
                    }
                    // A restarted follower goes on from here rather than skip or repeat.
                    followed.store(last, Relaxed);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not read other instances' retirement changes")
                }
            }
            if pruned_at.elapsed() > std::time::Duration::from_secs(3_600) {
                pruned_at = std::time::Instant::now();
                let day_ago = self.now() - chrono::Duration::days(1);
                if let Err(e) = fleet::prune_changes(db, day_ago).await {
                    tracing::warn!(error = %e, "could not prune announced retirement changes");
                }
            }
        }
    }
}
