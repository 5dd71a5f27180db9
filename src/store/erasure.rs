//! Crypto-erasure's rows: marking artifacts erased (their data key destroyed), the
//! evidence kept for verification (`erased_keys`), and re-wrapping every surviving data
//! key under a new KEK epoch, many rows per statement.

use super::entities::{artifact, erased_key};
use super::{StoreError, statement_chunks};
use base64::Engine;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Set, Statement, Value,
};

/// An artifact as erasure sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasableArtifact {
    pub id: i64,
    pub version_id: i64,
    pub path: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub blob_id: String,
    pub kek_epoch: u32,
    pub wrapped_key: Vec<u8>,
    pub erased_at: Option<DateTime<Utc>>,
}

/// A destroyed data key's last wrapping, the evidence verification re-checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasedKey {
    pub artifact_id: i64,
    pub blob_id: String,
    pub kek_epoch: u32,
    pub wrapped_key: Vec<u8>,
    pub erased_at: DateTime<Utc>,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn epoch(e: i32) -> u32 {
    u32::try_from(e).unwrap_or(0)
}

/// Every artifact of these versions, erased or not, by id.
pub async fn artifacts_of(
    conn: &impl ConnectionTrait,
    version_ids: &[i64],
) -> Result<Vec<ErasableArtifact>, StoreError> {
    let rows = artifact::Entity::find()
        .filter(artifact::Column::VersionId.is_in(version_ids.iter().copied()))
        .order_by_asc(artifact::Column::Id)
        .all(conn)
        .await?;
    rows.into_iter()
        .map(|r| {
            Ok(ErasableArtifact {
                wrapped_key: b64()
                    .decode(&r.wrapped_key)
                    .map_err(|e| StoreError::Corrupt(format!("artifacts row {}: {e}", r.id)))?,
                id: r.id,
                version_id: r.version_id,
                path: r.path,
                size_bytes: r.size_bytes,
                sha256: r.sha256,
                blob_id: r.blob_id,
                kek_epoch: epoch(r.kek_epoch),
                erased_at: r.erased_at,
            })
        })
        .collect()
}

/// Destroys the data keys of `artifacts` (those not yet erased): keeps each last wrapping
/// as evidence and empties the artifact's own. Returns how many were newly erased.
pub async fn erase(
    conn: &impl ConnectionTrait,
    retirement_id: i64,
    artifacts: &[ErasableArtifact],
    at: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let live: Vec<&ErasableArtifact> = artifacts.iter().filter(|a| a.erased_at.is_none()).collect();
    for chunk in statement_chunks(&live) {
        erased_key::Entity::insert_many(chunk.iter().map(|a| erased_key::ActiveModel {
            artifact_id: Set(a.id),
            retirement_id: Set(retirement_id),
            blob_id: Set(a.blob_id.clone()),
            kek_epoch: Set(i32::try_from(a.kek_epoch).unwrap_or(i32::MAX)),
            wrapped_key: Set(b64().encode(&a.wrapped_key)),
            erased_at: Set(at),
        }))
        .on_conflict(
            OnConflict::column(erased_key::Column::ArtifactId)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    }
    let mut erased = 0;
    for chunk in statement_chunks(&live) {
        erased += artifact::Entity::update_many()
            .col_expr(artifact::Column::WrappedKey, Expr::value(String::new()))
            .col_expr(artifact::Column::ErasedAt, Expr::value(Some(at)))
            .filter(artifact::Column::Id.is_in(chunk.iter().map(|a| a.id)))
            .filter(artifact::Column::ErasedAt.is_null())
            .exec(conn)
            .await?
            .rows_affected;
    }
    Ok(erased)
}

/// The keys erased for retirement `retirement_id`.
pub async fn erased_keys(
    conn: &impl ConnectionTrait,
    retirement_id: i64,
) -> Result<Vec<ErasedKey>, StoreError> {
    erased_key::Entity::find()
        .filter(erased_key::Column::RetirementId.eq(retirement_id))
        .order_by_asc(erased_key::Column::ArtifactId)
        .all(conn)
        .await?
        .into_iter()
        .map(|r| {
            Ok(ErasedKey {
                wrapped_key: b64().decode(&r.wrapped_key).map_err(|e| {
                    StoreError::Corrupt(format!("erased_keys row {}: {e}", r.artifact_id))
                })?,
                artifact_id: r.artifact_id,
                blob_id: r.blob_id,
                kek_epoch: epoch(r.kek_epoch),
                erased_at: r.erased_at,
            })
        })
        .collect()
}

/// A surviving data key's wrapping: `(artifact id, blob id, epoch, wrapped bytes)`.
pub type Wrapping = (i64, String, u32, Vec<u8>);

/// Up to `limit` surviving (not erased) data keys wrapped under an epoch below `epoch`,
/// after artifact id `after`, by id.
pub async fn wrapped_below(
    conn: &impl ConnectionTrait,
    epoch_bound: u32,
    after: i64,
    limit: u64,
) -> Result<Vec<Wrapping>, StoreError> {
    let rows: Vec<(i64, String, i32, String)> = artifact::Entity::find()
        .select_only()
        .columns([
            artifact::Column::Id,
            artifact::Column::BlobId,
            artifact::Column::KekEpoch,
            artifact::Column::WrappedKey,
        ])
        .filter(artifact::Column::ErasedAt.is_null())
        .filter(artifact::Column::KekEpoch.lt(i32::try_from(epoch_bound).unwrap_or(i32::MAX)))
        .filter(artifact::Column::Id.gt(after))
        .order_by_asc(artifact::Column::Id)
        .limit(limit)
        .into_tuple()
        .all(conn)
        .await?;
    rows.into_iter()
        .map(|(id, blob, e, w)| {
            let bytes = b64()
                .decode(&w)
                .map_err(|e| StoreError::Corrupt(format!("artifacts row {id}: {e}")))?;
            Ok((id, blob, epoch(e), bytes))
        })
        .collect()
}

/// Writes new wrappings `(artifact id, epoch, wrapped bytes)`, one statement per chunk:
/// `WITH v(id, epoch, wrapped) AS (VALUES …) UPDATE artifacts … FROM v`, which both
/// SQLite (3.33+) and PostgreSQL run. Only rows not erased meanwhile are touched.
pub async fn rewrap(
    conn: &impl ConnectionTrait,
    rows: &[(i64, u32, Vec<u8>)],
) -> Result<u64, StoreError> {
    let backend = conn.get_database_backend();
    let mut updated = 0;
    for chunk in statement_chunks(rows) {
        let mut values = Vec::with_capacity(chunk.len() * 3);
        let mut tuples = Vec::with_capacity(chunk.len());
        for (i, (id, epoch, wrapped)) in chunk.iter().enumerate() {
            let p = |k: usize| match backend {
                DbBackend::Postgres => format!("${}", i * 3 + k),
                _ => "?".to_owned(),
            };
            tuples.push(format!(
                "(CAST({} AS BIGINT), CAST({} AS INTEGER), {})",
                p(1),
                p(2),
                p(3)
            ));
            values.push(Value::from(*id));
            values.push(Value::from(i32::try_from(*epoch).unwrap_or(i32::MAX)));
            values.push(Value::from(b64().encode(wrapped)));
        }
        let sql = format!(
            "WITH v(id, epoch, wrapped) AS (VALUES {}) \
             UPDATE artifacts SET kek_epoch = v.epoch, wrapped_key = v.wrapped \
             FROM v WHERE artifacts.id = v.id AND artifacts.erased_at IS NULL",
            tuples.join(", ")
        );
        updated += conn
            .execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?
            .rows_affected();
    }
    Ok(updated)
}
