//! Artifacts: metadata and wrapped data keys; the ciphertext lives in the blob store.

use super::StoreError;
use super::entities::artifact;
use super::registry::VersionId;
use crate::domain::{ArtifactKind, ArtifactPath, Sha256Digest};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};

/// An artifact row, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredArtifact {
    pub path: ArtifactPath,
    pub kind: ArtifactKind,
    pub size_bytes: u64,
    pub sha256: Sha256Digest,
    pub blob_id: String,
    pub kek_epoch: u32,
    pub wrapped_key: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

pub async fn insert(
    conn: &impl ConnectionTrait,
    version: VersionId,
    a: &StoredArtifact,
) -> Result<(), StoreError> {
    use base64::Engine;
    artifact::ActiveModel {
        version_id: Set(version.0),
        path: Set(a.path.to_string()),
        kind: Set(a.kind.as_str().to_owned()),
        size_bytes: Set(i64::try_from(a.size_bytes).unwrap_or(i64::MAX)),
        sha256: Set(a.sha256.to_string()),
        blob_id: Set(a.blob_id.clone()),
        kek_epoch: Set(i32::try_from(a.kek_epoch).unwrap_or(i32::MAX)),
        wrapped_key: Set(base64::engine::general_purpose::STANDARD.encode(&a.wrapped_key)),
        created_at: Set(a.created_at),
        created_by: Set(a.created_by.clone()),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    Ok(())
}

/// Whether an artifact row names blob `blob_id`.
pub async fn blob_in_use(conn: &impl ConnectionTrait, blob_id: &str) -> Result<bool, StoreError> {
    Ok(artifact::Entity::find()
        .filter(artifact::Column::BlobId.eq(blob_id))
        .one(conn)
        .await?
        .is_some())
}

pub async fn find(
    conn: &impl ConnectionTrait,
    version: VersionId,
    path: &ArtifactPath,
) -> Result<Option<StoredArtifact>, StoreError> {
    artifact::Entity::find()
        .filter(artifact::Column::VersionId.eq(version.0))
        .filter(artifact::Column::Path.eq(path.as_str()))
        .one(conn)
        .await?
        .map(parse)
        .transpose()
}

pub async fn list(
    conn: &impl ConnectionTrait,
    version: VersionId,
) -> Result<Vec<StoredArtifact>, StoreError> {
    artifact::Entity::find()
        .filter(artifact::Column::VersionId.eq(version.0))
        .order_by_asc(artifact::Column::Path)
        .all(conn)
        .await?
        .into_iter()
        .map(parse)
        .collect()
}

fn parse(r: artifact::Model) -> Result<StoredArtifact, StoreError> {
    use base64::Engine;
    let corrupt = |e: String| StoreError::Corrupt(format!("artifacts row {}: {e}", r.id));
    Ok(StoredArtifact {
        path: ArtifactPath::parse(&r.path).map_err(|e| corrupt(e.to_string()))?,
        kind: ArtifactKind::parse(&r.kind).map_err(|e| corrupt(e.to_string()))?,
        size_bytes: u64::try_from(r.size_bytes).map_err(|e| corrupt(e.to_string()))?,
        sha256: Sha256Digest::parse(&r.sha256).map_err(|e| corrupt(e.to_string()))?,
        blob_id: r.blob_id.clone(),
        kek_epoch: u32::try_from(r.kek_epoch).map_err(|e| corrupt(e.to_string()))?,
        wrapped_key: base64::engine::general_purpose::STANDARD
            .decode(&r.wrapped_key)
            .map_err(|e| corrupt(e.to_string()))?,
        created_at: r.created_at,
        created_by: r.created_by.clone(),
    })
}
