//! Signatures of versions, and the gates that need them (AISVS 3.1.1, 3.1.2, 3.3.3).
//!
//! A version with artifacts can move to staging or production only when its signature
//! verifies, now, under an enabled signer and matches its artifacts exactly; downloads of
//! staging and production versions check the same. Checking at every use rather than
//! once at upload means disabling a signer takes effect at once.

use super::ServiceError;
use super::decommission::revocation;
use super::registry::require_team_owner;
use crate::attest::model_signature::{self, SignatureError, VerifiedSignature};
use crate::audit::{Action, AuditEntry, SubjectType};
use crate::auth::Actor;
use crate::domain::StoredSignature;
use crate::domain::{
    ArtifactPath, LifecycleStatus, ModelName, ParseError, SignerKey, SignerName, Version,
};
use crate::store::Conn;
use crate::store::artifacts as artifact_repo;
use crate::store::registry::VersionId;
use crate::store::signers as repo;
use std::collections::BTreeMap;

impl From<SignatureError> for ServiceError {
    fn from(e: SignatureError) -> Self {
        let message = match e {
            SignatureError::NoValidSignature => {
                "no enabled signer's key verifies it; an admin registers signers with addSigner"
                    .to_owned()
            }
            SignatureError::Malformed(m) => format!("is not valid: {m}"),
            SignatureError::Mismatch(m) => format!("does not match the version's artifacts: {m}"),
        };
        ServiceError::Invalid(ParseError::new("signature", message))
    }
}

impl super::Registry<'_> {
    async fn enabled_signer_keys(
        &self,
        conn: &impl Conn,
    ) -> Result<Vec<(SignerName, SignerKey)>, ServiceError> {
        self.signer_keys_for(conn, crate::domain::SignerPurpose::ModelSigning)
            .await
    }

    /// The enabled signers whose signatures count for `purpose`, with their keys.
    pub(super) async fn signer_keys_for(
        &self,
        conn: &impl Conn,
        purpose: crate::domain::SignerPurpose,
    ) -> Result<Vec<(SignerName, SignerKey)>, ServiceError> {
        let mut keys = Vec::new();
        for s in repo::list(conn)
            .await?
            .into_iter()
            .filter(|s| s.enabled && s.purposes.contains(&purpose))
        {
            let key = SignerKey::parse_pem(&s.public_key_pem).map_err(ServiceError::internal)?;
            keys.push((s.name, key));
        }
        Ok(keys)
    }

    pub(super) async fn artifact_digests(
        &self,
        conn: &impl Conn,
        version: VersionId,
    ) -> Result<BTreeMap<ArtifactPath, String>, ServiceError> {
        Ok(artifact_repo::list(conn, version)
            .await?
            .into_iter()
            .map(|a| (a.path, a.sha256.to_string()))
            .collect())
    }

    /// Whether the version may be served or promoted: `Ok(())`, or why not. A version
    /// without artifacts has nothing to sign.
    pub(super) async fn check_version_signature(
        &self,
        conn: &impl Conn,
        version: VersionId,
    ) -> Result<Result<(), String>, ServiceError> {
        let artifacts = self.artifact_digests(conn, version).await?;
        if artifacts.is_empty() {
            return Ok(Ok(()));
        }
        let Some(stored) = repo::signature_of(conn, version).await? else {
            return Ok(Err(
                "it has no signature; upload one with PUT …/signature".into()
            ));
        };
        let signers = self.enabled_signer_keys(conn).await?;
        let verified = match model_signature::verify_bundle(stored.bundle.as_bytes(), &signers) {
            Ok(v) => v,
            Err(e) => return Ok(Err(format!("its signature fails verification: {e}"))),
        };
        if let Some(r) = self
            .decommission()
            .revocation_of(conn, &verified.bundle_sha256, &verified.payload_sha256)
            .await?
        {
            return Ok(Err(format!("its signature {}", revocation::refusal(&r))));
        }
        Ok(model_signature::check_resources(&verified, &artifacts)
            .map_err(|e| format!("its signature fails verification: {e}")))
    }

    /// Verifies `bundle` against enabled signers and the version's artifacts, and keeps it
    /// as the version's signature. Only while the version is in development.
    pub async fn attach_signature(
        &self,
        actor: &Actor,
        model: &str,
        version: &str,
        bundle: &[u8],
    ) -> Result<StoredSignature, ServiceError> {
        let model = ModelName::parse(model)?;
        let acting = self.acting_on(actor, &model).await?;
        let actor = &acting;
        let version = Version::parse(version)?;
        let text = std::str::from_utf8(bundle)
            .map_err(|_| ParseError::new("signature", "is not UTF-8 JSON"))?;
        in_write_tx!(self, |tx| {
            let (registered, version_id, v) = self
                .artifacts()
                .locate_version(tx.conn(), &model, version)
                .await?;
            require_team_owner(actor, &registered.owner_team, &format!("model {model}"))?;
            if v.status != LifecycleStatus::Development {
                return Err(ServiceError::Conflict(format!(
                    "{model}@{version} is {}; its signature can be set only while it is in development",
                    v.status
                )));
            }
            let signers = self.enabled_signer_keys(tx.conn()).await?;
            let verified: VerifiedSignature = model_signature::verify_bundle(bundle, &signers)?;
            if let Some(r) = self
                .decommission()
                .revocation_of(tx.conn(), &verified.bundle_sha256, &verified.payload_sha256)
                .await?
            {
                return Err(ServiceError::Invalid(ParseError::new(
                    "signature",
                    revocation::refusal(&r),
                )));
            }
            model_signature::check_resources(
                &verified,
                &self.artifact_digests(tx.conn(), version_id).await?,
            )?;
            let before = repo::signature_of(tx.conn(), version_id).await?;
            let stored = StoredSignature {
                bundle: text.to_owned(),
                bundle_sha256: verified.bundle_sha256.clone(),
                signer: verified.signer.to_string(),
                uploaded_at: self.now(),
                uploaded_by: actor.name.clone(),
            };
            repo::put_signature(tx.conn(), version_id, &stored).await?;
            let mut entry = AuditEntry::new(
                actor.audit_identity(),
                Action::SignatureAttached,
                SubjectType::ModelVersion,
                format!("{model}@{version}"),
            )
            .after(&serde_json::json!({
                "signer": stored.signer,
                "bundleSha256": stored.bundle_sha256,
                "resources": verified.resources,
            }));
            if let Some(before) = &before {
                entry = entry.before(before);
            }
            self.append_audit(tx, stored.uploaded_at, entry).await?;
            Ok(stored)
        })
    }
}

impl super::Registry<'_> {
    /// The version's stored signature, if any (facts only; the bundle is not re-verified here).
    pub async fn signature(
        &self,
        model: &str,
        version: &str,
    ) -> Result<Option<StoredSignature>, ServiceError> {
        let model = ModelName::parse(model)?;
        let version = Version::parse(version)?;
        let db = self.store().reader();
        let (_, version_id, _) = self.artifacts().locate_version(db, &model, version).await?;
        Ok(repo::signature_of(db, version_id).await?)
    }
}
