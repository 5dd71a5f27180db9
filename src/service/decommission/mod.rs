//! Executing a ready retirement (issue 6, AISVS 3.6.2 to 3.6.4). The steps, in order:
//!
//! 1. `kill-switch`: the retirement moves to `executing` and its versions are disabled
//!    in the same transaction; from the commit on, every instance refuses their
//!    downloads (410 Gone), since each download reads the switch from the database.
//! 2. `enforcement` (`enforcement.rs`): waits until every enforcement point told of the
//!    kill switch has confirmed, or been escalated for not confirming in time.
//! 3. `derived-data` (`purges.rs`): every derived store among the dependents confirms
//!    its purge, or governance waives it by name; the run waits here until then.
//!    `erasure-approval` (`emergency.rs`): an emergency retirement waits here for a
//!    second actor's approval; any other passes.
//! 4. crypto-erasure (`erasure.rs`): `erase-keys`, `rotate-kek`, `destroy-kek`,
//!    `delete-ciphertext`, `verify-erasure`.
//! 5. `revoke-signatures` (`revocation.rs`).
//! 6. `certificate` (`certificate.rs`): the signed destruction certificate; the
//!    retirement becomes `retired`.
//!
//! Each step is idempotent and recorded (`decommission_steps`) with its time, outcome
//! and what it needs to resume, so a run that dies anywhere is finished by the next one:
//! at start-up (`resume_decommissions`), on each scheduled retirement check, or when
//! governance executes again. A lease on the retirement row keeps a second instance out
//! while one runs the steps.

mod certificate;
mod circuit_breaker;
mod emergency;
mod enforcement;
mod erasure;
mod lift;
mod purges;
pub(super) mod revocation;

pub use certificate::{
    CERTIFICATE_PAYLOAD_TYPE, CertificateView, DESTRUCTION_PREDICATE, may_read_certificates,
    verify_certificate,
};
pub use circuit_breaker::{AlertOutcome, MAX_ALERT_BYTES};
pub use emergency::{EmergencyView, may_approve_erasures, may_pull_kill_switches};
pub use enforcement::{CONFIRMATIONS_PATH, Confirmation, MAX_CONFIRMATION_BYTES};
pub use revocation::{AuditedRevocations, REVOCATIONS_PAYLOAD_TYPE};

use super::{ServiceError, Services};
use crate::audit::{Action, AuditEntry, SubjectType};
use crate::auth::Actor;
use crate::domain::Retirement;
use crate::domain::RetirementId;
use crate::domain::{DecommissionStep, DisabledVersion, Step};
use crate::domain::{LifecycleStatus, ModelName, RetirementState, Role, Version};
use crate::service::authorise::require;
use crate::store::kill_switch as repo;
use crate::store::registry as registry_repo;
use crate::store::retirements as retirement_repo;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// What this instance keeps for decommissioning between calls.
pub(super) struct State {
    /// The allowed kill-switch response time (policy), in milliseconds.
    pub(super) kill_switch_response_ms: u64,
    /// How long enforcement points have to confirm a kill switch.
    pub(super) enforcement_confirm_secs: u64,
    /// The webhook sources whose critical alerts trip the circuit breaker.
    pub(super) circuit_breaker_sources: Vec<String>,
    /// One decommission run at a time in this process (the database lease keeps other
    /// instances out).
    pub(super) gate: tokio::sync::Mutex<()>,
    /// The disabled list's ETag as this instance last saw it: each change, whichever
    /// instance made it, is published here (`run_kill_switch_watch`).
    pub(super) kill_switch: tokio::sync::watch::Sender<String>,
    /// How often the kill-switch watch reads the list (the inventory's poll interval).
    pub(super) kill_switch_poll: std::time::Duration,
    /// The revocations the authenticated audit trail records, read incrementally
    /// (`revocation`), and the signed list last issued from them.
    pub(super) revocations: tokio::sync::Mutex<AuditedRevocations>,
}

impl State {
    pub(super) fn new(settings: &crate::config::Settings) -> Self {
        Self {
            kill_switch_response_ms: settings.retirement.kill_switch_response_ms,
            enforcement_confirm_secs: settings.retirement.enforcement_confirm_secs,
            circuit_breaker_sources: settings.retirement.circuit_breaker_sources.clone(),
            gate: tokio::sync::Mutex::new(()),
            kill_switch: tokio::sync::watch::channel(String::new()).0,
            kill_switch_poll: std::time::Duration::from_millis(
                settings.inventory.poll_interval_ms.max(10),
            ),
            revocations: tokio::sync::Mutex::new(Default::default()),
        }
    }
}

/// How long one instance may hold a retirement's steps before another may take over.
const LEASE: chrono::Duration = chrono::Duration::minutes(10);

/// What the kill-switch step keeps: who pulled it, and how long enforcement took.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct KillSwitchRecord {
    pub by: String,
    pub role: String,
    pub at: chrono::DateTime<chrono::Utc>,
    /// From the request to the commit that made every download refuse.
    pub response_ms: Option<f64>,
    pub allowed_ms: u64,
    /// Set for an emergency retirement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emergency: Option<emergency::EmergencyRecord>,
}

/// What pulling a kill switch did, as its audit record shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Pulled {
    pub disabled: Vec<DisabledVersion>,
    pub enforcement_points_told: Vec<String>,
}

/// Where a decommission run stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Advance {
    /// Every step is done: the retirement is retired and its certificate issued.
    Finished,
    /// A step waits for people (derived-store purges); the reason says for whom.
    Waiting(String),
    /// Another instance holds the lease and is running the steps.
    Busy,
}

impl From<crate::failpoints::Fired> for ServiceError {
    fn from(e: crate::failpoints::Fired) -> Self {
        ServiceError::internal(e)
    }
}

impl crate::service::Decommission<'_> {
    /// Starts (or resumes) executing a ready retirement: its versions stop being served
    /// at once, then the remaining steps run as far as they can. Governance only.
    pub async fn execute_retirement(
        &self,
        actor: &Actor,
        id: RetirementId,
    ) -> Result<(Retirement, Vec<Step>), ServiceError> {
        let started = Instant::now();
        let acting = self.acting_on_retirement(actor, id).await?;
        let actor = &acting;
        require(actor, &[Role::Governance], "execute retirements")?;
        let (retirement, pulled) =
            in_write_tx!(self, |tx| { self.start_execution(tx, actor, id).await })?;
        if pulled {
            // Enforced from the commit on: every download reads the switch.
            let response_ms = started.elapsed().as_secs_f64() * 1000.0;
            self.retirements().wake_delivery();
            if let Err(e) = self.publish_kill_switch().await {
                tracing::warn!(error = %e, "could not publish the kill switch to subscribers");
            }
            self.record_response_time(id, response_ms).await?;
            crate::prometheus::record_kill_switch(started.elapsed());
            self.log_kill_switch(&retirement, actor, response_ms);
            self.retirements().publish_retirement(id, "executing");
        }
        // The later steps run on; one that fails is recorded on its step and resumed
        // by the next run, so the kill switch stands either way.
        match self.advance_decommission(id).await {
            Ok(_) => {}
            Err(e) => {
                tracing::error!(retirement = id.0, error = %e, "decommission stopped; it resumes on the next run")
            }
        }
        let retirement = retirement_repo::find(self.store().reader(), id)
            .await?
            .unwrap_or(retirement);
        let steps = self.decommission_steps(id).await?;
        Ok((retirement, steps))
    }

    /// Inside `tx`: moves a ready retirement to executing and pulls its kill switch, with
    /// their audit records; an executing or retired one is left as it is, since running
    /// it again resumes (every step is idempotent). Whether the switch was pulled now.
    async fn start_execution(
        &self,
        tx: &mut crate::store::WriteTx,
        actor: &Actor,
        id: RetirementId,
    ) -> Result<(Retirement, bool), ServiceError> {
        let now = self.now();
        let before = retirement_repo::find(tx.conn(), id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no retirement {id}")))?;
        let after = match before.state {
            RetirementState::Ready => before.moved_to(RetirementState::Executing, now, None)?,
            RetirementState::Executing | RetirementState::Retired => return Ok((before, false)),
            other => {
                return Err(ServiceError::Conflict(format!(
                    "retirement {id} is {other}; only a ready retirement is executed \
                     (every dependent's notice run out and acknowledged, quiet or overridden)"
                )));
            }
        };
        retirement_repo::update(tx.conn(), &after).await?;
        let pulled = self.pull_kill_switch(tx, &after, actor, now, None).await?;
        let audits = vec![
            AuditEntry::new(
                actor.audit_identity(),
                Action::RetirementExecutionStarted,
                SubjectType::Retirement,
                id.to_string(),
            )
            .before(&before)
            .after(&after),
            AuditEntry::new(
                actor.audit_identity(),
                Action::VersionsDisabled,
                SubjectType::Retirement,
                id.to_string(),
            )
            .after(&pulled),
        ];
        tx.append_audits(now, audits, self.service_key().audit_mac_key())
            .await?;
        Ok((after, true))
    }

    /// The kill switch's response time against the policy, in the log.
    fn log_kill_switch(&self, retirement: &Retirement, actor: &Actor, response_ms: f64) {
        let allowed_ms = self.inner.decommission.kill_switch_response_ms;
        if response_ms > allowed_ms as f64 {
            tracing::error!(
                retirement = retirement.id.0,
                response_ms,
                allowed_ms,
                "kill switch slower than the policy allows"
            );
        }
        tracing::warn!(retirement = retirement.id.0, model = %retirement.model, actor = %actor.name, response_ms, "retirement executing: versions disabled");
    }

    /// Pulls the kill switch of `retirement`, which has just become executing: its
    /// versions disabled (some may be already), the step recorded with who pulled it, and
    /// the enforcement points told. Inside the caller's transaction.
    pub(super) async fn pull_kill_switch(
        &self,
        tx: &mut crate::store::WriteTx,
        retirement: &Retirement,
        actor: &Actor,
        now: chrono::DateTime<chrono::Utc>,
        emergency: Option<emergency::EmergencyRecord>,
    ) -> Result<Pulled, ServiceError> {
        let disabled = self.disable_versions(tx, retirement, actor, now).await?;
        let record = KillSwitchRecord {
            by: actor.name.clone(),
            role: actor.role.to_string(),
            at: now,
            response_ms: None,
            allowed_ms: self.inner.decommission.kill_switch_response_ms,
            emergency,
        };
        let outcome = format!(
            "{}{} version(s) disabled: {}",
            if record.emergency.is_some() {
                "emergency: "
            } else {
                ""
            },
            disabled.len(),
            disabled
                .iter()
                .map(|d| d.version.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        repo::finish_step(
            tx.conn(),
            retirement.id,
            DecommissionStep::KillSwitch,
            now,
            now,
            &outcome,
            Some(&to_json(&record)),
        )
        .await?;
        let told = self.tell_enforcement_points(tx, retirement, now).await?;
        Ok(Pulled {
            enforcement_points_told: told.into_iter().map(|c| c.point).collect(),
            disabled,
        })
    }

    /// Writes the versions of `retirement` into the kill switch; returns those newly
    /// disabled.
    async fn disable_versions(
        &self,
        tx: &mut crate::store::WriteTx,
        retirement: &Retirement,
        actor: &Actor,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<DisabledVersion>, ServiceError> {
        let mut disabled = Vec::new();
        let model_id = retirement.model_id;
        let mut found = Vec::new();
        for &v in &retirement.affected_versions {
            if let Some((version_id, registered)) =
                registry_repo::find_version(tx.conn(), model_id, &retirement.model, v).await?
            {
                disabled.push(DisabledVersion {
                    version_id: version_id.0,
                    model: retirement.model.to_string(),
                    version: v.to_string(),
                    retirement_id: Some(retirement.id),
                    disabled_at: now,
                    disabled_by: actor.name.clone(),
                    reason: retirement.reason.clone(),
                    prior_status: Some(registered.status.as_str().to_owned()),
                });
                found.push((version_id, registered));
            }
        }
        let mut added = Vec::new();
        for (d, (version_id, registered)) in disabled.into_iter().zip(found) {
            if repo::disable(tx.conn(), std::slice::from_ref(&d)).await? > 0 {
                // Retirement owns `retired`: the registry says so from this commit on.
                self.registry()
                    .move_for_retirement(
                        tx,
                        actor,
                        (version_id, &registered),
                        LifecycleStatus::Retired,
                        retirement.id,
                        now,
                    )
                    .await?;
                added.push(d);
            }
        }
        Ok(added)
    }

    async fn record_response_time(
        &self,
        id: RetirementId,
        response_ms: f64,
    ) -> Result<(), ServiceError> {
        let db = self.store().reader();
        let Some(step) = self.step(id, DecommissionStep::KillSwitch).await? else {
            return Ok(());
        };
        let Some(mut record) = step
            .data
            .as_deref()
            .and_then(|d| serde_json::from_str::<KillSwitchRecord>(d).ok())
        else {
            return Ok(());
        };
        record.response_ms = Some((response_ms * 1000.0).round() / 1000.0);
        let outcome = step.outcome.unwrap_or_default();
        repo::finish_step(
            db,
            id,
            DecommissionStep::KillSwitch,
            step.started_at,
            step.finished_at.unwrap_or(step.started_at),
            &outcome,
            Some(&to_json(&record)),
        )
        .await?;
        Ok(())
    }

    /// Runs the steps of executing retirement `id` that are not done yet, in order, as
    /// far as they go.
    pub async fn advance_decommission(&self, id: RetirementId) -> Result<Advance, ServiceError> {
        let _gate = self.inner.decommission.gate.lock().await;
        if !self.take_lease(id).await? {
            return Ok(Advance::Busy);
        }
        let result = self.run_steps(id).await;
        retirement_repo::release_lease(self.store().reader(), id, &self.inner.instance).await?;
        result
    }

    /// Takes or renews this instance's lease on retirement `id`'s steps. A lease left
    /// by a process of this host that has died is taken over at once; one of another
    /// host only when it runs out.
    async fn take_lease(&self, id: RetirementId) -> Result<bool, ServiceError> {
        let db = self.store().reader();
        let holder = self.inner.instance.as_str();
        let now = self.now();
        let dead = retirement_repo::lease(db, id)
            .await?
            .map(|(h, _)| h)
            .filter(|h| h != holder && super::holder_has_died(h));
        if let Some(dead) = &dead {
            tracing::warn!(retirement = id.0, holder = %dead, "taking over the decommission of a process that died");
        }
        Ok(retirement_repo::take_lease(db, id, holder, now, now + LEASE, dead.as_deref()).await?)
    }

    async fn run_steps(&self, id: RetirementId) -> Result<Advance, ServiceError> {
        let retirement = self.retirements().retirement(id).await?;
        match retirement.state {
            RetirementState::Executing => {}
            RetirementState::Retired => return Ok(Advance::Finished),
            other => {
                return Err(ServiceError::Conflict(format!(
                    "retirement {id} is {other}, not executing"
                )));
            }
        }
        let done: Vec<DecommissionStep> = self
            .decommission_steps(id)
            .await?
            .into_iter()
            .filter(|s| s.finished_at.is_some())
            .map(|s| s.step)
            .collect();
        for &step in DecommissionStep::ALL.iter().skip(1) {
            if done.contains(&step) {
                continue;
            }
            // Renewed at every step, so a long execution keeps it.
            if !self.take_lease(id).await? {
                return Ok(Advance::Busy);
            }
            // When it first started; its end is recorded when it finishes.
            repo::start_step(self.store().reader(), id, step, self.now(), None).await?;
            let ran = async {
                self.failpoints().hit(&format!("before:{step}"))?;
                match step {
                    DecommissionStep::Enforcement => self.step_enforcement(&retirement).await,
                    DecommissionStep::DerivedData => self.step_derived_data(&retirement).await,
                    DecommissionStep::ErasureApproval => {
                        self.step_erasure_approval(&retirement).await
                    }
                    DecommissionStep::EraseKeys => self.step_erase_keys(&retirement).await,
                    DecommissionStep::RotateKek => self.step_rotate_kek(&retirement).await,
                    DecommissionStep::DestroyKek => self.step_destroy_kek(&retirement).await,
                    DecommissionStep::DeleteCiphertext => {
                        self.step_delete_ciphertext(&retirement).await
                    }
                    DecommissionStep::VerifyErasure => self.step_verify_erasure(&retirement).await,
                    DecommissionStep::RevokeSignatures => {
                        self.step_revoke_signatures(&retirement).await
                    }
                    DecommissionStep::Certificate => self.step_certificate(&retirement).await,
                    // Pulled in the execution's own transaction, before this loop.
                    DecommissionStep::KillSwitch => Ok(None),
                }
            }
            .await;
            match ran {
                Ok(None) => {}
                Ok(Some(waiting)) => return Ok(Advance::Waiting(waiting)),
                Err(e) => {
                    let why = failure_text(&e);
                    tracing::error!(retirement = id.0, %step, error = %why, "decommission step failed");
                    repo::note_step_failure(
                        self.store().reader(),
                        id,
                        step,
                        self.now(),
                        &format!("failed: {why}"),
                    )
                    .await?;
                    return Err(e);
                }
            }
        }
        Ok(Advance::Finished)
    }

    /// Resumes every executing retirement: at start-up and on each scheduled check.
    /// Returns how many finished.
    pub async fn resume_decommissions(&self) -> Result<usize, ServiceError> {
        let executing = retirement_repo::list(
            self.store().reader(),
            &[RetirementState::Executing],
            None,
            None,
            super::MAX_RETIREMENT_LIST,
        )
        .await?;
        let mut finished = 0;
        for r in executing {
            match self.advance_decommission(r.id).await {
                Ok(Advance::Finished) => finished += 1,
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(retirement = r.id.0, error = %e, "resuming a decommission failed")
                }
            }
        }
        Ok(finished)
    }

    /// The recorded steps of executing retirement `id`, in the order they run.
    pub async fn decommission_steps(&self, id: RetirementId) -> Result<Vec<Step>, ServiceError> {
        let mut steps = repo::steps(self.store().reader(), id).await?;
        steps.sort_by_key(|s| s.step);
        Ok(steps)
    }

    pub(crate) async fn step(
        &self,
        id: RetirementId,
        name: DecommissionStep,
    ) -> Result<Option<Step>, ServiceError> {
        Ok(self
            .decommission_steps(id)
            .await?
            .into_iter()
            .find(|s| s.step == name))
    }

    /// Whether the kill switch has disabled `model@version`.
    pub async fn disabled_version(
        &self,
        model: &ModelName,
        version: Version,
    ) -> Result<Option<DisabledVersion>, ServiceError> {
        Ok(repo::find(self.store().reader(), model.as_str(), &version.to_string()).await?)
    }

    /// The retirement of `model@version`: the one whose kill switch retired it, else
    /// the pending one covering it.
    pub async fn retirement_of_version(
        &self,
        model: &str,
        version: &str,
    ) -> Result<Option<Retirement>, ServiceError> {
        let model = ModelName::parse(model)?;
        let version = Version::parse(version)?;
        if let Some(id) = self
            .disabled_version(&model, version)
            .await?
            .and_then(|d| d.retirement_id)
        {
            return Ok(Some(self.retirements().retirement(id).await?));
        }
        self.retirements()
            .pending_retirement_covering(&model, version)
            .await
    }

    /// Every disabled version: what enforcement points poll.
    pub async fn disabled_versions(&self) -> Result<Vec<DisabledVersion>, ServiceError> {
        Ok(repo::list(self.store().reader()).await?)
    }
}

/// What a failed step records: the error and, for internal ones, their cause (operator
/// facing; causes name keys and blobs by id only, never key material).
fn failure_text(e: &ServiceError) -> String {
    match e {
        ServiceError::Internal(source) => source.to_string(),
        other => other.to_string(),
    }
}

fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

/// The versions the kill switch disabled for `retirement`.
async fn disabled_by(
    services: &Services,
    retirement: &Retirement,
) -> Result<Vec<DisabledVersion>, ServiceError> {
    Ok(repo::of_retirement(services.store().reader(), retirement.id).await?)
}
