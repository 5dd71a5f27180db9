//! Signature revocation (AISVS 3.6.3): every signature of the retired versions goes on
//! the revocation list, a public document signed with the service key (a DSSE envelope)
//! whose serial only grows. Verification everywhere consults it: a revoked bundle is
//! refused when attached to any version, at promotion and at download.

use super::{REVOKE_SIGNATURES, disabled_by, to_json};
use crate::attest::{dsse, model_signature};
use crate::audit::{Action, AuditEntry, SubjectType};
use crate::auth::Actor;
use crate::service::{ServiceError, Services};
use crate::store::Conn;
use crate::store::kill_switch as steps;
use crate::store::registry::VersionId;
use crate::store::retirements::Retirement;
use crate::store::revocations::{self as repo, Revocation};
use crate::store::signers as signer_repo;
use serde::Serialize;

/// The payload type of the signed revocation list.
pub const REVOCATIONS_PAYLOAD_TYPE: &str = "application/vnd.sunset.revocations+json";

/// The revocation list as signed.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RevocationList<'a> {
    #[serde(rename = "_type")]
    kind: &'static str,
    issuer: String,
    serial: i64,
    issued_at: chrono::DateTime<chrono::Utc>,
    revoked: &'a [Revocation],
}

impl Services {
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
                    retirement_id: Some(r.id),
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
                REVOKE_SIGNATURES,
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
        Ok(None)
    }

    /// The revocation list, signed now with the service key: a DSSE envelope (JSON).
    pub async fn revocation_list(&self) -> Result<String, ServiceError> {
        let db = self.store().reader();
        let revoked = repo::list(db).await?;
        let list = RevocationList {
            kind: "https://sunset.invalid/revocation-list/v1",
            issuer: crate::audit::checkpoint_key_id(&self.service_key().verifying_key()),
            serial: revoked.iter().map(|r| r.serial).max().unwrap_or(0),
            issued_at: self.now(),
            revoked: &revoked,
        };
        let payload = serde_json::to_vec(&list).map_err(ServiceError::internal)?;
        let envelope = dsse::sign(
            self.service_key().signing_key(),
            REVOCATIONS_PAYLOAD_TYPE,
            &payload,
        );
        serde_json::to_string_pretty(&envelope).map_err(ServiceError::internal)
    }

    /// The revocation that names this bundle (by its bytes or its signed payload).
    pub(crate) async fn revocation_of(
        &self,
        conn: &impl Conn,
        bundle_sha256: &str,
        payload_sha256: &str,
    ) -> Result<Option<Revocation>, ServiceError> {
        Ok(repo::find(conn, bundle_sha256, payload_sha256).await?)
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
