//! Secret calendar addresses (`GET /v1/calendars/{secret}`), stored by the SHA-256 of
//! their secret.

use super::StoreError;
use super::entities::calendar_feed;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CalendarFeed {
    pub id: i64,
    pub name: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

fn parse(r: calendar_feed::Model) -> CalendarFeed {
    CalendarFeed {
        id: r.id,
        name: r.name,
        created_by: r.created_by,
        created_at: r.created_at,
        revoked_at: r.revoked_at,
    }
}

pub async fn insert(
    conn: &impl ConnectionTrait,
    name: &str,
    secret_sha256: &str,
    created_by: &str,
    at: DateTime<Utc>,
) -> Result<CalendarFeed, StoreError> {
    let row = calendar_feed::ActiveModel {
        name: Set(name.to_owned()),
        secret_sha256: Set(secret_sha256.to_owned()),
        created_by: Set(created_by.to_owned()),
        created_at: Set(at),
        revoked_at: Set(None),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    Ok(parse(row))
}

/// The feed whose secret hashes to `secret_sha256`, revoked or not.
pub async fn by_secret(
    conn: &impl ConnectionTrait,
    secret_sha256: &str,
) -> Result<Option<CalendarFeed>, StoreError> {
    Ok(calendar_feed::Entity::find()
        .filter(calendar_feed::Column::SecretSha256.eq(secret_sha256))
        .one(conn)
        .await?
        .map(parse))
}

pub async fn find(
    conn: &impl ConnectionTrait,
    id: i64,
) -> Result<Option<CalendarFeed>, StoreError> {
    Ok(calendar_feed::Entity::find_by_id(id)
        .one(conn)
        .await?
        .map(parse))
}

/// Feeds made by `created_by`, or every feed when `None`; newest first.
pub async fn list(
    conn: &impl ConnectionTrait,
    created_by: Option<&str>,
) -> Result<Vec<CalendarFeed>, StoreError> {
    let mut q = calendar_feed::Entity::find();
    if let Some(by) = created_by {
        q = q.filter(calendar_feed::Column::CreatedBy.eq(by));
    }
    Ok(q.order_by_desc(calendar_feed::Column::Id)
        .all(conn)
        .await?
        .into_iter()
        .map(parse)
        .collect())
}

pub async fn revoke(
    conn: &impl ConnectionTrait,
    id: i64,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    calendar_feed::Entity::update_many()
        .col_expr(calendar_feed::Column::RevokedAt, Expr::value(Some(at)))
        .filter(calendar_feed::Column::Id.eq(id))
        .filter(calendar_feed::Column::RevokedAt.is_null())
        .exec(conn)
        .await?;
    Ok(())
}
