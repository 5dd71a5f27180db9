//! Use cases. Each public method is one change or one question: it authorizes the
//! actor, parses its input into domain types, runs in one write transaction and appends
//! its audit record inside it.
//!
//! Architecture invariant: GraphQL resolvers, REST handlers, the CLI and the scheduler
//! call `service`, never `store`.

/// Runs `$body` (an async block's contents, with `$tx: &mut WriteTx`) in a write
/// transaction and commits it. When another process or instance appended to the audit
/// chain first, or won a race to a unique name, the transaction is rolled back and the
/// body runs again on fresh data, a few times at most; see `store` for why this keeps
/// every write serialisable. A macro rather than a function taking an async closure:
/// such closures cannot yet prove `Send` for the borrows they capture.
macro_rules! in_write_tx {
    ($services:expr, |$tx:ident| $body:block) => {
        in_write_tx!($services, begin_write, |$tx| $body)
    };
    // `$begin` names the `Store` method that begins each attempt's transaction.
    ($services:expr, $begin:ident, |$tx:ident| $body:block) => {{
        let services = $services;
        let mut attempt = 1u32;
        loop {
            let mut owned = match services.store().$begin().await {
                Ok(tx) => tx,
                Err(e) => break Err($crate::service::ServiceError::from(e)),
            };
            let outcome: Result<_, $crate::service::ServiceError> = {
                let $tx = &mut owned;
                async { $body }.await
            };
            if let Some(result) = services.settle(owned, outcome, &mut attempt).await {
                break result;
            }
        }
    }};
}

mod artifacts;
mod as_of;
mod audit_log;
mod authorise;
mod calendar_feeds;
mod catalogue;
mod compliance;
mod console_sessions;
mod decommission;
mod delivery;
mod emergency_deployments;
mod error;
mod grants;
mod handles;
mod health;
mod heartbeat;
mod inventory;
mod policies;
mod refusals;
mod registrations;
mod registry;
mod restore;
mod retirements;
mod rollback;
mod scans;
mod signatures;
mod signers;
mod tokens;
mod transition_gate;
mod validations;
mod wake;

pub use artifacts::{ArtifactInfo, MAX_ARTIFACT_BYTES};
pub use as_of::{ArtifactAsOf, ConsumerAsOf, ModelAsOf, SignatureAsOf, VersionAsOf};
pub use audit_log::{AuditPage, AuditQuery, VerifyOutcome, may_read_audit, read_checkpoint_lines};
pub use calendar_feeds::{CalendarFeed, NewCalendarFeed};
pub use catalogue::ModelSearch;
pub use compliance::{
    ComplianceReport, REPORT_PAYLOAD_TYPE, REPORT_ROLES, SignedReport,
    StatusChange as ReportedStatusChange, verify_report,
};
pub use console_sessions::{ConsoleSession, SessionSecret, csrf_matches, csrf_token};
pub use decommission::{
    Advance, AlertOutcome, CERTIFICATE_PAYLOAD_TYPE, CONFIRMATIONS_PATH, CertificateView,
    Confirmation as EnforcementConfirmation, DESTRUCTION_PREDICATE, EmergencyView, MAX_ALERT_BYTES,
    MAX_CONFIRMATION_BYTES, REVOCATIONS_PAYLOAD_TYPE, may_approve_erasures, may_pull_kill_switches,
    may_read_certificates, verify_certificate,
};
pub use delivery::DeliveryReport;
pub use error::ServiceError;
pub use grants::GrantInput;
pub use handles::{Admin, Artifacts, Audit, Decommission, Inventory, Registry, Retirements};
pub use health::Readiness;
pub use inventory::{
    Ask, ConsumerInput, DeclaredConsumer, EdgeSpec, EdgeView, InventoryEvent, load_graph,
};
pub use policies::{Approval, PolicyInput, PromotionRequest};
pub use refusals::Refusal;
pub use registrations::{ReceiveError, Received, WebhookSourceInfo};
pub use registry::{ModelInput, ModelPatch, VersionInput};
pub use retirements::{
    BrownoutEntry, CheckReport, DailyBrownoutsInput, LeverInput, MAX_LIST as MAX_RETIREMENT_LIST,
    MAX_PROPOSALS as MAX_RETENTION_PROPOSALS, PreviewDependent, Requester, RetentionReport,
    RetirementEvent, RetirementInput, RetirementPreview, brownout_document,
    may_act_for as may_act_for_consumer, may_govern as may_govern_retirements,
};
pub use rollback::ROLLBACK_ROLES;
pub use scans::{RejectedFile, ScanProgress, ScanReport};

use crate::attest::ServiceKey;
use crate::clock::Clock;
use crate::store::{Store, WriteTx};
use crate::vault::Vault;
use std::path::PathBuf;
use std::sync::Arc;

/// Everything a use case needs, cheap to clone.
#[derive(Clone)]
pub struct Services {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    clock: Arc<dyn Clock>,
    service_key: ServiceKey,
    /// Where signed checkpoints are appended outside the database.
    checkpoint_file: PathBuf,
    /// Absent in commands that only read (`sunset audit verify`), so they create no keys.
    vault: Option<Vault>,
    /// The graph in memory and how it follows the database.
    inventory: inventory::Inventory,
    scan: crate::config::ScanSettings,
    /// When this instance last pruned the inventory change sequence (Unix seconds).
    changes_pruned_at: std::sync::atomic::AtomicI64,
    registrations: registrations::State,
    retirements: retirements::State,
    decommission: decommission::State,
    /// This instance's name in leases and claimed runs (host and process).
    instance: String,
    /// How long a console session lasts from sign-in.
    console_session: chrono::Duration,
    /// Test-only failure injection (empty unless built with the `failpoints` feature).
    failpoints: crate::failpoints::Failpoints,
    /// Each tier's default model policy.
    policy: crate::config::PolicySettings,
    /// Wake-ups of the followers, from other replicas' notifications.
    wakers: wake::Wakers,
}

impl Services {
    /// The use cases over `store`, configured by `settings` (whose retirement policy
    /// must have been checked: an unusable one falls back to the defaults).
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        service_key: ServiceKey,
        vault: Option<Vault>,
        settings: &crate::config::Settings,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                clock,
                service_key,
                checkpoint_file: settings.checkpoint_file(),
                vault,
                inventory: inventory::Inventory::new(settings.inventory.clone()),
                scan: settings.scan.clone(),
                changes_pruned_at: std::sync::atomic::AtomicI64::new(0),
                registrations: registrations::State::default(),
                retirements: retirements::State::new(settings),
                decommission: decommission::State::new(settings),
                instance: service_instance_name(),
                console_session: chrono::Duration::hours(
                    i64::try_from(settings.http.console_session_hours).unwrap_or(8),
                ),
                failpoints: crate::failpoints::Failpoints::from_env(),
                policy: settings.policy.clone(),
                wakers: wake::Wakers::default(),
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.inner.clock.now()
    }

    pub(crate) fn console_session_lifetime(&self) -> chrono::Duration {
        self.inner.console_session
    }

    pub fn service_key(&self) -> &ServiceKey {
        &self.inner.service_key
    }

    /// The failure injection points of this instance (armed only in test builds).
    pub fn failpoints(&self) -> &crate::failpoints::Failpoints {
        &self.inner.failpoints
    }

    /// The vault, for benchmarks that generate data below the use cases (the erasure
    /// benchmark writes 100,000 wrapped keys directly). Not an API.
    #[doc(hidden)]
    pub fn vault_for_benchmarks(&self) -> Result<&Vault, ServiceError> {
        self.vault()
    }

    pub(crate) fn vault(&self) -> Result<&Vault, ServiceError> {
        self.inner.vault.as_ref().ok_or_else(|| {
            ServiceError::internal(std::io::Error::other(
                "the artifact vault is not open in this command",
            ))
        })
    }

    /// Commits `tx` when `outcome` is a success, and says whether to run the change
    /// again: `None` when another writer went first and attempts remain. Used by
    /// [`in_write_tx!`].
    pub(crate) async fn settle<T>(
        &self,
        tx: WriteTx,
        outcome: Result<T, ServiceError>,
        attempt: &mut u32,
    ) -> Option<Result<T, ServiceError>> {
        let outcome = match outcome {
            Ok(value) => tx
                .commit()
                .await
                .map(|()| value)
                .map_err(ServiceError::from),
            // Dropping the transaction rolls it back.
            Err(e) => Err(e),
        };
        (!again_after(&outcome, attempt)).then_some(outcome)
    }

    /// Seals `entry` onto the audit chain inside `tx`, stamped `at`.
    pub(crate) async fn append_audit(
        &self,
        tx: &mut WriteTx,
        at: chrono::DateTime<chrono::Utc>,
        entry: crate::audit::AuditEntry,
    ) -> Result<(), ServiceError> {
        tx.append_audit(at, entry, self.service_key().audit_mac_key())
            .await?;
        Ok(())
    }
}

impl Services {
    /// Claims the run of periodic `job` scheduled at `tick` for this instance; false when
    /// another instance claimed it first. Claims a week older are forgotten meanwhile: a
    /// claim matters only while its tick is current, and a job ticking every minute would
    /// otherwise add 1,440 rows a day for ever.
    pub(crate) async fn claim_tick(
        &self,
        job: &str,
        tick: chrono::DateTime<chrono::Utc>,
        instance: &str,
    ) -> Result<bool, ServiceError> {
        let db = self.store().reader();
        if !crate::store::jobs::claim(db, job, tick, instance, self.now()).await? {
            return Ok(false);
        }
        crate::store::jobs::prune(db, job, tick - chrono::Duration::days(7)).await?;
        Ok(true)
    }
}

/// This instance's name in leases and claimed runs: host and process.
pub fn instance_name() -> String {
    format!("{}:{}", host_name(), std::process::id())
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into())
}

/// One service's name in leases and claims: its process ([`instance_name`]) and a part
/// of its own, so two services in one process (replicas in a test, or an embedding)
/// never take each other's leases for their own.
fn service_instance_name() -> String {
    format!("{}/{:08x}", instance_name(), rand::random::<u32>())
}

/// Whether `holder` (an [`instance_name`], maybe with its service part) names a process
/// of this host that no longer runs. False for other hosts, which cannot be seen from here.
fn holder_has_died(holder: &str) -> bool {
    let Some((host, rest)) = holder.rsplit_once(':') else {
        return false;
    };
    let pid = rest.split('/').next().unwrap_or_default();
    host == host_name()
        && pid.parse::<u32>().is_ok()
        && !std::path::Path::new("/proc").join(pid).exists()
}

/// Admins only: tokens, signers, webhook sources.
fn require_admin(actor: &crate::auth::Actor, what: &str) -> Result<(), ServiceError> {
    authorise::require(actor, &[crate::domain::Role::Admin], what)
}

/// How often a change is tried when other writers keep going first.
pub(crate) const WRITE_ATTEMPTS: u32 = 8;

/// Whether a write transaction that ended in `outcome` runs again: another writer went
/// first and attempts remain (counted in `attempt`). The one retry rule of every write
/// path: `in_write_tx!` and the registration group commit.
pub(crate) fn again_after<T>(outcome: &Result<T, ServiceError>, attempt: &mut u32) -> bool {
    if matches!(outcome, Err(ServiceError::Contended(_))) && *attempt < WRITE_ATTEMPTS {
        tracing::debug!(
            attempt = *attempt,
            "another writer went first; redoing the change"
        );
        *attempt += 1;
        true
    } else {
        false
    }
}

/// Whether a periodic job last run at `last_run` (Unix seconds) is due at `now`, at most
/// every `every` seconds; if so, claims this run, so that of several tasks of this
/// instance asking at once one runs it.
fn claim_due(last_run: &std::sync::atomic::AtomicI64, now: i64, every: i64) -> bool {
    use std::sync::atomic::Ordering::Relaxed;
    let last = last_run.load(Relaxed);
    now - last >= every
        && last_run
            .compare_exchange(last, now, Relaxed, Relaxed)
            .is_ok()
}
