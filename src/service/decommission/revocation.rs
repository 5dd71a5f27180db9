//! Signature revocation (AISVS 3.6.3): every signature of the retired versions goes on
//! the revocation list, a public document signed with the service key (a DSSE envelope)
//! whose serial only grows. Verification everywhere consults it: a revoked bundle is
//! refused when attached to any version, at promotion and at download.

use super::{disabled_by, to_json};
use crate::attest::{dsse, model_signature};
use crate::audit::{Action, AuditEntry, SubjectType};
use crate::auth::Actor;
use crate::domain::DecommissionStep;
use crate::domain::Retirement;
use crate::service::ServiceError;
use crate::store::Conn;
use crate::store::audit as audit_repo;
use crate::store::kill_switch as steps;
use crate::store::registry::VersionId;
use crate::store::revocations::{self as repo, Revocation};
use crate::store::signers as signer_repo;
use serde::Serialize;
use sha2::Digest;

/// The payload type of the signed revocation list.
pub const REVOCATIONS_PAYLOAD_TYPE: &str = "application/vnd.sunset.revocations+json";

/// The revocation list as signed. Lists chain: each names the SHA-256 of the payload of
/// the list before it (`previous`), so a verifier holding any list can tell a later one
/// that dropped an entry. Every field follows from the audited revocations alone
/// (`issuedAt` is the newest revocation's time), so the same serial always signs to the
/// same bytes.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RevocationList<'a> {
    #[serde(rename = "_type")]
    kind: &'static str,
    issuer: &'a str,
    serial: i64,
    /// When the newest revocation was made; none while nothing is revoked.
    issued_at: Option<chrono::DateTime<chrono::Utc>>,
    previous: Option<String>,
    revoked: &'a [Revocation],
}

/// What the authenticated audit trail says was revoked, read up to `read_up_to`, and the
/// list last signed from it. The database's `revocations` rows are an index for lookups;
/// this is what signed lists and revocation checks trust.
#[derive(Debug, Default)]
pub struct AuditedRevocations {
    read_up_to: i64,
    /// Each revoked bundle once, in the order the audit trail first recorded it.
    revoked: Vec<Revocation>,
    /// `(how many revocations it holds, the DSSE envelope)`.
    signed: Option<(usize, String)>,
}

/// The first way `rows` (the database) differs from `audited`, if any.
fn difference(audited: &[Revocation], rows: &[Revocation]) -> Option<String> {
    for a in audited {
        match rows.iter().find(|r| r.bundle_sha256 == a.bundle_sha256) {
            None => {
                return Some(format!(
                    "the revocation of {}@{} (bundle {}) is missing from the database",
                    a.model, a.version, a.bundle_sha256
                ));
            }
            Some(r) if r != a => {
                return Some(format!(
                    "the revocation of bundle {} was changed in the database",
                    a.bundle_sha256
                ));
            }
            Some(_) => {}
        }
    }
    rows.iter()
        .find(|r| !audited.iter().any(|a| a.bundle_sha256 == r.bundle_sha256))
        .map(|r| {
            format!(
                "the database holds a revocation of bundle {} the audit trail never recorded",
                r.bundle_sha256
            )
        })
}

impl crate::service::Decommission<'_> {
    /// Puts every signature of the retired versions on the revocation list.
    pub(super) async fn step_revoke_signatures(
        &self,
        r: &Retirement,
    ) -> Result<Option<String>, ServiceError> {
        let disabled = disabled_by(self, r).await?;
        in_write_tx!(self, |tx| {
            let now = self.now();
            let serial = repo::serial(tx.conn()).await? + 1;
            let mut entries = Vec::new();
            for d in &disabled {
                let Some(signature) =
                    signer_repo::signature_of(tx.conn(), VersionId(d.version_id)).await?
                else {
                    continue;
                };
                let (bundle_sha256, payload_sha256) =
                    model_signature::bundle_digests(signature.bundle.as_bytes())
                        .map_err(ServiceError::internal)?;
                entries.push(Revocation {
                    serial,
                    bundle_sha256,
                    payload_sha256,
                    model: r.model.to_string(),
                    version: d.version.clone(),
                    signer: signature.signer,
                    retirement_id: Some(r.id.0),
                    revoked_at: now,
                    reason: format!("retirement {}: {}", r.id, r.reason),
                });
            }
            let added = repo::add(tx.conn(), &entries).await?;
            let serial = repo::serial(tx.conn()).await?;
            let outcome = format!(
                "{} signature(s) revoked ({added} newly); revocation list serial {serial}",
                entries.len()
            );
            steps::finish_step(
                tx.conn(),
                r.id,
                DecommissionStep::RevokeSignatures,
                now,
                now,
                &outcome,
                Some(&to_json(
                    &serde_json::json!({ "serial": serial, "revoked": entries }),
                )),
            )
            .await?;
            if added > 0 {
                let entry = AuditEntry::new(
                    Actor::system().audit_identity(),
                    Action::SignaturesRevoked,
                    SubjectType::Retirement,
                    r.id.to_string(),
                )
                .after(&entries);
                self.append_audit(tx, now, entry).await?;
            }
            Ok(())
        })?;
        self.follow_revocations().await;
        Ok(None)
    }

    /// Brings the audited revocations up to date (records after the last audit head read,
    /// each authenticated by its hash and MAC) and returns them, locked. Reads only the
    /// records appended since the last call, whatever they are, so it stays cheap as the
    /// log grows; the follower calls it every poll interval.
    async fn audited_revocations(
        &self,
    ) -> Result<tokio::sync::MutexGuard<'_, AuditedRevocations>, ServiceError> {
        let mut state = self.inner.decommission.revocations.lock().await;
        // Every record up to the head has committed (the chain orders commits).
        let (head, _) = audit_repo::head(self.store().reader()).await?;
        if head <= state.read_up_to {
            return Ok(state);
        }
        let filter = audit_repo::RecordFilter {
            action: Some(Action::SignaturesRevoked.as_str().to_owned()),
            through_seq: Some(head),
            ..Default::default()
        };
        let records = self
            .audit()
            .authenticated_records(&filter, state.read_up_to)
            .await?;
        state.read_up_to = state.read_up_to.max(head);
        for record in records {
            let entries: Vec<Revocation> =
                serde_json::from_str(record.after_state.as_deref().unwrap_or("[]"))
                    .map_err(ServiceError::internal)?;
            for entry in entries {
                if !state
                    .revoked
                    .iter()
                    .any(|r| r.bundle_sha256 == entry.bundle_sha256)
                {
                    state.revoked.push(entry);
                }
            }
            state.read_up_to = state.read_up_to.max(record.seq);
        }
        Ok(state)
    }

    /// Follows revocations recorded through any instance (called by the inventory
    /// follower each poll interval), so checks read them from memory.
    pub(crate) async fn follow_revocations(&self) {
        if let Err(e) = self.audited_revocations().await {
            tracing::warn!(error = %e, "could not follow the audited revocations");
        }
    }

    /// The revocation list, signed with the service key: a DSSE envelope (JSON). Built
    /// from the audited revocations after checking that the database agrees with them: a
    /// row deleted or edited behind the service's back is refused (and recorded), not
    /// signed. Signed once per change and kept, not per request.
    pub async fn revocation_list(&self) -> Result<String, ServiceError> {
        let mut state = self.audited_revocations().await?;
        let rows = repo::list(self.store().reader()).await?;
        if difference(&state.revoked, &rows).is_some() {
            // A revocation may have committed between the two reads: read again once.
            drop(state);
            state = self.audited_revocations().await?;
            let rows = repo::list(self.store().reader()).await?;
            if let Some(difference) = difference(&state.revoked, &rows) {
                drop(state);
                return Err(self
                    .refuse_signing("the revocation list", &difference)
                    .await);
            }
        }
        if let Some((count, envelope)) = &state.signed
            && *count == state.revoked.len()
        {
            return Ok(envelope.clone());
        }
        let envelope = self.sign_revocation_chain(&state.revoked)?;
        state.signed = Some((state.revoked.len(), envelope.clone()));
        Ok(envelope)
    }

    /// Signs the newest list of the chain the revocations make, serial by serial.
    fn sign_revocation_chain(&self, revoked: &[Revocation]) -> Result<String, ServiceError> {
        let issuer = crate::audit::checkpoint_key_id(&self.service_key().verifying_key());
        let mut serials: Vec<i64> = revoked.iter().map(|r| r.serial).collect();
        serials.sort_unstable();
        serials.dedup();
        let mut previous: Option<String> = None;
        let mut payload = Vec::new();
        for &serial in serials.iter().chain(serials.is_empty().then_some(&0)) {
            let upto: Vec<Revocation> = revoked
                .iter()
                .filter(|r| r.serial <= serial)
                .cloned()
                .collect();
            let list = RevocationList {
                kind: "https://sunset.invalid/revocation-list/v1",
                issuer: &issuer,
                serial,
                issued_at: upto.iter().map(|r| r.revoked_at).max(),
                previous: previous.take(),
                revoked: &upto,
            };
            payload = serde_json::to_vec(&list).map_err(ServiceError::internal)?;
            previous = Some(hex::encode(sha2::Sha256::digest(&payload)));
        }
        let envelope = dsse::sign(
            self.service_key().signing_key(),
            REVOCATIONS_PAYLOAD_TYPE,
            &payload,
        );
        serde_json::to_string_pretty(&envelope).map_err(ServiceError::internal)
    }

    /// Records that a signed document was refused because the database disagreed with
    /// the audit trail, and returns the error to answer.
    pub(crate) async fn refuse_signing(&self, what: &str, difference: &str) -> ServiceError {
        tracing::error!(%what, %difference, "refusing to sign: the database differs from the audit trail");
        let entry = AuditEntry::new(
            Actor::system().audit_identity(),
            Action::IntegrityRefused,
            SubjectType::AuditLog,
            what,
        )
        .after(&serde_json::json!({ "refused": what, "difference": difference }));
        let now = self.now();
        if let Err(e) = in_write_tx!(self, |tx| {
            self.append_audit(tx, now, entry.clone()).await
        }) {
            tracing::error!(error = %e, "could not record a refused signing");
        }
        ServiceError::Integrity(format!(
            "{what} is not issued: {difference}; the database no longer matches the audit trail"
        ))
    }

    /// The revocation that names this bundle (by its bytes or its signed payload): the
    /// audit trail's first, so a row deleted from the database revokes all the same.
    /// No query beyond the row's: downloads of promoted versions ask this every time.
    pub(crate) async fn revocation_of(
        &self,
        conn: &impl Conn,
        bundle_sha256: &str,
        payload_sha256: &str,
    ) -> Result<Option<Revocation>, ServiceError> {
        // From memory: the follower keeps it within a poll interval of the audit trail,
        // and a revocation committed since is in the database row read below.
        let audited = self
            .inner
            .decommission
            .revocations
            .lock()
            .await
            .revoked
            .iter()
            .find(|r| r.bundle_sha256 == bundle_sha256 || r.payload_sha256 == payload_sha256)
            .cloned();
        match audited {
            Some(r) => Ok(Some(r)),
            None => Ok(repo::find(conn, bundle_sha256, payload_sha256).await?),
        }
    }
}

/// Why a revoked bundle is refused, for the error a client sees.
pub(crate) fn refusal(r: &Revocation) -> String {
    format!(
        "was revoked at {} with {}@{} (revocation list serial {}); a revoked signature is never accepted again",
        r.revoked_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        r.model,
        r.version,
        r.serial
    )
}
