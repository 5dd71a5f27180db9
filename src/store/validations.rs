//! Validation attestations a version holds: verified before they are written, so a
//! row here is a result the promotion gate may read.

use super::StoreError;
use super::entities::version_validation;
pub use crate::domain::AttestedValidation;
use crate::domain::VersionId;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};

pub async fn insert(
    conn: &impl ConnectionTrait,
    version: VersionId,
    a: &AttestedValidation,
) -> Result<(), StoreError> {
    version_validation::ActiveModel {
        version_id: Set(version.0),
        signer: Set(a.signer.clone()),
        suite: Set(a.suite.clone()),
        predicate_type: Set(crate::attest::validation::VALIDATION_PREDICATE.to_owned()),
        results: Set(serde_json::to_string(&a.results).unwrap_or_else(|_| "[]".into())),
        envelope_sha256: Set(a.envelope_sha256.clone()),
        attached_at: Set(a.attached_at),
        attached_by: Set(a.attached_by.clone()),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    Ok(())
}

/// A version's attestations, oldest first.
pub async fn of_version(
    conn: &impl ConnectionTrait,
    version: VersionId,
) -> Result<Vec<AttestedValidation>, StoreError> {
    version_validation::Entity::find()
        .filter(version_validation::Column::VersionId.eq(version.0))
        .order_by_asc(version_validation::Column::Id)
        .all(conn)
        .await?
        .into_iter()
        .map(|r| {
            Ok(AttestedValidation {
                results: serde_json::from_str(&r.results).map_err(|e| {
                    StoreError::Corrupt(format!("validation attestation {}: {e}", r.id))
                })?,
                signer: r.signer,
                suite: r.suite,
                envelope_sha256: r.envelope_sha256,
                attached_at: r.attached_at,
                attached_by: r.attached_by,
            })
        })
        .collect()
}
