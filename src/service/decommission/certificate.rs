//! The destruction certificate (AISVS 3.6.2): a DSSE envelope, signed with the service
//! key, holding an in-toto Statement v1. Its subjects are the erased artifacts (name and
//! SHA-256); its predicate carries the fields of a NIST SP 800-88 Rev. 1 certificate of
//! sanitization (Appendix G) adapted to crypto-erasure, and the retirement's own facts.
//!
//! It is issued last, from what the earlier steps recorded, so it never claims more
//! than was done; the `certificates` table holds one per retirement (a unique key), so a
//! resumed run can never issue a second.

use super::KillSwitchRecord;
use super::erasure::{ErasedArtifact, Rotation, Verification};
use crate::attest::dsse;
use crate::audit::{Action, AuditEntry, SubjectType};
use crate::auth::Actor;
use crate::domain::DecommissionStep;
use crate::domain::Retirement;
use crate::domain::RetirementId;
use crate::domain::{RetirementState, Role};
use crate::service::ServiceError;
use crate::store::certificates::{self as repo, StoredCertificate};
use crate::store::kill_switch as steps;
use crate::store::retirements as retirement_repo;
use serde::Serialize;
use serde_json::json;
use sha2::Digest;

pub const CERTIFICATE_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// Our predicate's type. `.invalid` is reserved (RFC 2606): the URI names the format
/// without pretending a web page stands behind it.
pub const DESTRUCTION_PREDICATE: &str = "https://sunset.invalid/destruction-certificate/v1";

/// A certificate as the API shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateView {
    pub id: i64,
    pub retirement_id: i64,
    pub issued_at: chrono::DateTime<chrono::Utc>,
    /// SHA-256 of the envelope's bytes as issued.
    pub sha256: String,
    /// The DSSE envelope (JSON), exactly as issued.
    pub envelope: String,
}

impl From<StoredCertificate> for CertificateView {
    fn from(c: StoredCertificate) -> Self {
        Self {
            id: c.id,
            retirement_id: c.retirement_id.0,
            issued_at: c.issued_at,
            sha256: c.sha256,
            envelope: c.envelope,
        }
    }
}

fn data_of<T: serde::de::DeserializeOwned>(step: &Option<crate::domain::Step>) -> Option<T> {
    step.as_ref()
        .and_then(|s| s.data.as_deref())
        .and_then(|d| serde_json::from_str(d).ok())
}

impl crate::service::Decommission<'_> {
    /// Issues the certificate and marks the retirement retired, in one transaction.
    pub(super) async fn step_certificate(
        &self,
        r: &Retirement,
    ) -> Result<Option<String>, ServiceError> {
        let id = r.id;
        let facts = self.certificate_facts(r).await?;
        in_write_tx!(self, |tx| {
            let now = self.now();
            let before = retirement_repo::find(tx.conn(), id)
                .await?
                .ok_or_else(|| ServiceError::NotFound(format!("no retirement {id}")))?;
            if repo::of_retirement(tx.conn(), id).await?.is_none() {
                let head = crate::store::audit::head(tx.conn()).await?;
                let statement = statement(r, &facts, head, now);
                let payload = serde_json::to_vec(&statement).map_err(ServiceError::internal)?;
                let envelope = dsse::sign(
                    self.service_key().signing_key(),
                    CERTIFICATE_PAYLOAD_TYPE,
                    &payload,
                );
                let text =
                    serde_json::to_string_pretty(&envelope).map_err(ServiceError::internal)?;
                let sha = hex::encode(sha2::Sha256::digest(text.as_bytes()));
                repo::insert(tx.conn(), id, &text, &sha, now).await?;
                let entry = AuditEntry::new(
                    Actor::system().audit_identity(),
                    Action::CertificateIssued,
                    SubjectType::Retirement,
                    id.to_string(),
                )
                .after(&json!({ "sha256": sha, "subjects": facts.erased.len() }));
                self.append_audit(tx, now, entry).await?;
            }
            if before.state != RetirementState::Retired {
                let after = before.moved_to(RetirementState::Retired, now, None)?;
                retirement_repo::update(tx.conn(), &after).await?;
                let entry = AuditEntry::new(
                    Actor::system().audit_identity(),
                    Action::RetirementStateChanged,
                    SubjectType::Retirement,
                    id.to_string(),
                )
                .before(&before)
                .after(&after);
                self.append_audit(tx, now, entry).await?;
            }
            steps::finish_step(
                tx.conn(),
                id,
                DecommissionStep::Certificate,
                now,
                now,
                "issued",
                None,
            )
            .await?;
            Ok(())
        })?;
        tracing::warn!(retirement = id.0, model = %r.model, "retirement complete: destruction certificate issued");
        self.retirements().publish_retirement(id, "retired");
        Ok(None)
    }

    /// What the certificate of `r` states, gathered from its steps' records and checked
    /// against the authenticated audit trail: a step's record edited in the database is
    /// refused (and reported), not signed.
    async fn certificate_facts(&self, r: &Retirement) -> Result<CertificateFacts, ServiceError> {
        let id = r.id;
        let all = self.decommission_steps(id).await?;
        let get = |name: DecommissionStep| all.iter().find(|s| s.step == name).cloned();
        let kill: Option<KillSwitchRecord> = data_of(&get(DecommissionStep::KillSwitch));
        let erased: Vec<ErasedArtifact> =
            data_of(&get(DecommissionStep::EraseKeys)).unwrap_or_default();
        let rotation: Option<Rotation> = data_of(&get(DecommissionStep::RotateKek));
        let verification: Option<Verification> = data_of(&get(DecommissionStep::VerifyErasure));
        let revoked: Option<serde_json::Value> = data_of(&get(DecommissionStep::RevokeSignatures));
        let (Some(kill), Some(rotation), Some(verification), Some(revoked)) =
            (kill, rotation, verification, revoked)
        else {
            return Err(ServiceError::internal(std::io::Error::other(
                "a step before the certificate left no record; the certificate is not issued",
            )));
        };
        let audited_erasure = self.audited_after(Action::KeysErased, id).await?;
        if audited_erasure.as_ref()
            != Some(&serde_json::to_value(&erased).map_err(ServiceError::internal)?)
        {
            return Err(self
                .refuse_signing(
                    "the destruction certificate",
                    &format!("the erased artifacts recorded for retirement {id} differ from its audit record"),
                )
                .await);
        }
        let approval: Option<super::emergency::Approval> =
            data_of(&get(DecommissionStep::ErasureApproval));
        let emergency = kill.emergency.as_ref().map(|e| {
            json!({
                "riskAssessment": e.risk_assessment,
                "trigger": e.trigger,
                "erasureApprovedBy": approval.as_ref().map(|a| &a.by),
                "erasureApprovedAt": approval.as_ref().map(|a| a.at),
            })
        });
        Ok(CertificateFacts {
            approved_by: approver(r, &kill, approval.as_ref()),
            emergency,
            derived_step: get(DecommissionStep::DerivedData).and_then(|s| s.outcome),
            purges: crate::store::purges::list(self.store().reader(), id).await?,
            notice_summary: self.notice_summary(id).await?,
            enforcement: self.enforcement_summary(id).await?,
            service_key_id: crate::audit::checkpoint_key_id(&self.service_key().verifying_key()),
            kill,
            erased,
            rotation,
            verification,
            revoked,
        })
    }

    async fn notice_summary(&self, id: RetirementId) -> Result<serde_json::Value, ServiceError> {
        let dependents = retirement_repo::dependents(self.store().reader(), id).await?;
        let count = |f: &dyn Fn(&crate::domain::Dependent) -> bool| {
            dependents.iter().filter(|d| f(d)).count()
        };
        Ok(json!({
            "dependents": dependents.len(),
            "notified": count(&|d| d.notified_at.is_some()),
            "acknowledged": count(&|d| d.acknowledged_at.is_some()),
            "overridden": count(&|d| d.overridden_at.is_some()),
        }))
    }

    /// Every enforcement point told, named whether or not it confirmed: one that never
    /// did is on record in the certificate.
    async fn enforcement_summary(
        &self,
        id: RetirementId,
    ) -> Result<Vec<serde_json::Value>, ServiceError> {
        Ok(self
            .enforcement_confirmations(id)
            .await?
            .into_iter()
            .map(|c| {
                json!({
                    "point": c.point,
                    "toldAt": c.told_at,
                    "confirmedAt": c.confirmed_at,
                    "via": c.via,
                    "escalatedAt": c.escalated_at,
                    "status": if c.confirmed_at.is_some() { "confirmed" } else { "never confirmed" },
                })
            })
            .collect())
    }

    /// A certificate by id. Auditors only (and the read is recorded by the transport's
    /// guard like any audit read).
    pub async fn certificate(
        &self,
        actor: &Actor,
        id: i64,
    ) -> Result<CertificateView, ServiceError> {
        require_auditor(actor)?;
        let view: CertificateView = repo::find(self.store().reader(), id)
            .await?
            .map(Into::into)
            .ok_or_else(|| ServiceError::NotFound(format!("no certificate {id}")))?;
        self.record_certificate_read(actor, &view).await?;
        Ok(view)
    }

    /// Reading a certificate is recorded, as every read of audit evidence is.
    async fn record_certificate_read(
        &self,
        actor: &Actor,
        view: &CertificateView,
    ) -> Result<(), ServiceError> {
        let entry = AuditEntry::new(
            actor.audit_identity(),
            Action::CertificateRead,
            SubjectType::Retirement,
            view.retirement_id.to_string(),
        )
        .after(&json!({ "certificate": view.id, "sha256": view.sha256 }));
        let now = self.now();
        in_write_tx!(self, |tx| {
            self.append_audit(tx, now, entry.clone()).await
        })
    }

    /// The certificate of retirement `retirement_id`, if issued. Auditors only.
    pub async fn certificate_of(
        &self,
        actor: &Actor,
        retirement_id: RetirementId,
    ) -> Result<Option<CertificateView>, ServiceError> {
        require_auditor(actor)?;
        let view: Option<CertificateView> =
            repo::of_retirement(self.store().reader(), retirement_id)
                .await?
                .map(Into::into);
        if let Some(view) = &view {
            self.record_certificate_read(actor, view).await?;
        }
        Ok(view)
    }

    /// Every certificate, newest first. Auditors only.
    pub async fn certificates(&self, actor: &Actor) -> Result<Vec<CertificateView>, ServiceError> {
        require_auditor(actor)?;
        Ok(repo::list(self.store().reader())
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// The id of retirement `retirement_id`'s certificate, once issued. Any role: the id
    /// says only that one exists; reading it is for auditors.
    pub async fn certificate_id_of(
        &self,
        retirement_id: RetirementId,
    ) -> Result<Option<i64>, ServiceError> {
        Ok(repo::of_retirement(self.store().reader(), retirement_id)
            .await?
            .map(|c| c.id))
    }

    /// How many certificates retirement `id` has (never more than one).
    pub async fn certificate_count(&self, id: RetirementId) -> Result<u64, ServiceError> {
        Ok(repo::count_for(self.store().reader(), id).await?)
    }
}

fn require_auditor(actor: &Actor) -> Result<(), ServiceError> {
    crate::service::authorise::require(actor, CERTIFICATE_READERS, "read destruction certificates")
}

/// The roles that read destruction certificates.
const CERTIFICATE_READERS: &[Role] = &[Role::Auditor];

/// Whether `actor` may read destruction certificates: what a page asks before it offers
/// them (the use cases refuse others all the same).
pub fn may_read_certificates(actor: &Actor) -> bool {
    actor.has_role(CERTIFICATE_READERS)
}

/// What `sunset certificate verify` checks, offline: the envelope verifies under `key`,
/// holds an in-toto Statement v1 of our predicate type with at least one subject.
/// Returns the statement.
pub fn verify_certificate(
    envelope: &[u8],
    key: &ed25519_dalek::VerifyingKey,
) -> Result<serde_json::Value, String> {
    let payload =
        dsse::verify(envelope, CERTIFICATE_PAYLOAD_TYPE, key).map_err(|e| e.to_string())?;
    let statement: serde_json::Value =
        serde_json::from_slice(&payload).map_err(|e| format!("the payload is not JSON: {e}"))?;
    if statement["_type"] != STATEMENT_TYPE {
        return Err(format!(
            "the payload is not an in-toto Statement v1 ({STATEMENT_TYPE})"
        ));
    }
    if statement["predicateType"] != DESTRUCTION_PREDICATE {
        return Err(format!(
            "the predicate is not a destruction certificate ({DESTRUCTION_PREDICATE})"
        ));
    }
    Ok(statement)
}

impl crate::service::Decommission<'_> {
    /// The `after` of the newest authenticated `action` record of retirement `id`.
    async fn audited_after(
        &self,
        action: Action,
        id: RetirementId,
    ) -> Result<Option<serde_json::Value>, ServiceError> {
        let filter = crate::store::audit::RecordFilter {
            action: Some(action.as_str().to_owned()),
            subject: Some(id.to_string()),
            ..Default::default()
        };
        self.audit()
            .authenticated_records(&filter, 0)
            .await?
            .last()
            .and_then(|r| r.after_state.as_deref())
            .map(serde_json::from_str)
            .transpose()
            .map_err(ServiceError::internal)
    }
}

/// What a certificate states, read and checked before its transaction.
struct CertificateFacts {
    kill: KillSwitchRecord,
    erased: Vec<ErasedArtifact>,
    rotation: Rotation,
    verification: Verification,
    revoked: serde_json::Value,
    approved_by: serde_json::Value,
    emergency: Option<serde_json::Value>,
    derived_step: Option<String>,
    purges: Vec<crate::domain::Purge>,
    notice_summary: serde_json::Value,
    enforcement: Vec<serde_json::Value>,
    service_key_id: String,
}

/// The in-toto statement a destruction certificate signs (its predicate follows NIST SP
/// 800-88 Rev. 1, Appendix G, adapted), as of the audit chain's `head` at `now`.
fn statement(
    r: &Retirement,
    f: &CertificateFacts,
    (head_seq, head_hash): (i64, String),
    now: chrono::DateTime<chrono::Utc>,
) -> serde_json::Value {
    let (kill, erased, rotation) = (&f.kill, &f.erased, &f.rotation);
    let subjects: Vec<serde_json::Value> = erased
        .iter()
        .map(|a| {
            json!({
                "name": format!("{}@{}/{}", r.model, a.version, a.name),
                "digest": { "sha256": a.sha256 },
            })
        })
        .collect();
    json!({
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": DESTRUCTION_PREDICATE,
        "predicate": {
            "certificateSerial": certificate_serial(r.id.0),
            "retirement": {
                "id": r.id,
                "model": r.model.to_string(),
                "versions": r.affected_versions.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "reason": r.reason,
                "effectiveAt": r.effective_at,
                "scheduledBy": r.created_by,
            },
            "sanitization": {
                "performedBy": { "name": kill.by, "role": kill.role, "tool": format!("sunset {}", env!("CARGO_PKG_VERSION")) },
                "approvedBy": f.approved_by,
                "executedAt": kill.at,
                "completedAt": now,
                "media": {
                    "type": "encrypted model artifacts (AES-256-GCM, one data key per artifact) and their wrapped keys",
                    "artifacts": erased,
                    "totalBytes": erased.iter().map(|a| a.size_bytes).sum::<i64>(),
                },
                "method": "purge",
                "technique": "cryptographic erase",
                "keysDestroyed": erased.iter().map(|a| &a.key_id).collect::<Vec<_>>(),
                "kekEpochsRetired": rotation.retired_epochs,
                "kekEpochCurrent": rotation.target_epoch,
                "survivingKeysRewrapped": rotation.rewrapped,
                "verification": f.verification,
                "postSanitization": "ciphertext deleted from the blob store; copies elsewhere (backups) stay undecryptable without the destroyed keys",
            },
            "derivedData": { "outcome": f.derived_step, "stores": f.purges },
            "noticeSummary": f.notice_summary,
            "killSwitch": {
                "emergency": f.emergency,
                "disabledAt": kill.at,
                "enforcementPoints": f.enforcement,
                "responseMs": kill.response_ms,
                "allowedMs": kill.allowed_ms,
                "withinPolicy": kill.response_ms.map(|ms| ms <= kill.allowed_ms as f64),
            },
            "revocation": f.revoked,
            "auditChainHead": { "seq": head_seq, "hash": head_hash },
            "issuer": { "keyId": f.service_key_id },
            "issuedAt": now,
        },
    })
}

/// The certificate's own serial: one certificate per retirement, so the retirement's id
/// makes it unique and stable.
fn certificate_serial(retirement_id: i64) -> String {
    format!("sunset-dc-{retirement_id:08}")
}

/// Who approved the destruction, with the role they acted in: the second person who
/// approved an emergency erasure, or governance, who scheduled a planned retirement with
/// its notice.
fn approver(
    r: &Retirement,
    kill: &KillSwitchRecord,
    approval: Option<&super::emergency::Approval>,
) -> serde_json::Value {
    match (&kill.emergency, approval) {
        (Some(e), Some(a)) => json!({
            "name": a.by, "role": a.role,
            "note": format!("approved the erasure as the second person; the kill switch was pulled by {} ({}, {})", kill.by, kill.role, e.trigger),
        }),
        (Some(e), None) => json!({
            "name": kill.by, "role": kill.role,
            "note": format!("pulled the kill switch ({})", e.trigger),
        }),
        (None, _) => json!({
            "name": r.created_by, "role": Role::Governance.as_str(),
            "note": "scheduled the retirement and its notice",
        }),
    }
}
