//! Signed validation results bound to a version's artifacts (AISVS 3.2.3): parse,
//! authorise, verify against the validators and the stored artifacts, write with the
//! audit record. The promotion gate reads what is kept here (`registry.rs`).

use super::ServiceError;
use crate::attest::validation::verify_attestation;
use crate::audit::{Action, AuditEntry, SubjectType};
use crate::auth::Actor;
use crate::domain::{ModelName, ParseError, Role, SignerPurpose, Version};
use crate::store::registry as repo;
use crate::store::validations::{self as validations_repo, AttestedValidation};

impl super::Registry<'_> {
    /// Verifies `envelope` (an in-toto statement of validation results, DSSE-signed by a
    /// validator) for `model@version` and keeps its results. An envelope that does not
    /// verify, or whose subjects are not exactly the version's artifacts, is refused and
    /// nothing is kept: it counts as no result.
    pub async fn attest_validation(
        &self,
        actor: &Actor,
        model: &str,
        version: &str,
        envelope: &str,
    ) -> Result<AttestedValidation, ServiceError> {
        let model = ModelName::parse(model)?;
        let acting = self.acting_on(actor, &model).await?;
        let actor = &acting;
        let version = Version::parse(version)?;
        let subject = format!("{model}@{version}");
        let kept = in_write_tx!(self, |tx| {
            let (model_id, registered) = self.model_or_not_found(tx.conn(), &model).await?;
            if !actor.has_role(&[Role::Admin, Role::Security]) {
                super::registry::require_team_owner(actor, &registered.owner_team, &subject)?;
            }
            let (version_id, _) = repo::find_version(tx.conn(), model_id, &model, version)
                .await?
                .ok_or_else(|| ServiceError::NotFound(format!("no version {subject}")))?;
            let validators = self
                .signer_keys_for(tx.conn(), SignerPurpose::Validator)
                .await?;
            let artifacts = self
                .artifact_digests(tx.conn(), version_id)
                .await?
                .into_iter()
                .map(|(path, sha)| (path.to_string(), sha))
                .collect();
            let verified = verify_attestation(envelope.as_bytes(), &validators, &artifacts)
                .map_err(|why| {
                    ParseError::new(
                        "envelope",
                        format!("the attestation for {subject} is refused: {why}"),
                    )
                })?;
            let now = self.now();
            let kept = AttestedValidation {
                signer: verified.signer.to_string(),
                suite: verified.suite,
                results: verified.results,
                envelope_sha256: verified.envelope_sha256,
                attached_at: now,
                attached_by: actor.name.clone(),
            };
            validations_repo::insert(tx.conn(), version_id, &kept).await?;
            let entry = AuditEntry::new(
                actor.audit_identity(),
                Action::ValidationAttested,
                SubjectType::ModelVersion,
                subject.clone(),
            )
            .after(&kept);
            self.append_audit(tx, now, entry).await?;
            Ok(kept)
        })?;
        tracing::info!(version = %subject, signer = %kept.signer, suite = %kept.suite, "validation attested");
        Ok(kept)
    }

    /// The verified attestations `model@version` holds, oldest first.
    pub async fn attested_validations(
        &self,
        model: &str,
        version: &str,
    ) -> Result<Vec<AttestedValidation>, ServiceError> {
        let model = ModelName::parse(model)?;
        let version = Version::parse(version)?;
        let db = self.store().reader();
        let (model_id, _) = self.model_or_not_found(db, &model).await?;
        let Some((version_id, _)) = repo::find_version(db, model_id, &model, version).await? else {
            return Err(ServiceError::NotFound(format!(
                "no version {model}@{version}"
            )));
        };
        Ok(validations_repo::of_version(db, version_id).await?)
    }
}

/// The results the promotion gate judges: the version's own provenance results, each
/// replaced by a signed result of the same name, and the signed ones it lacked; the
/// newest signed result of a name wins.
pub(super) fn gate_results(
    provenance: &[crate::domain::ValidationResult],
    attested: &[AttestedValidation],
) -> Vec<(String, bool)> {
    let mut by_name: std::collections::BTreeMap<String, bool> = provenance
        .iter()
        .map(|v| (v.name.clone(), v.passed))
        .collect();
    for a in attested {
        for r in &a.results {
            by_name.insert(r.name.clone(), r.passed);
        }
    }
    by_name.into_iter().collect()
}
