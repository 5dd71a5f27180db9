//! Compliance reports: what the audit trail says happened to one model in a period,
//! with the chain's verification and the signed checkpoint it ends at, signed by the
//! service key as a DSSE envelope so a regulator can verify it offline
//! (`sunset report verify`). Built only from records that authenticate: a broken chain
//! refuses the report rather than certify what it cannot vouch for.

use super::ServiceError;
use crate::attest::dsse;
use crate::audit::{Action, AuditEntry, Checkpoint, SealedRecord, SubjectType};
use crate::auth::Actor;
use crate::domain::{ModelName, Retirement, Role};
use crate::store::audit::{self as audit_repo, ModelSubjects, RecordFilter};
use chrono::{DateTime, Timelike, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Digest;
use std::collections::{BTreeMap, BTreeSet};

/// The DSSE payload type of a signed report.
pub const REPORT_PAYLOAD_TYPE: &str = "application/vnd.sunset.compliance-report+json";
/// The report's `_type`.
pub const REPORT_TYPE: &str = "https://sunset.invalid/compliance-report/v1";
/// The most records one report rests on: a longer period is refused with a hint.
pub const MAX_REPORT_RECORDS: usize = 100_000;
const PAGE: u64 = 500;

/// Who may ask for a report: auditors, and governance (who answer to regulators).
pub const REPORT_ROLES: &[Role] = &[Role::Auditor, Role::Governance];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComplianceReport {
    #[serde(rename = "_type")]
    pub report_type: String,
    pub model: ReportModel,
    pub period: Period,
    pub generated_at: DateTime<Utc>,
    pub generated_by: String,
    pub events: Events,
    pub actors: Vec<ActorSummary>,
    pub versions_affected: Vec<String>,
    /// Every lifecycle move, promotions and overrides of failed validations included.
    pub status_changes: Vec<StatusChange>,
    pub rollbacks: Vec<RecordRef>,
    pub retirements: Vec<RetirementSummary>,
    /// Integrity refusals: downloads, rollbacks and signed documents refused.
    pub integrity_refusals: Vec<RecordRef>,
    pub audit_chain: ChainState,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportModel {
    pub name: String,
    pub owner_team: String,
    pub tier: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Period {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Events {
    pub total: usize,
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    pub by_type: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActorSummary {
    pub name: String,
    pub role: String,
    pub events: usize,
    pub client_ips: BTreeSet<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusChange {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub version: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub by: String,
    pub justification: Option<String>,
    pub overridden_validations: Vec<String>,
    pub retirement: Option<Value>,
}

impl StatusChange {
    pub fn is_promotion(&self) -> bool {
        self.to.as_deref() == Some("production")
    }
}

/// One audit record, by reference, with what it said after.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordRef {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub action: String,
    pub subject: String,
    pub by: String,
    pub detail: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetirementSummary {
    pub id: String,
    pub versions: Vec<String>,
    pub reason: String,
    pub state: String,
    pub effective_at: DateTime<Utc>,
    pub scheduled_by: String,
    /// Notices by delivery state (delivered, pending, dead, …).
    pub notices: BTreeMap<String, u64>,
    pub certificate: Option<CertificateRef>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateRef {
    pub sha256: String,
    pub issued_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainState {
    /// The whole chain verified from genesis (hashes, MACs, every checkpoint).
    pub verified: bool,
    pub records: i64,
    pub head_hash: String,
    /// The newest signed checkpoint: keep it to prove later that nothing up to it changed.
    pub checkpoint: Option<Checkpoint>,
}

/// A report, its canonical JSON, and that JSON signed.
pub struct SignedReport {
    pub report: ComplianceReport,
    pub json: String,
    pub envelope: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Issued<'a> {
    period: &'a Period,
    events: usize,
    payload_sha256: String,
}

impl super::Audit<'_> {
    /// The report on `model` for `[from, to]`: by default from the model's registration
    /// to now. Parse, authorise, verify the chain, gather, sign, record the read.
    pub async fn compliance_report(
        &self,
        actor: &Actor,
        model: &str,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<SignedReport, ServiceError> {
        let name = ModelName::parse(model)?;
        let acting = self.acting_on(actor, &name).await?;
        let actor = &acting;
        super::authorise::require(actor, REPORT_ROLES, "read compliance reports")?;
        let db = self.store().reader();
        let (model_id, registered) = crate::store::registry::find_model(db, &name)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no model named {name}")))?;
        let period = period_of(from, to, registered.created_at, self.now())?;
        let chain = self.verified_chain(actor, &name).await?;
        let retirements = crate::store::retirements::of_model(db, model_id).await?;
        let records = self.records_about(&name, &retirements, &period).await?;
        let report = ComplianceReport {
            report_type: REPORT_TYPE.to_owned(),
            model: ReportModel {
                name: name.to_string(),
                owner_team: registered.owner_team.to_string(),
                tier: registered.tier.to_string(),
            },
            generated_at: self.now(),
            generated_by: actor.name.clone(),
            events: events_of(&records),
            actors: actors_of(&records),
            versions_affected: versions_of(&name, &records),
            status_changes: records.iter().filter_map(status_change).collect(),
            rollbacks: refs_of(&records, &[Action::ModelRolledBack]),
            retirements: self.retirements_in(&retirements, &records).await?,
            integrity_refusals: refs_of(
                &records,
                &[
                    Action::IntegrityRefused,
                    Action::ArtifactDownloadRefused,
                    Action::RollbackRefused,
                ],
            ),
            audit_chain: chain,
            period,
        };
        self.sign_and_record(actor, report).await
    }

    /// Verifies the chain from genesis and signs a checkpoint of its head. A broken
    /// chain is recorded as an integrity refusal and refuses the report.
    async fn verified_chain(
        &self,
        actor: &Actor,
        model: &ModelName,
    ) -> Result<ChainState, ServiceError> {
        let verified = match self.verify_audit_chain(Vec::new()).await? {
            Ok(v) => v,
            Err(broken) => {
                let message = format!(
                    "the audit chain does not verify ({broken}); no compliance report is signed over it: run `sunset audit verify`"
                );
                let entry = AuditEntry::new(
                    actor.audit_identity(),
                    Action::IntegrityRefused,
                    SubjectType::Model,
                    model.as_str(),
                )
                .after(&serde_json::json!({ "document": "compliance report", "reason": message }));
                in_write_tx!(self, |tx| {
                    self.append_audit(tx, self.now(), entry.clone()).await
                })?;
                return Err(ServiceError::Integrity(message));
            }
        };
        self.sign_audit_checkpoint_if_moved().await?;
        let checkpoint = audit_repo::checkpoints(self.store().reader())
            .await?
            .into_iter()
            .max_by_key(|c| c.seq);
        Ok(ChainState {
            verified: true,
            records: verified.records,
            head_hash: verified.head_hash,
            checkpoint,
        })
    }

    /// The period's records about the model, each authenticated, at most
    /// [`MAX_REPORT_RECORDS`].
    async fn records_about(
        &self,
        model: &ModelName,
        retirements: &[Retirement],
        period: &Period,
    ) -> Result<Vec<SealedRecord>, ServiceError> {
        let filter = RecordFilter {
            about_model: Some(ModelSubjects {
                model: model.to_string(),
                retirements: retirements.iter().map(|r| r.id.to_string()).collect(),
                inventory_links: false,
            }),
            from: Some(period.from),
            // Both ends inclusive: a record written at the very instant of the report
            // (or of `to`) is in it.
            until: Some(period.to + chrono::Duration::microseconds(1)),
            ..Default::default()
        };
        let key = self.service_key().audit_mac_key();
        let (mut found, mut after) = (Vec::new(), 0);
        loop {
            let page =
                audit_repo::find_records(self.store().reader(), &filter, after, PAGE).await?;
            if let Some(bad) = page.iter().find(|r| !r.authenticates(key)) {
                return Err(ServiceError::Integrity(format!(
                    "audit record {} does not authenticate; run `sunset audit verify`",
                    bad.seq
                )));
            }
            let done = (page.len() as u64) < PAGE;
            after = page.last().map_or(after, |r| r.seq);
            found.extend(page);
            if found.len() > MAX_REPORT_RECORDS {
                return Err(ServiceError::Conflict(format!(
                    "the period holds more than {MAX_REPORT_RECORDS} audit records about {model}; ask for a shorter period (from, to)"
                )));
            }
            if done {
                return Ok(found);
            }
        }
    }

    /// The model's retirements that the period's records mention, as they stand now.
    async fn retirements_in(
        &self,
        retirements: &[Retirement],
        records: &[SealedRecord],
    ) -> Result<Vec<RetirementSummary>, ServiceError> {
        let mentioned: BTreeSet<&str> = records
            .iter()
            .filter(|r| r.subject_type == SubjectType::Retirement.as_str())
            .map(|r| r.subject.as_str())
            .collect();
        let db = self.store().reader();
        let mut out = Vec::new();
        for r in retirements {
            let id = r.id.to_string();
            if !mentioned.contains(id.as_str()) {
                continue;
            }
            let notices = crate::store::notices::count_by_state(db, r.id)
                .await?
                .into_iter()
                .map(|(state, n)| (state.as_str().to_owned(), n))
                .collect();
            let certificate = crate::store::certificates::of_retirement(db, r.id)
                .await?
                .map(|c| CertificateRef {
                    sha256: c.sha256,
                    issued_at: c.issued_at,
                });
            out.push(RetirementSummary {
                versions: r
                    .affected_versions
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                reason: r.reason.clone(),
                state: r.state.as_str().to_owned(),
                effective_at: r.effective_at,
                scheduled_by: r.created_by.clone(),
                notices,
                certificate,
                id,
            });
        }
        Ok(out)
    }

    /// Signs the report and records that it was issued, to whom, over which period.
    async fn sign_and_record(
        &self,
        actor: &Actor,
        report: ComplianceReport,
    ) -> Result<SignedReport, ServiceError> {
        let json = serde_json::to_string_pretty(&report).map_err(ServiceError::internal)?;
        let envelope = dsse::sign(
            self.service_key().signing_key(),
            REPORT_PAYLOAD_TYPE,
            json.as_bytes(),
        );
        let envelope = serde_json::to_string(&envelope).map_err(ServiceError::internal)?;
        let issued = Issued {
            period: &report.period,
            events: report.events.total,
            payload_sha256: hex::encode(sha2::Sha256::digest(json.as_bytes())),
        };
        let entry = AuditEntry::new(
            actor.audit_identity(),
            Action::ComplianceReportIssued,
            SubjectType::Model,
            report.model.name.as_str(),
        )
        .after(&issued);
        in_write_tx!(self, |tx| {
            self.append_audit(tx, self.now(), entry.clone()).await
        })?;
        Ok(SignedReport {
            report,
            json,
            envelope,
        })
    }
}

fn period_of(
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    registered: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Period, ServiceError> {
    // Audit times are kept to the microsecond, a model's registration may be finer: from
    // the start of its second, so the registration's own record is inside.
    let registered = registered.with_nanosecond(0).unwrap_or(registered);
    let period = Period {
        from: from.unwrap_or(registered),
        to: to.unwrap_or(now),
    };
    if period.from > period.to {
        return Err(crate::domain::ParseError::new(
            "from",
            format!(
                "must not be after to ({} is after {})",
                period.from.to_rfc3339(),
                period.to.to_rfc3339()
            ),
        )
        .into());
    }
    Ok(period)
}

fn events_of(records: &[SealedRecord]) -> Events {
    let mut by_type = BTreeMap::new();
    for r in records {
        *by_type.entry(r.action.clone()).or_insert(0) += 1;
    }
    Events {
        total: records.len(),
        first_seq: records.first().map(|r| r.seq),
        last_seq: records.last().map(|r| r.seq),
        by_type,
    }
}

fn actors_of(records: &[SealedRecord]) -> Vec<ActorSummary> {
    let mut by_actor: BTreeMap<(&str, &str), ActorSummary> = BTreeMap::new();
    for r in records {
        let summary = by_actor
            .entry((&r.actor, &r.actor_role))
            .or_insert_with(|| ActorSummary {
                name: r.actor.clone(),
                role: r.actor_role.clone(),
                events: 0,
                client_ips: BTreeSet::new(),
            });
        summary.events += 1;
        summary.client_ips.extend(r.client_ip.clone());
    }
    by_actor.into_values().collect()
}

/// The versions the records name (`model@version`, `model@version/path`), and those a
/// retirement record lists.
fn versions_of(model: &ModelName, records: &[SealedRecord]) -> Vec<String> {
    let prefix = format!("{model}@");
    let mut versions = BTreeSet::new();
    for r in records {
        if let Some(rest) = r.subject.strip_prefix(&prefix) {
            versions.insert(rest.split('/').next().unwrap_or(rest).to_owned());
        }
        if r.subject_type == SubjectType::Retirement.as_str()
            && let Some(listed) = after_of(r).and_then(|a| a.get("affectedVersions").cloned())
            && let Some(listed) = listed.as_array()
        {
            versions.extend(listed.iter().filter_map(|v| v.as_str().map(str::to_owned)));
        }
    }
    versions.into_iter().collect()
}

fn status_change(r: &SealedRecord) -> Option<StatusChange> {
    if r.action != Action::VersionStatusChanged.as_str() {
        return None;
    }
    let after = after_of(r).unwrap_or(Value::Null);
    let before: Value = r
        .before_state
        .as_deref()
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    Some(StatusChange {
        seq: r.seq,
        at: r.recorded_at,
        version: r.subject.split_once('@').map_or("", |(_, v)| v).to_owned(),
        from: text(&before, "status"),
        to: text(&after, "status"),
        by: r.actor.clone(),
        justification: text(&after, "justification"),
        overridden_validations: after
            .get("overriddenValidations")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        retirement: after.get("retirement").cloned(),
    })
}

fn refs_of(records: &[SealedRecord], actions: &[Action]) -> Vec<RecordRef> {
    records
        .iter()
        .filter(|r| actions.iter().any(|a| a.as_str() == r.action))
        .map(|r| RecordRef {
            seq: r.seq,
            at: r.recorded_at,
            action: r.action.clone(),
            subject: r.subject.clone(),
            by: r.actor.clone(),
            detail: after_of(r),
        })
        .collect()
}

fn after_of(r: &SealedRecord) -> Option<Value> {
    r.after_state
        .as_deref()
        .and_then(|a| serde_json::from_str(a).ok())
}

/// Checks a signed report (DSSE JSON bytes) against the service's public key and
/// returns it: what `sunset report verify` runs, offline.
pub fn verify_report(
    envelope: &[u8],
    key: &ed25519_dalek::VerifyingKey,
) -> Result<ComplianceReport, String> {
    let payload = dsse::verify(envelope, REPORT_PAYLOAD_TYPE, key).map_err(|e| e.to_string())?;
    let report: ComplianceReport = serde_json::from_slice(&payload)
        .map_err(|e| format!("the payload is not a compliance report: {e}"))?;
    if report.report_type != REPORT_TYPE {
        return Err(format!("the payload's _type is not {REPORT_TYPE}"));
    }
    Ok(report)
}
