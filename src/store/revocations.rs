//! The signature revocation list: one row per revoked bundle, each carrying the serial
//! of the list that first held it. The list's serial is the highest one, so it only
//! grows.

use super::StoreError;
use super::entities::revocation;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Revocation {
    pub serial: i64,
    /// SHA-256 of the bundle as uploaded.
    pub bundle_sha256: String,
    /// SHA-256 of the DSSE payload it signs: a re-serialised copy of the bundle carries
    /// the same payload and is refused too.
    pub payload_sha256: String,
    pub model: String,
    pub version: String,
    pub signer: String,
    pub retirement_id: Option<i64>,
    pub revoked_at: DateTime<Utc>,
    pub reason: String,
}

/// The list's serial: 0 while nothing is revoked.
pub async fn serial(conn: &impl ConnectionTrait) -> Result<i64, StoreError> {
    Ok(revocation::Entity::find()
        .order_by_desc(revocation::Column::Serial)
        .one(conn)
        .await?
        .map_or(0, |r| r.serial))
}

/// Adds revocations under `serial`; a bundle already revoked stays as it was. Returns how
/// many were added.
pub async fn add(conn: &impl ConnectionTrait, entries: &[Revocation]) -> Result<u64, StoreError> {
    let mut added = 0;
    for r in entries {
        added += revocation::Entity::insert(revocation::ActiveModel {
            serial: Set(r.serial),
            bundle_sha256: Set(r.bundle_sha256.clone()),
            payload_sha256: Set(r.payload_sha256.clone()),
            model_name: Set(r.model.clone()),
            version: Set(r.version.clone()),
            signer: Set(r.signer.clone()),
            retirement_id: Set(r.retirement_id),
            revoked_at: Set(r.revoked_at),
            reason: Set(r.reason.clone()),
            ..Default::default()
        })
        .on_conflict(
            OnConflict::column(revocation::Column::BundleSha256)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    }
    Ok(added)
}

pub async fn list(conn: &impl ConnectionTrait) -> Result<Vec<Revocation>, StoreError> {
    Ok(revocation::Entity::find()
        .order_by_asc(revocation::Column::Id)
        .all(conn)
        .await?
        .into_iter()
        .map(parse)
        .collect())
}

/// The revocation naming this bundle or its payload, if any.
pub async fn find(
    conn: &impl ConnectionTrait,
    bundle_sha256: &str,
    payload_sha256: &str,
) -> Result<Option<Revocation>, StoreError> {
    Ok(revocation::Entity::find()
        .filter(
            Condition::any()
                .add(revocation::Column::BundleSha256.eq(bundle_sha256))
                .add(revocation::Column::PayloadSha256.eq(payload_sha256)),
        )
        .one(conn)
        .await?
        .map(parse))
}

fn parse(r: revocation::Model) -> Revocation {
    Revocation {
        serial: r.serial,
        bundle_sha256: r.bundle_sha256,
        payload_sha256: r.payload_sha256,
        model: r.model_name,
        version: r.version,
        signer: r.signer,
        retirement_id: r.retirement_id,
        revoked_at: r.revoked_at,
        reason: r.reason,
    }
}
