//! Console sessions, stored by the SHA-256 of their cookie's secret.

use super::StoreError;
use super::entities::console_session as row;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

/// A session that has not ended: its id and the token it acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSession {
    pub id: i64,
    pub token_name: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

pub async fn insert(
    conn: &impl ConnectionTrait,
    secret_sha256: &str,
    token_name: &str,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let inserted = row::ActiveModel {
        secret_sha256: Set(secret_sha256.to_owned()),
        token_name: Set(token_name.to_owned()),
        created_at: Set(created_at),
        expires_at: Set(expires_at),
        ended_at: Set(None),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    Ok(inserted.id)
}

/// The session whose secret hashes to `secret_sha256`, unless it ended or expired by `now`.
pub async fn find_live(
    conn: &impl ConnectionTrait,
    secret_sha256: &str,
    now: DateTime<Utc>,
) -> Result<Option<LiveSession>, StoreError> {
    Ok(row::Entity::find()
        .filter(row::Column::SecretSha256.eq(secret_sha256))
        .filter(row::Column::EndedAt.is_null())
        .filter(row::Column::ExpiresAt.gt(now))
        .one(conn)
        .await?
        .map(|r| LiveSession {
            id: r.id,
            token_name: r.token_name,
            created_at: r.created_at,
            expires_at: r.expires_at,
        }))
}

/// Ends session `id`; false when it had already ended.
pub async fn end(
    conn: &impl ConnectionTrait,
    id: i64,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let done = row::Entity::update_many()
        .col_expr(row::Column::EndedAt, Expr::value(at))
        .filter(row::Column::Id.eq(id))
        .filter(row::Column::EndedAt.is_null())
        .exec(conn)
        .await?;
    Ok(done.rows_affected == 1)
}

/// Forgets sessions that ended or expired before `before` (their audit records stay).
pub async fn prune(conn: &impl ConnectionTrait, before: DateTime<Utc>) -> Result<u64, StoreError> {
    let done = row::Entity::delete_many()
        .filter(
            sea_orm::Condition::any()
                .add(row::Column::ExpiresAt.lt(before))
                .add(row::Column::EndedAt.lt(before)),
        )
        .exec(conn)
        .await?;
    Ok(done.rows_affected)
}
