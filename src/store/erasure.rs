//! Crypto-erasure's rows: marking artifacts erased (their data key destroyed), the
//! evidence kept for verification (`erased_keys`), and re-wrapping every surviving data
//! key under a new KEK epoch, many rows per statement.

use super::entities::{artifact, erased_key};
use super::{StoreError, statement_chunks};
use crate::domain::RetirementId;
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
    retirement_id: RetirementId,
    artifacts: &[ErasableArtifact],
    at: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let live: Vec<&ErasableArtifact> = artifacts.iter().filter(|a| a.erased_at.is_none()).collect();
    for chunk in statement_chunks(&live) {
        erased_key::Entity::insert_many(chunk.iter().map(|a| erased_key::ActiveModel {
            artifact_id: Set(a.id),
            retirement_id: Set(retirement_id.0),
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
    retirement_id: RetirementId,
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

/// One surviving data key's wrapping for each KEK epoch surviving keys are wrapped
/// under (the lowest artifact id of each), for the start-up check that the key folder
/// is the one the database was written with.
pub async fn one_wrapping_per_epoch(
    conn: &impl ConnectionTrait,
) -> Result<Vec<Wrapping>, StoreError> {
    let backend = conn.get_database_backend();
    let rows = conn
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT id, blob_id, kek_epoch, wrapped_key FROM artifacts WHERE id IN \
             (SELECT MIN(id) FROM artifacts WHERE erased_at IS NULL GROUP BY kek_epoch) \
             ORDER BY kek_epoch",
        ))
        .await?;
    rows.iter()
        .map(|row| {
            let id: i64 = row.try_get("", "id")?;
            let blob: String = row.try_get("", "blob_id")?;
            let e: i32 = row.try_get("", "kek_epoch")?;
            let w: String = row.try_get("", "wrapped_key")?;
            let bytes = b64()
                .decode(&w)
                .map_err(|e| StoreError::Corrupt(format!("artifacts row {id}: {e}")))?;
            Ok((id, blob, epoch(e), bytes))
        })
        .collect()
}

/// Writes new wrappings `(artifact id, wrapped bytes)`, all under `epoch`. Only rows not
/// erased meanwhile are touched. On SQLite, one statement per chunk:
/// `UPDATE artifacts SET kek_epoch = ?, wrapped_key = CASE id WHEN ? THEN ? … END WHERE id
/// IN (…)`, run through the primary key (a join against a `VALUES` list scanned the table
/// once per statement). On PostgreSQL that form cost ~50 ms a statement through the
/// driver, so there it is one statement for all rows (see [`rewrap_postgres`]).
pub async fn rewrap(
    conn: &impl ConnectionTrait,
    epoch: u32,
    rows: &[(i64, Vec<u8>)],
) -> Result<u64, StoreError> {
    let backend = conn.get_database_backend();
    let epoch = i32::try_from(epoch).unwrap_or(i32::MAX);
    if backend == DbBackend::Postgres {
        return rewrap_postgres(conn, epoch, rows).await;
    }
    let mut updated = 0;
    for chunk in statement_chunks(rows) {
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 3 + 1);
        let mut next = 0usize;
        let mut param = || {
            next += 1;
            match backend {
                DbBackend::Postgres => format!("${next}"),
                _ => "?".to_owned(),
            }
        };
        let epoch_param = param();
        values.push(Value::from(epoch));
        let mut arms = String::with_capacity(chunk.len() * 24);
        for (id, wrapped) in chunk {
            let (when, then) = (param(), param());
            arms.push_str(&format!(" WHEN {when} THEN {then}"));
            values.push(Value::from(*id));
            values.push(Value::from(b64().encode(wrapped)));
        }
        let ids: Vec<String> = chunk
            .iter()
            .map(|(id, _)| {
                values.push(Value::from(*id));
                param()
            })
            .collect();
        let sql = format!(
            "UPDATE artifacts SET kek_epoch = CAST({epoch_param} AS INTEGER), \
             wrapped_key = CASE id{arms} END \
             WHERE erased_at IS NULL AND id IN ({})",
            ids.join(", ")
        );
        updated += conn
            .execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?
            .rows_affected();
    }
    Ok(updated)
}

/// PostgreSQL: one `UPDATE … FROM unnest(ids, wrappings)`, the two arrays sent as array
/// literals (ids are numbers and wrappings base64, so neither needs quoting), which the
/// server joins on the primary key.
async fn rewrap_postgres(
    conn: &impl ConnectionTrait,
    epoch: i32,
    rows: &[(i64, Vec<u8>)],
) -> Result<u64, StoreError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let ids = rows
        .iter()
        .map(|(id, _)| id.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let wrapped = rows
        .iter()
        .map(|(_, w)| b64().encode(w))
        .collect::<Vec<_>>()
        .join(",");
    let sql = "UPDATE artifacts SET kek_epoch = $1, wrapped_key = v.w \
               FROM unnest(CAST($2 AS bigint[]), CAST($3 AS text[])) AS v(id, w) \
               WHERE artifacts.id = v.id AND artifacts.erased_at IS NULL";
    Ok(conn
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            [
                Value::from(epoch),
                Value::from(format!("{{{ids}}}")),
                Value::from(format!("{{{wrapped}}}")),
            ],
        ))
        .await?
        .rows_affected())
}

/// Surviving (not erased) data keys per KEK epoch: `(epoch, how many)`, by epoch. What a
/// restored database holds, to be set against the epochs the key store still has.
pub async fn surviving_per_epoch(
    conn: &impl ConnectionTrait,
) -> Result<Vec<(u32, i64)>, StoreError> {
    let rows = conn
        .query_all_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT kek_epoch, COUNT(*) AS n FROM artifacts WHERE erased_at IS NULL \
             GROUP BY kek_epoch ORDER BY kek_epoch",
        ))
        .await?;
    rows.iter()
        .map(|row| {
            let e: i32 = row.try_get("", "kek_epoch")?;
            let n: i64 = row.try_get("", "n")?;
            Ok((epoch(e), n))
        })
        .collect()
}

/// Up to `limit` surviving artifacts wrapped under `kek_epoch`, named
/// `model@major.minor.patch/path`, by id.
pub async fn named_under_epoch(
    conn: &impl ConnectionTrait,
    kek_epoch: u32,
    limit: u64,
) -> Result<Vec<String>, StoreError> {
    let backend = conn.get_database_backend();
    let rows = conn
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            match backend {
                DbBackend::Postgres => {
                    "SELECT m.name, v.major, v.minor, v.patch, a.path FROM artifacts a \
                     JOIN model_versions v ON v.id = a.version_id JOIN models m ON m.id = v.model_id \
                     WHERE a.erased_at IS NULL AND a.kek_epoch = $1 ORDER BY a.id LIMIT $2"
                }
                _ => {
                    "SELECT m.name, v.major, v.minor, v.patch, a.path FROM artifacts a \
                     JOIN model_versions v ON v.id = a.version_id JOIN models m ON m.id = v.model_id \
                     WHERE a.erased_at IS NULL AND a.kek_epoch = ? ORDER BY a.id LIMIT ?"
                }
            },
            [
                Value::from(i32::try_from(kek_epoch).unwrap_or(i32::MAX)),
                Value::from(i64::try_from(limit).unwrap_or(i64::MAX)),
            ],
        ))
        .await?;
    rows.iter()
        .map(|row| {
            let name: String = row.try_get("", "name")?;
            let (major, minor, patch): (i32, i32, i32) = (
                row.try_get("", "major")?,
                row.try_get("", "minor")?,
                row.try_get("", "patch")?,
            );
            let path: String = row.try_get("", "path")?;
            Ok(format!("{name}@{major}.{minor}.{patch}/{path}"))
        })
        .collect()
}

/// Marks every surviving artifact wrapped under an epoch below `below` as erased at `at`
/// (its wrapping emptied): a restored database's artifacts erased after the backup was
/// taken. Returns how many.
pub async fn erase_below_epoch(
    conn: &impl ConnectionTrait,
    below: u32,
    at: DateTime<Utc>,
) -> Result<u64, StoreError> {
    Ok(artifact::Entity::update_many()
        .col_expr(artifact::Column::WrappedKey, Expr::value(String::new()))
        .col_expr(artifact::Column::ErasedAt, Expr::value(Some(at)))
        .filter(artifact::Column::ErasedAt.is_null())
        .filter(artifact::Column::KekEpoch.lt(i32::try_from(below).unwrap_or(i32::MAX)))
        .exec(conn)
        .await?
        .rows_affected)
}
